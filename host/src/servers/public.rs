//! Static files from the public directory (PROTOCOL 3.2), and the embedded default page.
//!
//! [`read_public_file`] is the one way to read a public file; the HTTP routes here and
//! the websocket `file` verb both call it, so both refuse the same paths.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::app::App;

/// The page served at `/` when the public directory does not exist.
pub const DEFAULT_PAGE: &str = include_str!("../assets/default/index.html");

/// How long browsers may reuse a file before revalidating it (actionhero's default).
const CACHE_CONTROL: &str = "public, max-age=60, must-revalidate";

/// The body of every 404 and the `file` verb's error, as actionhero clients expect it.
pub const NOT_FOUND: &str = "Sorry, that file is not found :(";

/// The file is missing, or the path is not inside the public directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", NOT_FOUND)]
pub struct NotFound;

/// One public file, read whole.
#[derive(Debug, Clone)]
pub struct PublicFile {
    /// The file's bytes, exactly as on disk.
    pub bytes: Bytes,
    /// `Content-Type`, with `charset=utf-8` for text.
    pub mime: String,
    /// Modification time, when the file system reports one.
    pub modified: Option<SystemTime>,
    /// A strong validator built from the length and the modification time.
    pub etag: String,
}

/// Reads `path` (already percent-decoded, relative to `root`; a leading `/` is ignored)
/// from the public directory `root`. A directory means its `index.html`. When `root`
/// does not exist, `""` and `index.html` are the embedded default page.
///
/// The work runs on the blocking pool, never on the reactor.
///
/// # Errors
///
/// [`NotFound`] for a missing file and for any path that leaves `root`: `..` segments,
/// backslashes, NUL bytes, or symlinks that resolve outside it.
pub async fn read_public_file(root: &Path, path: &str) -> Result<PublicFile, NotFound> {
    let relative = safe_relative(path).ok_or(NotFound)?;
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || read_blocking(&root, &relative))
        .await
        .map_err(|_| NotFound)?
}

/// The path as plain relative segments, or `None` when it tries to climb or smuggle.
fn safe_relative(path: &str) -> Option<PathBuf> {
    // A backslash is a separator on Windows and never a sane file name here.
    if path.contains(['\0', '\\']) {
        return None;
    }
    let mut relative = PathBuf::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            name => relative.push(name),
        }
    }
    Some(relative)
}

fn read_blocking(root: &Path, relative: &Path) -> Result<PublicFile, NotFound> {
    let root = match root.canonicalize() {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return default_page(relative),
        Err(_) => return Err(NotFound),
    };
    let mut file = inside(&root, &root.join(relative))?;
    let mut meta = std::fs::metadata(&file).map_err(|_| NotFound)?;
    if meta.is_dir() {
        file = inside(&root, &file.join("index.html"))?;
        meta = std::fs::metadata(&file).map_err(|_| NotFound)?;
    }
    if !meta.is_file() {
        return Err(NotFound);
    }
    let bytes = std::fs::read(&file).map_err(|_| NotFound)?;
    let modified = meta.modified().ok();
    let stamp = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(PublicFile {
        etag: format!("\"{:x}-{stamp:x}\"", bytes.len()),
        mime: content_type(&file),
        modified,
        bytes: Bytes::from(bytes),
    })
}

/// Resolves every symlink of `path` and checks the result is still under `root`.
fn inside(root: &Path, path: &Path) -> Result<PathBuf, NotFound> {
    let real = path.canonicalize().map_err(|_| NotFound)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(NotFound)
    }
}

fn default_page(relative: &Path) -> Result<PublicFile, NotFound> {
    if !(relative.as_os_str().is_empty() || relative == Path::new("index.html")) {
        return Err(NotFound);
    }
    Ok(PublicFile {
        bytes: Bytes::from_static(DEFAULT_PAGE.as_bytes()),
        mime: "text/html; charset=utf-8".into(),
        modified: None,
        etag: format!("\"default-{:x}\"", fnv1a(DEFAULT_PAGE.as_bytes())),
    })
}

