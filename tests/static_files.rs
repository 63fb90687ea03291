//! Black-box tests of static files (PROTOCOL 3.2) against the real `hero` binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use reqwest::StatusCode;
use support::{Hero, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NOT_FOUND: &str = "Sorry, that file is not found :(";
const SECRET: &str = "TOP-SECRET-OUTSIDE-THE-ROOT";

/// A site: `<dir>/public` with assorted files, and secrets next to it.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    let write = |rel: &str, bytes: &[u8]| {
        let path = public.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write("index.html", b"<h1>my site</h1>");
    write("style.css", b"body { color: red }");
    write("app.js", b"console.log(1);");
    write("data.json", b"{\"a\":1}");
    write("img/logo.png", b"\x89PNG\r\n\x1a\nnot really");
    write("all-bytes.bin", &(0..=255u8).collect::<Vec<_>>());
    write("docs/index.html", b"<p>docs index</p>");
    write("docs/page.txt", b"plain text");
    write("a b.txt", b"spaced");
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    std::fs::create_dir(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/secret.txt"), SECRET).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(dir.path().join("secret.txt"), public.join("escape")).unwrap();
        symlink(dir.path().join("outside"), public.join("escapedir")).unwrap();
        symlink(public.join("style.css"), public.join("inner.css")).unwrap();
    }
    dir
}

fn serve(dir: &Path) -> Hero {
    Hero::start_with(Options::default().cwd(dir))
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

/// Sends `GET <target>` exactly as written (reqwest would normalise the path) and
/// returns the status and body.
async fn raw_get(port: u16, target: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn files_are_served_with_their_content_type_and_length() {
    let dir = site();
    let hero = serve(dir.path());
    let cases = [
        (
            "/public/index.html",
            "text/html; charset=utf-8",
            "<h1>my site</h1>",
        ),
        (
            "/public/style.css",
            "text/css; charset=utf-8",
            "body { color: red }",
        ),
        (
            "/public/app.js",
            "text/javascript; charset=utf-8",
            "console.log(1);",
        ),
        (
            "/public/data.json",
            "application/json; charset=utf-8",
            "{\"a\":1}",
        ),
        (
            "/public/docs/page.txt",
            "text/plain; charset=utf-8",
            "plain text",
        ),
        ("/public/a%20b.txt", "text/plain; charset=utf-8", "spaced"),
        (
            "/public?file=style.css",
            "text/css; charset=utf-8",
            "body { color: red }",
        ),
        (
            "/public?file=docs%2Fpage.txt",
            "text/plain; charset=utf-8",
            "plain text",
        ),
        (
            "/style.css",
            "text/css; charset=utf-8",
            "body { color: red }",
        ),
        (
            "/public/inner.css",
            "text/css; charset=utf-8",
            "body { color: red }",
        ),
    ];
    for (path, mime, body) in cases {
        let res = get(&hero.at(path)).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], mime, "{path}");
        assert_eq!(
            res.headers()["content-length"],
            body.len().to_string().as_str(),
            "{path}"
        );
        assert!(res.headers().contains_key("etag"), "{path}");
        assert!(res.headers().contains_key("last-modified"), "{path}");
        assert!(res.headers().contains_key("cache-control"), "{path}");
        assert_eq!(res.text().await.unwrap(), body, "{path}");
    }
    let res = get(&hero.at("/public/img/logo.png")).await;
    assert_eq!(res.headers()["content-type"], "image/png");
}

