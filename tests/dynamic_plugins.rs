//! Black-box tests of dynamic plugins: real cdylib builds of the example and of a test
//! fixture, loaded by the real `hero` binary from a temporary plugin directory.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Hero, Options, repo_root};

/// The plugin libraries the tests load, each built once per test binary.
struct Libs {
    example: PathBuf,
    gen1: PathBuf,
    gen2: PathBuf,
    wrong_abi: PathBuf,
}

/// Builds `package` with `features` into a separate target dir (the outer cargo holds
/// the build lock of the normal one) and stashes the library as `<stash>.so`.
fn build(package: &str, lib: &str, features: &str, stash: &str) -> PathBuf {
    let root = repo_root();
    let target = root.join("target/plugin-tests");
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--lib", "-p", package]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {package} {features} failed");
    let out = target.join("stash");
    std::fs::create_dir_all(&out).unwrap();
    let dest = out.join(format!("{stash}.so"));
    std::fs::copy(target.join("debug").join(format!("lib{lib}.so")), &dest).unwrap();
    dest
}

fn libs() -> &'static Libs {
    static LIBS: OnceLock<Libs> = OnceLock::new();
    LIBS.get_or_init(|| Libs {
        example: build("dynamic-plugin", "dynamic_plugin", "", "example"),
        gen1: build("hero-test-plugin", "hero_test_plugin", "", "gen1"),
        gen2: build("hero-test-plugin", "hero_test_plugin", "gen2", "gen2"),
        wrong_abi: build(
            "hero-test-plugin",
            "hero_test_plugin",
            "wrong-abi",
            "wrong_abi",
        ),
    })
}

const WAIT: Duration = Duration::from_secs(15);

fn plugin_dir(files: &[(&Path, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in files {
        std::fs::copy(from, dir.path().join(name)).unwrap();
    }
    dir
}

fn start(dir: &Path, extra: &[&str]) -> Hero {
    let hero = Hero::start_with(
        Options::default()
            .args(["--plugins", dir.to_str().unwrap()])
            .args(extra.iter().copied()),
    );
    // Plugins are loaded before the first request is served; the log line says so.
    hero.wait_for_log("loading dynamic plugins", WAIT)
        .expect("loader ran");
    hero
}

/// A minimal HTTP/1.1 client over one keep-alive connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(hero: &Hero) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", hero.port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    fn get(&mut self, path: &str) -> Value {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n");
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "connection closed"
            );
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

fn get(hero: &Hero, path: &str) -> Value {
    Conn::open(hero).get(path)
}

/// Polls `path` until `done` holds, or fails after `WAIT`.
fn poll(hero: &Hero, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let body = get(hero, path);
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "timed out polling {path}; last answer {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fields(body: &Value, names: &[&str]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| ((*n).to_owned(), body[*n].clone()))
            .collect(),
    )
}

#[test]
fn dynamic_build_answers_like_the_static_build() {
    let libs = libs();
    // The static build: the same crate linked into this test binary, called through the
    // host's own processor (inventory registers it; the reference keeps it linked).
    std::hint::black_box(dynamic_plugin::Greet);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let static_answers: Vec<Value> = runtime.block_on(async {
        let app = hero::App::new(hero::Config::default()).unwrap();
        assert!(matches!(
            app.registry().lookup("greet", None).map(|r| r.origin),
            Some(hero::actions::Origin::Static)
        ));
        let mut answers = Vec::new();
        for params in [
            json!({"action": "greet", "name": "Ada"}),
            json!({"action": "greet", "name": "Ada"}),
            json!({"action": "greet", "name": ""}),
            json!({"action": "greet", "name": "x".repeat(65)}),
        ] {
            let Value::Object(params) = params else {
                unreachable!()
            };
            let outcome = app
                .processor
                .process(hero::actions::ActionRequest {
                    params,
                    connection: Default::default(),
                })
                .await;
            answers.push(match outcome.result {
                Ok(v) => fields(&v, &["greeting", "count"]),
                Err(e) => json!({ "error": e.client_message() }),
            });
        }
        answers
    });

    let dir = plugin_dir(&[(&libs.example, "libdynamic_plugin.so")]);
    let hero = start(dir.path(), &[]);
    hero.wait_for_log("loaded plugin dynamic-plugin 0.1.0", WAIT)
        .expect("example loaded");
    let long = "x".repeat(65);
    let dynamic_answers: Vec<Value> = [
        "/api/greet?name=Ada",
        "/api/greet?name=Ada",
        "/api/greet?name=",
        &format!("/api/greet?name={long}"),
    ]
    .iter()
    .map(|p| {
        let body = get(&hero, p);
        if body.get("error").is_some() {
            json!({ "error": body["error"] })
        } else {
            fields(&body, &["greeting", "count"])
        }
    })
    .collect();
    assert_eq!(dynamic_answers, static_answers);
    assert_eq!(
        dynamic_answers[1],
        json!({"greeting": "Hello, Ada!", "count": 2})
    );
    assert_eq!(
        dynamic_answers[2],
        json!({"greeting": "Hello, world!", "count": 1})
    );
    assert_eq!(
        dynamic_answers[3]["error"],
        "Error: name must be a string of 1 to 64 characters"
    );
    // The plugin's tracing events reach the host's log.
    hero.wait_for_log("greeted name=Ada count=2", WAIT)
        .expect("plugin log forwarded");
    // status lists the loaded plugin.
    let status = get(&hero, "/api/status");
    let loaded = &status["plugins"]["loaded"][0];
    assert_eq!(loaded["name"], "dynamic-plugin");
    assert_eq!(loaded["actions"], json!(["greet@1"]));
}

