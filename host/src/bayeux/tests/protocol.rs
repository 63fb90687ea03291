//! Message processing, errors, channels, holds, expiry, extensions, in-process client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, timeout};

use crate::bayeux::message::parse_messages;
use crate::bayeux::server::to_json_array;
use crate::bayeux::{
    Bayeux, BayeuxConfig, BayeuxError, BoxFuture, Extension, Message, MessageContext,
    OutgoingContext, OutgoingKind, Transport, Verdict,
};

pub(super) fn config(timeout_ms: u64) -> BayeuxConfig {
    BayeuxConfig {
        timeout_ms,
        ..BayeuxConfig::default()
    }
}

pub(super) fn peer(port: u16) -> MessageContext {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    MessageContext::network(Transport::LongPolling, Some(addr))
}

pub(super) async fn send_ctx(b: &Bayeux, ctx: &MessageContext, msgs: Value) -> Vec<Value> {
    let parsed = parse_messages(msgs.to_string().as_bytes()).unwrap();
    let out = b.process(parsed, ctx).await;
    serde_json::from_str(&to_json_array(&out)).unwrap()
}

async fn send(b: &Bayeux, msgs: Value) -> Vec<Value> {
    send_ctx(b, &peer(1000), msgs).await
}

async fn one(b: &Bayeux, msg: Value) -> Value {
    let mut r = send(b, msg).await;
    assert_eq!(r.len(), 1, "{r:?}");
    r.remove(0)
}

pub(super) async fn handshake(b: &Bayeux) -> String {
    let r = one(
        b,
        json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}),
    )
    .await;
    r["clientId"].as_str().unwrap().to_owned()
}

async fn subscribe(b: &Bayeux, id: &str, sub: Value) -> Value {
    one(
        b,
        json!({"channel":"/meta/subscribe","clientId":id,"subscription":sub}),
    )
    .await
}

async fn publish(b: &Bayeux, id: &str, channel: &str, data: Value) -> Value {
    one(b, json!({"channel":channel,"clientId":id,"data":data})).await
}

/// A connect answered at once (advice.timeout 0): the reply plus deliveries.
async fn poll(b: &Bayeux, id: &str) -> Vec<Value> {
    send(
        b,
        json!({"channel":"/meta/connect","clientId":id,"connectionType":"long-polling","advice":{"timeout":0}}),
    )
    .await
}

#[tokio::test]
async fn handshake_success_shape() {
    let b = Bayeux::new(config(1000));
    let r = one(
        &b,
        json!({"id":"1","channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket","long-polling"]}),
    )
    .await;
    assert_eq!(r["id"], "1");
    assert_eq!(r["channel"], "/meta/handshake");
    assert_eq!(r["successful"], true);
    assert_eq!(r["version"], "1.0");
    assert_eq!(
        r["supportedConnectionTypes"],
        json!([
            "long-polling",
            "cross-origin-long-polling",
            "callback-polling",
            "websocket",
            "eventsource",
            "in-process"
        ])
    );
    assert_eq!(
        r["advice"],
        json!({"reconnect":"retry","interval":0,"timeout":1000})
    );
    let id = r["clientId"].as_str().unwrap();
    assert!(
        id.len() >= 20
            && id
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert_ne!(handshake(&b).await, id);
}

