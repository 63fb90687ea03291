//! Black-box tests of the configuration: defaults < file < `HERO_*` env < flags, and
//! start-up errors that name the key.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{Hero, Options};

async fn server_name(hero: &Hero) -> String {
    let body: Value = reqwest::get(hero.at("/api/randomNumber"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["serverInformation"]["serverName"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("hero.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn file_then_env_then_flag_each_override_the_previous() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        &dir,
        "server_name = \"from-file\"\napi_version = \"9.9.9\"\n",
    );

    let hero = Hero::start(&[]);
    assert_eq!(server_name(&hero).await, "actionhero API", "the default");

    let hero = Hero::start_with(Options::default().args(["--config", &file]));
    assert_eq!(server_name(&hero).await, "from-file");

    let hero = Hero::start_with(Options::default().env("HERO_CONFIG", &file));
    assert_eq!(
        server_name(&hero).await,
        "from-file",
        "HERO_CONFIG names the file"
    );

    let hero = Hero::start_with(
        Options::default()
            .args(["--config", &file])
            .env("HERO_SERVER_NAME", "from-env"),
    );
    assert_eq!(server_name(&hero).await, "from-env");

    let hero = Hero::start_with(
        Options::default()
            .args(["--config", &file, "--server-name", "from-flag"])
            .env("HERO_SERVER_NAME", "from-env"),
    );
    assert_eq!(server_name(&hero).await, "from-flag");
    let body: Value = reqwest::get(hero.at("/api/randomNumber"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["serverInformation"]["apiVersion"], "9.9.9",
        "untouched keys keep the file's value"
    );
}

#[tokio::test]
async fn booleans_and_numbers_come_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(&dir, "return_error_codes = true\n");
    let status = |hero: &Hero| {
        let url = hero.at("/api/nope");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    let hero = Hero::start_with(Options::default().args(["--config", &file]));
    assert_eq!(status(&hero).await, 404);
    let hero = Hero::start_with(
        Options::default()
            .args(["--config", &file])
            .env("HERO_RETURN_ERROR_CODES", "false"),
    );
    assert_eq!(status(&hero).await, 200);
    let hero = Hero::start_with(
        Options::default()
            .env("HERO_RETURN_ERROR_CODES", "false")
            .args(["--return-error-codes", "true"]),
    );
    assert_eq!(status(&hero).await, 404);

    let hero = Hero::start_with(Options::default().env("HERO_MAX_BODY_BYTES", "10"));
    let res = reqwest::Client::new()
        .post(hero.at("/api/randomNumber"))
        .body("a=0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[tokio::test]
async fn unrelated_hero_variables_are_not_settings() {
    // HERO_BIN is how the JavaScript harness names the binary; it must not stop start-up.
    let hero = Hero::start_with(
        Options::default()
            .env("HERO_BIN", "/somewhere/hero")
            .env("HERO_TESTBED_BIN", "/somewhere/hero-testbed"),
    );
    assert_eq!(server_name(&hero).await, "actionhero API");
    let logs = hero.logs().join("\n");
    assert!(
        !logs.contains("HERO_BIN"),
        "not a setting, nor like one: {logs}"
    );
    assert!(!logs.contains("HERO_TESTBED_BIN"), "{logs}");
}

#[tokio::test]
async fn hero_variables_that_look_like_misspelt_settings_are_warned_about() {
    let hero = Hero::start_with(
        Options::default()
            .env("HERO_PROT", "9")
            .env("HERO_PLUGIN_RELOAD", "0")
            .env("HERO_BIN", "/somewhere/hero"),
    );
    let warning = |var: &str| {
        hero.wait_for_log(&format!("{var} is not a setting"), support::WAIT)
            .unwrap_or_else(|| panic!("no warning about {var}:\n{}", hero.logs().join("\n")))
    };
    let line = warning("HERO_PROT");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("is ignored; did you mean HERO_PORT (`port`)?"),
        "{line}"
    );
    let line = warning("HERO_PLUGIN_RELOAD");
    assert!(
        line.contains("did you mean HERO_PLUGIN_RELOAD_MS (`plugin_reload_ms`)?"),
        "{line}"
    );
    assert!(!hero.logs().iter().any(|l| l.contains("HERO_BIN")));
    // Ignored: the server runs with the defaults.
    assert_eq!(server_name(&hero).await, "actionhero API");
}

#[test]
fn a_bad_config_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = config_file(&dir, "prot = 8080\n");
    let cases: Vec<(Options, &str)> = vec![
        (Options::default().args(["--config", &unknown]), "`prot`"),
        (
            Options::default().args(["--config", "/no/such/hero.toml"]),
            "/no/such/hero.toml",
        ),
        (
            Options::default().env("HERO_CONFIG", "/no/such/env.toml"),
            "/no/such/env.toml",
        ),
        (Options::default().env("HERO_PORT", "eighty"), "port"),
        (
            Options::default().env("HERO_RETURN_ERROR_CODES", "maybe"),
            "return_error_codes",
        ),
        // Under a section every variable is meant as a setting: a typo stops start-up.
        (
            Options::default().env("HERO_CLUSTER__HEARTBEAT", "500"),
            "HERO_CLUSTER__HEARTBEAT is not a setting: [cluster] has no key `heartbeat`; \
             did you mean HERO_CLUSTER__HEARTBEAT_MS (`heartbeat_ms` of [cluster])?",
        ),
        (
            Options::default().args(["--config", &unknown]),
            "did you mean `port`?",
        ),
        (Options::default().args(["--port", "eighty"]), "--port"),
        (
            Options::default().args(["--log-format", "xml"]),
            "--log-format",
        ),
    ];
    for (opts, needle) in cases {
        let (status, output) = Hero::run_to_exit(opts.clone());
        assert!(!status.success(), "{:?} {:?} started", opts.args, opts.env);
        assert!(output.contains(needle), "{needle} not named in: {output}");
    }
    let bad_value = dir.path().join("bad.toml");
    std::fs::write(&bad_value, "port = \"eighty\"\n").unwrap();
    let (status, output) =
        Hero::run_to_exit(Options::default().args(["--config", bad_value.to_str().unwrap()]));
    assert!(!status.success());
    assert!(output.contains("key `port`"), "{output}");
    assert!(output.contains("bad.toml"), "the file is named: {output}");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "port = \n").unwrap();
    let (status, output) =
        Hero::run_to_exit(Options::default().args(["--config", broken.to_str().unwrap()]));
    assert!(!status.success());
    assert!(output.contains("broken.toml"), "{output}");
}

#[test]
fn port_zero_logs_the_port_it_got_and_json_logs_are_json() {
    let hero = Hero::start(&[]);
    let line = hero
        .wait_for_log("listening on http://", support::WAIT)
        .unwrap();
    assert!(line.contains(&format!("127.0.0.1:{}", hero.port)), "{line}");
    assert_ne!(hero.port, 0);

    let hero = Hero::start(&["--log-format", "json"]);
    let line = hero
        .wait_for_log("listening on http://", support::WAIT)
        .unwrap();
    let record: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(record["level"], "INFO");
    assert_eq!(
        record["fields"]["message"],
        format!("listening on http://127.0.0.1:{}", hero.port)
    );
}

#[test]
fn an_unreachable_redis_stops_start_up_with_one_line_naming_it() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let (status, output) = Hero::run_to_exit(Options::default().env("HERO_REDIS", &url));
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains(&format!("cannot reach redis at {url}")),
        "{output}"
    );
    assert!(
        !output.contains("listening on"),
        "never says it listens: {output}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Asked to wait, it retries for that long, then gives up the same way.
    let started = std::time::Instant::now();
    let (status, output) = Hero::run_to_exit(
        Options::default()
            .args(["--redis", &url])
            .env("HERO_CLUSTER__CONNECT_WAIT_MS", "1500"),
    );
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("redis unreachable, retrying"), "{output}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(1000));
}
