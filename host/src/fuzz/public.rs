//! The static path resolver (`servers::public`): `requested_path` (URL path or
//! `?file=` query, percent-decoded), `safe_relative`, then `open_public_file` (what the
//! HTTP routes and the websocket `file` verb call), which resolves symlinks under the
//! root. Included from `servers/public.rs` as its child module, to reach its private
//! steps.
//!
//! A temporary directory holds the public root (files, a subdirectory, non-ASCII names,
//! a symlink that escapes to a secret file and one to an outside directory) and, beside
//! it, `secret.txt` and a `root-secret/` directory whose name extends the root's.
//! Generated request paths (`..`, `.`, percent-encoded and double-encoded dots, slashes
//! and backslashes, NUL, invalid UTF-8 escapes, unicode, empty segments, long runs)
//! and arbitrary bytes never yield a file that is not inside the root (its canonical
//! path starts with the root's, and it is none of the outside files), and every
//! `safe_relative` result is plain relative segments. Known-good paths must resolve, so
//! the check is not vacuous.

#![allow(clippy::unwrap_used)]

use std::path::{Component, Path, PathBuf};

use super::{Source, open_public_file, requested_path, safe_relative};
use crate::fuzz::{Gen, run};

const SEGMENTS: &[&str] = &[
    "",
    ".",
    "..",
    "...",
    "a.txt",
    "sub",
    "b.txt",
    "index.html",
    "%C3%BC.txt",
    "ü.txt",
    "with%20space.txt",
    "secret.txt",
    "escape",
    "outside",
    "root",
    "root-secret",
    "%2e%2e",
    "%2E%2e",
    ".%2e",
    "%2e.",
    "%252e%252e",
    "..%2f",
    "..%2F..",
    "%2f",
    "%5c",
    "..%5c",
    "..\\",
    "\\",
    "%00",
    "a.txt%00",
    "%ff",
    "%c0%ae%c0%ae",
    "%e2%80%ae",
    "%",
    "%%",
    "%2",
    "public",
    "~",
    "*",
    "?file=",
    "#",
];

#[derive(Debug)]
struct Case {
    path: String,
    query: String,
}

fn segments(g: &mut Gen) -> String {
    let n = g.between(0, 8);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 || g.chance(0.8) {
            let separator: &&str = g.pick(&["/", "/", "/", "//", "\\", "%2f"]);
            s.push_str(separator);
        }
        if g.chance(0.9) {
            let segment: &&str = g.pick(SEGMENTS);
            s.push_str(segment);
        } else {
            s.push_str(&g.text(6));
        }
    }
    s
}

fn generate(g: &mut Gen) -> Case {
    let rest = match g.below(10) {
        0 => g.text(30),
        1 => {
            let seed = segments(g).into_bytes();
            String::from_utf8_lossy(&g.mutate(seed)).into_owned()
        }
        _ => segments(g),
    };
    match g.below(4) {
        0 => Case {
            path: "/public".into(),
            query: format!(
                "{}file={rest}{}",
                g.pick(&["", "x=1&", "file=a.txt&"]),
                g.pick(&["", "&y=2", "&file=..%2fsecret.txt"])
            ),
        },
        1 => Case {
            path: format!("/public{rest}"),
            query: String::new(),
        },
        _ => Case {
            path: if rest.starts_with('/') {
                rest
            } else {
                format!("/{rest}")
            },
            query: String::new(),
        },
    }
}

/// The temporary public root and its neighbours.
struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(base.join("root-secret")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    for (file, text) in [
        ("root/index.html", "inside: index"),
        ("root/a.txt", "inside: a"),
        ("root/ü.txt", "inside: u"),
        ("root/with space.txt", "inside: space"),
        ("root/sub/index.html", "inside: sub index"),
        ("root/sub/b.txt", "inside: b"),
        ("secret.txt", "SECRET beside the root"),
        ("root-secret/a.txt", "SECRET in root-secret"),
        ("root-secret/index.html", "SECRET index"),
        ("outside/index.html", "SECRET outside index"),
        ("outside/a.txt", "SECRET outside a"),
    ] {
        std::fs::write(base.join(file), text).unwrap();
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), root.join("outside")).unwrap();
        std::os::unix::fs::symlink("../root-secret", root.join("sub/up")).unwrap();
    }
    Fixture { _dir: dir, root }
}

/// What one request resolves to: `Some(path)` (canonical) when a file is served.
fn resolve(rt: &tokio::runtime::Runtime, root: &Path, path: &str, query: &str) -> Option<PathBuf> {
    let decoded = requested_path(path, query)?;
    if let Some(relative) = safe_relative(&decoded) {
        assert!(
            relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))),
            "safe_relative({decoded:?}) = {relative:?} is not plain segments"
        );
    }
    let file = rt.block_on(open_public_file(root, &decoded)).ok()?;
    match file.source {
        Source::Disk(path) => Some(path),
        Source::Embedded(_) => panic!("{decoded:?}: the default page although the root exists"),
    }
}

#[test]
fn fuzz_static_path_resolver() {
    let fx = fixture();
    let root = fx.root.canonicalize().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let contents = |p: Option<PathBuf>| p.map(|p| std::fs::read_to_string(p).unwrap());
    // Known answers first: the fixture works and the oracle can tell.
    assert_eq!(
        contents(resolve(&rt, &root, "/a.txt", "")).as_deref(),
        Some("inside: a")
    );
    assert_eq!(
        contents(resolve(&rt, &root, "/public/sub/", "")).as_deref(),
        Some("inside: sub index")
    );
    assert_eq!(
        contents(resolve(&rt, &root, "/public", "file=%C3%BC.txt")).as_deref(),
        Some("inside: u")
    );
    for bad in [
        "/../secret.txt",
        "/escape",
        "/outside/a.txt",
        "/outside/",
        "/sub/up/a.txt",
        "/%2e%2e/secret.txt",
    ] {
        assert_eq!(resolve(&rt, &root, bad, ""), None, "{bad}");
    }
    let mut served = 0u64;
    run("public", 5_000, generate, |Case { path, query }| {
        if let Some(file) = resolve(&rt, &root, &path, &query) {
            assert!(
                file.starts_with(&root),
                "{path:?}?{query:?} resolved outside the root: {file:?}"
            );
            served += 1;
        }
        1
    });
    println!("fuzz public: {served} requests served a file (all inside the root)");
    if std::env::var("HERO_FUZZ_REPLAY").is_err() {
        assert!(
            served > 0,
            "no generated path resolved: the generator is too weak"
        );
    }
}
