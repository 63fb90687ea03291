//! One behaviour suite every engine must pass, run with a fresh engine per case, plus
//! cluster cases for engines that share state between instances (several engines on one
//! backend stand for several nodes). Engines under test are built with a session TTL of
//! ~200 ms and a mailbox bound of 3.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::json;

use super::*;

#[derive(Default)]
pub(crate) struct Recorder(Mutex<Vec<String>>);

impl EngineHandler for Recorder {
    fn session_destroyed(&self, client_id: &str) {
        self.0.lock().unwrap().push(client_id.to_owned());
    }
}

impl Recorder {
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// What the handler was told so far.
    pub(crate) fn seen_now(&self) -> Vec<String> {
        self.seen()
    }
}

/// Starts `e` with a fresh recorder as its handler.
fn start(e: &Arc<dyn Engine>) -> Arc<Recorder> {
    let rec = Arc::new(Recorder::default());
    let weak: Weak<dyn EngineHandler> = Arc::downgrade(&(rec.clone() as Arc<dyn EngineHandler>));
    e.start(weak);
    rec
}

fn env(channel: &str, n: i64) -> Arc<Envelope> {
    Arc::new(Envelope::new(&Message::publish(channel, json!(n)), None))
}

async fn publish(e: &Arc<dyn Engine>, channel: &str, n: i64) {
    e.publish(channel, env(channel, n), &PublishOptions::default())
        .await
        .unwrap();
}

fn data(envs: &[Arc<Envelope>]) -> Vec<i64> {
    envs.iter()
        .map(|e| e.message().data.as_ref().and_then(|d| d.as_i64()).unwrap())
        .collect()
}

/// One long-poll connect answered at once: claim, take, commit.
async fn drain(e: &Arc<dyn Engine>, id: &str) -> Vec<i64> {
    let Some(m) = e.claim(id, ClaimKind::Poll).await.unwrap() else {
        return Vec::new();
    };
    let got = m.take(100);
    assert!(m.commit().await.unwrap(), "an uncontended claim commits");
    data(&got)
}

/// Waits (bounded) until `cond` holds.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn net(e: &Arc<dyn Engine>) -> String {
    e.create_session(&SessionOptions::network(None))
        .await
        .unwrap()
}

/// Runs every single-instance case.
pub(crate) async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Engine>>,
{
    sessions(make().await).await;
    exactly_once(make().await).await;
    unsubscribe_before_publish(make().await).await;
    local_only(make().await).await;
    overflow_while_pushing(make().await).await;
    overflow_while_away(make().await).await;
    expiry(make().await).await;
    wait_wakes(make().await).await;
    newer_claim_supersedes(make().await).await;
    publish_each_reaches_each_channel(make().await).await;
    publish_run_is_publishes_in_order(make().await).await;
    quotas_cap_network_sessions_and_free_places_on_destroy(make().await).await;
    handed_back_deliveries_come_first(make().await).await;
}

/// Deliveries handed back after a failed write come first on the next claim, once.
async fn handed_back_deliveries_come_first(e: Arc<dyn Engine>) {
    let id = net(&e).await;
    e.subscribe(&id, "/h", &SubscribeOptions::default())
        .await
        .unwrap();
    for n in 0..3 {
        publish(&e, "/h", n).await;
    }
    // A long-poll reply was committed, then its write failed.
    let m = e.claim(&id, ClaimKind::Poll).await.unwrap().unwrap();
    let got = m.take(100);
    assert_eq!(data(&got), [0, 1, 2]);
    assert!(m.commit().await.unwrap());
    m.restore(got);
    drop(m);
    assert_eq!(
        drain(&e, &id).await,
        [0, 1, 2],
        "a failed reply goes back whole"
    );
    // A push socket wrote the first of two, then its write failed.
    publish(&e, "/h", 3).await;
    publish(&e, "/h", 4).await;
    let m = e.claim(&id, ClaimKind::Push).await.unwrap().unwrap();
    let got = m.take(100);
    assert_eq!(data(&got), [3, 4]);
    m.restore(got[1..].to_vec());
    drop(m);
    publish(&e, "/h", 5).await;
    assert_eq!(
        drain(&e, &id).await,
        [4, 5],
        "the unsent one first, then what is newer; the written one not again"
    );
    e.close().await;
}

