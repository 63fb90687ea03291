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
use plugin_api::{ConnectionInfo, Params, Value};
use serde::Serialize;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::actions::{ActionRequest, Registry, merge_result};
use crate::app::App;
use crate::clock::now_ms;
use crate::servers::documentation::{documentation, routes_documentation};
use crate::servers::identity::{Requester, is_valid_callback};

/// The `/api` routes, every method.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::path::tail())
        .and(warp::method())
        // Decoded pairs; a missing query is an empty list, not a rejection to recover from.
        .and(
            warp::query::<Vec<(String, String)>>()
                .or(warp::any().map(Vec::new))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(crate::servers::web::peer())
        .and(warp::body::stream())
        .then(
            move |tail: warp::path::Tail, method, query, headers, remote, stream| {
                let app = Arc::clone(&app);
                async move {
                    let body = read_body(stream, &headers, app.config.max_body_bytes).await;
                    let request = HttpRequest {
                        raw_path: tail.as_str().to_owned(),
                        path_action: percent_encoding::percent_decode_str(
                            tail.as_str().trim_matches('/'),
                        )
                        .decode_utf8_lossy()
                        .into_owned(),
                        method,
                        query,
                        headers,
                        remote,
                    };
                    handle(app, request, body).await
                }
            },
        )
        .boxed()
}

/// Why a request body was not accepted.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("the request body could not be read")]
    Unreadable,
}

/// How much of an oversized body is read and dropped before the 413, at most.
const DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// How long reading an oversized body's rest may take before the 413 is sent anyway.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// The whole body, refused past `limit` bytes (declared or streamed): a client cannot
/// make the host buffer more than that.
async fn read_body<S, B>(stream: S, headers: &HeaderMap, limit: u64) -> Result<Bytes, BodyError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures_util::TryStreamExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    while let Some(mut chunk) = stream.try_next().await.map_err(|_| BodyError::Unreadable)? {
        if (body.len() + chunk.remaining()) as u64 > limit {
            // Read (and drop) a bounded rest before answering: closing a socket with
            // unread data resets it, and the client would lose the 413.
            let drain = async {
                let mut left = DRAIN_BYTES;
                while let Ok(Some(chunk)) = stream.try_next().await {
                    left = left.saturating_sub(chunk.remaining());
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            return Err(BodyError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            body.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

struct HttpRequest {
    /// The path after `/api/`, still percent-encoded (routes decode it per segment).
    raw_path: String,
    /// The whole path after `/api/`, decoded: an action name when it is one.
    path_action: String,
    method: Method,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
}

async fn handle(app: Arc<App>, mut req: HttpRequest, body: Result<Bytes, BodyError>) -> Response {
    let started = std::time::Instant::now();
    let requester = Requester::identify(&req.headers, req.remote, app.config.trust_proxy);
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
        for (k, v) in form_pairs(text) {
            params.insert(k, Value::from(v));
        }
    }
    Ok(params)
}

/// `application/x-www-form-urlencoded` pairs, decoded (`+` is a space).
pub(crate) fn form_pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
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
