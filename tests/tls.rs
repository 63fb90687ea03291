//! HTTPS and WSS: the real binary serving a certificate this test makes (rcgen), checked
//! with curl, with the real npm faye client over `wss://` and `https://` long-polling,
//! and a bad key file refused at start-up by name.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Hero, Options};

/// A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a certificate can be made");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("writable");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("writable");
    (cert, key)
}

fn start_tls(cert: &Path, key: &Path) -> Hero {
    Hero::start_with(Options::default().args([
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
    ]))
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn api_public_and_faye_are_served_over_https_to_a_client_that_trusts_the_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let hero = start_tls(&cert, &key);
    assert!(hero.url.starts_with("https://"), "{}", hero.url);
    let cacert = cert.to_str().expect("utf-8 path");

    let (ok, body) = curl(&["--cacert", cacert, &hero.at("/api/status")]);
    assert!(ok, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).expect("JSON status");
    assert!(status["serverInformation"].is_object(), "{status}");

    let (ok, body) = curl(&["--cacert", cacert, &hero.at("/faye/client.js")]);
    assert!(
        ok && body.contains("Faye"),
        "client script over https: {body:.200}"
    );

    // Without the certificate trusted, curl refuses the server: it is really TLS.
    let (ok, body) = curl(&[&hero.at("/api/status")]);
    assert!(!ok, "an untrusted certificate was accepted: {body}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = hero.at("/api/status").replacen("https://", "http://", 1);
    let (_, body) = curl(&[&plain]);
    assert!(!body.contains("serverInformation"), "{body}");
}

#[test]
fn the_npm_faye_client_round_trips_over_wss_and_https_long_polling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let hero = start_tls(&cert, &key);
    let js = support::js_dir();
    let out = Command::new("node")
        .arg(js.join("tls/faye-over-tls.mjs"))
        .arg(hero.at("/faye"))
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .current_dir(&js)
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let types: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("JSON result");
    let used = |run: &str| -> Vec<String> {
        types[run]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    assert!(
        used("websocket").contains(&"websocket".to_owned()),
        "{types}"
    );
    assert_eq!(
        used("long-polling"),
        vec!["long-polling".to_owned()],
        "{types}"
    );
}

#[test]
fn a_bad_key_file_stops_start_up_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _) = certificate(dir.path());
    let bad = dir.path().join("broken-key.pem");
    std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nnot base64\n").expect("writable");
    let (status, out) = Hero::run_to_exit(Options::default().args([
        "--port",
        "0",
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        bad.to_str().expect("utf-8 path"),
    ]));
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("key file") && out.contains("broken-key.pem"),
        "{out}"
    );
    assert!(!out.contains("listening on"), "{out}");

    let missing = dir.path().join("nowhere.pem");
    let (status, out) = Hero::run_to_exit(
        Options::default()
            .env("HERO_TLS_CERT", missing.to_str().expect("utf-8 path"))
            .env("HERO_TLS_KEY", bad.to_str().expect("utf-8 path"))
            .args(["--port", "0"]),
    );
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("certificate file") && out.contains("nowhere.pem"),
        "{out}"
    );
}