#[test]
fn replaced_file_is_served_while_an_old_slow_call_finishes_on_the_old_code() {
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let hero = start(dir.path(), &[]);
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("gen1 loaded");
    let mut keep_alive = Conn::open(&hero);
    assert_eq!(keep_alive.get("/api/generation")["generation"], 1);

    let port = hero.port;
    let slow = std::thread::spawn(move || {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
        .get("/api/slowGeneration?ms=2500")
    });
    hero.wait_for_log("slow call started", WAIT)
        .expect("slow call in flight");

    let swapped = Instant::now();
    std::fs::copy(&libs.gen2, dir.path().join("libtest.so")).unwrap();
    hero.wait_for_log("reloaded plugin hero-test-plugin", WAIT)
        .expect("gen2 reloaded");
    let body = poll(&hero, "/api/generation", |b| b["generation"] == 2);
    assert_eq!(body["generation"], 2);
    assert!(
        swapped.elapsed() < Duration::from_secs(3),
        "reload took {:?}",
        swapped.elapsed()
    );
    // The keep-alive connection opened before the swap still works, on the new code.
    assert_eq!(keep_alive.get("/api/generation")["generation"], 2);

    let old = slow.join().unwrap();
    assert_eq!(
        old["generation"], 1,
        "the call started before the swap ran the old code: {old}"
    );
    assert_eq!(old["slept"], 2500);
}

#[test]
fn a_broken_replacement_keeps_the_old_version_and_deleting_removes_it() {
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let hero = start(dir.path(), &[]);
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("loaded");
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);

    std::fs::write(dir.path().join("libtest.so"), b"\x7fELF but not really").unwrap();
    let line = hero
        .wait_for_log("the version loaded before keeps serving", WAIT)
        .expect("broken replacement refused");
    assert!(line.contains("libtest.so: not a shared library"), "{line}");
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);

    std::fs::remove_file(dir.path().join("libtest.so")).unwrap();
    hero.wait_for_log("plugin file removed", WAIT)
        .expect("removal logged");
    let body = poll(&hero, "/api/generation", |b| b.get("error").is_some());
    assert_eq!(
        body["error"],
        "Error: generation is not a known action or that is not a valid apiVersion."
    );
    assert_eq!(get(&hero, "/api/status")["plugins"]["loaded"], json!([]));
}

#[test]
fn broken_libraries_are_refused_and_the_host_keeps_serving() {
    let libs = libs();
    let good = std::fs::read(&libs.example).unwrap();
    let dir = plugin_dir(&[
        (&libs.example, "libgood.so"),
        (&libs.wrong_abi, "libwrongabi.so"),
        (&libs.gen1, "libtest.so"),
        // The same actions again, from another file: a clash.
        (&libs.gen1, "libtest_again.so"),
    ]);
    std::fs::write(dir.path().join("libtruncated.so"), &good[..good.len() / 3]).unwrap();
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("random.so"), noise).unwrap();
    std::fs::write(
        dir.path().join("notes.txt"),
        "not a plugin, not even looked at",
    )
    .unwrap();
    // A real shared library without an entry symbol: a proc-macro the build produced.
    let proc_macro = std::fs::read_dir(repo_root().join("target/plugin-tests/debug/deps"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libserde_derive-") && name.ends_with(".so")
        })
        .expect("a proc-macro library in the plugin build");
    std::fs::copy(proc_macro, dir.path().join("libserde_derive.so")).unwrap();

    let hero = start(dir.path(), &[]);
    let refused = |file: &str, reason: &str| {
        let line = hero
            .wait_for_log(
                &format!("refused plugin {}", dir.path().join(file).display()),
                WAIT,
            )
            .unwrap_or_else(|| panic!("no refusal of {file}:\n{}", hero.logs().join("\n")));
        assert!(line.contains(reason), "{line}");
    };
    refused(
        "libwrongabi.so",
        "ABI version 57005, this host speaks ABI version 1",
    );
    refused("libtruncated.so", "not a shared library");
    refused("random.so", "not a shared library");
    refused("libtest_again.so", "action clash: action ping v1");
    refused(
        "libserde_derive.so",
        "missing entry symbol hero_plugin_<crate_name>",
    );
    assert!(!hero.logs().iter().any(|l| l.contains("notes.txt")));

    // Still serving: the good plugin, the first copy of the test plugin, static actions.
    assert_eq!(get(&hero, "/api/greet?name=Bo")["greeting"], "Hello, Bo!");
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);
    assert!(get(&hero, "/api/randomNumber")["randomNumber"].is_number());
    let status = get(&hero, "/api/status");
    assert_eq!(
        status["plugins"]["refused"].as_array().unwrap().len(),
        5,
        "{status}"
    );

    // `hero plugins` tells the same story without a running host.
    let out = Command::new(support::HERO_BIN)
        .args(["plugins", "--plugins", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("libgood.so: dynamic-plugin 0.1.0 (ABI 1"),
        "{text}"
    );
    assert!(text.contains("greet@1"), "{text}");
    assert!(
        text.contains(
            "libwrongabi.so: refused: symbol hero_plugin_hero_test_plugin: ABI version 57005"
        ),
        "{text}"
    );
    assert!(
        text.contains("random.so: refused: not a shared library"),
        "{text}"
    );
}

