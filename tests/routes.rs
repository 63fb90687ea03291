//! Black-box tests of HTTP routes (actionhero's `routes.js`) through the real binary,
//! for both builds of one source: `crates/test-actions/src/routes.rs` linked into
//! `hero-testbed` (static) and compiled into the fixture `tests/fixtures/test-plugin`,
//! loaded by `hero` as a cdylib (dynamic). Both builds get the same config routes, and
//! the same checks run against each; clashes, bad routes and hot reload have their own.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use support::{Hero, Options, WAIT, testbed};

/// The config routes both builds run with.
const CONFIG: &str = r#"
[[routes.get]]
path = "/cfg/num/:userId(^\\d+$)"
action = "rtUser"

[[routes.get]]
path = "/cfg/num/:name"
action = "rtPlain"

[[routes.get]]
path = "/cfg/order/:name"
action = "rtPlain"

[[routes.get]]
path = "/cfg/order/:userId(^\\d+$)"
action = "rtUser"

[[routes.get]]
path = "/users/me"
action = "rtPlain"

[[routes.get]]
path = "/cfg/v1"
action = "rtVersioned"
apiVersion = 1

[[routes.get]]
path = "/cfg/latest"
action = "rtVersioned"

[[routes.post]]
path = "/cfg/users/:userId"
action = "rtUser"

[[routes.all]]
path = "/cfg/every/:name"
action = "rtPlain"

[[routes.get]]
path = "/:name(^rt)"
action = "rtPlain"
"#;

/// Builds the fixture with `features` into a separate target dir (the outer cargo
/// holds the build lock of the normal one) and stashes the library as `<stash>.so`.
fn build(features: &str, stash: &str) -> PathBuf {
    support::build_plugin("hero-test-plugin", "hero_test_plugin", features, &[], stash)
}

