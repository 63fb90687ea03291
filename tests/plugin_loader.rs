//! Black-box tests of the plugin loader's safety and convergence, through the real
//! `hero` binary: where private copies go (not to a path another user can plant), which
//! files are refused (owned or writable by others), which changes load again (content,
//! not stamps), and that reloads converge (clashes that go away, actions that move
//! between files in one step, a cap on loaded libraries, `status` while plugin code
//! runs in the loader).
//!
//! The libraries are real cdylib builds of `tests/fixtures/test-plugin` (generations 1
//! and 2) and `tests/fixtures/split-plugin` (files `a` and `b`, with or without the
//! action `moved`), built once per test binary into a target dir of their own.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

mod support;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Hero, Options};

const WAIT: Duration = Duration::from_secs(15);

/// The plugin libraries the tests load.
struct Libs {
    gen1: PathBuf,
    gen2: PathBuf,
    /// `splitA`.
    a: PathBuf,
    /// `splitA` and `moved`.
    a_moved: PathBuf,
    /// `splitB`.
    b: PathBuf,
    /// `splitB` and `moved`.
    b_moved: PathBuf,
    /// `splitA`, described in seconds.
    slow: PathBuf,
}

/// Builds `package` with `features` into a separate target dir (the outer cargo holds
/// the build lock of the normal one) and stashes the library as `<stash>.so`.
fn build(package: &str, lib: &str, features: &str, stash: &str) -> PathBuf {
    support::build_plugin(package, lib, features, &[], stash)
}

fn libs() -> &'static Libs {
    static LIBS: OnceLock<Libs> = OnceLock::new();
    LIBS.get_or_init(|| {
        let split = |features: &str, stash: &str| {
            build("hero-split-plugin", "hero_split_plugin", features, stash)
        };
        Libs {
            gen1: build("hero-test-plugin", "hero_test_plugin", "", "gen1"),
            gen2: build("hero-test-plugin", "hero_test_plugin", "gen2", "gen2"),
            a: split("", "split_a"),
            a_moved: split("moved", "split_a_moved"),
            b: split("b", "split_b"),
            b_moved: split("b,moved", "split_b_moved"),
            slow: split("slow-describe", "split_slow"),
        }
    })
}

/// Copies `from` to `to` with mode 0755, whatever the umask of the build: the loader
/// refuses group-writable files.
fn install(from: &Path, to: &Path) {
    place(from, to, 0o755, None);
}

/// Puts a copy of `from` at `to` with `mode` (and `owner`) in one rename, so a polling
/// host never sees it with other attributes.
fn place(from: &Path, to: &Path, mode: u32, owner: Option<u32>) {
    let staging = tempfile::tempdir_in(to.parent().unwrap().parent().unwrap()).unwrap();
    let staged = staging.path().join("staged.so");
    std::fs::copy(from, &staged).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).unwrap();
    if let Some(uid) = owner {
        std::os::unix::fs::chown(&staged, Some(uid), None).unwrap();
    }
    std::fs::rename(&staged, to).unwrap();
}

fn start(dir: &Path, opts: Options) -> Hero {
    let hero = Hero::start_with(opts.args(["--plugins", dir.to_str().unwrap()]));
    hero.wait_for_log("loading dynamic plugins", WAIT)
        .expect("loader ran");
    hero
}

