//! The conformance suite (single-instance and cluster cases) against a real
//! `redis-server`, and the fault cases: Redis lost, restarted empty.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::bayeux::engine::conformance;
use crate::testing::RedisServer;

fn config(namespace: &str, ttl: Duration) -> RedisEngineConfig {
    let cluster = ClusterConfig {
        namespace: namespace.to_owned(),
        heartbeat_ms: 50,
        call_timeout_ms: 500,
        reconnect_max_ms: 100,
        position_flush_ms: 50,
        ..ClusterConfig::default()
    };
    RedisEngineConfig::new(ttl, 3, cluster)
}

/// An engine with the conformance suite's TTL (200 ms).
async fn engine(url: &str, namespace: &str) -> Arc<dyn Engine> {
    engine_with_ttl(url, namespace, Duration::from_millis(200)).await
}

async fn engine_with_ttl(url: &str, namespace: &str, ttl: Duration) -> Arc<dyn Engine> {
    start(url, config(namespace, ttl)).await
}

/// An engine on `url` with config `c`.
async fn start(url: &str, c: RedisEngineConfig) -> Arc<dyn Engine> {
    let link = RedisLink::connect(
        url,
        c.cluster.call_timeout(),
        Duration::from_millis(100),
        Duration::ZERO,
    )
    .await
    .unwrap();
    Arc::new(RedisEngine::start_on(link, c).await.unwrap())
}

fn namespace() -> String {
    format!("t{}", new_client_id())
}

/// A new network session on `e`, subscribed to `channel`.
async fn subscribed(e: &Arc<dyn Engine>, channel: &str) -> String {
    let id = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    e.subscribe(&id, channel, &SubscribeOptions::default())
        .await
        .unwrap();
    id
}

