//! `allowed_origins`: which browser origins may make cross-origin requests and open
//! websockets.
//!
//! The default allows any origin, as faye and actionhero do. With a list, a request
//! that carries an `Origin` header is served only if that origin is on the list or is
//! the request's own (same `Host`); others get `403` naming the origin, before anything
//! runs, so a page elsewhere can neither read replies nor cause publishes or actions.
//! Requests without `Origin` (non-browser clients, same-origin GETs, JSONP script tags,
//! which no server can origin-check) are served as before.

use http::HeaderMap;
use http::header::{HOST, ORIGIN};
use serde::{Deserialize, Serialize};

/// The origins allowed to call in: `["*"]` (the default) for any, or a list of
/// `scheme://host[:port]` values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllowedOrigins(Vec<String>);

impl Default for AllowedOrigins {
    fn default() -> Self {
        Self(vec!["*".to_owned()])
    }
}

/// The request's `Origin` is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {0} is not allowed (allowed_origins)")]
pub struct Refused(pub String);

impl AllowedOrigins {
    /// These origins (`*` among them allows any).
    pub fn new(origins: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self(origins.into_iter().map(Into::into).collect())
    }

    /// Whether every origin is allowed.
    pub fn any(&self) -> bool {
        self.0.iter().any(|o| o == "*")
    }

    /// Checks a request's headers.
    ///
    /// # Errors
    ///
    /// [`Refused`] when it carries an `Origin` that is neither listed nor its own.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refused> {
        if self.any() {
            return Ok(());
        }
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        let origin = String::from_utf8_lossy(origin.as_bytes());
        let listed = self
            .0
            .iter()
            .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(&origin));
        if listed || same_origin(&origin, headers) {
            Ok(())
        } else {
            Err(Refused(origin.into_owned()))
        }
    }
}

impl Refused {
    /// The `403` the client gets, naming the origin.
    pub fn response(&self) -> warp::reply::Response {
        tracing::debug!(origin = %self.0, "request refused: origin not allowed");
        let mut res = warp::reply::Response::new(format!("{self}\n").into());
        *res.status_mut() = http::StatusCode::FORBIDDEN;
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res
    }
}

/// Whether `origin`'s host (and port) is the request's `Host`.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn the_default_allows_any_origin() {
        let any = AllowedOrigins::default();
        assert!(any.any());
        assert_eq!(
            any.check(&headers(&[("origin", "http://evil.test")])),
            Ok(())
        );
    }

    #[test]
    fn a_list_allows_its_origins_the_request_own_and_requests_without_origin() {
        let list = AllowedOrigins::new(["https://app.example.com", "http://localhost:3000/"]);
        let check = |pairs: &[(&'static str, &'static str)]| list.check(&headers(pairs));
        assert_eq!(check(&[("origin", "https://app.example.com")]), Ok(()));
        assert_eq!(check(&[("origin", "HTTP://LOCALHOST:3000")]), Ok(()));
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(
            check(&[
                ("origin", "http://hero.test:8080"),
                ("host", "hero.test:8080")
            ]),
            Ok(())
        );
        assert_eq!(
            check(&[("origin", "https://evil.test"), ("host", "hero.test")]),
            Err(Refused("https://evil.test".into()))
        );
        assert_eq!(
            check(&[("origin", "https://app.example.com.evil.test")]),
            Err(Refused("https://app.example.com.evil.test".into()))
        );
    }
}