#[tokio::test]
async fn handshake_errors() {
    let b = Bayeux::new(config(1000));
    let r = one(
        &b,
        json!({"channel":"/meta/handshake","supportedConnectionTypes":["long-polling"]}),
    )
    .await;
    assert_eq!(r["successful"], false);
    assert_eq!(r["error"], "402:version:Missing required parameter");
    assert_eq!(r["advice"], json!({"reconnect":"handshake"}));
    assert!(r.get("clientId").is_none());
    let r = one(&b, json!({"channel":"/meta/handshake","version":"1.0"})).await;
    assert_eq!(
        r["error"],
        "402:supportedConnectionTypes:Missing required parameter"
    );
    let r = one(
        &b,
        json!({"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["carrier-pigeon","smoke"]}),
    )
    .await;
    assert_eq!(
        r["error"],
        "301:carrier-pigeon,smoke:Connection types not supported"
    );
    assert_eq!(r["advice"], json!({"reconnect":"handshake"}));
    assert_eq!(b.session_count().await, 0);
}

#[tokio::test]
async fn connect_errors() {
    let b = Bayeux::new(config(1000));
    let r = one(&b, json!({"id":"2","channel":"/meta/connect","clientId":"nope","connectionType":"long-polling"})).await;
    assert_eq!(r["error"], "401:nope:Unknown client");
    assert_eq!(r["advice"], json!({"reconnect":"handshake"}));
    assert!(r.get("clientId").is_none());
    assert_eq!(r["id"], "2");
    let r = one(
        &b,
        json!({"channel":"/meta/connect","connectionType":"long-polling"}),
    )
    .await;
    assert_eq!(r["error"], "402:clientId:Missing required parameter");
    let id = handshake(&b).await;
    let r = one(&b, json!({"channel":"/meta/connect","clientId":id})).await;
    assert_eq!(r["error"], "402:connectionType:Missing required parameter");
    let r = one(
        &b,
        json!({"channel":"/meta/connect","clientId":id,"connectionType":"telegraph"}),
    )
    .await;
    assert_eq!(r["error"], "301:telegraph:Connection types not supported");
}

#[tokio::test]
async fn faye_quirks_and_publish_errors() {
    let b = Bayeux::new(config(1000));
    let r = one(&b, json!({})).await;
    assert_eq!(r["error"], "402:data:Missing required parameter");
    assert_eq!(r["successful"], false);
    let r = one(&b, json!({"channel":"invalid"})).await;
    assert_eq!(r["error"], "402:data:Missing required parameter");
    let r = one(&b, json!({"channel":"invalid","data":1})).await;
    assert_eq!(r["error"], "405:invalid:Invalid channel");
    let id = handshake(&b).await;
    let r = one(
        &b,
        json!({"channel":"/meta/subscribe/x","clientId":id,"subscription":"/a"}),
    )
    .await;
    assert_eq!(r["error"], "403:/meta/subscribe/x:Forbidden channel");
    let r = one(&b, json!({"channel":"/meta/foo","clientId":id})).await;
    assert_eq!(r["error"], "403:/meta/foo:Forbidden channel");
    let r = publish(&b, "nope", "/a", json!(1)).await;
    assert_eq!(r["error"], "401:nope:Unknown client");
    let r = publish(&b, &id, "/a/*", json!(1)).await;
    assert_eq!(r["error"], "405:/a/*:Invalid channel");
    let r = publish(&b, &id, "/hero/x", json!(1)).await;
    assert_eq!(r["error"], "403:/hero/x:Forbidden channel");
    let r = one(
        &b,
        json!({"id":"9","channel":"/a","clientId":id,"data":{"x":1}}),
    )
    .await;
    assert_eq!(
        r,
        json!({"id":"9","channel":"/a","clientId":id,"successful":true})
    );
    // A service publish is accepted.
    assert_eq!(
        publish(&b, &id, "/service/x", json!(1)).await["successful"],
        true
    );
    // Anonymous publishes are accepted, as faye does.
    assert_eq!(
        one(&b, json!({"channel":"/a","data":1})).await["successful"],
        true
    );
    assert_eq!(send(&b, json!([])).await, Vec::<Value>::new());
}

#[tokio::test]
async fn subscribe_rules() {
    let b = Bayeux::new(config(1000));
    let id = handshake(&b).await;
    let r = one(&b, json!({"channel":"/meta/subscribe","clientId":id})).await;
    assert_eq!(r["error"], "402:subscription:Missing required parameter");
    assert_eq!(r["subscription"], json!([]));
    let r = one(&b, json!({"channel":"/meta/subscribe","subscription":"/a"})).await;
    assert_eq!(r["error"], "402:clientId:Missing required parameter");
    let r = subscribe(&b, "nope", json!("/a")).await;
    assert_eq!(r["error"], "401:nope:Unknown client");
    for (ch, err) in [
        ("/meta/**", "403:/meta/**:Forbidden channel"),
        ("/meta/connect", "403:/meta/connect:Forbidden channel"),
        ("/service/**", "403:/service/**:Forbidden channel"),
        ("/service/x", "403:/service/x:Forbidden channel"),
        ("/hero/**", "403:/hero/**:Forbidden channel"),
        (
            "/client/websocket/connection/*",
            "403:/client/websocket/connection/*:Forbidden channel",
        ),
        (
            "/client/websocket/**",
            "403:/client/websocket/**:Forbidden channel",
        ),
        ("/a/**/b", "405:/a/**/b:Invalid channel"),
        ("nope", "405:nope:Invalid channel"),
    ] {
        let r = subscribe(&b, &id, json!(ch)).await;
        assert_eq!(r["error"], err, "{ch}");
        assert_eq!(r["subscription"], ch);
    }
    // Processing stops at the first error; earlier channels stay subscribed.
    let r = subscribe(&b, &id, json!(["/x", "/meta/x", "/y"])).await;
    assert_eq!(r["error"], "403:/meta/x:Forbidden channel");
    assert_eq!(r["subscription"], json!(["/x", "/meta/x", "/y"]));
    publish(&b, &id, "/x", json!("x")).await;
    publish(&b, &id, "/y", json!("y")).await;
    let got = poll(&b, &id).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["data"], "x");
    // Limits.
    let many: Vec<String> = (0..101).map(|i| format!("/c{i}")).collect();
    let r = subscribe(&b, &id, json!(many)).await;
    assert_eq!(r["successful"], false);
    assert!(r["error"].as_str().unwrap().starts_with("400:101:"), "{r}");
    // Unsubscribe.
    let r = one(
        &b,
        json!({"channel":"/meta/unsubscribe","clientId":id,"subscription":"/x"}),
    )
    .await;
    assert_eq!(r["successful"], true);
    assert_eq!(r["subscription"], "/x");
    publish(&b, &id, "/x", json!("x")).await;
    assert_eq!(poll(&b, &id).await.len(), 1);
    let r = one(
        &b,
        json!({"channel":"/meta/unsubscribe","clientId":id,"subscription":"/a/*/b"}),
    )
    .await;
    assert_eq!(r["error"], "405:/a/*/b:Invalid channel");
}

#[tokio::test]
async fn exactly_once_with_overlapping_subscriptions() {
    let b = Bayeux::new(config(1000));
    let a = handshake(&b).await;
    let other = handshake(&b).await;
    let r = subscribe(&b, &a, json!(["/a/b/c", "/a/b/*", "/a/**", "/**"])).await;
    assert_eq!(r["successful"], true);
    subscribe(&b, &other, json!("/a/*")).await;
    let r = one(
        &b,
        json!({"id":"m1","channel":"/a/b/c","clientId":other,"data":{"n":1},"ext":{"e":1}}),
    )
    .await;
    assert_eq!(r["successful"], true);
    let got = poll(&b, &a).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["channel"], "/meta/connect");
    assert_eq!(got[0]["successful"], true);
    // The delivery keeps id, channel, data and ext, and drops clientId.
    assert_eq!(
        got[1],
        json!({"id":"m1","channel":"/a/b/c","data":{"n":1},"ext":{"e":1}})
    );
    assert_eq!(
        poll(&b, &other).await.len(),
        1,
        "/a/* does not match /a/b/c"
    );
    // /a/** does not match /a; /** does.
    publish(&b, &other, "/a", json!(2)).await;
    assert_eq!(poll(&b, &a).await.len(), 2);
}

