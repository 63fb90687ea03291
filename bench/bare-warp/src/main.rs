//! The baseline of `bench/http.sh`: `GET /api/randomNumber` answered by one warp handler
//! with the same pretty JSON envelope Hero sends, and nothing else (no registry, no
//! params pipeline, no processor). Prints `listening on http://ADDR` like `hero`.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::json;
use warp::Filter;

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
            let fingerprint = format!("{:032x}", rand::rng().random::<u128>());
            let body = json!({
                "randomNumber": rand::rng().random::<f64>(),
                "serverInformation": {
                    "serverName": "actionhero API",
                    "apiVersion": "0.0.1",
                    "requestDuration": started.elapsed().as_millis() as u64,
                    "currentTime": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                },
                "requesterInformation": {
                    "id": format!("{fingerprint}-{:032x}", rand::rng().random::<u128>()),
                    "fingerprint": fingerprint,
                    "remoteIP": remote.map_or_else(String::new, |a| a.ip().to_string()),
                    "receivedParams": { "action": "randomNumber", "apiVersion": 1 },
                },
            });
            let text = serde_json::to_string_pretty(&body).unwrap_or_default();
            warp::reply::with_header(text, "content-type", "application/json; charset=utf-8")
        });
    warp::serve(route).incoming(listener).run().await;
}
