//! Shared helpers of the black-box tests: start the real `hero` binary on a free port,
//! read its logs, stop it with a signal.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const HERO_BIN: &str = env!("CARGO_BIN_EXE_hero");

/// How long start-up and log waits may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running `hero` process; killed when dropped.
pub struct Hero {
    child: Child,
    pub port: u16,
    pub url: String,
    logs: Arc<(Mutex<Vec<String>>, Condvar)>,
}

/// How to start a hero.
#[derive(Default, Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub bin: Option<PathBuf>,
}

impl Options {
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }
    pub fn bin(mut self, bin: &Path) -> Self {
        self.bin = Some(bin.to_path_buf());
        self
    }
}

impl Hero {
    /// Starts hero on 127.0.0.1 and a free port with extra args.
    pub fn start(args: &[&str]) -> Hero {
        Self::start_with(Options::default().args(args.iter().copied()))
    }

    /// Starts hero with full options; panics (failing the test) if it does not come up.
    pub fn start_with(opts: Options) -> Hero {
        let mut child = Self::spawn(&opts, &["--bind", "127.0.0.1", "--port", "0"]);
        let logs = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        pipe_lines(child.stdout.take().unwrap(), Arc::clone(&logs));
        pipe_lines(child.stderr.take().unwrap(), Arc::clone(&logs));
        let mut hero = Hero {
            child,
            port: 0,
            url: String::new(),
            logs,
        };
        let line = hero
            .wait_for_log("listening on ", WAIT)
            .unwrap_or_else(|| panic!("hero did not start:\n{}", hero.logs().join("\n")));
        let port = port_in(&line).unwrap_or_else(|| panic!("no port in {line:?}"));
        let scheme = if line.contains("listening on https://") {
            "https"
        } else {
            "http"
        };
        hero.port = port;
        hero.url = format!("{scheme}://127.0.0.1:{port}");
        hero
    }

    /// Runs hero to completion with `args` (for start-up failures); returns status and output.
    pub fn run_to_exit(opts: Options) -> (ExitStatus, String) {
        let child = Self::spawn(&opts, &[]);
        let out = child.wait_with_output().expect("hero runs");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status, text)
    }

    fn spawn(opts: &Options, first: &[&str]) -> Child {
        let bin = opts.bin.clone().unwrap_or_else(|| PathBuf::from(HERO_BIN));
        let mut cmd = Command::new(bin);
        cmd.args(first)
            .args(&opts.args)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &opts.cwd {
            cmd.current_dir(dir);
        }
        cmd.spawn().expect("hero binary spawns")
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.0.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; returns it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cond) = &*self.logs;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = cond.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Sends a signal (`TERM`, `INT`, `HUP`) to the process.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Hero {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe_lines<R: std::io::Read + Send + 'static>(
    stream: R,
    logs: Arc<(Mutex<Vec<String>>, Condvar)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let (lock, cond) = &*logs;
            lock.lock().unwrap().push(line);
            cond.notify_all();
        }
    });
}

/// The port of a `listening on http(s)://ADDR:PORT` log line, text or JSON.
pub fn port_in(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once("listening on ")?;
    let (_, rest) = rest.split_once("://")?;
    let addr = rest.split(|c: char| c.is_whitespace() || c == '"').next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// The `hero-testbed` binary: `hero` plus the test actions (panics, versions, ...).
pub fn testbed() -> Options {
    Options::default().bin(Path::new(env!("CARGO_BIN_EXE_hero-testbed")))
}

/// `tests/js`, with its Node packages installed (`npm ci` when they are missing).
pub fn js_dir() -> PathBuf {
    let dir = repo_root().join("tests/js");
    if !dir.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (Node 20+ is needed for the JavaScript tests)");
        assert!(status.success(), "npm ci failed in {}", dir.display());
    }
    dir
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds plugin `package` (library `lib<lib>.so`) as a `cdylib` with `features` and
/// `extra` cargo arguments, into the plugin tests' own target dir (the outer cargo
/// holds the build lock of the normal one), and stashes it as `<stash>.so`, mode 0755
/// whatever the umask (the host refuses group-writable plugin files, and the copies
/// made of this one keep its mode).
#[allow(dead_code)] // not every test binary builds plugins
pub fn build_plugin(
    package: &str,
    lib: &str,
    features: &str,
    extra: &[&str],
    stash: &str,
) -> PathBuf {
    let root = repo_root();
    let target = root.join("target/plugin-tests");
    let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    cmd.current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--lib", "-p", package])
        .args(extra);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building {package} {features} failed");
    let out = target.join("stash");
    std::fs::create_dir_all(&out).unwrap();
    let dest = out.join(format!("{stash}.so"));
    std::fs::copy(target.join("debug").join(format!("lib{lib}.so")), &dest).unwrap();
    std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dest
}

/// Posts one Bayeux batch to `hero`'s `/faye` as JSON and returns the reply array.
#[allow(dead_code)] // not every test binary speaks Bayeux
pub async fn faye(hero: &Hero, body: serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(hero.at("/faye"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One `GET path` on a fresh connection (`Connection: close`), read to the end within
/// [`WAIT`]: the status and the body.
pub fn http_get(hero: &Hero, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", hero.port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let (_, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no body: {text:?}"));
    (status, body.to_owned())
}