#[tokio::test]
async fn private_channels_reach_exact_subscribers_only() {
    let b = Bayeux::new(config(1000));
    let owner = handshake(&b).await;
    let spy = handshake(&b).await;
    assert_eq!(
        subscribe(&b, &owner, json!("/client/websocket/connection/abc")).await["successful"],
        true
    );
    assert_eq!(
        subscribe(&b, &spy, json!(["/**", "/client/**"])).await["successful"],
        true
    );
    b.publish("/client/websocket/connection/abc", json!("private"))
        .await
        .unwrap();
    publish(&b, &owner, "/client/open", json!("public")).await;
    let got = poll(&b, &owner).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let got = poll(&b, &spy).await;
    let data: Vec<&Value> = got.iter().skip(1).map(|m| &m["data"]).collect();
    assert_eq!(data, [&json!("public")], "{got:?}");
}

#[tokio::test]
async fn batched_connect_with_timeout_zero_answers_at_once() {
    let b = Bayeux::new(config(30_000));
    let id = handshake(&b).await;
    let started = Instant::now();
    let r = send(
        &b,
        json!([
            {"id":"1","channel":"/meta/connect","clientId":id,"connectionType":"long-polling","advice":{"timeout":0}},
            {"id":"2","channel":"/meta/subscribe","clientId":id,"subscription":"/b"},
            {"id":"3","channel":"/b","clientId":id,"data":"hi"}
        ]),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let ids: Vec<&str> = r.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.starts_with(&["1", "2", "3"]), "{r:?}");
    assert_eq!(
        r[0]["advice"],
        json!({"reconnect":"retry","interval":0,"timeout":30000})
    );
}

