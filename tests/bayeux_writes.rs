//! Failed writes lose nothing, through the real binary: a long-poll client and a
//! websocket client that stop reading are cut off after `write_timeout_ms`, and the
//! deliveries that did not reach them go back to their session, so the next connect
//! gets every message exactly once (with what the cut-off socket did receive). And
//! writes are batched: frames that arrive together are answered in one write.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Hero, Options, faye};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Messages published, and the size of each: far more than the socket buffers of a
/// reader that stops reading (a small receive window, the sender's few MB, hyper's).
const MESSAGES: usize = 40;
const PAYLOAD: usize = 500 * 1024;

fn start() -> Hero {
    Hero::start_with(Options::default().env("HERO_WRITE_TIMEOUT_MS", "500"))
}

/// A socket to the server with a small receive buffer (no window autotuning).
async fn small_window_socket(hero: &Hero) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    socket
        .connect(([127, 0, 0, 1], hero.port).into())
        .await
        .unwrap()
}

async fn handshake_and_subscribe(hero: &Hero, channel: &str) -> String {
    let reply = faye(
        hero,
        json!([{"channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["long-polling", "websocket"]}]),
    )
    .await;
    let id = reply[0]["clientId"].as_str().unwrap().to_owned();
    let sub = faye(
        hero,
        json!([{"channel": "/meta/subscribe", "clientId": id, "subscription": channel}]),
    )
    .await;
    assert_eq!(sub[0]["successful"], true, "{sub}");
    id
}

async fn publish_all(hero: &Hero, channel: &str) {
    let payload = "x".repeat(PAYLOAD);
    for n in 0..MESSAGES {
        let reply = faye(
            hero,
            json!([{"channel": channel, "data": {"n": n, "pad": payload}}]),
        )
        .await;
        assert_eq!(reply[0]["successful"], true, "{reply:.200}");
    }
}

/// How many deliveries the server has handed back after failed writes.
async fn restored(hero: &Hero) -> u64 {
    let text = reqwest::get(hero.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hero_bayeux_deliveries_restored_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_restored(hero: &Hero) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = restored(hero).await;
        if n > 0 {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no write was cut off and handed back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts the `n` of each delivery on `channel` in a reply array.
fn count_deliveries(reply: &Value, channel: &str, seen: &mut BTreeMap<u64, usize>) {
    for m in reply.as_array().into_iter().flatten() {
        if m["channel"] == channel
            && let Some(n) = m["data"]["n"].as_u64()
        {
            *seen.entry(n).or_default() += 1;
        }
    }
}

/// Long-polls `id` until every message has been seen (or a deadline passes).
async fn poll_rest(hero: &Hero, id: &str, channel: &str, seen: &mut BTreeMap<u64, usize>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < MESSAGES && Instant::now() < deadline {
        let reply = faye(
            hero,
            json!([{"channel": "/meta/connect", "clientId": id,
                    "connectionType": "long-polling", "advice": {"timeout": 0}}]),
        )
        .await;
        assert_eq!(reply[0]["successful"], true, "{reply:.300}");
        count_deliveries(&reply, channel, seen);
    }
}

fn assert_exactly_once(seen: &BTreeMap<u64, usize>) {
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|n| !seen.contains_key(&(*n as u64)))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let repeated: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(repeated.is_empty(), "delivered twice: {repeated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_long_poll_reply_is_cut_off_and_its_messages_come_with_the_next_poll() {
    let hero = start();
    let channel = "/stall/poll";
    let id = handshake_and_subscribe(&hero, channel).await;
    publish_all(&hero, channel).await;

    // One connect takes every queued message (20 MB of reply); its client never reads.
    let mut stalled = small_window_socket(&hero).await;
    let body = json!([{"channel": "/meta/connect", "clientId": id,
                       "connectionType": "long-polling", "advice": {"timeout": 0}}])
    .to_string();
    let request = format!(
        "POST /faye HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    let handed_back = wait_restored(&hero).await;
    assert_eq!(handed_back, MESSAGES as u64, "the whole reply goes back");

    // The server closed the stalled socket: what it holds ends short of the reply.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut got))
        .await
        .expect("the server closed the stalled connection")
        .ok();
    assert!(
        got.len() < MESSAGES * PAYLOAD,
        "{} bytes arrived",
        got.len()
    );

    let mut seen = BTreeMap::new();
    poll_rest(&hero, &id, channel, &mut seen).await;
    assert_exactly_once(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_websocket_is_cut_off_and_what_it_did_not_get_comes_with_the_next_connect() {
    let hero = start();
    let channel = "/stall/ws";
    let socket = small_window_socket(&hero).await;
    let url = format!("ws://127.0.0.1:{}/faye", hero.port);
    let (mut ws, _) = tokio_tungstenite::client_async(url, socket).await.unwrap();
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>| loop {
        match ws.next().await.unwrap().unwrap() {
            WsMessage::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            _ => continue,
        }
    };
    ws.send(WsMessage::text(
        json!([{"channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["websocket"]}])
        .to_string(),
    ))
    .await
    .unwrap();
    let reply = next(&mut ws).await;
    let id = reply[0]["clientId"].as_str().unwrap().to_owned();
    ws.send(WsMessage::text(
        json!([{"channel": "/meta/subscribe", "clientId": id, "subscription": channel},
               {"channel": "/meta/connect", "clientId": id, "connectionType": "websocket"}])
        .to_string(),
    ))
    .await
    .unwrap();
    let reply = next(&mut ws).await;
    assert_eq!(reply[0]["successful"], true, "{reply}");

    // The socket pushes; its client stops reading while 20 MB are published.
    publish_all(&hero, channel).await;
    let handed_back = wait_restored(&hero).await;
    assert!(handed_back < MESSAGES as u64, "some frames were written");

    // What the socket did receive before the cut (a frame cut in half does not parse).
    let mut seen = BTreeMap::new();
    let drain = async {
        while let Some(Ok(frame)) = ws.next().await {
            if let WsMessage::Text(t) = frame
                && let Ok(reply) = serde_json::from_str::<Value>(&t)
            {
                count_deliveries(&reply, channel, &mut seen);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .expect("the server closed the stalled websocket");
    // The rest was written, handed back, or never taken.
    assert!(seen.len() as u64 + handed_back <= MESSAGES as u64);

    poll_rest(&hero, &id, channel, &mut seen).await;
    assert_exactly_once(&seen);
}

/// A masked client text frame (a zero mask leaves the payload as it is).
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match u16::try_from(payload.len()) {
        Ok(len) if len < 126 => frame.push(0x80 | len as u8),
        Ok(len) => {
            frame.push(0x80 | 126);
            frame.extend(len.to_be_bytes());
        }
        Err(_) => panic!("test frames are small"),
    }
    frame.extend([0u8; 4]);
    frame.extend(payload);
    frame
}

/// The complete unmasked text frames at the start of `bytes`.
fn server_frames(mut bytes: &[u8]) -> Vec<String> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let (len, head) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            126 => break,
            127 => panic!("no reply is that large"),
            n => (usize::from(n), 2),
        };
        let Some(payload) = bytes.get(head..head + len) else {
            break;
        };
        frames.push(String::from_utf8(payload.to_vec()).unwrap());
        bytes = &bytes[head + len..];
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_arrive_together_are_answered_in_one_write() {
    let hero = Hero::start(&[]);
    let id = handshake_and_subscribe(&hero, "/batch/elsewhere").await;
    let mut tcp = TcpStream::connect(("127.0.0.1", hero.port)).await.unwrap();
    tcp.write_all(
        b"GET /faye HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    // Ten publishes, one frame each, in one TCP write.
    let mut burst = Vec::new();
    for n in 0..10 {
        let publish = json!([{"channel": "/batch/chan", "clientId": id, "id": n.to_string(),
                              "data": {"n": n}}]);
        burst.extend(client_frame(publish.to_string().as_bytes()));
    }
    tcp.write_all(&burst).await.unwrap();

    // The first read returns as soon as anything arrives: all ten replies, in order.
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("replies within 10 s")
        .unwrap();
    let replies = server_frames(&buf[..n]);
    assert_eq!(replies.len(), 10, "one write for the burst: {replies:?}");
    for (n, reply) in replies.iter().enumerate() {
        let reply: Value = serde_json::from_str(reply).unwrap();
        assert_eq!(reply[0]["id"], n.to_string(), "{reply}");
        assert_eq!(reply[0]["successful"], true, "{reply}");
    }
}