/// `n` engines on `url` in a namespace of their own: the nodes of one cluster.
async fn nodes(url: String, n: usize) -> Vec<Arc<dyn Engine>> {
    let ns = namespace();
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(engine(&url, &ns).await);
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_single_node() {
    let redis = RedisServer::start();
    let url = redis.url();
    conformance::run_all(|| {
        let url = url.clone();
        async move { engine(&url, &namespace()).await }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cluster() {
    let redis = RedisServer::start();
    let url = redis.url();
    conformance::run_cluster(|n| nodes(url.clone(), n)).await;
}

/// The log reader has a connection of its own (`BlockingConn`), which authenticates
/// and selects the database as the URL says, as the shared link does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_behind_a_password_in_another_database() {
    let redis = RedisServer::start_with_password("s3cret");
    let url = format!("{}/3", redis.url());
    conformance::run_cluster(|n| nodes(url.clone(), n)).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let in_3: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let in_0: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(
        in_3 > 0 && in_0 == 0,
        "keys in db 3: {in_3}, in db 0: {in_0}"
    );
}

/// Publishes that overlap on one node go to the log in batches (see `appender`): every
/// one arrives once, and each publisher's in the order it published them, whether it
/// publishes one at a time or in runs (odd publishers: runs of 1 to 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_arrive_once_each_publisher_s_in_order() {
    const PUBLISHERS: i64 = 8;
    const EACH: i64 = 40;
    let redis = RedisServer::start();
    let ns = namespace();
    // Room for every message in the mailbox (the suite's bound is 3).
    let c = config(&ns, Duration::from_secs(30));
    let c = RedisEngineConfig::new(c.session_ttl, 1000, c.cluster);
    let (a, b) = (
        start(&redis.url(), c.clone()).await,
        start(&redis.url(), c).await,
    );
    let id = subscribed(&a, "/p").await;
    let publishers = (0..PUBLISHERS).map(|p| {
        let b = Arc::clone(&b);
        tokio::spawn(async move {
            let env = |i: i64| {
                let m = Message::publish("/p", serde_json::json!(p * 1000 + i));
                Arc::new(Envelope::new(&m, None))
            };
            let mut i = 0;
            while i < EACH {
                if p % 2 == 0 {
                    b.publish("/p", env(i), &PublishOptions::default())
                        .await
                        .unwrap();
                    i += 1;
                    continue;
                }
                let len = (i % 5 + 1).min(EACH - i);
                let run: Vec<_> = (i..i + len)
                    .map(|k| (env(k), PublishOptions::default()))
                    .collect();
                let results = b.publish_run(&run).await;
                assert!(results.iter().all(Result::is_ok), "{results:?}");
                i += len;
            }
        })
    });
    for p in futures_util::future::join_all(publishers).await {
        p.unwrap();
    }
    let mut got: Vec<i64> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < (PUBLISHERS * EACH) as usize {
        assert!(tokio::time::Instant::now() < deadline, "got {}", got.len());
        let m = a.claim(&id, ClaimKind::Poll).await.unwrap().unwrap();
        let taken = m.take(1000);
        assert!(m.commit().await.unwrap());
        got.extend(
            taken
                .iter()
                .map(|e| e.message().data.as_ref().unwrap().as_i64().unwrap()),
        );
        if taken.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for p in 0..PUBLISHERS {
        let mine: Vec<i64> = got.iter().copied().filter(|n| n / 1000 == p).collect();
        assert_eq!(mine, (0..EACH).map(|i| p * 1000 + i).collect::<Vec<_>>());
    }
    assert_eq!(got.len(), (PUBLISHERS * EACH) as usize, "nothing twice");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_fails_fast_and_recovers_after_a_restart() {
    let mut redis = RedisServer::start();
    let e = engine_with_ttl(&redis.url(), "faults", Duration::from_secs(30)).await;
    let rec = Arc::new(conformance::Recorder::default());
    let weak: Weak<dyn EngineHandler> = Arc::downgrade(&(rec.clone() as Arc<dyn EngineHandler>));
    e.start(weak);
    let id = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    let served = e.claim(&id, ClaimKind::Push).await.unwrap().unwrap();

    redis.kill();
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        let err = e.create_session(&SessionOptions::network(None)).await;
        assert!(matches!(err, Err(EngineError::Backend(_))), "{err:?}");
    }
    // Each call waits for a reconnection up to its deadline (500 ms here), no longer.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "calls fail within their deadline, not hang: {:?}",
        started.elapsed()
    );

    redis.restart(); // empty: every session is gone
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        if let Ok(id) = e.create_session(&SessionOptions::network(None)).await {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The node noticed the empty Redis: its served session is over and reported.
    tokio::time::timeout(Duration::from_secs(10), served.clone().wait())
        .await
        .unwrap();
    assert!(served.is_closed());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while rec.seen_now().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lost session is reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rec.seen_now(), [id]);
    // And the cluster works again: subscribe, publish, deliver.
    e.subscribe(&fresh, "/back", &SubscribeOptions::default())
        .await
        .unwrap();
    let env = Arc::new(Envelope::new(
        &crate::bayeux::Message::publish("/back", serde_json::json!(1)),
        None,
    ));
    e.publish("/back", env, &PublishOptions::default())
        .await
        .unwrap();
    let m = e.claim(&fresh, ClaimKind::Poll).await.unwrap().unwrap();
    assert_eq!(m.take(10).len(), 1);
    assert!(m.commit().await.unwrap());
    e.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_s_push_clients_lose_nothing_and_repeat_only_what_was_not_saved() {
    let redis = RedisServer::start();
    let ns = namespace();
    let long = Duration::from_secs(30);
    let a = engine_with_ttl(&redis.url(), &ns, long).await;
    let b = engine_with_ttl(&redis.url(), &ns, long).await;
    let id = subscribed(&a, "/d").await;
    let publish = |n: i64| {
        let b = b.clone();
        async move {
            let env = Arc::new(Envelope::new(
                &crate::bayeux::Message::publish("/d", serde_json::json!(n)),
                None,
            ));
            b.publish("/d", env, &PublishOptions::default())
                .await
                .unwrap();
        }
    };
    let ws = a.claim(&id, ClaimKind::Push).await.unwrap().unwrap();
    let mut pushed = Vec::new();
    for n in 0..3 {
        publish(n).await;
    }
    while pushed.len() < 3 {
        ws.clone().wait().await;
        pushed.extend(
            ws.take(10)
                .iter()
                .map(|e| e.message().data.clone().unwrap()),
        );
    }
    // Saved by the periodic flush (every 50 ms here)...
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(3).await;
    publish(4).await;
    // ... then node A dies holding the socket: no goodbye, no final save.
    std::mem::forget(ws);
    a.close().await;
    let m = b.claim(&id, ClaimKind::Poll).await.unwrap().unwrap();
    let got: Vec<_> = m
        .take(10)
        .iter()
        .map(|e| e.message().data.clone().unwrap())
        .collect();
    assert!(m.commit().await.unwrap());
    assert_eq!(
        got,
        [serde_json::json!(3), serde_json::json!(4)],
        "what was saved is not repeated; nothing is lost"
    );
}
