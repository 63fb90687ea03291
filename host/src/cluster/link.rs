//! One Redis connection, shared by every clustered backend of a node.
//!
//! The `redis` crate's multiplexed connection pipelines concurrent commands over one
//! socket but does not come back after Redis goes away. This wrapper adds what a server
//! needs around it:
//!
//! - every call has a deadline ([`ClusterConfig::call_timeout`](super::ClusterConfig));
//!   nothing waits on Redis for longer, and nothing queues while it is away;
//! - a call that meets a broken connection wakes the one background reconnection
//!   (retried with capped exponential backoff, at most every 50 ms) and waits for it up
//!   to the deadline, then fails with [`LinkError::Unavailable`]: a node whose Redis has
//!   just come back serves at once instead of failing until its next scheduled retry;
//! - blocking reads (`XREAD BLOCK`) get their own connection ([`RedisLink::dedicated`],
//!   a [`BlockingConn`]) so they never hold up commands behind them.

use crate::sync::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, ScriptInvocation};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::BlockingConn;

/// Least time between two connection attempts, however often calls ask for one.
const MIN_ATTEMPT_GAP: Duration = Duration::from_millis(50);

/// A Redis call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The URL is not a Redis URL.
    #[error("invalid redis URL {url}: {why}")]
    Url {
        /// The URL as given (without its password).
        url: String,
        /// Why it was refused.
        why: String,
    },
    /// Redis could not be reached at start-up.
    #[error("cannot reach redis at {url}: {why}")]
    Unreachable {
        /// The URL (without its password).
        url: String,
        /// The last connection error.
        why: String,
    },
    /// The connection is down; a reconnection is under way.
    #[error("redis is unavailable (reconnecting)")]
    Unavailable,
    /// No answer within the deadline.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection broke during the call.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A blocking connection broke ([`BlockingConn`]).
    #[error("redis connection: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking connection got an error reply, or one it cannot read.
    #[error("redis: {0}")]
    Reply(String),
}

/// A clone-cheap handle on the node's Redis connection.
#[derive(Clone, Debug)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: redis::Client,
    url: String,
    call_timeout: Duration,
    backoff_max: Duration,
    conn: Mutex<Option<MultiplexedConnection>>,
    /// Whether `conn` holds a connection, for calls waiting on a reconnection.
    up: watch::Sender<bool>,
    /// Cuts the reconnection loop's pause short (a call is waiting).
    kick: Notify,
    reconnecting: AtomicBool,
    /// Failed calls since start (for `status` and metrics).
    errors: AtomicU64,
    /// Connections made since start; a new one means Redis may have restarted.
    generation: AtomicU64,
    stop: CancellationToken,
}

