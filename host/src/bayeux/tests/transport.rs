//! Framing and HTTP errors over real connections (warp server on port 0).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::bayeux::{Bayeux, BayeuxConfig, routes};

async fn start(config: BayeuxConfig) -> (Bayeux, SocketAddr) {
    let bayeux = Bayeux::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = warp::serve(routes(bayeux.clone())).incoming(listener);
    tokio::spawn(server.run());
    (bayeux, addr)
}

fn cfg(timeout_ms: u64) -> BayeuxConfig {
    BayeuxConfig {
        timeout_ms,
        ping_ms: 200,
        max_body_bytes: 4096,
        max_frame_bytes: 4096,
        ..BayeuxConfig::default()
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn post_json(addr: SocketAddr, body: Value) -> Vec<Value> {
    let res = reqwest::Client::new()
        .post(url(addr, "/faye"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn handshake(addr: SocketAddr) -> String {
    let r = post_json(
        addr,
        json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling","websocket"]}),
    )
    .await;
    r[0]["clientId"].as_str().unwrap().to_owned()
}

async fn assert_bad_request(res: reqwest::Response) {
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "Bad request");
}

#[tokio::test]
async fn long_polling_framing_and_headers() {
    let (_b, addr) = start(cfg(1000)).await;
    let res = reqwest::Client::new()
        .post(url(addr, "/faye"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(res.headers()["cache-control"], "no-cache, no-store");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let body: Vec<Value> = res.json().await.unwrap();
    assert_eq!(body[0]["successful"], true);
    // A single object is accepted too, and `[]` is answered with `[]`.
    assert_eq!(
        post_json(addr, json!({"channel":"/x"})).await[0]["error"],
        "402:data:Missing required parameter"
    );
    assert_eq!(post_json(addr, json!([])).await, Vec::<Value>::new());
}

#[tokio::test]
async fn cross_origin_form_and_preflight() {
    let (_b, addr) = start(cfg(1000)).await;
    let msg = json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["cross-origin-long-polling"]}]);
    let res = reqwest::Client::new()
        .post(url(addr, "/faye"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "http://example.test")
        .body(format!(
            "message={}",
            percent_encoding::utf8_percent_encode(
                &msg.to_string(),
                percent_encoding::NON_ALPHANUMERIC
            )
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://example.test"
    );
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let body: Vec<Value> = res.json().await.unwrap();
    assert_eq!(body[0]["successful"], true);

    for req in [
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, url(addr, "/faye"))
            .header("origin", "http://o.test"),
        reqwest::Client::new()
            .post(url(addr, "/faye"))
            .header("origin", "http://o.test")
            .header("access-control-request-method", "POST"),
    ] {
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "http://o.test");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(
            h["access-control-allow-headers"],
            "Accept, Authorization, Content-Type, Pragma, X-Requested-With"
        );
        assert_eq!(h["access-control-allow-methods"], "POST, GET");
        assert_eq!(h["access-control-max-age"], "86400");
    }
    let res = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, url(addr, "/faye"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn jsonp_framing_and_escapes() {
    let (_b, addr) = start(cfg(1000)).await;
    let id = handshake(addr).await;
    post_json(
        addr,
        json!({"channel":"/meta/subscribe","clientId":id,"subscription":"/j"}),
    )
    .await;
    post_json(
        addr,
        json!({"channel":"/j","clientId":id,"data":"a\u{2028}b\u{2029}c"}),
    )
    .await;
    let connect = json!({"channel":"/meta/connect","clientId":id,"connectionType":"callback-polling","advice":{"timeout":0}});
    let res = reqwest::Client::new()
        .get(url(addr, "/faye"))
        .query(&[
            ("message", connect.to_string()),
            ("jsonp", "cb.x".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=f.txt"
    );
    let body = res.text().await.unwrap();
    assert!(
        body.starts_with("/**/cb.x([") && body.ends_with("]);"),
        "{body}"
    );
    assert!(
        body.contains(r"a\u2028b\u2029c") && !body.contains('\u{2028}'),
        "{body}"
    );
    let inner = &body["/**/cb.x(".len()..body.len() - 2];
    let replies: Vec<Value> = serde_json::from_str(inner).unwrap();
    assert_eq!(replies[1]["data"], "a\u{2028}b\u{2029}c");
    // Default callback name.
    let res = reqwest::Client::new()
        .get(url(addr, "/faye"))
        .query(&[("message", "[]")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "/**/jsonpcallback([]);");
}

#[tokio::test]
async fn every_malformed_request_is_400() {
    let (_b, addr) = start(cfg(1000)).await;
    let c = reqwest::Client::new();
    let post = |ct: &'static str, body: &'static str| {
        c.post(url(addr, "/faye"))
            .header("content-type", ct)
            .body(body)
    };
    for req in [
        post("application/json", "{not json"),
        post("application/json", "42"),
        post("application/json", "\"str\""),
        post("application/json", "null"),
        post("application/json", "[1,2]"),
        post("application/json", ""),
        post("application/x-www-form-urlencoded", "nomessage=1"),
        post("application/x-www-form-urlencoded", "message=%7Bbad"),
        c.get(url(addr, "/faye")),
        c.get(url(addr, "/faye?message=%7B%7D&jsonp=alert(1)")),
        c.get(url(addr, "/faye?message=%7B%7D&jsonp=1abc")),
        c.get(url(addr, "/faye?message=nope")),
        c.put(url(addr, "/faye")).body("[]"),
        c.delete(url(addr, "/faye")),
    ] {
        assert_bad_request(req.send().await.unwrap()).await;
    }
    // Over the body limit: 413 with a clear message.
    let big = format!("[{{\"channel\":\"/a\",\"data\":\"{}\"}}]", "x".repeat(5000));
    let res = c
        .post(url(addr, "/faye"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Outside the mount path: not ours.
    assert_eq!(
        c.get(url(addr, "/fayex")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn client_script_is_served() {
    let (_b, addr) = start(cfg(1000)).await;
    for path in ["/faye/client.js", "/faye.js"] {
        let res = reqwest::get(url(addr, path)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()["content-type"],
            "application/javascript; charset=utf-8"
        );
        assert_eq!(
            res.text().await.unwrap(),
            include_str!("../../assets/client.js")
        );
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_open(addr: SocketAddr) -> Ws {
    let (ws, res) = tokio_tungstenite::connect_async(format!("ws://{addr}/faye"))
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    ws
}

async fn ws_next(ws: &mut Ws) -> Vec<Value> {
    loop {
        let frame = timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WsMessage::Text(t) = frame {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_framing_push_and_heartbeat() {
    let (_b, addr) = start(cfg(300)).await;
    let id = handshake(addr).await; // over HTTP, as faye does
    let mut ws = ws_open(addr).await;
    ws.send(WsMessage::text("[]")).await.unwrap();
    assert_eq!(ws_next(&mut ws).await, Vec::<Value>::new());
    // A single object per frame; every processed frame gets an array reply.
    ws.send(WsMessage::text(
        json!({"id":"s","channel":"/meta/subscribe","clientId":id,"subscription":"/w"}).to_string(),
    ))
    .await
    .unwrap();
    let r = ws_next(&mut ws).await;
    assert_eq!(r[0]["id"], "s");
    assert_eq!(r[0]["successful"], true);
    ws.send(WsMessage::text(
        json!([{"id":"c1","channel":"/meta/connect","clientId":id,"connectionType":"websocket"}])
            .to_string(),
    ))
    .await
    .unwrap();
    // Deliveries are pushed as they come, while the connect is held.
    ws.send(WsMessage::text("[]")).await.unwrap();
    assert_eq!(ws_next(&mut ws).await, Vec::<Value>::new());
    let other = handshake(addr).await;
    post_json(addr, json!({"channel":"/w","clientId":other,"data":1})).await;
    let mut saw_delivery = false;
    let mut saw_heartbeat = false;
    while !(saw_delivery && saw_heartbeat) {
        for m in ws_next(&mut ws).await {
            if m["channel"] == "/w" {
                assert!(!saw_heartbeat, "delivery pushed before the heartbeat");
                assert_eq!(m, json!({"channel":"/w","data":1}));
                saw_delivery = true;
            } else {
                assert_eq!(m["id"], "c1");
                assert_eq!(m["successful"], true);
                saw_heartbeat = true;
            }
        }
    }
    // A frame larger than the 1 KiB read buffer (but within the limit) is fine.
    let big = "y".repeat(3000);
    ws.send(WsMessage::text(
        json!([{"id":"big","channel":"/w","clientId":id,"data":big}]).to_string(),
    ))
    .await
    .unwrap();
    let mut got_ack = false;
    let mut got_delivery = false;
    while !(got_ack && got_delivery) {
        for m in ws_next(&mut ws).await {
            if m["successful"] == true && m["id"] == "big" {
                got_ack = true;
            } else if m["data"] == json!(big) {
                got_delivery = true;
            }
        }
    }
    // Malformed frames are ignored, the socket lives on.
    ws.send(WsMessage::text("{nope")).await.unwrap();
    ws.send(WsMessage::text("[]")).await.unwrap();
    assert_eq!(ws_next(&mut ws).await, Vec::<Value>::new());
    // An oversized frame closes the socket with 1009.
    ws.send(WsMessage::text("x".repeat(10_000))).await.ok();
    let close = timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(frame))) => break frame,
                None => break None,
                Some(Err(e)) => panic!("ws error {e:?}"),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap()
    .expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}

/// Frames sent in one burst are processed together (their publishes reach the engine
/// as runs) with the effects of one after another: replies in order, a subscribe in
/// the middle applies to the publishes after it and not to those before, every
/// delivery once and in order.
#[tokio::test]
async fn websocket_burst_of_frames_keeps_order() {
    let (_b, addr) = start(cfg(30_000)).await;
    let id = handshake(addr).await;
    let mut ws = ws_open(addr).await;
    let frame = |v: Value| WsMessage::text(v.to_string());
    ws.send(frame(
        json!({"id":"s1","channel":"/meta/subscribe","clientId":id,"subscription":"/b"}),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await[0]["successful"], true);
    ws.send(frame(
        json!({"id":"c","channel":"/meta/connect","clientId":id,"connectionType":"websocket"}),
    ))
    .await
    .unwrap();
    let publish = |n: i64| json!({"id":format!("p{n}"),"channel":"/b","clientId":id,"data":n});
    let mut sent = Vec::new();
    for n in 0..10 {
        sent.push(publish(n));
    }
    sent.push(json!({"id":"q0","channel":"/b2","clientId":id,"data":"before"}));
    sent.push(json!({"id":"s2","channel":"/meta/subscribe","clientId":id,"subscription":"/b2"}));
    sent.push(json!({"id":"q","channel":"/b2","clientId":id,"data":"after"}));
    for n in 10..20 {
        sent.push(publish(n));
    }
    for v in &sent {
        ws.feed(frame(v.clone())).await.unwrap();
    }
    ws.flush().await.unwrap();
    let want: Vec<Value> = sent.iter().map(|v| v["id"].clone()).collect();
    let (mut replies, mut on_b, mut on_b2) = (Vec::new(), Vec::new(), Vec::new());
    while replies.len() < want.len() || on_b.len() < 20 || on_b2.is_empty() {
        for m in ws_next(&mut ws).await {
            // Replies say whether they succeeded; deliveries do not.
            match (m.get("successful"), m["channel"].as_str()) {
                (Some(ok), _) => {
                    assert_eq!(ok, true, "{m}");
                    replies.push(m["id"].clone());
                }
                (None, Some("/b")) => on_b.push(m["data"].as_i64().unwrap()),
                (None, Some("/b2")) => on_b2.push(m["data"].clone()),
                _ => panic!("unexpected {m}"),
            }
        }
    }
    assert_eq!(replies, want, "replies in the order sent");
    assert_eq!(
        on_b,
        (0..20).collect::<Vec<_>>(),
        "each delivery once, in order"
    );
    assert_eq!(
        on_b2,
        [json!("after")],
        "the subscribe applied to the publish after it only"
    );
}

#[tokio::test]
async fn websocket_second_connect_releases_first_and_reattach() {
    let (b, addr) = start(cfg(30_000)).await;
    let id = handshake(addr).await;
    post_json(
        addr,
        json!({"channel":"/meta/subscribe","clientId":id,"subscription":"/r"}),
    )
    .await;
    let mut ws = ws_open(addr).await;
    let connect = |n: &str| {
        WsMessage::text(
            json!({"id":n,"channel":"/meta/connect","clientId":id,"connectionType":"websocket"})
                .to_string(),
        )
    };
    ws.send(connect("1")).await.unwrap();
    ws.send(connect("2")).await.unwrap();
    let r = ws_next(&mut ws).await;
    assert_eq!(r[0]["id"], "1", "the second connect releases the first");
    // A new socket for the same client takes over the deliveries (faye reconnect).
    let mut ws2 = ws_open(addr).await;
    ws2.send(connect("3")).await.unwrap();
    // Frames are handled in order: once `[]` is answered, the connect has attached.
    ws2.send(WsMessage::text("[]")).await.unwrap();
    assert_eq!(ws_next(&mut ws2).await, Vec::<Value>::new());
    b.publish("/r", json!("to-new")).await.unwrap();
    let r = ws_next(&mut ws2).await;
    assert_eq!(r, vec![json!({"channel":"/r","data":"to-new"})]);
}

#[tokio::test]
async fn eventsource_stream() {
    let (b, addr) = start(cfg(1000)).await;
    let id = handshake(addr).await;
    post_json(
        addr,
        json!({"channel":"/meta/subscribe","clientId":id,"subscription":"/e"}),
    )
    .await;
    let c = reqwest::Client::new();
    let res = c
        .get(url(addr, "/faye/unknown"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_bad_request(res).await;
    let mut res = c
        .get(url(addr, &format!("/faye/{id}")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let first = timeout(Duration::from_secs(5), res.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"retry: 5000\r\n\r\n");
    b.publish("/e", json!({"k":1})).await.unwrap();
    let mut text = String::new();
    while !text.contains("data: ") || !text.contains(":\r\n\r\n") {
        let chunk = timeout(Duration::from_secs(5), res.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        text.contains("data: [{\"channel\":\"/e\",\"data\":{\"k\":1}}]\r\n\r\n"),
        "{text:?}"
    );
}
