//! Who is asking: the `sessionID` fingerprint cookie and the remote address.

use std::net::SocketAddr;

use http::HeaderMap;
use http::header::{self, HeaderValue};
use rand::Rng;

/// Name of the fingerprint cookie.
pub const SESSION_COOKIE: &str = "sessionID";

/// The requester of one HTTP request.
#[derive(Debug, Clone)]
pub struct Requester {
    /// `<fingerprint>-<random>`: unique per request.
    pub id: String,
    /// Stable across requests that carry the cookie.
    pub fingerprint: String,
    /// Peer IP (or the first `X-Forwarded-For` hop when the proxy is trusted).
    pub remote_ip: String,
    /// Peer port.
    pub remote_port: u16,
    /// Whether the cookie must be set on the response.
    new_fingerprint: bool,
}

impl Requester {
    /// Reads the cookie (or makes a fingerprint) and the peer address.
    pub fn identify(headers: &HeaderMap, remote: Option<SocketAddr>, trust_proxy: bool) -> Self {
        let existing = cookie(headers, SESSION_COOKIE).filter(|v| is_token(v));
        let new_fingerprint = existing.is_none();
        let fingerprint = existing.unwrap_or_else(random_token);
        let (remote_ip, remote_port) = remote_address(headers, remote, trust_proxy);
        Self {
            id: format!("{fingerprint}-{}", random_token()),
            fingerprint,
            remote_ip,
            remote_port,
            new_fingerprint,
        }
    }

    /// The `Set-Cookie` header for a new fingerprint.
    pub fn set_cookie(&self) -> Option<HeaderValue> {
        if !self.new_fingerprint {
            return None;
        }
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax",
            self.fingerprint
        ))
        .ok()
    }
}

/// The peer's IP and port; with a trusted proxy, the first `X-Forwarded-For` address.
pub fn remote_address(
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    trust_proxy: bool,
) -> (String, u16) {
    let peer_port = remote.map_or(0, |a| a.port());
    if trust_proxy
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return (first.to_owned(), peer_port);
    }
    match remote {
        Some(addr) => (addr.ip().to_canonical().to_string(), addr.port()),
        None => ("0.0.0.0".to_owned(), 0),
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn is_token(value: &str) -> bool {
    !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// 128 random bits as 32 lowercase hex digits.
pub fn random_token() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}

/// Whether `name` is a safe JSONP callback (`a.b_c$`).
pub fn is_valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks() {
        for ok in ["cb", "a.b", "_x$1", "jQuery123_456"] {
            assert!(is_valid_callback(ok), "{ok}");
        }
        for bad in ["", "1a", "a..b", "a.", "alert(1)", "a b", "a-b"] {
            assert!(!is_valid_callback(bad), "{bad}");
        }
    }

    #[test]
    fn cookie_is_reused_and_forwarded_for_trusted_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; sessionID=abc123"),
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.9, 10.0.0.1"),
        );
        let addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let r = Requester::identify(&headers, Some(addr), false);
        assert_eq!(r.fingerprint, "abc123");
        assert!(r.id.starts_with("abc123-"));
        assert!(r.set_cookie().is_none());
        assert_eq!((r.remote_ip.as_str(), r.remote_port), ("127.0.0.1", 5000));
        let r = Requester::identify(&headers, Some(addr), true);
        assert_eq!(r.remote_ip, "10.0.0.9");
    }
}