/// One GET on a fresh connection; the JSON body.
fn get(hero: &Hero, path: &str) -> Value {
    let (_, body) = support::http_get(hero, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
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
            "timed out polling {path}; last answer {body}\n{}",
            hero.logs().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_log(hero: &Hero, needle: &str) -> String {
    hero.wait_for_log(needle, WAIT)
        .unwrap_or_else(|| panic!("no log line with {needle:?}:\n{}", hero.logs().join("\n")))
}

fn count_logs(hero: &Hero, needle: &str) -> usize {
    hero.logs().iter().filter(|l| l.contains(needle)).count()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn the_private_copy_avoids_a_planted_directory_and_symlinks() {
    let libs = libs();
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "victim").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hero = start(
        dir.path(),
        Options::default().env("TMPDIR", tmp.path().to_str().unwrap()),
    );
    // What another local user could plant once the pid is known: the directory the
    // loader used to copy to (world-writable, as theirs would be), with symlinks at the
    // copy names it used to write through.
    let planted = tmp.path().join(format!("hero-plugins-{}", hero.pid()));
    std::fs::create_dir(&planted).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
    for n in 0..16 {
        std::os::unix::fs::symlink(&victim, planted.join(format!("libtest-{n}.so"))).unwrap();
    }

    install(&libs.gen1, &dir.path().join("libtest.so"));
    wait_log(&hero, "loaded plugin hero-test-plugin");
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);

    assert!(
        std::fs::read(&victim).unwrap() == b"victim",
        "the loader wrote through a planted symlink"
    );
    for n in 0..16 {
        let link = planted.join(format!("libtest-{n}.so"));
        assert_eq!(std::fs::read_link(&link).unwrap(), victim, "{link:?}");
    }
    assert_eq!(entries(&planted).len(), 16);
    // Nothing else was left in the temporary directory either.
    assert_eq!(
        entries(tmp.path()),
        [format!("hero-plugins-{}", hero.pid()), "victim".into()]
    );
    // The copy is an anonymous in-memory file.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", hero.pid())).unwrap();
    assert!(maps.contains("/memfd:hero-plugin-libtest"), "{maps}");
}

#[test]
fn plugin_files_others_could_change_are_refused_with_the_reason() {
    let libs = libs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libtest.so");
    place(&libs.gen1, &file, 0o664, None);
    let hero = start(dir.path(), Options::default());
    let line = wait_log(&hero, &format!("refused plugin {}", file.display()));
    let reason = "the file is writable by its group (mode 0664): they could change the code \
                  the host runs; chmod go-w it";
    assert!(line.contains(reason), "{line}");
    // `status` follows once the pass has recorded what it logged.
    poll(&hero, "/api/status", |s| {
        s["plugins"]["refused"][0]["reason"] == reason
    });
    assert!(get(&hero, "/api/generation")["error"].is_string());

    // Fixed, it is looked at again (chmod moves the ctime) and loaded.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    poll(&hero, "/api/generation", |b| b["generation"] == 1);
    poll(&hero, "/api/status", |s| {
        s["plugins"]["refused"] == serde_json::json!([])
    });

    // World-writable.
    let other = dir.path().join("libother.so");
    place(&libs.a, &other, 0o646, None);
    let line = wait_log(&hero, &format!("refused plugin {}", other.display()));
    assert!(
        line.contains("the file is writable by other users (mode 0646)"),
        "{line}"
    );

    // Owned by someone else: only root can give a file away.
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    let theirs = dir.path().join("libtheirs.so");
    if me == 0 {
        place(&libs.b, &theirs, 0o755, Some(65534));
        let line = wait_log(&hero, &format!("refused plugin {}", theirs.display()));
        assert!(
            line.contains(
                "the file is owned by uid 65534, not by the host's user (uid 0) or root: its \
                 owner could change the code the host runs; chown it to uid 0"
            ),
            "{line}"
        );
    } else {
        eprintln!("not root: the foreign-owner case is not tested");
    }
}

#[test]
fn sighup_with_unchanged_files_loads_nothing_again() {
    let libs = libs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libtest.so");
    install(&libs.gen1, &file);
    let hero = start(
        dir.path(),
        Options::default().args(["--plugin-reload-ms", "0"]),
    );
    wait_log(&hero, "loaded plugin hero-test-plugin");
    let generations = |hero: &Hero| get(hero, "/api/status")["plugins"]["generations"].clone();
    assert_eq!(
        generations(&hero),
        serde_json::json!({"live": 1, "max": 64})
    );

    hero.signal("HUP");
    wait_log(
        &hero,
        "plugin directory synced: 0 loaded, 0 reloaded, 1 unchanged",
    );
    // A new mtime and the same content (a rebuild that produced the same bytes).
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    hero.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while count_logs(
        &hero,
        "plugin directory synced: 0 loaded, 0 reloaded, 1 unchanged",
    ) < 2
    {
        assert!(Instant::now() < deadline, "{}", hero.logs().join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    }

    assert_eq!(count_logs(&hero, "loaded plugin hero-test-plugin"), 1);
    assert_eq!(count_logs(&hero, "reloaded plugin"), 0);
    assert_eq!(
        generations(&hero),
        serde_json::json!({"live": 1, "max": 64})
    );
    let status = get(&hero, "/api/status");
    assert_eq!(status["plugins"]["loaded"][0]["generation"], 1, "{status}");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", hero.pid())).unwrap();
    let copies: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter(|l| l.contains("/memfd:hero-plugin-"))
        .filter_map(|l| l.split_whitespace().nth(4)) // the inode
        .collect();
    assert_eq!(copies.len(), 1, "{maps}");
}

#[test]
fn a_same_size_rewrite_under_the_same_mtime_is_noticed() {
    let libs = libs();
    // Both generations padded to one length (an ELF file ignores trailing bytes).
    let mut one = std::fs::read(&libs.gen1).unwrap();
    let mut two = std::fs::read(&libs.gen2).unwrap();
    let len = one.len().max(two.len());
    one.resize(len, 0);
    two.resize(len, 0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libtest.so");
    std::fs::write(&file, &one).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hero = start(dir.path(), Options::default());
    wait_log(&hero, "loaded plugin hero-test-plugin");
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);

    let before = std::fs::metadata(&file).unwrap();
    let mut f = std::fs::File::options().write(true).open(&file).unwrap();
    f.write_all(&two).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    let after = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap(), after.ino()),
        (before.len(), before.modified().unwrap(), before.ino()),
        "the rewrite must keep size, mtime and inode"
    );
    poll(&hero, "/api/generation", |b| b["generation"] == 2);
    poll(&hero, "/api/status", |s| {
        s["plugins"]["loaded"][0]["generation"] == 2
    });
}