async fn quotas_cap_network_sessions_and_free_places_on_destroy(e: Arc<dyn Engine>) {
    let a: std::net::IpAddr = [10, 0, 0, 1].into();
    let b: std::net::IpAddr = [10, 0, 0, 2].into();
    let quota = SessionQuota {
        max_sessions: 3,
        max_sessions_per_ip: 2,
    };
    let from = |ip| SessionOptions::network(Some(ip)).with_quota(quota);
    let first = e.create_session(&from(a)).await.unwrap();
    e.create_session(&from(a)).await.unwrap();
    assert_eq!(
        e.create_session(&from(a)).await.err(),
        Some(EngineError::Quota(QuotaExceeded::PerIp(2)))
    );
    e.create_session(&from(b)).await.unwrap();
    assert_eq!(
        e.create_session(&from(b)).await.err(),
        Some(EngineError::Quota(QuotaExceeded::Sessions(3)))
    );
    // In-process sessions are not counted.
    e.create_session(&SessionOptions::local()).await.unwrap();
    // A destroyed session gives its place back, to its address too.
    assert!(e.destroy_session(&first).await.unwrap());
    e.create_session(&from(a)).await.unwrap();
    e.close().await;
}

async fn publish_each_reaches_each_channel(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let a = net(&e).await;
    let b = net(&e).await;
    e.subscribe(&a, "/e/1", &opts).await.unwrap();
    e.subscribe(&b, "/e/2", &opts).await.unwrap();
    let pushed = e.claim(&b, ClaimKind::Push).await.unwrap().unwrap();
    let channels: Vec<String> = ["/e/1", "/e/2", "/e/3"].map(String::from).to_vec();
    let private = PublishOptions {
        local_only: false,
        exact_only: true,
    };
    e.publish_each(&channels, &Message::publish("/e/1", json!(5)), &private)
        .await
        .unwrap();
    let got = e
        .claim(&a, ClaimKind::Poll)
        .await
        .unwrap()
        .unwrap()
        .take(10);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message().channel.as_deref(), Some("/e/1"));
    assert_eq!(got[0].message().data, Some(json!(5)));
    let mut pushed_got = Vec::new();
    eventually("the served session gets its copy", || {
        pushed_got.extend(pushed.take(10));
        let n = pushed_got.len();
        async move { n >= 1 }
    })
    .await;
    assert_eq!(pushed_got.len(), 1);
    assert_eq!(pushed_got[0].message().channel.as_deref(), Some("/e/2"));
    e.close().await;
}

/// A run of publishes delivers as the same publishes one after another: each on its
/// own channel, in order, once, with a result each.
async fn publish_run_is_publishes_in_order(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let a = net(&e).await;
    let b = net(&e).await;
    e.subscribe(&a, "/r/1", &opts).await.unwrap();
    e.subscribe(&b, "/r/*", &opts).await.unwrap();
    let plain = PublishOptions::default();
    let local = PublishOptions {
        local_only: true,
        exact_only: false,
    };
    let run = [
        (env("/r/1", 1), plain.clone()),
        (env("/r/2", 2), plain.clone()),
        (env("/r/1", 9), local),
        (env("/r/1", 3), plain),
    ];
    let results = e.publish_run(&run).await;
    assert_eq!(results.len(), run.len(), "a result per publish");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(drain(&e, &a).await, [1, 3]);
    assert_eq!(drain(&e, &b).await, [1, 2, 3]);
    assert!(
        e.publish_run(&[]).await.is_empty(),
        "an empty run is nothing"
    );
    e.close().await;
}

async fn sessions(e: Arc<dyn Engine>) {
    let id = net(&e).await;
    assert!(e.session(&id).await.unwrap().is_some());
    assert!(e.ping(&id).await.unwrap());
    assert_eq!(e.session_count().await.unwrap(), 1);
    assert!(e.destroy_session(&id).await.unwrap());
    assert!(!e.destroy_session(&id).await.unwrap());
    assert!(e.session(&id).await.unwrap().is_none());
    assert!(!e.ping(&id).await.unwrap());
    assert!(e.claim(&id, ClaimKind::Poll).await.unwrap().is_none());
    let opts = SubscribeOptions::default();
    assert_eq!(
        e.subscribe(&id, "/a", &opts).await.unwrap(),
        SubscribeOutcome::UnknownClient
    );
    e.close().await;
}