#[tokio::test]
async fn held_connect_released_by_publish() {
    let b = Bayeux::new(config(30_000));
    let id = handshake(&b).await;
    subscribe(&b, &id, json!("/h")).await;
    let (b2, id2) = (b.clone(), id.clone());
    let held = tokio::spawn(async move {
        send(
            &b2,
            json!({"channel":"/meta/connect","clientId":id2,"connectionType":"long-polling"}),
        )
        .await
    });
    // Wait until the connect is held, then publish.
    while !b.inner_held(&id) {
        tokio::task::yield_now().await;
    }
    let other = handshake(&b).await;
    publish(&b, &other, "/h", json!(1)).await;
    publish(&b, &other, "/h", json!(2)).await;
    let r = timeout(Duration::from_secs(5), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r[0]["channel"], "/meta/connect");
    assert_eq!(r[0]["successful"], true);
    assert!(r.len() >= 2, "{r:?}");
    assert_eq!(r[1]["data"], 1);
}

#[tokio::test]
async fn second_connect_releases_the_first() {
    let b = Bayeux::new(config(30_000));
    let id = handshake(&b).await;
    let (b2, id2) = (b.clone(), id.clone());
    let first = tokio::spawn(async move {
        send(&b2, json!({"id":"a","channel":"/meta/connect","clientId":id2,"connectionType":"long-polling"})).await
    });
    while !b.inner_held(&id) {
        tokio::task::yield_now().await;
    }
    let (b3, id3) = (b.clone(), id.clone());
    let second = tokio::spawn(async move {
        send(&b3, json!({"id":"b","channel":"/meta/connect","clientId":id3,"connectionType":"long-polling"})).await
    });
    let r = timeout(Duration::from_secs(5), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.len(), 1, "released with no deliveries");
    assert_eq!(r[0]["id"], "a");
    assert_eq!(r[0]["successful"], true);
    // The second one is now the held one; a disconnect releases it.
    let r = one(&b, json!({"channel":"/meta/disconnect","clientId":id})).await;
    assert_eq!(r["successful"], true);
    let r = timeout(Duration::from_secs(5), second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r[0]["id"], "b");
}

#[tokio::test]
async fn eventsource_connect_advice() {
    let b = Bayeux::new(config(30_000));
    let id = handshake(&b).await;
    let started = Instant::now();
    let r = one(
        &b,
        json!({"channel":"/meta/connect","clientId":id,"connectionType":"eventsource"}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        r["advice"],
        json!({"reconnect":"retry","interval":30000,"timeout":0})
    );
}

#[derive(Default)]
struct Recorder {
    destroyed: Mutex<Vec<String>>,
}

impl Extension for Recorder {
    fn session_destroyed<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, ()> {
        self.destroyed.lock().unwrap().push(client_id.to_owned());
        Box::pin(async {})
    }
}

async fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "condition never became true");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn disconnect_and_expiry() {
    let b = Bayeux::new(config(100)); // session TTL 160 ms
    let rec = Arc::new(Recorder::default());
    b.add_extension(rec.clone());
    let gone = handshake(&b).await;
    let r = one(&b, json!({"channel":"/meta/disconnect","clientId":gone})).await;
    assert_eq!(r["successful"], true);
    let r = one(&b, json!({"channel":"/meta/disconnect","clientId":gone})).await;
    assert_eq!(r["error"], format!("401:{gone}:Unknown client"));
    let r = one(&b, json!({"channel":"/meta/disconnect"})).await;
    assert_eq!(r["error"], "402:clientId:Missing required parameter");
    let idle = handshake(&b).await;
    wait_until(|| rec.destroyed.lock().unwrap().len() == 2).await;
    assert_eq!(
        rec.destroyed.lock().unwrap().as_slice(),
        [gone, idle.clone()]
    );
    assert_eq!(b.session_count().await, 0);
    let r = poll(&b, &idle).await;
    assert_eq!(r[0]["error"], format!("401:{idle}:Unknown client"));
}

