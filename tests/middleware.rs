//! Black-box tests of middleware over HTTP, through the real binaries, for the two
//! builds of one source (`crates/test-actions/src/middleware.rs`): linked statically
//! into `hero-testbed`, and compiled into the dynamic fixture `tests/fixtures/test-plugin`
//! that the plain `hero` loads from its plugin directory. Each check runs against both.
//! The websocket side (actions, connection hooks, chat) is `tests/js/middleware.test.mjs`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::{Hero, Options, WAIT, testbed};

/// Builds the fixture as a `cdylib` (into the plugin tests' own target dir, as
/// `tests/dynamic_plugins.rs` does) and stashes it under a name of this test alone.
fn fixture() -> &'static PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        support::build_plugin(
            "hero-test-plugin",
            "hero_test_plugin",
            "",
            &[],
            "middleware",
        )
    })
}

/// `hero` with the fixture in its plugin directory, once it is loaded.
fn dynamic() -> (Hero, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(), dir.path().join("libmw.so")).unwrap();
    let hero =
        Hero::start_with(Options::default().args(["--plugins", dir.path().to_str().unwrap()]));
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("fixture loaded");
    (hero, dir)
}

async fn get(hero: &Hero, path: &str) -> Value {
    let text = reqwest::get(hero.at(path))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Global and per-action middleware in priority order, param and result rewrites.
async fn order_and_rewrites(hero: &Hero) {
    let body = get(hero, "/api/mwEcho?word=hi").await;
    assert!(body.get("error").is_none(), "{body}");
    // mwLocal (5, named by the action) before the globals mwTrace (10), mwSecond (20);
    // mwGuard (1) traces nothing.
    let order = json!(["mwLocal", "mwTrace", "mwSecond"]);
    assert_eq!(body["mwTrail"], order, "{body}");
    assert_eq!(body["postTrail"], order, "{body}");
    assert_eq!(body["word"], "HI", "a pre-processor rewrote the param");
    assert_eq!(
        body["secret"], "[redacted]",
        "a post-processor rewrote the result"
    );
    assert_eq!(body["mwSeen"], true, "an attribute set by a pre-processor");
    // A global middleware runs for an action that names none; a per-action one does not.
    let plain = get(hero, "/api/mwPlain").await;
    assert_eq!(plain["mwTrail"], json!(["mwTrace", "mwSecond"]), "{plain}");
    assert_eq!(
        plain["postTrail"],
        json!(["mwTrace", "mwSecond"]),
        "{plain}"
    );
    // Actions outside the middleware's names are untouched.
    let status = get(hero, "/api/status").await;
    assert!(status.get("postTrail").is_none(), "{status}");
}

/// A refusing pre-processor answers the call: no action, no post-processors.
async fn refusal(hero: &Hero) {
    let before = get(hero, "/api/mwCounts").await["mwEchoRuns"]
        .as_u64()
        .unwrap();
    let body = get(hero, "/api/mwEcho?deny=1").await;
    assert_eq!(body["error"], "Error: denied by mwGuard", "{body}");
    assert!(body.get("postTrail").is_none(), "{body}");
    let after = get(hero, "/api/mwCounts").await["mwEchoRuns"]
        .as_u64()
        .unwrap();
    assert_eq!(after, before, "the refused action did not run");
    // A post-processor sees the action's error and may turn it into a result.
    let failed = get(hero, "/api/mwFail").await;
    assert!(failed.get("error").is_none(), "{failed}");
    assert_eq!(failed["recovered"], "mwFail failed", "{failed}");
}

/// A panicking middleware is an internal error, and the host serves on.
async fn panic_is_an_error_reply(hero: &Hero) {
    let body = get(hero, "/api/mwBoomAction").await;
    assert_eq!(
        body["error"], "Error: The server experienced an internal error",
        "{body}"
    );
    assert!(body.get("reached").is_none());
    assert!(get(hero, "/api/status").await.get("error").is_none());
}

/// Each HTTP request is a connection: `create` once before its action (its attribute
/// is seen), `destroy` once after.
async fn web_connection_hooks(hero: &Hero) {
    let echo = get(hero, "/api/mwEcho").await;
    assert_eq!(echo["mwCreated"], true, "{echo}");
    let first = get(hero, "/api/mwCounts").await;
    let (c1, d1) = (
        first["mwCreated:web"].as_u64().unwrap(),
        first["mwDestroyed:web"].as_u64().unwrap(),
    );
    assert_eq!(
        c1,
        d1 + 1,
        "this request is created, not yet destroyed: {first}"
    );
    let second = get(hero, "/api/mwCounts").await;
    assert_eq!(second["mwCreated:web"], c1 + 1, "{second}");
    assert_eq!(second["mwDestroyed:web"], d1 + 1, "{second}");
}

async fn all(hero: &Hero) {
    order_and_rewrites(hero).await;
    refusal(hero).await;
    panic_is_an_error_reply(hero).await;
    web_connection_hooks(hero).await;
}

#[tokio::test]
async fn static_middleware_over_http() {
    let hero = Hero::start_with(testbed());
    all(&hero).await;
}

#[tokio::test]
async fn dynamic_middleware_over_http_behaves_like_the_static_build() {
    let (hero, _dir) = dynamic();
    all(&hero).await;
    let status = get(&hero, "/api/status").await;
    assert_eq!(status["plugins"]["refused"], json!([]), "{status}");
}

/// A static middleware of this test binary, with the name of one of the fixture's.
struct Guard;

impl plugin_api::ActionMiddleware for Guard {
    fn definition(&self) -> plugin_api::MiddlewareDefinition {
        plugin_api::MiddlewareDefinition::new("mwGuard")
    }
}

plugin_api::register_middleware!(action(Guard));

#[test]
fn a_dynamic_middleware_clashing_with_a_static_one_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture(), dir.path().join("libmw.so")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = hero::Config {
            plugins: dir.path().to_path_buf(),
            ..hero::Config::default()
        };
        let app = hero::App::new(config).unwrap();
        hero::plugins::start(&app);
        let status = app.status().await;
        let reason = status["plugins"]["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            reason.contains("middleware clash: action middleware mwGuard from")
                && reason.ends_with("clashes with the one from static"),
            "{reason}"
        );
        // Nothing of the file stays: neither its actions nor its other middleware.
        assert!(app.registry().lookup("mwEcho", None).is_none());
        let names: Vec<String> = app
            .middleware()
            .list()
            .into_iter()
            .map(|m| m.1.name)
            .collect();
        assert_eq!(names, ["mwGuard"]);
    });
}