/// The fixture's two generations, built once per test binary.
fn libs() -> &'static (PathBuf, PathBuf) {
    static LIBS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    LIBS.get_or_init(|| (build("", "routes-gen1"), build("gen2", "routes-gen2")))
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("hero.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `hero-testbed` (the test actions linked in) with `config`.
fn start_static(dir: &Path, config: &str) -> Hero {
    Hero::start_with(testbed().args(["--config", &write_config(dir, config)]))
}

/// `hero` with `config` and the fixture (gen1) in a fresh plugin directory `dir/plugins`.
fn start_dynamic(dir: &Path, config: &str) -> (Hero, PathBuf) {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let lib = plugins.join("libtest.so");
    std::fs::copy(&libs().0, &lib).unwrap();
    let hero = Hero::start_with(Options::default().args([
        "--config",
        &write_config(dir, config),
        "--plugins",
        plugins.to_str().unwrap(),
        "--plugin-reload-ms",
        "100",
    ]));
    (hero, lib)
}

async fn call(hero: &Hero, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new().request(method, hero.at(path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let text = req.send().await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn get(hero: &Hero, path: &str) -> Value {
    call(hero, Method::GET, path, None).await
}

/// Which action answered, and with which params.
fn routed(body: &Value) -> (&str, &Value) {
    let name = body["routed"]
        .as_str()
        .unwrap_or_else(|| panic!("no action answered: {body}"));
    (name, &body["params"])
}

/// Polls `/api/` until its routes satisfy `done`; returns them.
async fn routes_until(hero: &Hero, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let routes = get(hero, "/api/").await["routes"]
            .as_array()
            .cloned()
            .unwrap();
        if done(&routes) {
            return routes;
        }
        assert!(
            Instant::now() < deadline,
            "routes never settled: {routes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has_route(routes: &[Value], method: &str, path: &str) -> bool {
    routes
        .iter()
        .any(|r| r["method"] == method && r["path"] == path)
}

/// Every route form, against a host serving the `rt*` actions from `source`.
async fn check_route_forms(hero: &Hero, source: &str) {
    // Plain path; `:param`; a regex match, and its mismatch falling through to the next
    // route of the same action (declaration order).
    assert_eq!(routed(&get(hero, "/api/things").await).0, "rtList");
    let body = get(hero, "/api/users/42").await;
    assert_eq!(routed(&body), ("rtUser", &json!({"userId": "42"})));
    assert_eq!(body["version"], 1);
    let body = get(hero, "/api/users/bob").await;
    assert_eq!(routed(&body), ("rtUser", &json!({"userName": "bob"})));
    // Path params are decoded once (`%2520` stays `%20`); literals ignore case.
    let body = get(hero, "/api/USERS/J%C3%BCrgen%2520").await;
    assert_eq!(routed(&body).1, &json!({"userName": "Jürgen%20"}));
    // A regex mismatch with no other route is no match: an unknown action.
    let body = get(hero, "/api/items/abc").await;
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("items/abc is not a known action"), "{body}");
    assert_eq!(
        routed(&get(hero, "/api/items/7").await).1,
        &json!({"id": "7"})
    );

    // Each method, and `all`.
    let id = Some(json!({}));
    for (method, path, action) in [
        (Method::POST, "/api/things", "rtCreate"),
        (Method::PUT, "/api/things/5", "rtReplace"),
        (Method::PATCH, "/api/things/5", "rtUpdate"),
        (Method::DELETE, "/api/things/5", "rtDelete"),
    ] {
        let body = call(hero, method.clone(), path, id.clone()).await;
        assert_eq!(routed(&body).0, action, "{method} {path}: {body}");
    }
    let body = call(hero, Method::POST, "/api/things/5", None).await;
    assert!(body["error"].as_str().is_some(), "no POST route: {body}");
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let body = call(hero, method.clone(), "/api/anything/q", None).await;
        assert_eq!(routed(&body), ("rtAny", &json!({"x": "q"})), "{method}");
    }

    // Path params win over query and body params of the same name.
    let body = get(hero, "/api/users/42?userId=7&name=kept").await;
    assert_eq!(routed(&body).1, &json!({"userId": "42", "name": "kept"}));
    let body = call(
        hero,
        Method::PUT,
        "/api/things/5",
        Some(json!({"id": "9", "name": "n"})),
    )
    .await;
    assert_eq!(routed(&body).1, &json!({"id": "5", "name": "n"}));

    // An explicit action still works, and wins over the routes.
    assert_eq!(routed(&get(hero, "/api/rtList").await).0, "rtList");
    assert_eq!(routed(&get(hero, "/api/?action=rtList").await).0, "rtList");
    let body = get(hero, "/api/users/42?action=rtPlain").await;
    assert_eq!(routed(&body), ("rtPlain", &json!({})));

    // Config routes: in declaration order, before the actions' routes.
    let body = get(hero, "/api/cfg/num/7").await;
    assert_eq!(routed(&body), ("rtUser", &json!({"userId": "7"})));
    let body = get(hero, "/api/cfg/num/x").await;
    assert_eq!(routed(&body), ("rtPlain", &json!({"name": "x"})));
    let body = get(hero, "/api/cfg/order/7").await;
    assert_eq!(routed(&body), ("rtPlain", &json!({"name": "7"})));
    assert_eq!(routed(&get(hero, "/api/users/me").await).0, "rtPlain");
    let body = call(hero, Method::POST, "/api/cfg/users/3", None).await;
    assert_eq!(routed(&body), ("rtUser", &json!({"userId": "3"})));
    let body = call(hero, Method::PATCH, "/api/cfg/every/z", None).await;
    assert_eq!(routed(&body), ("rtPlain", &json!({"name": "z"})));
    // A config route matching action names takes unknown ones, not known ones.
    let body = get(hero, "/api/rtNope").await;
    assert_eq!(routed(&body), ("rtPlain", &json!({"name": "rtNope"})));
    assert_eq!(routed(&get(hero, "/api/rtItem").await).0, "rtItem");
    // `apiVersion`: the route's, else the newest; the request's own wins.
    assert_eq!(get(hero, "/api/cfg/v1").await["version"], 1);
    assert_eq!(get(hero, "/api/cfg/latest").await["version"], 2);
    assert_eq!(get(hero, "/api/cfg/v1?apiVersion=2").await["version"], 2);

    // The documentation lists every route, config first, in the order they are tried.
    let docs = get(hero, "/api/").await;
    assert!(docs["documentation"]["rtUser"].is_object(), "{docs}");
    let routes = docs["routes"].as_array().unwrap();
    assert_eq!(
        routes[0],
        json!({"method": "get", "path": "/cfg/num/:userId(^\\d+$)", "action": "rtUser",
               "apiVersion": null, "source": "config"})
    );
    assert!(routes.contains(&json!({"method": "get", "path": "/cfg/v1",
        "action": "rtVersioned", "apiVersion": 1, "source": "config"})));
    assert!(
        routes.contains(&json!({"method": "all", "path": "/cfg/every/:name",
        "action": "rtPlain", "apiVersion": null, "source": "config"}))
    );
    let declared = |path: &str| {
        routes
            .iter()
            .position(|r| r["path"] == path && r["source"] == source)
            .unwrap_or_else(|| panic!("{path} from {source} not in {routes:?}"))
    };
    let (by_id, by_name) = (
        declared("/users/:userId(^\\d+$)"),
        declared("/users/:userName"),
    );
    assert!(by_id < by_name);
    assert_eq!(
        routes[by_id],
        json!({"method": "get", "path": "/users/:userId(^\\d+$)", "action": "rtUser",
               "apiVersion": 1, "source": source})
    );
    for path in [
        "/things",
        "/things/:id",
        "/anything/:x",
        "/items/:id(^\\d+$)",
    ] {
        declared(path);
    }
    let config_count = routes.iter().filter(|r| r["source"] == "config").count();
    assert_eq!(config_count, 10);
    assert!(
        routes[..config_count]
            .iter()
            .all(|r| r["source"] == "config")
    );
}

#[tokio::test]
async fn every_route_form_with_the_static_build() {
    let dir = tempfile::tempdir().unwrap();
    let hero = start_static(dir.path(), CONFIG);
    check_route_forms(&hero, "static").await;
}

#[tokio::test]
async fn every_route_form_with_the_dynamic_build() {
    let dir = tempfile::tempdir().unwrap();
    let (hero, lib) = start_dynamic(dir.path(), CONFIG);
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("fixture loaded");
    check_route_forms(&hero, lib.to_str().unwrap()).await;
}

/// A config route with the shape of `rtUser`'s first route.
const CLASHING: &str = r#"
[[routes.get]]
path = "/users/:id(^\\d+$)"
action = "cfgShow"
"#;

#[test]
fn a_config_route_clashing_with_a_static_one_stops_start_up_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), CLASHING);
    let (status, output) = Hero::run_to_exit(testbed().args([
        "--config",
        &config,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ]));
    assert!(!status.success(), "{output}");
    assert!(
        output.contains(
            "route GET /users/:id(^\\d+$) of cfgShow (config) clashes with \
             GET /users/:userId(^\\d+$) of rtUser (static)"
        ),
        "{output}"
    );
}

