//! Long-polling (JSON and form), callback-polling (JSONP), preflight and the client script.
//!
//! Each request is decoded (bounded body, form or JSON, JSONP callback checked), handed
//! to the processor as one batch, and answered with the reply array in the framing of
//! its transport; malformed requests are HTTP 400 `text/plain`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use warp::Reply;
use warp::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_DISPOSITION,
    CONTENT_LENGTH, CONTENT_TYPE, HeaderValue,
};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::RequestParts;
use crate::bayeux::extension::{MessageContext, Transport};
use crate::bayeux::message::parse_messages;
use crate::bayeux::receipt::Receipt;
use crate::bayeux::server::{Bayeux, to_json_array};
use crate::edge::form;
use crate::edge::jsonp::is_valid_callback;

/// Callback used when a JSONP request names none.
const DEFAULT_JSONP: &str = "jsonpcallback";

fn text_response(status: StatusCode, body: &'static str) -> Response {
    let mut res = Response::new(body.into());
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

/// HTTP 400 `text/plain` "Bad request" (every malformed request); `why` is logged.
pub(super) fn bad_request(why: &str) -> Response {
    tracing::debug!(reason = why, "bayeux: bad request");
    text_response(StatusCode::BAD_REQUEST, "Bad request")
}

/// HTTP 413 for a body over the configured limit.
pub(super) fn too_large(limit: usize) -> Response {
    tracing::debug!(limit, "bayeux: request body too large");
    text_response(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
}

/// `GET <mount>/client.js` and `<mount>.js`.
pub(super) fn client_js(method: &Method, script: &'static str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return bad_request("client.js: unsupported method");
    }
    let mut res = Response::new(script.into());
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/javascript; charset=utf-8"),
    );
    res
}

/// `OPTIONS` (or any request with `Access-Control-Request-Method`).
pub(super) fn preflight(headers: &HeaderMap) -> Response {
    let origin = headers
        .get("origin")
        .or_else(|| headers.get("referer"))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    let mut res = Response::new(Bytes::new().into());
    let h = res.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Accept, Authorization, Content-Type, Pragma, X-Requested-With"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET"),
    );
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    res
}

fn context(bayeux: &Bayeux, parts: &RequestParts, transport: Transport) -> MessageContext {
    let trust = bayeux.config().trust_forwarded_for;
    let client = crate::edge::client::client_addr(&parts.headers, parts.remote, trust);
    MessageContext::network(transport, client)
}

fn common_headers(res: &mut Response, headers: &HeaderMap, content_type: &'static str) {
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(origin) = headers.get("origin") {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// `POST <mount>`: JSON body (long-polling) or form `message=` (cross-origin).
pub(super) async fn long_poll(bayeux: Bayeux, parts: RequestParts, body: Bytes) -> Response {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_json = content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let (text, transport) = if is_json {
        (body.to_vec(), Transport::LongPolling)
    } else {
        let form = String::from_utf8_lossy(&body);
        match form::value(&form, "message") {
            Some(m) => (m.into_bytes(), Transport::CrossOriginLongPolling),
            None => return bad_request("POST without message"),
        }
    };
    if text.is_empty() {
        return bad_request("empty message");
    }
    let messages = match parse_messages(&text) {
        Ok(m) => m,
        Err(e) => return bad_request(&e.to_string()),
    };
    let ctx = context(&bayeux, &parts, transport);
    let (replies, receipt) = bayeux.process_for_write(messages, &ctx).await;
    let mut res = delivering(to_json_array(&replies).into(), receipt);
    common_headers(&mut res, &parts.headers, "application/json; charset=utf-8");
    res
}

/// `GET <mount>?message=...&jsonp=...` (callback-polling).
pub(super) async fn jsonp(bayeux: Bayeux, parts: RequestParts) -> Response {
    if parts.query.len() > bayeux.config().max_body_bytes {
        return too_large(bayeux.config().max_body_bytes);
    }
    let Some(message) = form::value(&parts.query, "message").filter(|m| !m.is_empty()) else {
        return bad_request("GET without message");
    };
    let callback = form::value(&parts.query, "jsonp").unwrap_or_else(|| DEFAULT_JSONP.to_owned());
    if !is_valid_callback(&callback) {
        return bad_request("invalid JSONP callback");
    }
    let messages = match parse_messages(message.as_bytes()) {
        Ok(m) => m,
        Err(e) => return bad_request(&e.to_string()),
    };
    let ctx = context(&bayeux, &parts, Transport::CallbackPolling);
    let (replies, receipt) = bayeux.process_for_write(messages, &ctx).await;
    let json = to_json_array(&replies)
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let body = format!("/**/{callback}({json});");
    let mut res = delivering(body.into(), receipt);
    common_headers(&mut res, &parts.headers, "text/javascript; charset=utf-8");
    res.headers_mut().insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=f.txt"),
    );
    res
}

/// Bytes of a reply handed to the connection at a time: the connection asks for more
/// only when its buffer has room, so a reader that stalls stops the body part-way.
const REPLY_CHUNK: usize = 64 * 1024;

/// A reply body; one carrying deliveries marks its receipt written when the connection
/// takes its last chunk, and hands them back if the connection drops it before.
fn delivering(body: Bytes, receipt: Receipt) -> Response {
    if receipt.is_empty() {
        return Response::new(body.into());
    }
    let len = body.len();
    let mut res = warp::reply::stream(Delivering {
        rest: body,
        receipt: Some(receipt),
    })
    .into_response();
    // Known in advance: sent as `Content-Length`, not chunked, like any other reply.
    res.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    res
}

/// The body stream of [`delivering`].
struct Delivering {
    rest: Bytes,
    receipt: Option<Receipt>,
}

impl Stream for Delivering {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(REPLY_CHUNK);
        let chunk = self.rest.split_to(n);
        if self.rest.is_empty()
            && let Some(receipt) = self.receipt.take()
        {
            receipt.written();
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}
