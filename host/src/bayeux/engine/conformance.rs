//! One behaviour suite every engine must pass (run with a fresh engine per case).
//! Engines under test are built with a session TTL of ~200 ms and a mailbox bound of 3.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::json;

use super::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl EngineHandler for Recorder {
    fn session_destroyed(&self, client_id: &str) {
        self.0.lock().unwrap().push(client_id.to_owned());
    }
}

fn env(channel: &str, n: i64) -> Arc<Envelope> {
    Arc::new(Envelope::new(&Message::publish(channel, json!(n)), None))
}

/// Runs every case.
pub(crate) async fn run_all<F: Fn() -> Arc<dyn Engine>>(make: F) {
    sessions(make()).await;
    exactly_once(make()).await;
    local_only(make()).await;
    overflow(make()).await;
    expiry(make()).await;
    wait_wakes(make()).await;
}

async fn sessions(e: Arc<dyn Engine>) {
    let id = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    assert!(e.session(&id).await.unwrap().is_some());
    assert!(e.ping(&id).await.unwrap());
    assert_eq!(e.session_count().await.unwrap(), 1);
    assert!(e.destroy_session(&id).await.unwrap());
    assert!(!e.destroy_session(&id).await.unwrap());
    assert!(e.session(&id).await.unwrap().is_none());
    assert!(!e.ping(&id).await.unwrap());
    let opts = SubscribeOptions::default();
    assert_eq!(
        e.subscribe(&id, "/a", &opts).await.unwrap(),
        SubscribeOutcome::UnknownClient
    );
}

async fn exactly_once(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let a = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    let b = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    for p in ["/a/b/c", "/a/b/*", "/a/**", "/**"] {
        e.subscribe(&a, p, &opts).await.unwrap();
    }
    e.subscribe(&b, "/a/b/*", &opts).await.unwrap();
    let n = e
        .publish("/a/b/c", env("/a/b/c", 1), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(e.take(&a, 10).await.unwrap().len(), 1);
    assert_eq!(e.take(&b, 10).await.unwrap().len(), 1);
    assert!(e.take(&a, 10).await.unwrap().is_empty());
    // Non-matching channels reach nobody.
    assert_eq!(
        e.publish("/a", env("/a", 2), &PublishOptions::default())
            .await
            .unwrap(),
        1
    );
    assert_eq!(e.take(&a, 10).await.unwrap().len(), 1, "/** matches /a");
    assert!(e.unsubscribe(&a, "/**").await.unwrap());
    assert_eq!(
        e.publish("/a", env("/a", 3), &PublishOptions::default())
            .await
            .unwrap(),
        0
    );
    // Limits on subscriptions per client.
    let limited = SubscribeOptions { max_per_client: 1 };
    assert_eq!(
        e.subscribe(&b, "/x", &limited).await.unwrap(),
        SubscribeOutcome::TooMany
    );
}

async fn local_only(e: Arc<dyn Engine>) {
    let opts = SubscribeOptions::default();
    let net = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    let local = e.create_session(&SessionOptions::local()).await.unwrap();
    e.subscribe(&net, "/**", &opts).await.unwrap();
    e.subscribe(&local, "/**", &opts).await.unwrap();
    let internal = PublishOptions {
        local_only: true,
        exact_only: false,
    };
    assert_eq!(
        e.publish("/hero/x", env("/hero/x", 1), &internal)
            .await
            .unwrap(),
        1
    );
    assert!(e.take(&net, 10).await.unwrap().is_empty());
    assert_eq!(e.take(&local, 10).await.unwrap().len(), 1);
    // Exact-only: a network wildcard does not match, an exact subscription does.
    let private = PublishOptions {
        local_only: false,
        exact_only: true,
    };
    assert_eq!(
        e.publish("/p/1", env("/p/1", 2), &private).await.unwrap(),
        1
    );
    assert!(e.take(&net, 10).await.unwrap().is_empty());
    e.subscribe(&net, "/p/1", &opts).await.unwrap();
    assert_eq!(
        e.publish("/p/1", env("/p/1", 3), &private).await.unwrap(),
        2
    );
    assert_eq!(e.take(&net, 10).await.unwrap().len(), 1);
}

async fn overflow(e: Arc<dyn Engine>) {
    let rec = Arc::new(Recorder::default());
    let weak: Weak<dyn EngineHandler> = Arc::downgrade(&(rec.clone() as Arc<dyn EngineHandler>));
    e.start(weak);
    let id = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    e.subscribe(&id, "/q", &SubscribeOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            e.publish("/q", env("/q", i), &PublishOptions::default())
                .await
                .unwrap(),
            1
        );
    }
    let got = e.take(&id, 2).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message().data, Some(json!(0)), "order kept");
    e.publish("/q", env("/q", 3), &PublishOptions::default())
        .await
        .unwrap();
    e.publish("/q", env("/q", 4), &PublishOptions::default())
        .await
        .unwrap();
    // Fourth queued message: over the bound of 3, the slow client is destroyed.
    assert_eq!(
        e.publish("/q", env("/q", 5), &PublishOptions::default())
            .await
            .unwrap(),
        0
    );
    assert!(e.session(&id).await.unwrap().is_none());
    assert_eq!(rec.0.lock().unwrap().as_slice(), [id]);
    e.close().await;
}

async fn expiry(e: Arc<dyn Engine>) {
    let rec = Arc::new(Recorder::default());
    let weak: Weak<dyn EngineHandler> = Arc::downgrade(&(rec.clone() as Arc<dyn EngineHandler>));
    e.start(weak);
    let idle = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    let busy = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
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
    assert_eq!(rec.0.lock().unwrap().as_slice(), [idle]);
    e.close().await;
}

async fn wait_wakes(e: Arc<dyn Engine>) {
    let id = e
        .create_session(&SessionOptions::network(None))
        .await
        .unwrap();
    e.subscribe(&id, "/w", &SubscribeOptions::default())
        .await
        .unwrap();
    let e2 = e.clone();
    let id2 = id.clone();
    let waiter = tokio::spawn(async move {
        e2.wait(&id2).await;
        e2.take(&id2, 10).await.unwrap().len()
    });
    tokio::task::yield_now().await;
    e.publish("/w", env("/w", 1), &PublishOptions::default())
        .await
        .unwrap();
    assert_eq!(waiter.await.unwrap(), 1);
    // A destroyed session wakes its waiters too.
    let e3 = e.clone();
    let id3 = id.clone();
    let waiter = tokio::spawn(async move { e3.wait(&id3).await });
    tokio::task::yield_now().await;
    e.destroy_session(&id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .unwrap()
        .unwrap();
}
