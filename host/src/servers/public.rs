//! Static files from the public directory (PROTOCOL 3.2), and the embedded default page.
//!
//! [`open_public_file`] is the one way to find a public file; the HTTP routes here
//! stream it (with `Range`, and nothing read for `HEAD` or `304`), and the websocket
//! `file` verb reads it through [`read_public_file`] up to a size limit, so both refuse
//! the same paths.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply as _};

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

/// One public file, resolved (not read): what a response needs to send it.
#[derive(Debug, Clone)]
pub struct PublicFile {
    /// Where its bytes are.
    pub source: Source,
    /// Its size in bytes.
    pub len: u64,
    /// `Content-Type`, with `charset=utf-8` for text.
    pub mime: String,
    /// Modification time, when the file system reports one.
    pub modified: Option<SystemTime>,
    /// A strong validator built from the length and the modification time.
    pub etag: String,
}

/// Where a public file's bytes are.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk (canonical, inside the public directory).
    Disk(PathBuf),
    /// The embedded default page.
    Embedded(&'static [u8]),
}

/// Why a public file cannot be sent whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Missing or outside the public directory.
    #[error("{}", NOT_FOUND)]
    NotFound,
    /// Larger than the caller's limit.
    #[error("the file is {len} bytes, more than {limit}")]
    TooLarge {
        /// Its size.
        len: u64,
        /// The limit.
        limit: u64,
    },
}

/// Resolves `path` (already percent-decoded, relative to `root`; a leading `/` is
/// ignored) in the public directory `root`, reading nothing but metadata. A directory
/// means its `index.html`. When `root` does not exist, `""` and `index.html` are the
/// embedded default page. The work runs on the blocking pool, never on the reactor.
///
/// # Errors
///
/// [`NotFound`] for a missing file and for any path that leaves `root`: `..` segments,
/// backslashes, NUL bytes, or symlinks that resolve outside it.
pub async fn open_public_file(root: &Path, path: &str) -> Result<PublicFile, NotFound> {
    let relative = safe_relative(path).ok_or(NotFound)?;
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || resolve_blocking(&root, &relative))
        .await
        .map_err(|_| NotFound)?
}

/// Resolves and reads a public file whole, if it has at most `limit` bytes (the
/// websocket `file` verb, whose reply carries the content).
///
/// # Errors
///
/// [`ReadError::NotFound`] as [`open_public_file`]; [`ReadError::TooLarge`] past `limit`,
/// before anything is read.
pub async fn read_public_file(
    root: &Path,
    path: &str,
    limit: u64,
) -> Result<(PublicFile, Bytes), ReadError> {
    let file = open_public_file(root, path)
        .await
        .map_err(|NotFound| ReadError::NotFound)?;
    if file.len > limit {
        return Err(ReadError::TooLarge {
            len: file.len,
            limit,
        });
    }
    let bytes = match &file.source {
        Source::Embedded(bytes) => Bytes::from_static(bytes),
        Source::Disk(path) => {
            let mut bytes = tokio::fs::read(path)
                .await
                .map_err(|_| ReadError::NotFound)?;
            // The file may have grown since it was measured.
            bytes.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Bytes::from(bytes)
        }
    };
    Ok((file, bytes))
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

fn resolve_blocking(root: &Path, relative: &Path) -> Result<PublicFile, NotFound> {
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
    let modified = meta.modified().ok();
    let stamp = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(PublicFile {
        etag: format!("\"{:x}-{stamp:x}\"", meta.len()),
        mime: content_type(&file),
        modified,
        len: meta.len(),
        source: Source::Disk(file),
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
        source: Source::Embedded(DEFAULT_PAGE.as_bytes()),
        len: DEFAULT_PAGE.len() as u64,
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
                    match open_public_file(&root, &path).await {
                        Ok(file) => file_response(&file, &method, &headers).await,
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
            let file = crate::edge::form::pairs(query)
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

/// The response for `file`: `304` when the client's copy is fresh, headers only for
/// `HEAD`, else the bytes streamed from disk (a `Range` of them: `206`, or `416` when
/// it cannot be satisfied). Nothing is read for `HEAD` or `304`, and a large file is
/// never held in memory.
async fn file_response(file: &PublicFile, method: &Method, request: &HeaderMap) -> Response {
    let fresh = not_modified(file, request);
    let range = if fresh {
        None
    } else {
        requested_range(request, file)
    };
    let mut response = match (&range, fresh || method == Method::HEAD) {
        (Some(Err(Unsatisfiable)), _) => {
            let mut response = Response::new(Bytes::new().into());
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", file.len)) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
        (_, true) => Response::new(Bytes::new().into()),
        (Some(Ok(span)), false) => body(file, span.clone()).await,
        (None, false) => body(file, 0..file.len).await,
    };
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
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if fresh {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    if let Ok(mime) = HeaderValue::from_str(&file.mime) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    let length = match &range {
        Some(Ok(span)) => {
            if let Ok(value) = HeaderValue::from_str(&format!(
                "bytes {}-{}/{}",
                span.start,
                span.end - 1,
                file.len
            )) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            span.end - span.start
        }
        _ => file.len,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// The bytes `span` of `file`, streamed (a file that cannot be opened any more is an
/// empty body: its headers are already decided, and the client sees a short reply).
async fn body(file: &PublicFile, span: std::ops::Range<u64>) -> Response {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    match &file.source {
        Source::Embedded(bytes) => {
            let start = usize::try_from(span.start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = usize::try_from(span.end)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            Response::new(Bytes::from_static(&bytes[start..end]).into())
        }
        Source::Disk(path) => {
            let opened = async {
                let mut disk = tokio::fs::File::open(path).await?;
                disk.seek(std::io::SeekFrom::Start(span.start)).await?;
                Ok::<_, io::Error>(disk.take(span.end - span.start))
            };
            match opened.await {
                Ok(reader) => {
                    warp::reply::stream(tokio_util::io::ReaderStream::new(reader)).into_response()
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), %err, "public file vanished");
                    Response::new(Bytes::new().into())
                }
            }
        }
    }
}

/// A `Range` that cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unsatisfiable;

/// The one byte range a `Range: bytes=...` header asks for (`None`: the whole file,
/// also for several ranges or a unit other than bytes, which a server may ignore), or
/// [`Unsatisfiable`]. An `If-Range` that does not name this version means the whole file.
fn requested_range(
    request: &HeaderMap,
    file: &PublicFile,
) -> Option<Result<std::ops::Range<u64>, Unsatisfiable>> {
    let spec = request.get(header::RANGE)?.to_str().ok()?;
    if let Some(if_range) = request.get(header::IF_RANGE)
        && if_range.to_str().ok() != Some(file.etag.as_str())
    {
        return None;
    }
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let len = file.len;
    let span = if first.is_empty() {
        // The last N bytes.
        let n: u64 = last.parse().ok()?;
        if n == 0 {
            return Some(Err(Unsatisfiable));
        }
        len.saturating_sub(n)..len
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len
        } else {
            let last: u64 = last.parse().ok()?;
            if last < start {
                return None;
            }
            last.saturating_add(1).min(len)
        };
        start..end
    };
    if span.start >= len || span.is_empty() {
        return Some(Err(Unsatisfiable));
    }
    Some(Ok(span))
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

#[cfg(test)]
#[path = "../fuzz/public.rs"]
mod fuzz;
