//! The `file` verb: a public file as JSON.
//!
//! The answer is `{error, content, mime, length}` (the server adds `context` and
//! `messageCount`). A text file (a textual MIME type and valid UTF-8) is sent as a plain
//! string, as the original server did; anything else base64-encoded with
//! `"encoding":"base64"`; `length` is always the size in bytes of the file itself. The
//! file is read by the same function as `/public`, so both refuse the same paths.

use std::path::Path;

use base64::Engine as _;
use plugin_api::Value;
use serde_json::Map;

use crate::servers::public::{NOT_FOUND, ReadError, read_public_file};

/// Whether a MIME type is text that JSON can carry as a string.
fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.ends_with("+xml")
        || mime.ends_with("+json")
        || matches!(
            mime,
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml"
        )
}

/// The `file` answer for `path` under the public directory `root`, read by the same
/// function as `/public` so both refuse the same paths. A file over `limit` bytes
/// (`max_file_verb_bytes`) is not read: the error points at its HTTP URL.
pub(super) async fn file_reply(root: &Path, path: &str, limit: u64) -> Map<String, Value> {
    let mut r = Map::new();
    match read_public_file(root, path, limit).await {
        Err(ReadError::TooLarge { len, limit }) => {
            let message = format!(
                "the file is {len} bytes, more than max_file_verb_bytes ({limit}); \
                 fetch it over HTTP: /public/{}",
                path.trim_start_matches('/')
            );
            r.insert("error".into(), message.into());
            r.insert("content".into(), Value::Null);
            r.insert("mime".into(), Value::Null);
            r.insert("length".into(), len.into());
        }
        Ok((file, bytes)) if !path.trim_matches('/').is_empty() => {
            let mime = file
                .mime
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let length = bytes.len();
            match std::str::from_utf8(&bytes) {
                Ok(text) if is_textual(&mime) => {
                    r.insert("content".into(), text.into());
                }
                _ => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
                    r.insert("content".into(), encoded.into());
                    r.insert("encoding".into(), "base64".into());
                }
            }
            r.insert("error".into(), Value::Null);
            r.insert("mime".into(), mime.into());
            r.insert("length".into(), length.into());
        }
        _ => {
            r.insert("error".into(), NOT_FOUND.into());
            r.insert("content".into(), Value::Null);
            r.insert("mime".into(), "text/html".into());
            r.insert("length".into(), NOT_FOUND.len().into());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_go_as_strings_others_as_base64() {
        for t in [
            "text/html",
            "application/json",
            "image/svg+xml",
            "application/ld+json",
        ] {
            assert!(is_textual(t), "{t}");
        }
        for t in ["image/png", "application/octet-stream", "application/pdf"] {
            assert!(!is_textual(t), "{t}");
        }
    }
}
