//! Long-polling (JSON and form), callback-polling (JSONP), preflight and the client script.
//!
//! Each request is decoded (bounded body, form or JSON, JSONP callback checked), handed
//! to the processor as one batch, and answered with the reply array in the framing of
//! its transport; malformed requests are HTTP 400 `text/plain`.

use bytes::Bytes;
use percent_encoding::percent_decode_str;
use warp::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_DISPOSITION,
    CONTENT_TYPE, HeaderValue,
};
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use super::RequestParts;
use crate::bayeux::extension::{MessageContext, Transport};
use crate::bayeux::message::parse_messages;
use crate::bayeux::server::{Bayeux, to_json_array};

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

/// Parses `a=b&c=d` (form or query), decoding `+` and percent escapes.
pub(super) fn form_value(input: &str, key: &str) -> Option<String> {
    input.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            let s = s.replace('+', " ");
            percent_decode_str(&s).decode_utf8_lossy().into_owned()
        };
        (decode(k) == key).then(|| decode(v))
    })
}

/// Whether `name` is an acceptable JSONP callback:
/// `^[a-z_$][a-z0-9_$]*(\.[a-z_$][a-z0-9_$]*)*$`, case-insensitive.
pub(super) fn valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut bytes = part.bytes();
            bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        })
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
        match form_value(&form, "message") {
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
    let replies = bayeux.process(messages, &ctx).await;
    let mut res = Response::new(to_json_array(&replies).into());
    common_headers(&mut res, &parts.headers, "application/json; charset=utf-8");
    res
}

/// `GET <mount>?message=...&jsonp=...` (callback-polling).
pub(super) async fn jsonp(bayeux: Bayeux, parts: RequestParts) -> Response {
    if parts.query.len() > bayeux.config().max_body_bytes {
        return too_large(bayeux.config().max_body_bytes);
    }
    let Some(message) = form_value(&parts.query, "message").filter(|m| !m.is_empty()) else {
        return bad_request("GET without message");
    };
    let callback = form_value(&parts.query, "jsonp").unwrap_or_else(|| DEFAULT_JSONP.to_owned());
    if !valid_callback(&callback) {
        return bad_request("invalid JSONP callback");
    }
    let messages = match parse_messages(message.as_bytes()) {
        Ok(m) => m,
        Err(e) => return bad_request(&e.to_string()),
    };
    let ctx = context(&bayeux, &parts, Transport::CallbackPolling);
    let replies = bayeux.process(messages, &ctx).await;
    let json = to_json_array(&replies)
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let body = format!("/**/{callback}({json});");
    let mut res = Response::new(body.into());
    common_headers(&mut res, &parts.headers, "text/javascript; charset=utf-8");
    res.headers_mut().insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=f.txt"),
    );
    res
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn callbacks() {
        for ok in ["cb", "jsonpcallback", "_a$", "A.b.C", "$", "x1.y2"] {
            assert!(valid_callback(ok), "{ok}");
        }
        for bad in [
            "", "1a", "a..b", "a.", ".a", "a-b", "alert(1)", "a b", "a.1",
        ] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            form_value("a=1&message=%5B%7B%7D%5D&x", "message").as_deref(),
            Some("[{}]")
        );
        assert_eq!(form_value("message=a+b", "message").as_deref(), Some("a b"));
        assert_eq!(form_value("x=1", "message"), None);
    }
}