#[tokio::test]
async fn client_id_bound_to_handshaking_peer() {
    let b = Bayeux::new(config(1000));
    let id = handshake(&b).await; // from 127.0.0.1
    let mut elsewhere = peer(1);
    elsewhere.remote_addr = Some("10.0.0.9:5".parse().unwrap());
    let r = send_ctx(
        &b,
        &elsewhere,
        json!({"channel":"/meta/subscribe","clientId":id,"subscription":"/a"}),
    )
    .await;
    assert_eq!(r[0]["error"], format!("401:{id}:Unknown client"));
    // Another port of the same address is fine (faye reconnects its websocket).
    let r = send_ctx(
        &b,
        &peer(2),
        json!({"channel":"/meta/subscribe","clientId":id,"subscription":"/a"}),
    )
    .await;
    assert_eq!(r[0]["successful"], true);
}

/// Rejects publishes to /locked without the password, strips it on the way out, drops
/// /silent, never echoes a client's own publishes, and greets new subscribers.
struct Auth {
    bayeux: Bayeux,
}

impl Extension for Auth {
    fn incoming<'a>(
        &'a self,
        _ctx: &'a MessageContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match msg.channel.as_deref() {
                Some("/locked") if msg.ext != Some(json!({"password":"s"})) => Verdict::Reject(
                    BayeuxError::custom(403, [] as [&str; 0], "Password required"),
                ),
                Some("/silent") => Verdict::Drop,
                _ => Verdict::Pass,
            }
        })
    }

    fn outgoing<'a>(
        &'a self,
        ctx: &'a OutgoingContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            if ctx.kind == OutgoingKind::Delivery
                && ctx.publisher.is_some()
                && ctx.publisher == ctx.client_id
            {
                return Verdict::Drop;
            }
            msg.ext = None;
            Verdict::Pass
        })
    }

    fn subscribed<'a>(&'a self, _ctx: &'a MessageContext, channel: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if channel == "/greet" {
                self.bayeux
                    .publish("/greet", json!("welcome"))
                    .await
                    .unwrap();
            }
        })
    }
}

#[tokio::test]
async fn extensions_reject_drop_rewrite_and_greet() {
    let b = Bayeux::new(config(1000));
    b.add_extension(Arc::new(Auth { bayeux: b.clone() }));
    let a = handshake(&b).await;
    let other = handshake(&b).await;
    subscribe(&b, &a, json!(["/locked", "/silent"])).await;
    let r = publish(&b, &other, "/locked", json!(1)).await;
    assert_eq!(r["error"], "403::Password required");
    assert_eq!(r["successful"], false);
    let r = one(
        &b,
        json!({"channel":"/locked","clientId":other,"data":2,"ext":{"password":"s"}}),
    )
    .await;
    assert_eq!(r["successful"], true);
    let r = publish(&b, &other, "/silent", json!(3)).await;
    assert_eq!(r["successful"], true);
    // Own publish: not echoed.
    publish(&b, &a, "/locked", json!(4)).await;
    let got = poll(&b, &a).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[1],
        json!({"channel":"/locked","data":2}),
        "ext stripped"
    );
    // subscribed hook: its publish reaches the new subscriber.
    let r = subscribe(&b, &a, json!("/greet")).await;
    assert_eq!(r["successful"], true);
    let got = poll(&b, &a).await;
    assert_eq!(got.get(1).map(|m| &m["data"]), Some(&json!("welcome")));
}