#[test]
fn a_file_refused_for_a_clash_is_loaded_once_the_clash_goes_away() {
    let libs = libs();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("libtest.so");
    let again = dir.path().join("libtest_again.so");
    install(&libs.gen1, &first);
    install(&libs.gen2, &again);
    let hero = start(dir.path(), Options::default());
    let line = wait_log(&hero, &format!("refused plugin {}", again.display()));
    assert!(line.contains("action clash: action ping v1"), "{line}");
    assert!(
        line.contains("it is loaded once the clash is gone"),
        "{line}"
    );
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);

    std::fs::remove_file(&first).unwrap();
    poll(&hero, "/api/generation", |b| b["generation"] == 2);
    wait_log(
        &hero,
        &format!(
            "loaded plugin hero-test-plugin 0.1.0 from {}",
            again.display()
        ),
    );
    let status = poll(&hero, "/api/status", |s| {
        s["plugins"]["refused"] == serde_json::json!([])
    });
    assert_eq!(
        status["plugins"]["loaded"][0]["file"],
        again.display().to_string()
    );
    // Registered from the library described at the refusal: not loaded again.
    assert_eq!(status["plugins"]["generations"]["live"], 2, "{status}");
}

#[test]
fn an_action_moved_between_two_files_in_one_step_stays_registered() {
    let libs = libs();
    let dir = tempfile::tempdir().unwrap();
    // `liba.so` is looked at first: it gains `moved` while `libb.so`, looked at after
    // it, still has it.
    let (a, b) = (dir.path().join("liba.so"), dir.path().join("libb.so"));
    install(&libs.a, &a);
    install(&libs.b_moved, &b);
    let hero = start(
        dir.path(),
        Options::default().args(["--plugin-reload-ms", "0"]),
    );
    wait_log(&hero, "plugin directory synced: 2 loaded");
    assert_eq!(get(&hero, "/api/moved")["from"], "b");

    install(&libs.a_moved, &a);
    install(&libs.b, &b);
    hero.signal("HUP");
    wait_log(&hero, "plugin directory synced: 0 loaded, 2 reloaded");
    assert_eq!(get(&hero, "/api/moved")["from"], "a");
    assert_eq!(get(&hero, "/api/splitA")["file"], "a");
    assert_eq!(get(&hero, "/api/splitB")["file"], "b");
    let status = get(&hero, "/api/status");
    assert_eq!(
        status["plugins"]["refused"],
        serde_json::json!([]),
        "{status}"
    );
}

#[test]
fn loads_past_max_plugin_generations_are_refused_and_the_old_version_serves() {
    let libs = libs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libtest.so");
    install(&libs.gen1, &file);
    let hero = start(
        dir.path(),
        Options::default().args(["--max-plugin-generations", "1"]),
    );
    wait_log(&hero, "loaded plugin hero-test-plugin");

    install(&libs.gen2, &file);
    let line = wait_log(&hero, &format!("refused plugin {}", file.display()));
    assert!(
        line.contains(
            "1 plugin libraries are loaded already (max_plugin_generations), and a loaded \
             library is never unloaded: restart the host to load this one"
        ),
        "{line}"
    );
    assert!(
        line.contains("the version loaded before keeps serving"),
        "{line}"
    );
    assert_eq!(get(&hero, "/api/generation")["generation"], 1);
    let status = get(&hero, "/api/status");
    assert_eq!(
        status["plugins"]["generations"],
        serde_json::json!({"live": 1, "max": 1})
    );
}

#[test]
fn status_answers_while_the_loader_runs_plugin_code() {
    let libs = libs();
    let dir = tempfile::tempdir().unwrap();
    let hero = start(dir.path(), Options::default());
    install(&libs.slow, &dir.path().join("libslow.so"));
    // The plugin's `describe` is running (for seconds) in the loader now.
    wait_log(&hero, "slow describe started");
    let status = get(&hero, "/api/status");
    assert_eq!(
        count_logs(&hero, "loaded plugin hero-split-plugin"),
        0,
        "status waited for the load: {status}"
    );
    assert_eq!(status["plugins"]["loaded"], serde_json::json!([]));
    wait_log(&hero, "loaded plugin hero-split-plugin");
    assert_eq!(get(&hero, "/api/splitA")["file"], "a");
}
