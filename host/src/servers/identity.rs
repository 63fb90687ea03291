//! Who is asking: the `sessionID` fingerprint cookie and the remote address.
//!
//! The cookie (set when absent) identifies an HTTP client across requests, as
//! actionhero's fingerprint does; the remote address is the peer's, or the first
//! `X-Forwarded-For` entry when the proxy is trusted.

use std::net::{IpAddr, SocketAddr};

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
        let mut id = String::with_capacity(fingerprint.len() + 33);
        id.push_str(&fingerprint);
        id.push('-');
        push_hex(&mut id, rand::rng().random::<u128>());
        Self {
            id,
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
        const ATTRIBUTES: &str = "; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax";
        let mut cookie = String::with_capacity(
            SESSION_COOKIE.len() + 1 + self.fingerprint.len() + ATTRIBUTES.len(),
        );
        cookie.push_str(SESSION_COOKIE);
        cookie.push('=');
        cookie.push_str(&self.fingerprint);
        cookie.push_str(ATTRIBUTES);
        // Handing over the buffer saves `from_str`'s copy; this runs on every new visitor.
        HeaderValue::from_maybe_shared(bytes::Bytes::from(cookie)).ok()
    }
}

/// The client's IP (as text) and port, as [`crate::edge::client`] decides them.
pub fn remote_address(
    headers: &HeaderMap,
    remote: Option<SocketAddr>,
    trust_proxy: bool,
) -> (String, u16) {
    match crate::edge::client::client_addr(headers, remote, trust_proxy) {
        Some(addr) => (ip_text(addr.ip()), addr.port()),
        None => ("0.0.0.0".to_owned(), 0),
    }
}

/// The address as text; IPv4 without `fmt`, which costs more than the rest of
/// identifying the requester.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
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
    let mut token = String::with_capacity(32);
    push_hex(&mut token, rand::rng().random::<u128>());
    token
}

/// Appends `n` as 32 lowercase hex digits (`format!` is several times slower, and
/// this runs twice per HTTP request).
fn push_hex(out: &mut String, n: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..32).rev() {
        let nibble = (n >> (shift * 4)) & 0xf;
        out.push(char::from(DIGITS[nibble as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_matches_display() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "192.168.9.99",
            "::1",
            "fe80::1",
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(addr), addr.to_string());
        }
    }

    #[test]
    fn tokens_are_32_hex_digits() {
        let mut s = String::new();
        push_hex(&mut s, 0x0123_4567_89ab_cdef_0000_0000_0000_00ff);
        assert_eq!(s, "0123456789abcdef00000000000000ff");
        let t = random_token();
        assert_eq!(t.len(), 32);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
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
