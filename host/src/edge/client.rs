//! The client's address: the socket's peer, or behind a proxy you trust (`trust_proxy`)
//! the first `X-Forwarded-For` entry, decided here for `/api`, the Bayeux transports and
//! the actionhero websocket server alike.
//!
//! A forwarded entry that is not an IP address (`unknown`, a name, garbage) is ignored
//! and the peer is used: an address that reaches logs, `remoteIP` and per-address caps
//! must be one. The port is always the socket's (a proxy's port says nothing).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

/// The client's address for a request from `peer` with `headers`.
pub fn client_addr(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_proxy: bool,
) -> Option<SocketAddr> {
    let peer = peer.map(|p| SocketAddr::new(p.ip().to_canonical(), p.port()));
    if trust_proxy && let Some(ip) = forwarded_ip(headers) {
        return Some(SocketAddr::new(ip, peer.map_or(0, |p| p.port())));
    }
    peer
}

/// The first `X-Forwarded-For` entry, if it is an IP address (`1.2.3.4`, `::1`,
/// `[::1]:80` and `1.2.3.4:80` forms).
fn forwarded_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let header = headers.get("x-forwarded-for")?.to_str().ok()?;
    let first = header.split(',').next()?.trim();
    if let Ok(ip) = first.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    first
        .parse::<SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(forwarded: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", forwarded.parse().expect("header value"));
        h
    }

    #[test]
    fn the_forwarded_address_counts_only_when_trusted_and_valid() {
        let peer: SocketAddr = "10.0.0.1:4000".parse().expect("addr");
        let headers = with("203.0.113.7, 10.0.0.1");
        assert_eq!(client_addr(&headers, Some(peer), false), Some(peer));
        assert_eq!(
            client_addr(&headers, Some(peer), true),
            Some("203.0.113.7:4000".parse().expect("addr"))
        );
        for odd in ["unknown", "", "not an ip, 1.2.3.4"] {
            assert_eq!(
                client_addr(&with(odd), Some(peer), true),
                Some(peer),
                "{odd}"
            );
        }
        assert_eq!(
            client_addr(&with("[2001:db8::1]:80"), Some(peer), true).map(|a| a.ip()),
            Some("2001:db8::1".parse().expect("ip"))
        );
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().expect("addr");
        assert_eq!(
            client_addr(&HeaderMap::new(), Some(mapped), false),
            Some("127.0.0.1:5".parse().expect("addr"))
        );
    }
}
