//! Connection hygiene through the real binary: sockets that send partial headers or sit
//! idle after a response are closed after `header_timeout_ms`, and sockets over
//! `max_connections` / `max_connections_per_ip` get a `503` naming the cap.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::Hero;

const READ_WAIT: Duration = Duration::from_secs(10);

fn connect(hero: &Hero) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", hero.port)).unwrap();
    stream.set_read_timeout(Some(READ_WAIT)).unwrap();
    stream
}

/// Sends one keep-alive GET and reads its whole response (by content-length).
fn get(stream: &mut TcpStream, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response ended");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

/// Reads until the server closes; returns what came and how long it took.
fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed after {:?}: {e}", started.elapsed()),
        }
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn partial_headers_and_idle_keep_alive_sockets_are_closed_after_the_header_timeout() {
    let hero = Hero::start(&["--header-timeout-ms", "400"]);
    // A slowloris socket: a request line and half a header, never finished.
    let mut partial = connect(&hero);
    partial
        .write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0")
        .unwrap();
    // A keep-alive socket served once, then silent.
    let mut idle = connect(&hero);
    assert!(get(&mut idle, "/api/status").starts_with("HTTP/1.1 200"));
    for (name, socket) in [("partial", &mut partial), ("idle", &mut idle)] {
        let (_, took) = until_closed(socket);
        assert!(took < Duration::from_secs(5), "{name} socket held {took:?}");
    }
    // A socket that keeps asking is served as long as it likes.
    let mut busy = connect(&hero);
    for _ in 0..3 {
        assert!(get(&mut busy, "/api/status").starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn sockets_over_max_connections_get_a_503_naming_the_cap() {
    let hero = Hero::start(&["--max-connections", "2"]);
    let mut first = connect(&hero);
    let mut second = connect(&hero);
    assert!(get(&mut first, "/api/status").starts_with("HTTP/1.1 200"));
    assert!(get(&mut second, "/api/status").starts_with("HTTP/1.1 200"));
    let mut third = connect(&hero);
    third
        .write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (answer, _) = until_closed(&mut third);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("max_connections = 2"), "{answer}");
    // A place comes back when a connection closes.
    drop(first);
    let deadline = Instant::now() + READ_WAIT;
    let metrics = loop {
        let mut next = connect(&hero);
        next.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (answer, _) = until_closed(&mut next);
        if answer.starts_with("HTTP/1.1 200") {
            break answer;
        }
        assert!(Instant::now() < deadline, "no place came back: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        metrics.contains(r#"hero_connections_refused_total{cap="max_connections"} "#),
        "{metrics}"
    );
}

#[test]
fn max_connections_per_ip_caps_one_address_unless_behind_a_proxy() {
    let hero = Hero::start(&["--max-connections-per-ip", "1"]);
    let mut first = connect(&hero);
    assert!(get(&mut first, "/api/status").starts_with("HTTP/1.1 200"));
    let mut second = connect(&hero);
    let (answer, _) = until_closed(&mut second);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("max_connections_per_ip = 1"), "{answer}");

    // Behind a proxy every socket comes from the proxy: no per-address cap.
    let proxied = Hero::start(&["--max-connections-per-ip", "1", "--trust-proxy"]);
    let mut a = connect(&proxied);
    let mut b = connect(&proxied);
    assert!(get(&mut a, "/api/status").starts_with("HTTP/1.1 200"));
    assert!(get(&mut b, "/api/status").starts_with("HTTP/1.1 200"));
}
