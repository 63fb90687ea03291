//! Warp routes for everything under the mount path (PROTOCOL 1.1).
//!
//! One filter matches the mount path and dispatches by method and headers, as faye's
//! node adapter does: preflight, websocket upgrade, EventSource, JSONP (GET), and
//! long-polling (POST, JSON or form). Requests outside the mount path are rejected
//! with `not_found` so other routes can take them.

mod eventsource;
mod http;
mod websocket;

use std::net::SocketAddr;

use futures_util::Stream;
use hyper::upgrade::OnUpgrade;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::path::FullPath;
use warp::reply::Response;

use super::server::Bayeux;
use crate::edge::body::{BodyError, read_limited};

/// The browser client served at `<mount>/client.js` and `<mount>.js`.
const CLIENT_JS: &str = include_str!("../../assets/client.js");

/// What part of the mount a path names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// The endpoint itself, or a sub-path (EventSource uses `<mount>/<clientId>`).
    Endpoint { last_segment: String },
    /// The browser client script.
    ClientJs,
}

fn classify(path: &str, mount: &str) -> Option<Target> {
    if path == format!("{mount}.js") || path == format!("{mount}/client.js") {
        return Some(Target::ClientJs);
    }
    let rest = path.strip_prefix(mount)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let last = rest.rsplit('/').next().unwrap_or("").to_owned();
    Some(Target::Endpoint { last_segment: last })
}

/// Everything a handler needs from the request.
pub(crate) struct RequestParts {
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) query: String,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) upgrade: Option<OnUpgrade>,
}

/// All Bayeux routes under the configured mount path, including the client script.
pub fn routes(bayeux: Bayeux) -> BoxedFilter<(Response,)> {
    let mount = bayeux.config().mount().to_owned();
    warp::path::full()
        .and_then(move |full: FullPath| {
            let target = classify(full.as_str(), &mount);
            async move { target.ok_or_else(warp::reject::not_found) }
        })
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(crate::servers::web::peer())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::body::stream())
        .then(
            move |target: Target,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  remote: Option<SocketAddr>,
                  upgrade: Option<OnUpgrade>,
                  body| {
                let bayeux = bayeux.clone();
                let parts = RequestParts {
                    method,
                    headers,
                    query,
                    remote,
                    upgrade,
                };
                async move { dispatch(bayeux, target, parts, body).await }
            },
        )
        .boxed()
}

async fn dispatch<S, B>(bayeux: Bayeux, target: Target, parts: RequestParts, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: bytes::Buf,
{
    bayeux.ensure_started();
    let last_segment = match target {
        Target::ClientJs => return http::client_js(&parts.method, CLIENT_JS),
        Target::Endpoint { last_segment } => last_segment,
    };
    // Before anything runs: a page elsewhere may neither publish nor open a socket.
    if let Err(refused) = bayeux.config().allowed_origins.check(&parts.headers) {
        return refused.response();
    }
    if parts.method == Method::OPTIONS
        || parts.headers.contains_key("access-control-request-method")
    {
        return http::preflight(&parts.headers);
    }
    if parts.method == Method::GET && websocket::is_upgrade(&parts.headers) {
        return websocket::upgrade(bayeux, parts);
    }
    if parts.method == Method::GET && eventsource::is_eventsource(&parts.headers) {
        return eventsource::open(bayeux, &last_segment, parts).await;
    }
    match parts.method {
        Method::GET => http::jsonp(bayeux, parts).await,
        Method::POST => {
            let limit = bayeux.config().max_body_bytes;
            match read_limited(body, &parts.headers, limit).await {
                Ok(bytes) => http::long_poll(bayeux, parts, bytes).await,
                Err(BodyError::TooLarge(_)) => http::too_large(limit),
                Err(BodyError::Unreadable) => http::bad_request("unreadable body"),
            }
        }
        _ => http::bad_request("unsupported method"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths() {
        assert_eq!(classify("/faye.js", "/faye"), Some(Target::ClientJs));
        assert_eq!(classify("/faye/client.js", "/faye"), Some(Target::ClientJs));
        assert_eq!(
            classify("/faye", "/faye"),
            Some(Target::Endpoint {
                last_segment: String::new()
            })
        );
        assert_eq!(
            classify("/faye/abc", "/faye"),
            Some(Target::Endpoint {
                last_segment: "abc".into()
            })
        );
        assert_eq!(classify("/fayex", "/faye"), None);
        assert_eq!(classify("/api/x", "/faye"), None);
    }
}
