//! The baseline of `bench/http.sh`: `GET /api/randomNumber` answered by one warp handler
//! with the same pretty JSON envelope Hero sends, built as cheaply as Hero builds it, and
//! the same headers (cookie included), and nothing else (no registry, no params pipeline,
//! no processor).
//! Prints `listening on http://ADDR` like `hero`.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde::Serialize;
use warp::Filter;

/// The response, serialized from borrows as Hero does (no intermediate JSON tree).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    random_number: f64,
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
    received_params: ReceivedParams<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReceivedParams<'a> {
    action: &'a str,
    api_version: u32,
}

/// 32 lowercase hex digits.
fn hex(n: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..32)
        .rev()
        .map(|shift| char::from(DIGITS[((n >> (shift * 4)) & 0xf) as usize]))
        .collect()
}

#[tokio::main]
async fn main() {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0u16);
    let listener =
        match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("bare-warp: cannot listen: {err}");
                std::process::exit(1);
            }
        };
    if let Ok(addr) = listener.local_addr() {
        println!("listening on http://{addr}");
    }
    let route = warp::path!("api" / "randomNumber")
        .and(warp::addr::remote())
        .map(|remote: Option<SocketAddr>| {
            let started = Instant::now();
            let fingerprint = hex(rand::rng().random::<u128>());
            let id = format!("{fingerprint}-{}", hex(rand::rng().random::<u128>()));
            let remote_ip = remote.map_or_else(String::new, |a| a.ip().to_string());
            let body = Envelope {
                random_number: rand::rng().random::<f64>(),
                server_information: ServerInformation {
                    server_name: "actionhero API",
                    api_version: "0.0.1",
                    request_duration: started.elapsed().as_millis() as u64,
                    current_time: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                },
                requester_information: RequesterInformation {
                    id: &id,
                    fingerprint: &fingerprint,
                    remote_ip: &remote_ip,
                    received_params: ReceivedParams {
                        action: "randomNumber",
                        api_version: 1,
                    },
                },
            };
            let mut text = Vec::with_capacity(1024);
            let _ = serde_json::to_writer_pretty(&mut text, &body);
            let cookie =
                format!("sessionID={fingerprint}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax");
            let reply =
                warp::reply::with_header(text, "content-type", "application/json; charset=utf-8");
            let reply = warp::reply::with_header(reply, "set-cookie", cookie);
            warp::reply::with_header(reply, "access-control-allow-origin", "*")
        });
    warp::serve(route).incoming(listener).run().await;
}
