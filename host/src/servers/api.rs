//! `/api`: actions over HTTP (PROTOCOL 3.1).
//!
//! Collects params from the path, query, form or JSON body (an array body is the
//! `payload`), hands them to the processor, and writes the actionhero envelope
//! (`serverInformation`, `requesterInformation`), as JSON or JSONP, with HTTP error
//! codes when `returnErrorCodes` asks for them. `GET /api/` is the documentation.
//!
//! Which action a request calls: `/api/<known action>`, else an `action` param naming a
//! known action, else the first matching HTTP route (whose path params overwrite query
//! and body params), else the path or `action` as given (an unknown action); the rules
//! and their actionhero origin are in [`crate::actions::routes`].

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use plugin_api::{ConnectionInfo, Params, Value};
use serde::Serialize;
use warp::reply::Response;

use crate::actions::{ActionRequest, Registry, merge_result};
use crate::app::App;
use crate::clock::now_ms;
use crate::edge::body::{BodyError, read_limited};
use crate::edge::form;
use crate::edge::jsonp::is_valid_callback;
use crate::servers::documentation::{documentation, routes_documentation};
use crate::servers::identity::Requester;

/// Whether `path` is under `/api` (`/api`, `/api/`, `/api/...`; not `/apix`).
pub fn claims(path: &str) -> bool {
    tail(path).is_some()
}

/// The path after `/api/`, still percent-encoded; `None` outside `/api`.
fn tail(path: &str) -> Option<&str> {
    match path.strip_prefix("/api")? {
        "" => Some(""),
        rest => rest.strip_prefix('/'),
    }
}

/// Serves one `/api` request, every method.
///
/// Called by the connection's service before warp's routes: `/api` is the hot path and
/// the first route anyway, and taking the request whole spares it the filter chain and
/// a copy of the headers.
pub async fn serve(
    app: Arc<App>,
    request: http::Request<Incoming>,
    remote: SocketAddr,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = usize::try_from(app.config.max_body_bytes).unwrap_or(usize::MAX);
    let body = read_limited(BodyDataStream::new(body), &parts.headers, limit).await;
    let raw_path = tail(parts.uri.path()).unwrap_or_default();
    let request = HttpRequest {
        raw_path: raw_path.to_owned(),
        path_action: percent_encoding::percent_decode_str(raw_path.trim_matches('/'))
            .decode_utf8_lossy()
            .into_owned(),
        method: parts.method,
        query: form::pairs(parts.uri.query().unwrap_or_default()).collect(),
        headers: parts.headers,
        remote,
    };
    handle(app, request, body).await
}

struct HttpRequest {
    /// The path after `/api/`, still percent-encoded (routes decode it per segment).
    raw_path: String,
    /// The whole path after `/api/`, decoded: an action name when it is one.
    path_action: String,
    method: Method,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    remote: SocketAddr,
}

async fn handle(app: Arc<App>, mut req: HttpRequest, body: Result<Bytes, BodyError>) -> Response {
    let started = std::time::Instant::now();
    let requester = Requester::identify(&req.headers, Some(req.remote), app.config.trust_proxy);
    let reply = Reply {
        app: &app,
        requester: &requester,
        started,
    };

    if let Err(refused) = app.config.allowed_origins.check(&req.headers) {
        return refused.response();
    }
    if req.method == Method::OPTIONS {
        return with_identity(empty(StatusCode::OK), &requester, Some(cors_headers()));
    }

    let collected = match body {
        Ok(body) => collect_params(&mut req, &body).map_err(|e| (StatusCode::BAD_REQUEST, e)),
        Err(e) => {
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Unreadable => StatusCode::BAD_REQUEST,
            };
            Err((status, e.to_string()))
        }
    };
    let mut params = match collected {
        Ok(params) => params,
        Err((status, message)) => {
            let fields = error_fields(format!("Error: {message}"));
            return reply.json(status, fields, &Params::new(), None);
        }
    };
    choose_action(app.registry(), &req, &mut params);
    let callback = params
        .get("callback")
        .and_then(Value::as_str)
        .filter(|cb| is_valid_callback(cb))
        .map(str::to_owned);
    let callback = callback.as_deref();

    if req.method == Method::TRACE {
        return reply.json(StatusCode::OK, Params::new(), &params, callback);
    }

    let has_action = params
        .get("action")
        .and_then(Value::as_str)
        .is_some_and(|a| !a.is_empty());
    if !has_action {
        let mut fields = Params::new();
        fields.insert("documentation".into(), documentation(app.registry()));
        fields.insert("routes".into(), routes_documentation(app.registry()));
        return reply.json(StatusCode::OK, fields, &params, callback);
    }

    let connection = ConnectionInfo {
        id: requester.id.clone(),
        kind: "web".into(),
        remote_ip: requester.remote_ip.clone(),
        remote_port: requester.remote_port,
        rooms: Vec::new(),
        attributes: Params::new(),
    };
    let outcome = app
        .processor
        .process(ActionRequest { params, connection })
        .await;
    let (status, fields) = match outcome.result {
        // An object result is the response's fields as it is (no copy into a new map).
        Ok(Value::Object(fields)) => (StatusCode::OK, fields),
        Ok(result) => {
            let mut fields = Params::new();
            merge_result(&mut fields, result);
            (StatusCode::OK, fields)
        }
        Err(err) => {
            let status = if app.config.return_error_codes {
                StatusCode::from_u16(err.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST)
            } else {
                StatusCode::OK
            };
            (status, error_fields(err.client_message()))
        }
    };
    reply.json(status, fields, &outcome.params, callback)
}