#[tokio::test]
async fn a_plugin_whose_route_clashes_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let (hero, lib) = start_dynamic(dir.path(), CLASHING);
    let line = hero
        .wait_for_log("refused plugin", WAIT)
        .expect("the fixture is refused");
    let expected = format!(
        "route GET /users/:userId(^\\d+$) of rtUser ({}) clashes with \
         GET /users/:id(^\\d+$) of cfgShow (config)",
        lib.display()
    );
    assert!(line.contains(&expected), "{line}");
    // Nothing of the file is served; the config route stays.
    let body = get(&hero, "/api/rtList").await;
    assert!(body["error"].as_str().is_some(), "{body}");
    let routes = get(&hero, "/api/").await["routes"].clone();
    assert_eq!(
        routes,
        json!([{"method": "get", "path": "/users/:id(^\\d+$)", "action": "cfgShow",
                "apiVersion": null, "source": "config"}])
    );
}

#[test]
fn a_malformed_config_route_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needles) in [
        (
            "[[routes.get]]\npath = \"/x/:id([)\"\naction = \"a\"\n",
            &["/x/:id([)", "invalid regex", "routes.get"][..],
        ),
        (
            "[[routes.put]]\npath = \"/a//b\"\naction = \"a\"\n",
            &["/a//b", "empty segment"][..],
        ),
        (
            "[[routes.gett]]\npath = \"/a\"\naction = \"a\"\n",
            &["routes.gett", "expected"][..],
        ),
        (
            "[[routes.get]]\npath = \"/a\"\naction = \"a\"\napiversion = 1\n",
            &["apiversion", "apiVersion"][..],
        ),
    ] {
        let config = write_config(dir.path(), text);
        let (status, output) = Hero::run_to_exit(Options::default().args(["--config", &config]));
        assert!(!status.success(), "{text} started: {output}");
        for needle in needles {
            assert!(output.contains(needle), "{needle} not in: {output}");
        }
    }
}

#[tokio::test]
async fn routes_of_a_dynamic_plugin_follow_its_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let (hero, lib) = start_dynamic(dir.path(), "");
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("gen1 loaded");
    assert_eq!(get(&hero, "/api/generation/one").await["generation"], 1);
    let routes = routes_until(&hero, |_| true).await;
    assert!(has_route(&routes, "get", "/generation/one"), "{routes:?}");
    assert!(!has_route(&routes, "get", "/generation/two"), "{routes:?}");

    std::fs::copy(&libs().1, &lib).unwrap();
    hero.wait_for_log("reloaded plugin hero-test-plugin", WAIT)
        .expect("gen2 loaded");
    let routes = routes_until(&hero, |r| has_route(r, "get", "/generation/two")).await;
    assert!(!has_route(&routes, "get", "/generation/one"), "{routes:?}");
    // The reloaded file keeps its routes' place and set: the shared ones are still there.
    assert!(has_route(&routes, "get", "/users/:userName"), "{routes:?}");
    assert_eq!(get(&hero, "/api/generation/two").await["generation"], 2);
    let body = get(&hero, "/api/generation/one").await;
    assert!(body["error"].as_str().is_some(), "{body}");

    std::fs::remove_file(&lib).unwrap();
    hero.wait_for_log("plugin file removed", WAIT)
        .expect("removal logged");
    let routes = routes_until(&hero, <[Value]>::is_empty).await;
    assert!(routes.is_empty());
    let body = get(&hero, "/api/users/42").await;
    assert!(body["error"].as_str().is_some(), "{body}");
}