#[tokio::test]
async fn binary_files_are_byte_exact() {
    let dir = site();
    let hero = serve(dir.path());
    let expected: Vec<u8> = (0..=255u8).collect();
    for path in ["/public/all-bytes.bin", "/public?file=all-bytes.bin"] {
        let res = get(&hero.at(path)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/octet-stream");
        assert_eq!(res.headers()["content-length"], "256");
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            expected.as_slice(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_root_and_directories_serve_their_index() {
    let dir = site();
    let hero = serve(dir.path());
    for (path, body) in [
        ("/", "<h1>my site</h1>"),
        ("/public", "<h1>my site</h1>"),
        ("/public/", "<h1>my site</h1>"),
        ("/public/docs", "<p>docs index</p>"),
        ("/public/docs/", "<p>docs index</p>"),
        ("/docs/", "<p>docs index</p>"),
    ] {
        let res = get(&hero.at(path)).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(res.text().await.unwrap(), body, "{path}");
    }
    // A directory without an index is not found.
    std::fs::create_dir(dir.path().join("public/empty")).unwrap();
    let res = get(&hero.at("/public/empty/")).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn validators_give_304s_and_head_has_no_body() {
    let dir = site();
    let hero = serve(dir.path());
    let client = reqwest::Client::new();
    let url = hero.at("/public/style.css");
    let first = client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let modified = first.headers()["last-modified"].clone();

    let res = client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()["etag"], etag);
    assert!(res.bytes().await.unwrap().is_empty());

    let list = format!("\"nope\", W/{}", etag.to_str().unwrap());
    let res = client
        .get(&url)
        .header("if-none-match", list)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_MODIFIED,
        "weak comparison in a list"
    );

    let res = client
        .get(&url)
        .header("if-modified-since", modified.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let res = client
        .get(&url)
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "body { color: red }");

    let res = client
        .get(&url)
        .header("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A changed file gets a new ETag.
    std::fs::write(dir.path().join("public/style.css"), "body { color: blue; }").unwrap();
    let res = client
        .get(&url)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"], etag);
    assert_eq!(res.text().await.unwrap(), "body { color: blue; }");

    let res = client
        .head(hero.at("/public/all-bytes.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "256");
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert!(res.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_files_are_404_with_the_actionhero_body() {
    let dir = site();
    let hero = serve(dir.path());
    for path in [
        "/public/nope.txt",
        "/nope.html",
        "/public?file=nope",
        "/public/docs/nope/",
    ] {
        let res = get(&hero.at(path)).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(res.text().await.unwrap(), NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn no_path_escapes_the_public_directory() {
    let dir = site();
    let hero = serve(dir.path());
    let absolute = format!("http://127.0.0.1:{}/public/../secret.txt", hero.port);
    let file_param = format!("/public?file={}", dir.path().join("secret.txt").display());
    let attempts: Vec<&[u8]> = vec![
        b"/public/../secret.txt",
        b"/public/%2e%2e/secret.txt",
        b"/public/%2E%2E/secret.txt",
        b"/public/.%2e/secret.txt",
        b"/public/..%2fsecret.txt",
        b"/public/%2e%2e%2fsecret.txt",
        b"/public/%252e%252e/secret.txt",
        b"/public/%252e%252e%252fsecret.txt",
        b"/public/..%5csecret.txt",
        b"/public/%5c..%5csecret.txt",
        b"/public/..\\secret.txt",
        b"/public/docs/../../secret.txt",
        b"/public/docs/%2e%2e/%2e%2e/secret.txt",
        b"/public/..%c0%afsecret.txt",
        b"/public/%c0%ae%c0%ae/secret.txt",
        b"/public/index.html%00",
        b"/public/%00../secret.txt",
        b"/public?file=../secret.txt",
        b"/public?file=%2e%2e%2fsecret.txt",
        b"/public?file=..%5csecret.txt",
        b"/public?file=escape",
        file_param.as_bytes(),
        b"/public//etc/passwd",
        b"/public/%2fetc%2fpasswd",
        b"/public?file=/etc/passwd",
        b"/../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        b"/public/escape",
        b"/public/escapedir/secret.txt",
        b"/escapedir/secret.txt",
        absolute.as_bytes(),
    ];
    assert!(attempts.len() >= 20);
    for target in attempts {
        let shown = String::from_utf8_lossy(target);
        let (status, body) = raw_get(hero.port, target).await;
        assert!(!body.contains(SECRET), "{shown} leaked the secret");
        assert!(!body.contains("root:"), "{shown} leaked /etc/passwd");
        assert_eq!(status, 404, "{shown}: {body}");
        assert_eq!(body, NOT_FOUND, "{shown}");
    }
    // The same server still serves what is inside.
    assert_eq!(
        raw_get(hero.port, b"/public/docs/page.txt").await,
        (200, "plain text".into())
    );
}

#[tokio::test]
async fn the_embedded_page_is_served_when_there_is_no_public_directory() {
    let dir = tempfile::tempdir().unwrap();
    let hero = serve(dir.path());
    for path in ["/", "/public/index.html", "/public", "/public/"] {
        let res = get(&hero.at(path)).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
        assert!(res.headers().contains_key("etag"));
        let page = res.text().await.unwrap();
        assert!(page.contains("<title>Hero</title>"), "{path}");
        for link in [
            "href=\"/api/\"",
            "href=\"/api/status\"",
            "href=\"/chat.html\"",
        ] {
            assert!(page.contains(link), "{path}: {link}");
        }
    }
    let res = get(&hero.at("/public/other.html")).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.text().await.unwrap(), NOT_FOUND);

    // An explicit public directory replaces it.
    let site = site();
    let public = site.path().join("public");
    let hero = Hero::start(&["--public", public.to_str().unwrap()]);
    assert_eq!(
        get(&hero.at("/")).await.text().await.unwrap(),
        "<h1>my site</h1>"
    );
}

#[tokio::test]
async fn ranges_are_served_as_206_and_bad_ones_as_416() {
    let dir = site();
    let hero = serve(dir.path());
    let url = hero.at("/public/all-bytes.bin");
    let range = |spec: &'static str| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("range", spec)
                .send()
                .await
                .unwrap()
        }
    };
    let res = range("bytes=10-19").await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()["content-range"], "bytes 10-19/256");
    assert_eq!(res.headers()["content-length"], "10");
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        (10..20u8).collect::<Vec<_>>()
    );
    let res = range("bytes=250-").await;
    assert_eq!(res.headers()["content-range"], "bytes 250-255/256");
    assert_eq!(res.bytes().await.unwrap().len(), 6);
    let res = range("bytes=-4").await;
    assert_eq!(res.headers()["content-range"], "bytes 252-255/256");
    assert_eq!(
        res.bytes().await.unwrap().to_vec(),
        vec![252, 253, 254, 255]
    );
    let res = range("bytes=300-400").await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()["content-range"], "bytes */256");
    // Several ranges, or another unit: the whole file, as a server may answer.
    let res = range("bytes=0-1,5-6").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().len(), 256);
    let plain = get(&url).await;
    assert_eq!(plain.headers()["accept-ranges"], "bytes");
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn large_files_are_streamed_so_stalled_readers_hold_no_copies() {
    let dir = site();
    // 200 MB, sparse: cheap to make, as costly to read whole as a real one.
    let big = std::fs::File::create(dir.path().join("public/big.bin")).unwrap();
    big.set_len(200 << 20).unwrap();
    let hero = serve(dir.path());
    let before = rss_kib(hero.pid());
    // Ten readers take the headers and a little of the body, then stall.
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", hero.port))
            .await
            .unwrap();
        s.write_all(b"GET /public/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 4096];
        let n = s.read(&mut head).await.unwrap();
        assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
        stalled.push(s);
    }
    // HEAD reads nothing and says the length.
    let head = reqwest::Client::new()
        .head(hero.at("/public/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-length"], (200u64 << 20).to_string());
    let grown = rss_kib(hero.pid()).saturating_sub(before);
    // Whole-file reads would hold 2 GB here; streaming holds a few buffers per socket.
    assert!(
        grown < 100 * 1024,
        "RSS grew by {grown} KiB with 10 stalled readers"
    );
    // A reader that reads gets every byte.
    let mut res = get(&hero.at("/public/big.bin")).await;
    let mut total = 0usize;
    while let Some(chunk) = res.chunk().await.unwrap() {
        total += chunk.len();
    }
    assert_eq!(total, 200 << 20);
    drop(stalled);
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_after_the_write_timeout() {
    let dir = site();
    let big = std::fs::File::create(dir.path().join("public/big.bin")).unwrap();
    big.set_len(200 << 20).unwrap();
    let hero = Hero::start_with(
        Options::default()
            .cwd(dir.path())
            .env("HERO_WRITE_TIMEOUT_MS", "300"),
    );
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", hero.port))
        .await
        .unwrap();
    s.write_all(b"GET /public/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Stall well past the deadline, then read what is left.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read_all)
        .await
        .expect("the server closed the connection");
    assert!(
        total < 200 << 20,
        "the whole file arrived: the stalled reader was not cut off"
    );
}