/// A content hash for the embedded page's ETag (changes when the page does).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn content_type(file: &Path) -> String {
    let mime = mime_guess::from_path(file).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml");
    if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

/// `GET`/`HEAD` of `/public/<path>`, `/public?file=<path>` and every other path not
/// claimed by an earlier route (`/` is `index.html`, `/chat.html` is `public/chat.html`).
/// Mount it last.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .then(
            move |method: Method, full: warp::path::FullPath, query: String, headers| {
                let root = app.config.public.clone();
                async move {
                    let Some(path) = requested_path(full.as_str(), &query) else {
                        return not_found();
                    };
                    match read_public_file(&root, &path).await {
                        Ok(file) => file_response(&file, &method, &headers),
                        Err(NotFound) => not_found(),
                    }
                }
            },
        )
        .boxed()
}

/// The decoded file path a request asks for; `None` when it does not decode.
fn requested_path(raw_path: &str, query: &str) -> Option<String> {
    let rest = match raw_path.strip_prefix("/public") {
        Some("") => {
            // `/public?file=<path>`; plain `/public` is the index.
            let file = crate::servers::api::form_pairs(query)
                .filter(|(k, _)| k == "file")
                .last()
                .map(|(_, v)| v);
            return Some(file.unwrap_or_default());
        }
        Some(rest) if rest.starts_with('/') => rest,
        _ => raw_path,
    };
    percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn file_response(file: &PublicFile, method: &Method, request: &HeaderMap) -> Response {
    let fresh = not_modified(file, request);
    let body = if fresh || method == Method::HEAD {
        Bytes::new()
    } else {
        file.bytes.clone()
    };
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&file.etag) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(modified) = file.modified
        && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(modified))
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if fresh {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    if let Ok(mime) = HeaderValue::from_str(&file.mime) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.bytes.len()));
    response
}

/// `If-None-Match` decides when present; otherwise `If-Modified-Since` (to the second).
fn not_modified(file: &PublicFile, request: &HeaderMap) -> bool {
    if let Some(tags) = request.get(header::IF_NONE_MATCH) {
        return tags.to_str().is_ok_and(|tags| {
            tags.split(',')
                .map(|t| t.trim())
                .any(|t| t == "*" || t.trim_start_matches("W/") == file.etag)
        });
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, file.modified) {
        (Some(since), Some(modified)) => {
            let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            secs(modified) <= secs(since)
        }
        _ => false,
    }
}

/// 404 with the body actionhero clients expect.
pub fn not_found() -> Response {
    let mut response = Response::new(NOT_FOUND.into());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climbing_and_smuggling_paths_are_refused() {
        for bad in ["..", "a/../b", "../etc/passwd", "a\\..\\b", "a\0b", "/../x"] {
            assert!(safe_relative(bad).is_none(), "{bad:?}");
        }
        assert_eq!(safe_relative("/a/./b/").unwrap(), PathBuf::from("a/b"));
        assert_eq!(safe_relative("").unwrap(), PathBuf::new());
    }

    #[test]
    fn text_types_carry_a_charset() {
        assert_eq!(
            content_type(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(content_type(Path::new("a")), "application/octet-stream");
    }

    #[test]
    fn public_paths_decode_once() {
        assert_eq!(requested_path("/public/a%20b", "").unwrap(), "/a b");
        assert_eq!(
            requested_path("/public", "file=x%2Fy.txt").unwrap(),
            "x/y.txt"
        );
        assert_eq!(requested_path("/public", "").unwrap(), "");
        assert_eq!(requested_path("/publicity", "").unwrap(), "/publicity");
        assert_eq!(requested_path("/%252e%252e", "").unwrap(), "/%2e%2e");
        assert!(requested_path("/%ff", "").is_none());
    }
}