#[test]
fn panics_and_garbage_service_calls_get_clean_errors() {
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let hero = start(dir.path(), &[]);
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("loaded");

    let body = get(&hero, "/api/panicky");
    assert_eq!(
        body["error"],
        "Error: The server experienced an internal error"
    );
    hero.wait_for_log("the panicky action panicked on purpose", WAIT)
        .expect("panic logged");

    let body = get(&hero, "/api/garbageService");
    let reply = body["reply"].as_str().unwrap();
    assert!(reply.contains("malformed host service request"), "{body}");

    // The same library keeps working, host services included.
    assert_eq!(get(&hero, "/api/cacheCount")["count"], 1);
    assert_eq!(get(&hero, "/api/cacheCount")["count"], 2);
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);
}

#[test]
fn sighup_and_hero_reload_pick_up_changes_when_polling_is_off() {
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let hero = start(dir.path(), &["--plugin-reload-ms", "0"]);
    hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
        .expect("loaded");
    std::fs::copy(&libs.gen2, dir.path().join("libtest.so")).unwrap();
    // Not watched: still the old code.
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);

    hero.signal("HUP");
    hero.wait_for_log("reloaded plugin hero-test-plugin", WAIT)
        .expect("SIGHUP reload");
    assert_eq!(get(&hero, "/api/generation")["generation"], 2);

    std::fs::copy(&libs.gen1, dir.path().join("libtest.so")).unwrap();
    let out = Command::new(support::HERO_BIN)
        .args(["reload", "--pid", &hero.pid().to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    poll(&hero, "/api/generation", |b| b["generation"] == 1);
}

#[test]
fn a_dynamic_action_clashing_with_a_static_one_is_refused() {
    let libs = libs();
    std::hint::black_box(dynamic_plugin::Greet);
    let dir = plugin_dir(&[(&libs.example, "libdynamic_plugin.so")]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = hero::Config {
            plugins: dir.path().to_path_buf(),
            ..hero::Config::default()
        };
        let app = hero::App::new(config).unwrap();
        hero::plugins::start(&app);
        let status = app.status().await;
        let refused = &status["plugins"]["refused"][0];
        let reason = refused["reason"].as_str().unwrap();
        assert!(reason.contains("action greet v1 from"), "{reason}");
        assert!(
            reason.contains("clashes with the one from static"),
            "{reason}"
        );
        assert_eq!(
            app.registry().lookup("greet", None).map(|r| r.origin),
            Some(hero::actions::Origin::Static)
        );
    });
}

#[test]
fn hero_new_plugin_creates_a_crate_that_builds_and_loads() {
    // Built after the others, so the shared target dir holds plugin-api's dependencies.
    libs();
    let parent = tempfile::tempdir().unwrap();
    let out = Command::new(support::HERO_BIN)
        .args([
            "new",
            "plugin",
            "hello-plug",
            "--dir",
            parent.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = parent.path().join("hello-plug");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"crate-type = ["cdylib", "rlib"]"#),
        "{manifest}"
    );
    let target = repo_root().join("target/plugin-tests");
    let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--offline", "--lib"])
        .status()
        .unwrap();
    assert!(status.success(), "the scaffolded plugin does not build");
    let dir = plugin_dir(&[(&target.join("debug/libhello_plug.so"), "libhello_plug.so")]);
    let hero = start(dir.path(), &[]);
    hero.wait_for_log("loaded plugin hello-plug 0.1.0", WAIT)
        .expect("scaffolded plugin loaded");
    assert_eq!(get(&hero, "/api/greet?name=New")["greeting"], "Hello, New!");
}