/// Wants only deliveries under /seen (which it tags); counts the deliveries it is shown.
#[derive(Default)]
struct Scoped {
    shown: Mutex<Vec<String>>,
}

impl Extension for Scoped {
    fn outgoing<'a>(
        &'a self,
        ctx: &'a OutgoingContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        if ctx.kind == OutgoingKind::Delivery {
            self.shown
                .lock()
                .unwrap()
                .push(msg.channel_str().to_owned());
            msg.ext = Some(json!({"tag": ctx.publisher}));
        }
        Box::pin(std::future::ready(Verdict::Pass))
    }

    fn sees_deliveries_on(&self, channel: &str) -> bool {
        channel.starts_with("/seen")
    }
}

#[tokio::test]
async fn outgoing_sees_only_the_deliveries_it_asks_for() {
    let b = Bayeux::new(config(1000));
    let scoped = Arc::new(Scoped::default());
    b.add_extension(scoped.clone());
    let a = handshake(&b).await;
    let other = handshake(&b).await;
    subscribe(&b, &a, json!(["/seen/x", "/skip"])).await;
    publish(&b, &other, "/skip", json!(1)).await;
    publish(&b, &other, "/seen/x", json!(2)).await;
    let got = poll(&b, &a).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[1],
        json!({"channel":"/skip","data":1}),
        "sent as published"
    );
    assert_eq!(
        got[2],
        json!({"channel":"/seen/x","data":2,"ext":{"tag":other}}),
        "rewritten, with its publisher"
    );
    assert_eq!(scoped.shown.lock().unwrap().as_slice(), ["/seen/x"]);
}

#[tokio::test]
async fn local_client_sees_service_meta_and_internal() {
    let b = Bayeux::new(config(1000));
    let mut local = b.local_client().await.unwrap();
    local.subscribe("/service/**").await.unwrap();
    local.subscribe("/hero/**").await.unwrap();
    local.subscribe("/meta/subscribe").await.unwrap();
    assert_eq!(local.subscribe("bad").await.unwrap_err().code(), 405);
    let net = handshake(&b).await;
    subscribe(&b, &net, json!("/**")).await;
    let m = timeout(Duration::from_secs(5), local.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.channel.as_deref(), Some("/meta/subscribe"));
    assert_eq!(m.data.as_ref().unwrap()["clientId"], json!(net));
    publish(&b, &net, "/service/echo", json!("svc")).await;
    let m = timeout(Duration::from_secs(5), local.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.data, Some(json!("svc")));
    // Internal: only in-process subscribers see it, even against a network `/**`.
    b.publish("/hero/cluster", json!("secret")).await.unwrap();
    local
        .publish("/hero/cluster", json!("secret2"))
        .await
        .unwrap();
    let m = timeout(Duration::from_secs(5), local.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.data, Some(json!("secret")));
    let m = timeout(Duration::from_secs(5), local.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.data, Some(json!("secret2")));
    let got = poll(&b, &net).await;
    let channels: Vec<&str> = got.iter().filter_map(|m| m["channel"].as_str()).collect();
    assert_eq!(channels, ["/meta/connect", "/service/echo"], "{got:?}");
    // Network clients cannot use an in-process client's id.
    let r = publish(&b, local.client_id(), "/a", json!(1)).await;
    assert_eq!(
        r["error"],
        format!("401:{}:Unknown client", local.client_id())
    );
    let n = b.session_count().await;
    let id = local.client_id().to_owned();
    local.disconnect().await;
    assert_eq!(b.session_count().await, n - 1);
    assert!(!b.disconnect_client(&id).await);
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Bayeux>();
    send_sync::<BayeuxConfig>();
    send_sync::<MessageContext>();
    send::<crate::bayeux::LocalClient>();
    // Extensions and engines are used as trait objects.
    send_sync::<Arc<dyn Extension>>();
    send_sync::<Arc<dyn crate::bayeux::Engine>>();
}