async fn exactly_once(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let a = net(&e).await;
    let b = net(&e).await;
    publish(&e, "/a/b/c", 0).await; // before any subscription: nobody
    for p in ["/a/b/c", "/a/b/*", "/a/**", "/**"] {
        e.subscribe(&a, p, &opts).await.unwrap();
    }
    e.subscribe(&b, "/a/b/*", &opts).await.unwrap();
    publish(&e, "/a/b/c", 1).await;
    assert_eq!(drain(&e, &a).await, [1], "one copy however many match");
    assert_eq!(drain(&e, &b).await, [1]);
    assert!(drain(&e, &a).await.is_empty(), "taken once");
    publish(&e, "/a", 2).await;
    assert_eq!(drain(&e, &a).await, [2], "/** matches /a");
    assert!(drain(&e, &b).await.is_empty(), "/a/b/* does not match /a");
    assert!(e.unsubscribe(&a, "/**").await.unwrap());
    publish(&e, "/a", 3).await;
    assert!(drain(&e, &a).await.is_empty());
    // Order is kept (up to the mailbox bound of 3).
    for n in 10..13 {
        publish(&e, "/a/b/x", n).await;
    }
    assert_eq!(drain(&e, &b).await, [10, 11, 12]);
    // Limits on subscriptions per client.
    let limited = SubscribeOptions { max_per_client: 1 };
    assert_eq!(
        e.subscribe(&b, "/x", &limited).await.unwrap(),
        SubscribeOutcome::TooMany
    );
    e.close().await;
}

async fn unsubscribe_before_publish(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let a = net(&e).await;
    e.subscribe(&a, "/u", &opts).await.unwrap();
    publish(&e, "/u", 1).await;
    assert!(e.unsubscribe(&a, "/u").await.unwrap());
    publish(&e, "/u", 2).await;
    e.subscribe(&a, "/u", &opts).await.unwrap();
    publish(&e, "/u", 3).await;
    let got = drain(&e, &a).await;
    assert!(
        !got.contains(&2),
        "a publish made while unsubscribed is not delivered: {got:?}"
    );
    assert!(got.ends_with(&[3]), "{got:?}");
    e.close().await;
}

async fn local_only(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let net_id = net(&e).await;
    let local = e.create_session(&SessionOptions::local()).await.unwrap();
    let local_box = e.claim(&local, ClaimKind::Push).await.unwrap().unwrap();
    e.subscribe(&net_id, "/**", &opts).await.unwrap();
    e.subscribe(&local, "/**", &opts).await.unwrap();
    let internal = PublishOptions {
        local_only: true,
        exact_only: false,
    };
    e.publish("/hero/x", env("/hero/x", 1), &internal)
        .await
        .unwrap();
    // Exact-only: a network wildcard does not match, an exact subscription does.
    let private = PublishOptions {
        local_only: false,
        exact_only: true,
    };
    e.publish("/p/1", env("/p/1", 2), &private).await.unwrap();
    e.subscribe(&net_id, "/p/1", &opts).await.unwrap();
    e.publish("/p/1", env("/p/1", 3), &private).await.unwrap();
    assert_eq!(drain(&e, &net_id).await, [3]);
    let mut got = Vec::new();
    eventually("the local session gets all three", || {
        got.extend(data(&local_box.take(10)));
        let n = got.len();
        async move { n >= 3 }
    })
    .await;
    assert_eq!(got, [1, 2, 3]);
    e.close().await;
}

async fn overflow_while_pushing(e: Arc<dyn Engine>) {
    let rec = start(&e);
    let id = net(&e).await;
    e.subscribe(&id, "/q", &SubscribeOptions::default())
        .await
        .unwrap();
    let mailbox = e.claim(&id, ClaimKind::Push).await.unwrap().unwrap();
    for i in 0..3 {
        publish(&e, "/q", i).await;
    }
    let mut got = Vec::new();
    eventually("two delivered", || {
        got.extend(data(&mailbox.take(2)));
        let n = got.len();
        async move { n >= 2 }
    })
    .await;
    assert_eq!(got[..2], [0, 1], "order kept");
    // Two more: three queued (the bound); a fourth overflows.
    for i in 3..6 {
        publish(&e, "/q", i).await;
    }
    let e2 = e.clone();
    eventually("the slow client is destroyed", || {
        let (e2, id) = (e2.clone(), id.clone());
        async move { e2.session(&id).await.unwrap().is_none() }
    })
    .await;
    eventually("the handler hears of it", || {
        let seen = rec.seen();
        async move { !seen.is_empty() }
    })
    .await;
    assert_eq!(rec.seen(), std::slice::from_ref(&id));
    assert!(mailbox.is_closed());
    e.close().await;
}