/// The URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl RedisLink {
    /// Connects to `url`, retrying with backoff for up to `wait` (zero: one attempt).
    ///
    /// # Errors
    /// A malformed URL, or Redis still unreachable when `wait` has passed.
    pub async fn connect(
        url: &str,
        call_timeout: Duration,
        backoff_max: Duration,
        wait: Duration,
    ) -> Result<Self, LinkError> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|e| LinkError::Url {
            url: shown.clone(),
            why: e.to_string(),
        })?;
        let inner = Arc::new(Inner {
            client,
            url: shown.clone(),
            call_timeout,
            backoff_max: backoff_max.max(Duration::from_millis(10)),
            conn: Mutex::new(None),
            up: watch::Sender::new(false),
            kick: Notify::new(),
            reconnecting: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            stop: CancellationToken::new(),
        });
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(50);
        loop {
            match inner.open(None).await {
                Ok(conn) => {
                    inner.install(conn);
                    return Ok(Self { inner });
                }
                Err(e) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Err(LinkError::Unreachable {
                            url: shown,
                            why: e.to_string(),
                        });
                    }
                    tracing::warn!(url = %shown, error = %e, "redis unreachable, retrying");
                    tokio::time::sleep(pause.min(deadline - now)).await;
                    pause = (pause * 2).min(inner.backoff_max);
                }
            }
        }
    }

    /// The URL (without its password).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The deadline of one call.
    pub fn call_timeout(&self) -> Duration {
        self.inner.call_timeout
    }

    /// Whether the connection is up now.
    pub fn is_up(&self) -> bool {
        lock(&self.inner.conn).is_some()
    }

    /// Failed calls since start.
    pub fn error_count(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Connections made since start (1 until the first reconnection).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Runs a command within the deadline.
    ///
    /// # Errors
    /// See [`LinkError`]; a broken connection starts a reconnection.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, LinkError> {
        let mut conn = self.conn().await?;
        let result = tokio::time::timeout(self.inner.call_timeout, cmd.query_async(&mut conn));
        self.settle(result.await)
    }

    /// Runs a pipeline within the deadline.
    ///
    /// # Errors
    /// As [`RedisLink::query`].
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, LinkError> {
        let mut conn = self.conn().await?;
        let result = tokio::time::timeout(self.inner.call_timeout, pipe.query_async(&mut conn));
        self.settle(result.await)
    }

    /// Runs a Lua script within the deadline (loading it again after a Redis restart).
    ///
    /// # Errors
    /// As [`RedisLink::query`].
    pub async fn invoke<T: FromRedisValue>(
        &self,
        script: &ScriptInvocation<'_>,
    ) -> Result<T, LinkError> {
        let mut conn = self.conn().await?;
        let result = tokio::time::timeout(self.inner.call_timeout, script.invoke_async(&mut conn));
        self.settle(result.await)
    }

    /// A connection of its own, for blocking reads; `response_timeout` bounds each call.
    ///
    /// # Errors
    /// Redis cannot be reached now.
    pub async fn dedicated(&self, response_timeout: Duration) -> Result<BlockingConn, LinkError> {
        BlockingConn::open(
            self.inner.client.get_connection_info(),
            self.inner.call_timeout,
            response_timeout,
        )
        .await
    }

    /// Calls that failed or timed out so far.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// Stops reconnecting (at shutdown).
    pub fn close(&self) {
        self.inner.stop.cancel();
    }

    /// The connection; while it is down, wakes the reconnection and waits for it (up to
    /// the deadline).
    async fn conn(&self) -> Result<MultiplexedConnection, LinkError> {
        if let Some(conn) = lock(&self.inner.conn).clone() {
            return Ok(conn);
        }
        let mut up = self.inner.up.subscribe();
        self.reconnect();
        self.inner.kick.notify_one();
        let waited = tokio::time::timeout(self.inner.call_timeout, up.wait_for(|up| *up)).await;
        if waited.is_ok()
            && let Some(conn) = lock(&self.inner.conn).clone()
        {
            return Ok(conn);
        }
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        Err(LinkError::Unavailable)
    }

    fn settle<T>(
        &self,
        result: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, LinkError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.broken();
                }
                Err(LinkError::Redis(e))
            }
            Err(_) => {
                // A Redis that does not answer within the deadline is treated as gone: a
                // fresh connection is cheap and the old one may be wedged.
                self.inner.errors.fetch_add(1, Ordering::Relaxed);
                self.broken();
                Err(LinkError::Timeout(self.inner.call_timeout))
            }
        }
    }

    /// Drops the connection and starts a reconnection.
    fn broken(&self) {
        if lock(&self.inner.conn).take().is_some() {
            self.inner.up.send_replace(false);
            tracing::warn!(url = %self.inner.url, "redis connection lost");
        }
        self.reconnect();
    }

    /// Starts the reconnection loop unless one is running.
    fn reconnect(&self) {
        if self.inner.stop.is_cancelled() || self.inner.reconnecting.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.reconnecting.store(false, Ordering::Release);
            return;
        };
        let inner = Arc::clone(&self.inner);
        runtime.spawn(async move {
            let mut pause = MIN_ATTEMPT_GAP;
            loop {
                tokio::select! {
                    () = inner.stop.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                    () = inner.kick.notified() => tokio::time::sleep(MIN_ATTEMPT_GAP).await,
                }
                match inner.open(None).await {
                    Ok(conn) => {
                        inner.install(conn);
                        tracing::info!(url = %inner.url, "redis connection restored");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(url = %inner.url, error = %e, "redis reconnection failed");
                        pause = (pause * 2).min(inner.backoff_max);
                    }
                }
            }
            inner.reconnecting.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    fn install(&self, conn: MultiplexedConnection) {
        *lock(&self.conn) = Some(conn);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.up.send_replace(true);
    }

    async fn open(
        &self,
        response_timeout: Option<Duration>,
    ) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.call_timeout))
            .set_response_timeout(response_timeout);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            super::redact("redis://user:secret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
