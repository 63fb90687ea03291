//! Channel name limits through the real binary: with a wildcard subscription present,
//! a publish on a huge or very deep channel is refused with `405` naming the limit,
//! while other requests are served; names within the limits still work.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{Value, json};
use support::{Hero, faye};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_deep_channels_are_refused_naming_the_limit() {
    let hero = Hero::start(&[]);
    let handshake = faye(
        &hero,
        json!([{"channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["long-polling"]}]),
    )
    .await;
    let id = handshake[0]["clientId"].as_str().unwrap().to_owned();
    let sub = faye(
        &hero,
        json!([{"channel": "/meta/subscribe", "clientId": id, "subscription": "/**"}]),
    )
    .await;
    assert_eq!(sub[0]["successful"], true, "{sub}");

    // 80,000 segments: the publish that once took seconds of CPU with `/**` present.
    let huge = "/a".repeat(80_000);
    let deep = "/a".repeat(33);
    let (huge_reply, deep_reply, status) = tokio::join!(
        faye(&hero, json!([{"channel": huge, "data": 1}])),
        faye(&hero, json!([{"channel": deep, "data": 1}])),
        reqwest::get(hero.at("/api/status")),
    );
    assert_eq!(status.unwrap().status(), 200);
    let error = |reply: &Value| reply[0]["error"].as_str().unwrap_or_default().to_owned();
    assert_eq!(huge_reply[0]["successful"], false, "{huge_reply}");
    let huge_error = error(&huge_reply);
    assert!(
        huge_error.starts_with("405:/a/a/a")
            && huge_error
                .ends_with("Channel name too long (at most 1024 bytes - max_channel_bytes)"),
        "{huge_error:.300}"
    );
    assert!(
        huge_error.len() < 200,
        "the name is abbreviated: {}",
        huge_error.len()
    );
    assert!(
        error(&deep_reply)
            .ends_with("Channel name too deep (at most 32 segments - max_channel_segments)"),
        "{deep_reply}"
    );
    // A subscription pattern is held to the same limits.
    let sub = faye(
        &hero,
        json!([{"channel": "/meta/subscribe", "clientId": id, "subscription": format!("{}/**", "/b".repeat(40))}]),
    )
    .await;
    assert!(error(&sub).contains("max_channel_segments"), "{sub}");
    // At the limits, a name is accepted.
    let ok = "/a".repeat(32);
    let published = faye(&hero, json!([{"channel": ok, "data": 1}])).await;
    assert_eq!(published[0]["successful"], true, "{published}");
}

#[tokio::test]
async fn a_batch_of_connects_is_held_once_not_once_per_connect() {
    let hero = Hero::start(&[]);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let reply = faye(
            &hero,
            json!([{"channel": "/meta/handshake", "version": "1.0",
                    "supportedConnectionTypes": ["long-polling"]}]),
        )
        .await;
        ids.push(reply[0]["clientId"].as_str().unwrap().to_owned());
    }
    // Each with advice timeout 1 s: one after another they would take 5 s.
    let batch: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"channel": "/meta/connect", "clientId": id, "connectionType": "long-polling",
                   "advice": {"timeout": 1000}})
        })
        .collect();
    let started = std::time::Instant::now();
    let replies = faye(&hero, Value::Array(batch)).await;
    let took = started.elapsed();
    let answered = replies
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["channel"] == "/meta/connect" && r["successful"] == true)
        .count();
    assert_eq!(answered, 5, "{replies}");
    assert!(
        took < std::time::Duration::from_millis(3000),
        "5 connects held one after another: {took:?}"
    );
}

const HANDSHAKE: &str = "/meta/handshake";

fn handshake_message() -> Value {
    json!({"channel": HANDSHAKE, "version": "1.0", "supportedConnectionTypes": ["long-polling"]})
}

#[tokio::test]
async fn session_quotas_and_handshakes_per_request_are_refused_naming_the_setting() {
    let hero = Hero::start_with(
        support::Options::default()
            .env("HERO_BAYEUX__MAX_SESSIONS", "3")
            .env("HERO_BAYEUX__MAX_SESSIONS_PER_IP", "2"),
    );
    // One request, two handshakes: the second is refused, not run.
    let batch = faye(&hero, json!([handshake_message(), handshake_message()])).await;
    assert_eq!(batch[0]["successful"], true, "{batch}");
    assert_eq!(batch[1]["successful"], false, "{batch}");
    assert_eq!(
        batch[1]["error"],
        "403::Too many handshakes in one request (at most 1 - max_handshakes_per_request)"
    );
    // 127.0.0.1 holds one session; a second is allowed, a third is one too many for it.
    let second = faye(&hero, json!([handshake_message()])).await;
    assert_eq!(second[0]["successful"], true, "{second}");
    let third = faye(&hero, json!([handshake_message()])).await;
    assert_eq!(
        third[0]["error"],
        "403::Too many sessions from your address (at most 2 - max_sessions_per_ip)",
        "{third}"
    );
    // Leaving gives the place back.
    let id = second[0]["clientId"].as_str().unwrap();
    faye(
        &hero,
        json!([{"channel": "/meta/disconnect", "clientId": id}]),
    )
    .await;
    let again = faye(&hero, json!([handshake_message()])).await;
    assert_eq!(again[0]["successful"], true, "{again}");
    let metrics = reqwest::get(hero.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for limit in ["max_handshakes_per_request", "max_sessions_per_ip"] {
        assert!(
            metrics.contains(&format!(
                "hero_bayeux_refusals_total{{limit=\"{limit}\"}} 1"
            )),
            "{limit}: {metrics}"
        );
    }
}

#[tokio::test]
async fn the_global_session_cap_holds() {
    let hero = Hero::start_with(support::Options::default().env("HERO_BAYEUX__MAX_SESSIONS", "2"));
    for _ in 0..2 {
        let ok = faye(&hero, json!([handshake_message()])).await;
        assert_eq!(ok[0]["successful"], true, "{ok}");
    }
    let refused = faye(&hero, json!([handshake_message()])).await;
    assert_eq!(
        refused[0]["error"], "403::Too many sessions (at most 2 - max_sessions)",
        "{refused}"
    );
}

#[tokio::test]
async fn a_body_over_the_bayeux_limit_gets_a_413_the_client_can_read() {
    let hero =
        Hero::start_with(support::Options::default().env("HERO_BAYEUX__MAX_BODY_BYTES", "1000"));
    let client = reqwest::Client::new();
    let big = json!([{"channel": "/x", "data": "y".repeat(2000)}]).to_string();
    let declared = client
        .post(hero.at("/faye"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    assert_eq!(declared.text().await.unwrap(), "Request body too large");
    // Chunked, with no Content-Length to refuse up front: read, then refused.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(100)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = client
        .post(hero.at("/faye"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    // Within the limit, served.
    let ok = faye(&hero, json!([{"channel": "/x", "data": 1}])).await;
    assert_eq!(ok[0]["successful"], true, "{ok}");
}
