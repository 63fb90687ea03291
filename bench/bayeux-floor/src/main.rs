//! The floor for `bench/bayeux.sh`: a websocket-only Bayeux server that does the least a
//! fan-out can do and still satisfy the load generator — no session store, no checks, no
//! expiry, no extensions, no long-polling. One reader and one writer task per socket (as
//! in hero), deliveries serialised once and batched per frame from an unbounded queue.
//!
//! It is not a server to run: it exists to measure how fast *any* server can go with the
//! generator sharing this machine's cores, so hero's figures can be read against it.
//!
//! `bayeux-floor [--port N] [--write-delay-us N]`: prints `listening on
//! http://127.0.0.1:PORT` (port 0 by default). With a write delay, a woken writer waits
//! that long before draining its queue, trading latency for fewer, larger frames.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A subscriber's queue of serialised deliveries.
type Queue = mpsc::UnboundedSender<Arc<str>>;

/// channel name -> subscribers' queues.
type Channels = Arc<Mutex<HashMap<String, Vec<Queue>>>>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = arg("--port").unwrap_or(0);
    let delay = Duration::from_micros(arg("--write-delay-us").unwrap_or(0));
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let channels: Channels = Arc::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(serve(tcp, channels.clone(), delay));
    }
}

/// The value after `flag` on the command line, parsed.
fn arg<T: std::str::FromStr>(flag: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != flag)
        .nth(1)
        .and_then(|v| v.parse().ok())
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0)
}

async fn serve(tcp: TcpStream, channels: Channels, delay: Duration) {
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config())).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Arc<str>>();
    // Writer: everything queued goes out as one frame.
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 1000).await > 0 {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                while let Ok(m) = rx.try_recv() {
                    batch.push(m);
                }
            }
            let mut frame =
                String::with_capacity(batch.iter().map(|m| m.len() + 1).sum::<usize>() + 2);
            frame.push('[');
            for (i, m) in batch.drain(..).enumerate() {
                if i > 0 {
                    frame.push(',');
                }
                frame.push_str(&m);
            }
            frame.push(']');
            if sink.send(WsMessage::text(frame)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = stream.next().await {
        let WsMessage::Text(text) = frame else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let messages = match value {
            Value::Array(v) => v,
            v => vec![v],
        };
        let mut replies = Vec::new();
        for m in messages {
            if let Some(reply) = handle(&m, &tx, &channels) {
                replies.push(reply);
            }
        }
        if !replies.is_empty() {
            let _ = tx.send(Arc::from(
                Value::Array(replies)
                    .to_string()
                    .trim_start_matches('[')
                    .trim_end_matches(']'),
            ));
        }
    }
}

/// One message; `None` for a connect, which is held for ever.
fn handle(m: &Value, tx: &Queue, channels: &Channels) -> Option<Value> {
    let channel = m.get("channel")?.as_str()?;
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    match channel {
        "/meta/handshake" => Some(json!({
            "channel": channel, "id": id, "successful": true, "version": "1.0",
            "clientId": NEXT_ID.fetch_add(1, Ordering::Relaxed).to_string(),
            "supportedConnectionTypes": ["websocket"],
            "advice": {"reconnect": "retry", "interval": 0, "timeout": 45000},
        })),
        "/meta/connect" => None,
        "/meta/subscribe" => {
            let sub = m.get("subscription")?.as_str()?;
            let mut map = channels.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(sub.to_owned()).or_default().push(tx.clone());
            Some(json!({"channel": channel, "id": id, "successful": true, "subscription": sub}))
        }
        "/meta/disconnect" => Some(json!({"channel": channel, "id": id, "successful": true})),
        _ => {
            let delivery: Arc<str> =
                Arc::from(json!({"channel": channel, "data": m.get("data"), "id": id}).to_string());
            let subs = channels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(channel)
                .cloned()
                .unwrap_or_default();
            for s in subs {
                let _ = s.send(delivery.clone());
            }
            Some(json!({"channel": channel, "id": id, "successful": true}))
        }
    }
}
