//! `/api`: actions over HTTP (PROTOCOL 3.1).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use plugin_api::{ActionError, ConnectionInfo, Params, Value};
use serde_json::json;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::actions::{ActionRequest, merge_result};
use crate::app::{App, now_ms};
use crate::servers::documentation::documentation;
use crate::servers::identity::{Requester, is_valid_callback};

/// The `/api` routes, every method.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let limit = app.config.max_body_bytes;
    warp::path("api")
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(limited_body(limit))
        .and(warp::any().map(move || Arc::clone(&app)))
        .then(
            |tail: warp::path::Tail, method, query: String, headers, remote, body, app| async move {
                let request = HttpRequest {
                    path_action: tail.as_str().trim_matches('/').to_owned(),
                    method,
                    query,
                    headers,
                    remote,
                    body,
                };
                handle(app, request).await
            },
        )
        .boxed()
}

/// The whole body, refused with 413 past `limit` bytes (declared or streamed).
fn limited_body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |declared: Option<u64>| async move {
            match declared {
                Some(n) if n > limit => Err(warp::reject::custom(BodyTooLarge)),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |stream| read_limited(stream, limit))
}

async fn read_limited<S, B>(stream: S, limit: u64) -> Result<Bytes, warp::Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures_util::TryStreamExt;
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    while let Some(mut chunk) = stream
        .try_next()
        .await
        .map_err(|_| warp::reject::custom(BodyUnreadable))?
    {
        if (body.len() + chunk.remaining()) as u64 > limit {
            return Err(warp::reject::custom(BodyTooLarge));
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

/// The request body is larger than `max_body_bytes`.
#[derive(Debug)]
pub struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The request body could not be read.
#[derive(Debug)]
pub struct BodyUnreadable;
impl warp::reject::Reject for BodyUnreadable {}

struct HttpRequest {
    path_action: String,
    method: Method,
    query: String,
    headers: HeaderMap,
    remote: Option<SocketAddr>,
    body: Bytes,
}

async fn handle(app: Arc<App>, req: HttpRequest) -> Response {
    let started = std::time::Instant::now();
    let requester = Requester::identify(&req.headers, req.remote, app.config.trust_proxy);

    if req.method == Method::OPTIONS {
        return with_identity(empty(StatusCode::OK), &requester, Some(cors_headers()));
    }

    let mut params = match collect_params(&req) {
        Ok(params) => params,
        Err(message) => {
            let body = envelope(&app, &requester, Params::new(), started, |r| {
                r.insert("error".into(), Value::from(format!("Error: {message}")));
            });
            return with_identity(
                json_response(StatusCode::BAD_REQUEST, &body, None),
                &requester,
                None,
            );
        }
    };
    if !req.path_action.is_empty() {
        params.insert("action".into(), Value::from(req.path_action.clone()));
    }
    let callback = params
        .get("callback")
        .and_then(Value::as_str)
        .filter(|cb| is_valid_callback(cb))
        .map(str::to_owned);

    if req.method == Method::TRACE {
        let body = envelope(&app, &requester, params, started, |_| {});
        return with_identity(
            json_response(StatusCode::OK, &body, callback.as_deref()),
            &requester,
            None,
        );
    }

    let has_action = params
        .get("action")
        .and_then(Value::as_str)
        .is_some_and(|a| !a.is_empty());
    if !has_action {
        let docs = documentation(app.registry());
        let body = envelope(&app, &requester, params, started, |r| {
            r.insert("documentation".into(), docs);
        });
        return with_identity(
            json_response(StatusCode::OK, &body, callback.as_deref()),
            &requester,
            None,
        );
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
    let mut status = StatusCode::OK;
    let error = outcome
        .result
        .as_ref()
        .err()
        .map(ActionError::client_message);
    if let Err(err) = &outcome.result
        && app.config.return_error_codes
    {
        status = StatusCode::from_u16(err.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    }
    let result = outcome.result.ok();
    let body = envelope(&app, &requester, outcome.params, started, |r| {
        if let Some(result) = result {
            merge_result(r, result);
        }
        if let Some(error) = error {
            r.insert("error".into(), Value::from(error));
        }
    });
    with_identity(
        json_response(status, &body, callback.as_deref()),
        &requester,
        None,
    )
}

/// Query, then the body (form or JSON; a JSON array lands in `payload`).
fn collect_params(req: &HttpRequest) -> Result<Params, String> {
    let mut params = Params::new();
    for (k, v) in form_urlencoded(&req.query) {
        params.insert(k, Value::from(v));
    }
    if req.body.is_empty() {
        return Ok(params);
    }
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("json") {
        match serde_json::from_slice::<Value>(&req.body) {
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
        let text = std::str::from_utf8(&req.body).map_err(|_| "the body is not valid UTF-8")?;
        for (k, v) in form_urlencoded(text) {
            params.insert(k, Value::from(v));
        }
    }
    Ok(params)
}

fn form_urlencoded(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
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

/// The response object with `serverInformation` and `requesterInformation`.
fn envelope(
    app: &App,
    requester: &Requester,
    received: Params,
    started: std::time::Instant,
    fill: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut response = serde_json::Map::new();
    fill(&mut response);
    response.insert(
        "serverInformation".into(),
        json!({
            "serverName": app.config.server_name,
            "apiVersion": app.config.api_version,
            "requestDuration": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "currentTime": now_ms(),
        }),
    );
    response.insert(
        "requesterInformation".into(),
        json!({
            "id": requester.id,
            "fingerprint": requester.fingerprint,
            "remoteIP": requester.remote_ip,
            "receivedParams": received,
        }),
    );
    Value::Object(response)
}

fn json_response(status: StatusCode, body: &Value, callback: Option<&str>) -> Response {
    let pretty = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".into());
    let (content_type, text) = match callback {
        Some(cb) => (
            "application/javascript; charset=utf-8",
            format!("{cb}({pretty});"),
        ),
        None => ("application/json; charset=utf-8", pretty),
    };
    let mut response = Response::new(text.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
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