/// Sets `action` (and a route's params and version) in `params`, by precedence:
/// `/api/<known action>`; an `action` param naming a known action; the first route
/// matching the method and path; the path (or `action` param) as given.
fn choose_action(registry: &Registry, req: &HttpRequest, params: &mut Params) {
    let path_action = || Value::from(req.path_action.as_str());
    if !req.path_action.is_empty() && registry.knows(&req.path_action) {
        params.insert("action".into(), path_action());
        return;
    }
    let named = params.get("action").and_then(Value::as_str);
    if named.is_some_and(|name| registry.knows(name)) {
        return;
    }
    if let Some(found) = registry.routes().find(&req.method, &req.raw_path) {
        for (name, value) in found.params {
            params.insert(name, Value::from(value));
        }
        params.insert("action".into(), Value::from(found.action));
        // As in actionhero: the request's own `apiVersion` wins over the route's.
        let given = params
            .get("apiVersion")
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
        if let Some(version) = found.api_version
            && !given
        {
            params.insert("apiVersion".into(), Value::from(version));
        }
        return;
    }
    if !req.path_action.is_empty() {
        params.insert("action".into(), path_action());
    }
}

fn error_fields(message: String) -> Params {
    let mut fields = Params::new();
    fields.insert("error".into(), Value::from(message));
    fields
}

/// What every JSON answer of one request shares.
struct Reply<'a> {
    app: &'a App,
    requester: &'a Requester,
    started: std::time::Instant,
}

/// The response object: the action's fields (or `error`, `documentation`), then
/// `serverInformation` and `requesterInformation`. Serialized from borrows, so the
/// hot path builds no intermediate JSON tree.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(flatten)]
    fields: &'a Params,
    server_information: ServerInformation<'a>,
    requester_information: RequesterInformation<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerInformation<'a> {
    server_name: &'a str,
    api_version: &'a str,
    request_duration: u64,
    current_time: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequesterInformation<'a> {
    id: &'a str,
    fingerprint: &'a str,
    #[serde(rename = "remoteIP")]
    remote_ip: &'a str,
    received_params: &'a Params,
}

impl Reply<'_> {
    /// The pretty-printed envelope (as JSONP when `callback` is given), with the
    /// requester's cookie.
    fn json(
        &self,
        status: StatusCode,
        mut fields: Params,
        received: &Params,
        callback: Option<&str>,
    ) -> Response {
        // The envelope's own keys win over an action's fields of the same name.
        for reserved in ["serverInformation", "requesterInformation"] {
            if fields.contains_key(reserved) {
                fields.remove(reserved);
            }
        }
        let envelope = Envelope {
            fields: &fields,
            server_information: ServerInformation {
                server_name: &self.app.config.server_name,
                api_version: &self.app.config.api_version,
                request_duration: u64::try_from(self.started.elapsed().as_millis())
                    .unwrap_or(u64::MAX),
                current_time: now_ms(),
            },
            requester_information: RequesterInformation {
                id: &self.requester.id,
                fingerprint: &self.requester.fingerprint,
                remote_ip: &self.requester.remote_ip,
                received_params: received,
            },
        };
        let mut body = Vec::with_capacity(1024);
        if let Some(cb) = callback {
            body.extend_from_slice(cb.as_bytes());
            body.push(b'(');
        }
        if serde_json::to_writer_pretty(&mut body, &envelope).is_err() {
            // Only a non-string map key could fail, and `Params` has none.
            body.clear();
            body.extend_from_slice(b"{}");
        }
        let content_type = match callback {
            Some(_) => {
                body.extend_from_slice(b");");
                "application/javascript; charset=utf-8"
            }
            None => "application/json; charset=utf-8",
        };
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        with_identity(response, self.requester, None)
    }
}

/// Query, then the body (form or JSON; a JSON array lands in `payload`).
fn collect_params(req: &mut HttpRequest, body: &[u8]) -> Result<Params, String> {
    let mut params = Params::new();
    for (k, v) in std::mem::take(&mut req.query) {
        params.insert(k, Value::from(v));
    }
    if body.is_empty() {
        return Ok(params);
    }
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            Ok(array @ Value::Array(_)) => {
                params.insert("payload".into(), array);
            }
            Ok(_) => return Err("the JSON body must be an object or an array".into()),
            Err(e) => return Err(format!("the body is not valid JSON ({e})")),
        }
    } else if content_type.starts_with("multipart/") {
        return Err("multipart bodies are not supported; send a form or JSON".into());
    } else {
        let text = std::str::from_utf8(body).map_err(|_| "the body is not valid UTF-8")?;
        for (k, v) in form::pairs(text) {
            params.insert(k, Value::from(v));
        }
    }
    Ok(params)
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Default::default());
    *response.status_mut() = status;
    response
}

fn cors_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("HEAD, GET, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
    );
    h
}

fn with_identity(
    mut response: Response,
    requester: &Requester,
    extra: Option<HeaderMap>,
) -> Response {
    let headers = response.headers_mut();
    if let Some(extra) = extra {
        headers.extend(extra);
    }
    if let Some(cookie) = requester.set_cookie() {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_claims_its_own_path_and_nothing_else() {
        assert_eq!(tail("/api"), Some(""));
        assert_eq!(tail("/api/"), Some(""));
        assert_eq!(tail("/api/randomNumber"), Some("randomNumber"));
        assert_eq!(tail("/api/a/b%20c"), Some("a/b%20c"));
        assert_eq!(tail("/apix"), None);
        assert_eq!(tail("/public/api"), None);
        assert!(!claims("/"));
        assert!(claims("/api/"));
    }
}