async fn overflow_while_away(e: Arc<dyn Engine>) {
    let _rec = start(&e);
    let id = net(&e).await;
    e.subscribe(&id, "/q", &SubscribeOptions::default())
        .await
        .unwrap();
    for i in 0..4 {
        publish(&e, "/q", i).await;
    }
    // More waited than the bound: the client cannot be caught up and must start over.
    let claim = e.claim(&id, ClaimKind::Poll).await.unwrap();
    assert!(claim.is_none_or(|m| m.is_closed() && m.take(10).is_empty()));
    let e2 = e.clone();
    eventually("the session is gone", || {
        let (e2, id) = (e2.clone(), id.clone());
        async move { e2.session(&id).await.unwrap().is_none() }
    })
    .await;
    e.close().await;
}

async fn expiry(e: Arc<dyn Engine>) {
    let rec = start(&e);
    let idle = net(&e).await;
    let busy = net(&e).await;
    let local = e.create_session(&SessionOptions::local()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while e.session(&idle).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session never expired"
        );
        e.ping(&busy).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        e.session(&busy).await.unwrap().is_some(),
        "pinged session lives"
    );
    assert!(
        e.session(&local).await.unwrap().is_some(),
        "local session lives"
    );
    eventually("the handler hears of the expiry", || {
        let seen = rec.seen();
        async move { !seen.is_empty() }
    })
    .await;
    assert_eq!(rec.seen(), [idle]);
    e.close().await;
}

