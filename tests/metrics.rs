//! `/metrics`: the Prometheus text exposition of a real `hero` after known traffic,
//! parsed and checked family by family.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use support::{Hero, faye};

/// One scrape: `# TYPE` per family, and every sample `series -> value`.
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let value: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number in {line:?}"));
                samples.insert(series.to_owned(), value);
            }
        }
        Scrape { types, samples }
    }

    fn kind(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("no family {family}"))
    }

    fn value(&self, series: &str) -> f64 {
        *self.samples.get(series).unwrap_or_else(|| {
            let near: Vec<_> = self
                .samples
                .keys()
                .filter(|k| k.starts_with(series.split('{').next().unwrap()))
                .collect();
            panic!("no sample {series}; have {near:?}")
        })
    }
}

async fn scrape(hero: &Hero) -> Scrape {
    let res = reqwest::get(hero.at("/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(&res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_count_known_traffic_in_every_family() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("noise.so"), b"not a library").unwrap();
    let hero = Hero::start(&["--plugins", plugins.path().to_str().unwrap()]);
    hero.wait_for_log("refused plugin", support::WAIT).unwrap();

    let before = scrape(&hero).await;
    assert_eq!(
        before.value(r#"hero_plugin_events_total{event="refused"}"#),
        1.0
    );
    assert_eq!(before.value(r#"hero_plugin_files{state="refused"}"#), 1.0);
    assert_eq!(before.value(r#"hero_plugin_files{state="loaded"}"#), 0.0);
    assert_eq!(before.value("hero_cluster_nodes"), 1.0);
    assert_eq!(before.value("hero_chat_rooms"), 1.0, "defaultRoom");
    assert_eq!(before.value("hero_bayeux_sessions"), 0.0);
    assert!(before.value("hero_actions") >= 2.0);
    assert!(before.value("process_resident_memory_bytes") > 1e6);

    // Known traffic: 3 good calls, 1 failing one (a missing required param), an unknown
    // action (not counted: clients choose those names).
    for _ in 0..3 {
        reqwest::get(hero.at("/api/randomNumber")).await.unwrap();
    }
    reqwest::get(hero.at("/api/cacheTest")).await.unwrap();
    reqwest::get(hero.at("/api/noSuchAction")).await.unwrap();
    // A Bayeux session with one delivery waiting in its mailbox.
    let handshake = faye(
        &hero,
        json!([{"channel": "/meta/handshake", "version": "1.0",
                "supportedConnectionTypes": ["long-polling"]}]),
    )
    .await;
    let client_id = handshake[0]["clientId"].as_str().unwrap().to_owned();
    let subscribed = faye(
        &hero,
        json!([{"channel": "/meta/subscribe", "clientId": client_id, "subscription": "/m"}]),
    )
    .await;
    assert_eq!(subscribed[0]["successful"], true, "{subscribed}");
    let published = faye(&hero, json!([{"channel": "/m", "data": {"n": 1}}])).await;
    assert_eq!(published[0]["successful"], true, "{published}");

    let after = scrape(&hero).await;
    // Every family (a labelled one is listed once it has a series; the plugin call
    // histogram is checked with a real plugin in tests/dynamic_plugins.rs).
    for (family, kind) in [
        ("hero_action_calls_total", "counter"),
        ("hero_action_duration_seconds", "histogram"),
        ("hero_plugin_events_total", "counter"),
        ("hero_bayeux_slow_consumer_evictions_total", "counter"),
        ("hero_bayeux_sessions", "gauge"),
        ("hero_bayeux_queued_deliveries", "gauge"),
        ("hero_connections", "gauge"),
        ("hero_chat_rooms", "gauge"),
        ("hero_cluster_nodes", "gauge"),
        ("hero_redis_errors_total", "counter"),
        ("hero_actions", "gauge"),
        ("hero_plugin_files", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(after.kind(family), kind, "{family}");
    }
    let ok = r#"hero_action_calls_total{action="randomNumber",outcome="ok",transport="web"}"#;
    assert_eq!(after.value(ok), 3.0);
    let failed = r#"hero_action_calls_total{action="cacheTest",outcome="error",transport="web"}"#;
    assert_eq!(after.value(failed), 1.0);
    assert!(
        !after.samples.keys().any(|k| k.contains("noSuchAction")),
        "unknown actions make no series"
    );
    let count = r#"hero_action_duration_seconds_count{action="randomNumber",transport="web"}"#;
    assert_eq!(after.value(count), 3.0);
    let inf =
        r#"hero_action_duration_seconds_bucket{action="randomNumber",transport="web",le="+Inf"}"#;
    assert_eq!(after.value(inf), 3.0);
    assert_eq!(after.value("hero_bayeux_sessions"), 1.0);
    assert_eq!(after.value("hero_bayeux_queued_deliveries"), 1.0);
    assert!(after.value("process_cpu_seconds_total") >= before.value("process_cpu_seconds_total"));
}

#[tokio::test]
async fn metrics_can_be_switched_off() {
    let hero = Hero::start(&["--metrics", "false"]);
    let res = reqwest::get(hero.at("/metrics")).await.unwrap();
    assert_eq!(res.status(), 404);
}
