//! Black-box tests of graceful shutdown: SIGTERM/SIGINT stop accepting, let in-flight
//! actions finish (bounded), and exit 0; an idle keep-alive connection does not hold
//! shutdown up.
//!
//! Multi-threaded runtimes: the tests block on log waits while a request is in flight.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Hero, Options, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A hero that logs when an action starts, so tests can wait for "in flight".
fn start(args: &[&str]) -> Hero {
    Hero::start_with(
        Options::default()
            .args(args.iter().copied())
            .env("RUST_LOG", "info,hero::actions=debug"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_action_finish_and_refuses_new_connections() {
    let mut hero = start(&[]);
    let url = hero.at("/api/sleepTest?sleepDuration=1500");
    let in_flight = tokio::spawn(async move {
        let res = reqwest::get(url).await.unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    });
    hero.wait_for_log("action started", WAIT)
        .expect("sleepTest started");

    hero.signal("TERM");
    hero.wait_for_log("shutting down", WAIT)
        .expect("shutdown logged");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", hero.port)).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted during shutdown"
    );

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["sleepDuration"], 1500, "{body}");
    assert!(body["sleepDelta"].as_u64().unwrap() >= 1500);
    let exit = hero.wait_exit(WAIT).expect("hero exits");
    assert!(exit.success(), "{exit:?}");
    assert!(hero.wait_for_log("stopped", WAIT).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_an_idle_host_with_status_0() {
    let mut hero = start(&[]);
    hero.signal("INT");
    let exit = hero.wait_exit(WAIT).expect("hero exits");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_does_not_hold_shutdown() {
    // The grace period is long; an idle connection must not make shutdown wait for it.
    let mut hero = start(&["--shutdown-timeout-ms", "30000"]);
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", hero.port))
        .await
        .unwrap();
    idle.write_all(b"GET /api/randomNumber HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let signalled = Instant::now();
    hero.signal("TERM");
    let exit = hero.wait_exit(WAIT).expect("hero exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        signalled.elapsed()
    );
    // The server closed the idle connection.
    assert_eq!(idle.read(&mut buf).await.unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_shutdown() {
    let mut hero = start(&["--shutdown-timeout-ms", "300"]);
    let url = hero.at("/api/sleepTest?sleepDuration=30000");
    let in_flight = tokio::spawn(async move { reqwest::get(url).await });
    hero.wait_for_log("action started", WAIT)
        .expect("sleepTest started");

    let signalled = Instant::now();
    hero.signal("TERM");
    let exit = hero.wait_exit(WAIT).expect("hero exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        signalled.elapsed()
    );
    assert!(hero.wait_for_log("grace period over", WAIT).is_some());
    assert!(
        in_flight.await.unwrap().is_err(),
        "the cut request fails, it is not answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_bayeux_websocket_is_answered_and_closed_at_once_at_shutdown() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    // Long grace and hold: shutdown must not wait for either.
    let mut hero = start(&["--shutdown-timeout-ms", "30000"]);
    let url = format!("ws://127.0.0.1:{}/faye", hero.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Ws::text(
        r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]"#,
    ))
    .await
    .unwrap();
    let reply: Value = match ws.next().await {
        Some(Ok(Ws::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    let id = reply[0]["clientId"].as_str().unwrap().to_owned();
    let connect = format!(
        r#"[{{"channel":"/meta/connect","clientId":"{id}","connectionType":"websocket"}}]"#
    );
    ws.send(Ws::text(connect)).await.unwrap();
    // The connect is held (45 s by default) when the server is told to stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    hero.signal("TERM");
    let mut answered = false;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match frame {
            Ok(Ws::Text(t)) if t.contains("/meta/connect") => answered = true,
            Ok(Ws::Close(_)) | Err(_) => break,
            _ => {}
        }
    }
    assert!(
        answered,
        "the held connect is answered before the socket closes"
    );
    let exit = hero.wait_exit(WAIT).expect("hero exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "shutdown waited on an idle socket: {:?}",
        signalled.elapsed()
    );
}
