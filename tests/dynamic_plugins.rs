//! Black-box tests of dynamic plugins: real cdylib builds of the example and of a test
//! fixture, loaded by the real `hero` binary from a temporary plugin directory.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
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
    build_with(package, lib, features, &[], stash)
}

/// [`build`], with extra arguments for cargo (`--config` overrides).
fn build_with(package: &str, lib: &str, features: &str, extra: &[&str], stash: &str) -> PathBuf {
    support::build_plugin(package, lib, features, extra, stash)
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

/// Builds of the test plugin against other layouts of the boundary, each built once
/// per test binary, on first use (the `panic = "abort"` build recompiles its
/// dependencies: only the test that needs it pays for it).
fn abi_lib(which: &'static str) -> PathBuf {
    static V1: OnceLock<PathBuf> = OnceLock::new();
    static NEXT: OnceLock<PathBuf> = OnceLock::new();
    static ABORT: OnceLock<PathBuf> = OnceLock::new();
    let (lock, features, extra): (_, _, &[&str]) = match which {
        "abi-v1" => (&V1, "abi-v1", &[]),
        "abi-next" => (&NEXT, "abi-next", &[]),
        "panic-abort" => (&ABORT, "", &["--config", "profile.dev.panic=\"abort\""]),
        other => panic!("no such build: {other}"),
    };
    lock.get_or_init(|| {
        build_with(
            "hero-test-plugin",
            "hero_test_plugin",
            features,
            extra,
            which,
        )
    })
    .clone()
}

const WAIT: Duration = Duration::from_secs(15);

fn plugin_dir(files: &[(&Path, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in files {
        let to = dir.path().join(name);
        std::fs::copy(from, &to).unwrap();
        // Whatever the umask of the build: the host refuses group-writable files.
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
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
        "ABI version 57005, this host speaks ABI version 1; the plugin was built against \
         plugin-api 0.0.1-old, this host has plugin-api 0.1.0: rebuild it against \
         plugin-api 0.1.0 (`cargo build --release` in the plugin crate",
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
        text.contains("built against plugin-api 0.0.1-old, this host has plugin-api 0.1.0"),
        "{text}"
    );
    // Clashes too, as the host refused them: the second file with the same actions.
    assert!(
        text.contains("libtest.so: hero-test-plugin 0.1.0"),
        "{text}"
    );
    let clash = text
        .lines()
        .find(|l| l.contains("libtest_again.so"))
        .unwrap_or_else(|| panic!("libtest_again.so not listed: {text}"));
    assert!(
        clash.contains("libtest_again.so: refused: action clash: action ping v1 from"),
        "{clash}"
    );
    assert!(
        clash.contains(&format!(
            "clashes with the one from {}",
            dir.path().join("libtest.so").display()
        )),
        "{clash}"
    );
    assert!(
        text.contains("random.so: refused: not a shared library"),
        "{text}"
    );
}

#[test]
fn a_missing_plugin_directory_is_warned_about_at_start_up() {
    let hero = start(Path::new("/no/such/plugins"), &[]);
    let line = hero
        .wait_for_log("plugin directory /no/such/plugins does not exist", WAIT)
        .unwrap_or_else(|| panic!("no warning:\n{}", hero.logs().join("\n")));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains("set the directory with --plugins DIR, HERO_PLUGINS=DIR"),
        "{line}"
    );
    // A relative default is shown resolved, against the directory the host runs in.
    let cwd = tempfile::tempdir().unwrap();
    let hero = Hero::start_with(Options::default().cwd(cwd.path()));
    let resolved = cwd.path().join("plugins");
    let line = hero
        .wait_for_log("plugin directory plugins (", WAIT)
        .unwrap_or_else(|| panic!("no warning:\n{}", hero.logs().join("\n")));
    assert!(
        line.contains(&format!("({}) does not exist", resolved.display())),
        "{line}"
    );
    // `hero plugins` says the same of a missing directory.
    let out = Command::new(support::HERO_BIN)
        .args(["plugins", "--plugins", "/no/such/plugins"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("plugin directory /no/such/plugins does not exist"),
        "{text}"
    );
    // An existing directory is not warned about.
    let dir = tempfile::tempdir().unwrap();
    let hero = start(dir.path(), &[]);
    assert!(
        !hero.logs().iter().any(|l| l.contains("plugin directory")),
        "{:?}",
        hero.logs()
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
    // `hero plugins` (its listing, in this binary where `greet` is static) refuses it
    // with the host's words.
    let lines = hero::plugins::commands::listing(dir.path()).unwrap();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("libdynamic_plugin.so: refused: action clash: action greet v1 from"),
        "{lines:?}"
    );
    assert!(
        lines[0].ends_with("clashes with the one from static"),
        "{lines:?}"
    );
}

/// Runs `hero new plugin NAME --dir PARENT`.
fn hero_new_plugin(name: &str, parent: &Path) -> std::process::Output {
    Command::new(support::HERO_BIN)
        .args(["new", "plugin", name, "--dir", parent.to_str().unwrap()])
        .output()
        .unwrap()
}

/// Runs cargo in a scaffolded crate, on a target dir of its own that later runs reuse
/// (the outer cargo holds the lock of the normal one).
fn scaffold_cargo(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(option_env!("CARGO").unwrap_or("cargo"))
        .current_dir(root)
        .env("CARGO_TARGET_DIR", repo_root().join("target/scaffold-test"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn hero_new_plugin_scaffolds_the_readme_action_with_a_passing_test() {
    let parent = tempfile::tempdir().unwrap();
    let out = hero_new_plugin("hello", parent.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = parent.path().join("hello");
    let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap();

    // The README's action, verbatim, and the plugin-api path where the author sees it.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = &readme[readme.find("## Writing a first action").unwrap()..];
    let action = section.split("```rust\n").nth(1).unwrap();
    let action = &action[..action.find("```").unwrap()];
    assert!(
        read("src/lib.rs").contains(action),
        "{}",
        read("src/lib.rs")
    );
    let manifest = read("Cargo.toml");
    assert!(
        manifest.contains(r#"crate-type = ["cdylib", "rlib"]"#),
        "{manifest}"
    );
    assert_eq!(plugin_api_dependency(&root), plugin_api_dir());
    assert!(manifest.contains(r#"features = ["testing"]"#), "{manifest}");
    assert!(manifest.contains("--plugin-api PATH"), "{manifest}");
    assert!(root.join("Cargo.lock").is_file(), "no lock file");
    let crate_readme = read("README.md");
    for text in [
        "cargo build --release",
        "target/release/libhello.so",
        "cargo test",
    ] {
        assert!(crate_readme.contains(text), "{text}: {crate_readme}");
    }

    // `hero new action` adds a second action, with its own test, registered in lib.rs.
    let out = Command::new(support::HERO_BIN)
        .args(["new", "action", "showUser", "--crate"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read("src/show_user.rs").contains(r#"ActionDefinition::new("showUser")"#));
    assert!(
        read("src/lib.rs").contains("export_plugin!(Hello, ShowUser);"),
        "{}",
        read("src/lib.rs")
    );
    let again = Command::new(support::HERO_BIN)
        .args(["new", "action", "show-user", "--crate"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Its harness tests pass under a plain `cargo test`.
    let out = scaffold_cargo(&root, &["test", "--offline"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("test tests::hello_greets_by_name_or_the_world ... ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "test show_user::tests::show_user_echoes_its_message_and_requires_one ... ok"
        ),
        "{stdout}"
    );

    // Built, it loads into a host and answers as the README says.
    let out = scaffold_cargo(&root, &["build", "--quiet", "--offline", "--lib"]);
    assert!(
        out.status.success(),
        "the scaffolded plugin does not build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = repo_root().join("target/scaffold-test/debug/libhello.so");
    let dir = plugin_dir(&[(&built, "libhello.so")]);
    let hero = start(dir.path(), &[]);
    hero.wait_for_log("loaded plugin hello 0.1.0", WAIT)
        .expect("scaffolded plugin loaded");
    let body = get(&hero, "/api/hello?name=you");
    assert_eq!(body["greeting"], "Hello, you!", "{body}");
    // The template's route and its global middleware.
    let body = get(&hero, "/api/hello/route");
    assert_eq!(body["greeting"], "Hello, route!", "{body}");
    hero.wait_for_log("action called", WAIT)
        .expect("the template's middleware logs each call");
    let body = get(&hero, "/api/showUser?message=hi");
    assert_eq!(body["message"], "hi", "{body}");
}

/// The plugin-api crate of this repository.
fn plugin_api_dir() -> PathBuf {
    repo_root().join("plugin-api").canonicalize().unwrap()
}

/// Where a scaffolded crate's `plugin-api` dependency points, resolved.
fn plugin_api_dependency(root: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let path = manifest
        .lines()
        .find_map(|l| l.strip_prefix(r#"plugin-api = { path = ""#))
        .and_then(|l| l.strip_suffix(r#"" }"#))
        .unwrap_or_else(|| panic!("no plugin-api dependency: {manifest}"));
    root.join(path).canonicalize().unwrap()
}

#[test]
fn hero_new_plugin_records_a_given_plugin_api_path_relative() {
    let parent = tempfile::tempdir().unwrap();
    let parent_dir = parent.path().canonicalize().unwrap();
    // The path from the current directory, as an author would type it.
    let up = parent_dir.components().count() - 1;
    let mut given: PathBuf = std::iter::repeat_n("..", up).collect();
    given.extend(plugin_api_dir().components().skip(1));
    let out = Command::new(support::HERO_BIN)
        .current_dir(&parent_dir)
        .args([
            "new",
            "plugin",
            "mine",
            "--plugin-api",
            given.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = parent_dir.join("mine");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"plugin-api = { path = "../"#),
        "{manifest}"
    );
    assert_eq!(plugin_api_dependency(&root), plugin_api_dir());
}

#[test]
fn hero_new_plugin_refuses_the_names_of_heros_crates() {
    let parent = tempfile::tempdir().unwrap();
    for name in [
        "plugin-api",
        "plugin_api",
        "hero",
        "dynamic-plugin",
        "test-plugin",
    ] {
        let out = hero_new_plugin(name, parent.path());
        assert!(!out.status.success(), "{name} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "plugin name {name:?} is taken by one of Hero's own crates"
            )),
            "{stderr}"
        );
        assert!(!parent.path().join(name).exists(), "{name} created");
    }
}

#[test]
fn metrics_count_dynamic_plugin_calls_by_crossing_and_loads() {
    let libs = libs();
    let dir = plugin_dir(&[
        (&libs.gen1, "libtest.so"),
        (&libs.example, "libdynamic_plugin.so"),
    ]);
    let hero = start(dir.path(), &[]);
    let metrics = || support::http_get(&hero, "/metrics").1;
    let sample = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    let calls_of = |text: &str, plugin: &str, call: &str| {
        sample(
            text,
            &format!(
                r#"hero_plugin_call_duration_seconds_count{{call="{call}",plugin="{plugin}"}} "#
            ),
        )
    };
    let calls = |text: &str, call: &str| calls_of(text, "hero-test-plugin", call);
    for _ in 0..2 {
        get(&hero, "/api/ping");
    }
    // The fixture's global action middleware (three), its connection middleware and
    // `ping` are one library's: each web request crosses once, for all of them.
    let text = metrics();
    assert_eq!(calls(&text, "chain"), Some(2.0), "{text}");
    assert_eq!(calls(&text, "action"), Some(0.0), "{text}");
    assert_eq!(calls(&text, "hook"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, r#"hero_plugin_events_total{event="loaded"} "#),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"hero_plugin_files{state="loaded"} "#),
        Some(2.0)
    );
    // A static action with the same middleware runs it hook by hook: three pre-, three
    // post-processors and the two connection hooks.
    let status = get(&hero, "/api/status");
    assert!(status.get("error").is_none(), "{status}");
    let text = metrics();
    assert_eq!(calls(&text, "hook"), Some(8.0), "{text}");
    assert_eq!(calls(&text, "chain"), Some(2.0), "{text}");
    // So does an action of another library: its own call, and the eight hooks.
    let greet = get(&hero, "/api/greet?name=ada");
    assert_eq!(greet["greeting"], "Hello, ada!", "{greet}");
    let text = metrics();
    assert_eq!(calls(&text, "hook"), Some(16.0), "{text}");
    assert_eq!(calls(&text, "chain"), Some(2.0), "{text}");
    assert_eq!(
        calls_of(&text, "dynamic-plugin", "action"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        calls_of(&text, "dynamic-plugin", "chain"),
        Some(0.0),
        "{text}"
    );
}

/// One request on its own connection: (status, JSON body).
fn get_with_status(hero: &Hero, path: &str) -> (u16, Value) {
    let (status, body) = support::http_get(hero, path);
    (status, serde_json::from_str(&body).unwrap())
}

#[test]
fn plugin_calls_past_their_deadline_answer_504_and_shutdown_does_not_wait_for_them() {
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let mut hero = start(
        dir.path(),
        &[
            "--plugin-call-timeout-ms",
            "300",
            "--return-error-codes",
            "--shutdown-timeout-ms",
            "2000",
        ],
    );
    let started = Instant::now();
    let (status, body) = get_with_status(&hero, "/api/stuck");
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        body["error"],
        "Error: the action stuck did not answer within 300 ms"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // An action's own deadline wins over the host's.
    let (status, body) = get_with_status(&hero, "/api/dawdle");
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        body["error"],
        "Error: the action dawdle did not answer within 200 ms"
    );
    // Both are counted as stuck; the dawdling one returns after its 5 s and is not.
    poll(&hero, "/api/status", |b| b["plugins"]["stuckCalls"] == 1);
    assert_eq!(get(&hero, "/api/ping")["pong"], true, "the host serves on");

    // The stuck call never returns: shutdown must not wait for it.
    let stopping = Instant::now();
    hero.signal("TERM");
    let exit = hero.wait_exit(WAIT).expect("hero exited");
    assert!(exit.success(), "{exit:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "exit took {:?}",
        stopping.elapsed()
    );
}

#[test]
fn a_plugin_s_runtime_runs_its_tasks_between_calls_and_host_services_are_futures() {
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let hero = start(dir.path(), &[]);
    assert_eq!(get(&hero, "/api/startTicker")["started"], true);
    // No call for half a second: a runtime driven only during calls would not tick.
    std::thread::sleep(Duration::from_millis(500));
    let ticks = get(&hero, "/api/ticks")["ticks"].as_u64().unwrap();
    assert!(
        ticks >= 20,
        "the background task ran {ticks} times in 500 ms"
    );

    // A host service call is pending while the host works, so the action can drop it.
    let raced = get(&hero, "/api/raceService");
    assert_eq!(raced["raced"], "pending", "{raced}");
    assert_eq!(raced["value"], Value::Null, "{raced}");
}

#[test]
fn a_plugin_keeps_a_pooled_connection_alive_across_calls() {
    // An echo server that counts the connections it accepts.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let accepted = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    for line in BufReader::new(stream).lines() {
                        let Ok(line) = line else { return };
                        if writeln!(writer, "{line}").is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let libs = libs();
    let dir = plugin_dir(&[(&libs.gen1, "libtest.so")]);
    let hero = start(dir.path(), &[]);
    for (i, word) in ["one", "two", "three"].into_iter().enumerate() {
        let reply = get(&hero, &format!("/api/pooled?port={port}&word={word}"));
        assert_eq!(reply["echo"], word, "{reply}");
        assert_eq!(
            reply["connects"], 1,
            "one connection for every call: {reply}"
        );
        if i == 0 {
            // Idle between calls, as a pool is.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn plugins_built_against_the_v1_header_or_a_longer_one_load_and_serve() {
    // The host is "next" to a v1 build (its header has the flags appended; the v1 build
    // declares the v1 size, ones past it) and "v1" to a next build (whose header and
    // host table carry a field this host does not know, and which gets a host table
    // shorter than its own).
    for build in ["abi-v1", "abi-next"] {
        let dir = plugin_dir(&[(&abi_lib(build), "libtest.so")]);
        let hero = start(dir.path(), &[]);
        hero.wait_for_log("loaded plugin hero-test-plugin", WAIT)
            .unwrap_or_else(|| panic!("{build} not loaded:\n{}", hero.logs().join("\n")));
        assert_eq!(get(&hero, "/api/generation")["generation"], 1, "{build}");
        // Host services work: the plugin kept the host's table whatever its length.
        assert_eq!(get(&hero, "/api/cacheCount")["count"], 1, "{build}");
        assert_eq!(get(&hero, "/api/cacheCount")["count"], 2, "{build}");
        let status = get(&hero, "/api/status");
        assert_eq!(status["plugins"]["refused"], json!([]), "{build}: {status}");
        assert_eq!(
            status["plugins"]["loaded"][0]["name"], "hero-test-plugin",
            "{build}: {status}"
        );
        if build == "abi-next" {
            // The host's table is too short to carry the appended field: the plugin
            // read its default, not the bytes past the table's end.
            assert_eq!(get(&hero, "/api/abiNext")["hostNext"], 0);
        }
    }
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused_with_the_reason() {
    let abort = abi_lib("panic-abort");
    let dir = plugin_dir(&[(&abort, "libabort.so")]);
    let hero = start(dir.path(), &[]);
    let reason = "built with panic = \"abort\": a panic in it would kill the host; build it \
                  with panic = \"unwind\"";
    let line = hero
        .wait_for_log(
            &format!(
                "refused plugin {}",
                dir.path().join("libabort.so").display()
            ),
            WAIT,
        )
        .unwrap_or_else(|| panic!("not refused:\n{}", hero.logs().join("\n")));
    assert!(line.contains(reason), "{line}");
    let status = get(&hero, "/api/status");
    let refused = &status["plugins"]["refused"][0];
    assert!(
        refused["reason"].as_str().unwrap().contains(reason),
        "{status}"
    );
    assert_eq!(status["plugins"]["loaded"], json!([]), "{status}");
    // Nothing of it is served.
    assert!(get(&hero, "/api/generation").get("error").is_some());
}