async fn wait_wakes(e: Arc<dyn Engine>) {
    let id = net(&e).await;
    e.subscribe(&id, "/w", &SubscribeOptions::default())
        .await
        .unwrap();
    let mailbox = e.claim(&id, ClaimKind::Push).await.unwrap().unwrap();
    let waiting = mailbox.clone();
    let waiter = tokio::spawn(async move {
        loop {
            waiting.clone().wait().await;
            let got = waiting.take(10);
            if !got.is_empty() {
                return got.len();
            }
        }
    });
    tokio::task::yield_now().await;
    publish(&e, "/w", 1).await;
    let n = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
    // A destroyed session wakes its waiters too.
    let waiter = tokio::spawn(mailbox.clone().wait());
    tokio::task::yield_now().await;
    e.destroy_session(&id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(mailbox.is_closed());
    e.close().await;
}

async fn newer_claim_supersedes(e: Arc<dyn Engine>) {
    let id = net(&e).await;
    e.subscribe(&id, "/s", &SubscribeOptions::default())
        .await
        .unwrap();
    for n in 0..3 {
        publish(&e, "/s", n).await;
    }
    let first = e.claim(&id, ClaimKind::Poll).await.unwrap().unwrap();
    let second = e.claim(&id, ClaimKind::Poll).await.unwrap().unwrap();
    let a = first.take(100);
    let committed_first = first.commit().await.unwrap();
    let b = second.take(100);
    assert!(second.commit().await.unwrap(), "the newest claim commits");
    let mut all = if committed_first {
        data(&a)
    } else {
        Vec::new()
    };
    all.extend(data(&b));
    assert_eq!(all, [0, 1, 2], "every message once, in order");
    e.close().await;
}

/// Cases for engines whose instances share state (nodes of one cluster): `make(n)`
/// returns `n` fresh instances on one fresh backend.
pub(crate) async fn run_cluster<F, Fut>(make: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Vec<Arc<dyn Engine>>>,
{
    rotating_connects(make(3).await).await;
    concurrent_connects(make(2).await).await;
    subscribe_hold_publish_on_three_nodes(make(3).await).await;
    remote_expiry_reaches_the_serving_node(make(2).await).await;
    fresh_sessions_survive_collection(make(2).await).await;
    remote_destroy_closes_the_claim(make(2).await).await;
}

async fn close_all(nodes: &[Arc<dyn Engine>]) {
    for n in nodes {
        n.close().await;
    }
}

async fn rotating_connects(nodes: Vec<Arc<dyn Engine>>) {
    let id = net(&nodes[0]).await;
    nodes[1]
        .subscribe(&id, "/r", &SubscribeOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    for n in 0..30 {
        publish(&nodes[2], "/r", n).await;
        if n % 3 == 0 {
            got.extend(drain(&nodes[n as usize % 3], &id).await);
        }
    }
    for node in &nodes {
        got.extend(drain(node, &id).await);
    }
    assert_eq!(got, (0..30).collect::<Vec<_>>(), "once each, in order");
    close_all(&nodes).await;
}

async fn concurrent_connects(nodes: Vec<Arc<dyn Engine>>) {
    let id = net(&nodes[0]).await;
    nodes[0]
        .subscribe(&id, "/c", &SubscribeOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    for round in 0..10 {
        for k in 0..3 {
            publish(&nodes[1], "/c", round * 3 + k).await;
        }
        let (a, b) = tokio::join!(
            nodes[0].claim(&id, ClaimKind::Poll),
            nodes[1].claim(&id, ClaimKind::Poll)
        );
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        let (ta, tb) = (a.take(100), b.take(100));
        let (ca, cb) = tokio::join!(a.commit(), b.commit());
        let (ca, cb) = (ca.unwrap(), cb.unwrap());
        assert!(ca || cb, "one of two racing claims commits");
        let mut round_got = Vec::new();
        if ca {
            round_got.extend(data(&ta));
        }
        if cb {
            round_got.extend(data(&tb));
        }
        round_got.sort_unstable();
        got.extend(round_got);
    }
    for node in &nodes {
        got.extend(drain(node, &id).await);
    }
    assert_eq!(
        got,
        (0..30).collect::<Vec<_>>(),
        "nothing twice, nothing lost"
    );
    close_all(&nodes).await;
}

async fn subscribe_hold_publish_on_three_nodes(nodes: Vec<Arc<dyn Engine>>) {
    let id = net(&nodes[0]).await;
    let held = nodes[1].claim(&id, ClaimKind::Poll).await.unwrap().unwrap();
    nodes[0]
        .subscribe(&id, "/h", &SubscribeOptions::default())
        .await
        .unwrap();
    publish(&nodes[2], "/h", 7).await;
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            held.clone().wait().await;
            let got = held.take(10);
            if !got.is_empty() {
                return got;
            }
        }
    })
    .await
    .expect("the held connect on B receives C's publish");
    assert_eq!(data(&got), [7]);
    assert!(held.commit().await.unwrap());
    assert!(drain(&nodes[2], &id).await.is_empty(), "delivered once");
    close_all(&nodes).await;
}

async fn remote_expiry_reaches_the_serving_node(nodes: Vec<Arc<dyn Engine>>) {
    let recs: Vec<_> = nodes.iter().map(start).collect();
    let id = net(&nodes[0]).await;
    let mailbox = nodes[0].claim(&id, ClaimKind::Push).await.unwrap().unwrap();
    eventually(
        "the session expires and the serving node hears of it",
        || {
            let seen = recs[0].seen();
            async move { !seen.is_empty() }
        },
    )
    .await;
    assert_eq!(
        recs[0].seen(),
        std::slice::from_ref(&id),
        "reported once where served"
    );
    eventually("the other node hears of it too", || {
        let seen = recs[1].seen();
        async move { !seen.is_empty() }
    })
    .await;
    assert_eq!(recs[1].seen(), std::slice::from_ref(&id));
    assert!(mailbox.is_closed());
    close_all(&nodes).await;
}

async fn fresh_sessions_survive_collection(nodes: Vec<Arc<dyn Engine>>) {
    let _recs: Vec<_> = nodes.iter().map(start).collect();
    // Collection runs every few tens of ms on these engines; sessions made in a burst
    // are all alive until their TTL has passed without a ping.
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(net(&nodes[0]).await);
    }
    for id in &ids {
        assert!(
            nodes[1].session(id).await.unwrap().is_some(),
            "a fresh session is never collected"
        );
    }
    close_all(&nodes).await;
}

async fn remote_destroy_closes_the_claim(nodes: Vec<Arc<dyn Engine>>) {
    let recs: Vec<_> = nodes.iter().map(start).collect();
    let id = net(&nodes[0]).await;
    let mailbox = nodes[0].claim(&id, ClaimKind::Push).await.unwrap().unwrap();
    assert!(nodes[1].destroy_session(&id).await.unwrap());
    tokio::time::timeout(Duration::from_secs(5), mailbox.clone().wait())
        .await
        .expect("the serving node's claim wakes");
    assert!(mailbox.is_closed());
    eventually("the serving node's handler runs", || {
        let seen = recs[0].seen();
        async move { !seen.is_empty() }
    })
    .await;
    assert_eq!(recs[0].seen(), [id]);
    assert!(
        recs[1].seen().is_empty(),
        "the destroying node reports it itself, not through the handler"
    );
    close_all(&nodes).await;
}
