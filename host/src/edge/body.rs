//! Request bodies, read whole up to a limit: the one reader of `/api` and the Bayeux
//! transports.
//!
//! A body over the limit is refused as soon as that is known, from `Content-Length` or
//! from the bytes streamed so far, so a client cannot make the host buffer more than
//! the limit. Before the `413` goes out, a bounded rest of the body is read and dropped:
//! closing a socket with unread data resets it, and the client would never see the
//! answer.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, TryStreamExt};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;

/// Why a request body was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over the limit (the limit in bytes).
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed while the body was read.
    #[error("the request body could not be read")]
    Unreadable,
}

/// How much of an oversized body is read and dropped before the 413, at most.
const DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// How long reading an oversized body's rest may take before the 413 is sent anyway.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The whole body of a request with `headers`, refused past `limit` bytes.
pub async fn read_limited<S, B, E>(
    stream: S,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, E>>,
    B: Buf,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.try_next().await.map_err(|_| BodyError::Unreadable)? {
        if body.len() + chunk.remaining() > limit {
            let drain = async {
                let mut left = DRAIN_BYTES;
                while let Ok(Some(chunk)) = stream.try_next().await {
                    left = left.saturating_sub(chunk.remaining());
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            return Err(BodyError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            body.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))))
    }

    #[tokio::test]
    async fn within_the_limit_the_body_is_whole() {
        let body = read_limited(chunks(&["ab", "cd"]), &HeaderMap::new(), 4)
            .await
            .unwrap();
        assert_eq!(&body[..], b"abcd");
    }

    #[tokio::test]
    async fn past_the_limit_streamed_or_declared_it_is_refused() {
        let streamed = read_limited(chunks(&["ab", "cde"]), &HeaderMap::new(), 4).await;
        assert!(matches!(streamed, Err(BodyError::TooLarge(4))));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, "5".parse().unwrap());
        let declared = read_limited(chunks(&[]), &headers, 4).await;
        assert!(matches!(declared, Err(BodyError::TooLarge(4))));
    }

    #[tokio::test]
    async fn a_failing_stream_is_unreadable() {
        let failing = futures_util::stream::iter([Err::<Bytes, _>(std::io::Error::other("reset"))]);
        let r = read_limited(failing, &HeaderMap::new(), 4).await;
        assert!(matches!(r, Err(BodyError::Unreadable)));
    }
}
