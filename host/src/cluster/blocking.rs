//! A connection of its own for blocking reads (`XREAD BLOCK`), which reads each reply
//! in one pass ([`super::resp`]) once it has all of it.
//!
//! The log reader is the busiest Redis client of a node: every node reads every log
//! entry. On the `redis` crate's connection its replies went through the crate's
//! general, resumable parser, the largest single cost of a node under cross-node load.
//! This connection does only what the reader needs: connect (TCP or Unix socket, as the
//! URL says), authenticate and select the database as the URL says, then one command at
//! a time, each answer within the deadline. It speaks RESP2 whatever the URL asks for.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::LinkError;
use super::resp::{self, Reply, RespError};

/// Bytes read at a time (a reply grows the buffer as it needs).
const READ_CHUNK: usize = 64 * 1024;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A dedicated Redis connection for blocking reads.
pub struct BlockingConn {
    io: Box<dyn Io>,
    /// Bytes read and not yet parsed.
    buf: Vec<u8>,
    /// The deadline of one command (its block time included).
    response_timeout: Duration,
}

impl std::fmt::Debug for BlockingConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConn")
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl From<RespError> for LinkError {
    fn from(e: RespError) -> Self {
        LinkError::Reply(e.to_string())
    }
}

impl BlockingConn {
    /// Connects as `info` says, within `connect_timeout`; each later command must be
    /// answered within `response_timeout`.
    ///
    /// # Errors
    /// Redis cannot be reached or refuses the credentials, or the URL's scheme needs a
    /// transport this build lacks (TLS).
    pub(super) async fn open(
        info: &ConnectionInfo,
        connect_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, LinkError> {
        let connect = async {
            let io: Box<dyn Io> = match info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                    tcp.set_nodelay(true)?;
                    Box::new(tcp)
                }
                ConnectionAddr::Unix(path) => Box::new(UnixStream::connect(path).await?),
                _ => {
                    return Err(LinkError::Reply(
                        "this build has no TLS for redis connections".to_owned(),
                    ));
                }
            };
            let mut conn = Self {
                io,
                buf: Vec::with_capacity(READ_CHUNK),
                response_timeout: connect_timeout,
            };
            let settings = info.redis_settings();
            if let Some(password) = settings.password() {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = settings.username() {
                    auth.arg(user);
                }
                conn.query(auth.arg(password)).await?;
            }
            if settings.db() != 0 {
                conn.query(redis::cmd("SELECT").arg(settings.db())).await?;
            }
            Ok(conn)
        };
        let mut conn = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| LinkError::Timeout(connect_timeout))??;
        conn.response_timeout = response_timeout;
        Ok(conn)
    }

    /// Sends `cmd` and waits for its reply, within the deadline.
    ///
    /// # Errors
    /// No reply within the deadline, a broken connection, or an error reply; after any
    /// of them the connection is not to be used again (a late reply may still come).
    pub async fn query(&mut self, cmd: &redis::Cmd) -> Result<Value, LinkError> {
        self.query_with(cmd, |r| r.value()).await
    }

    /// As [`BlockingConn::query`], the reply read by `read`, which must read all of it.
    /// `read` may be called twice: once on the first bytes (most replies come in one
    /// read) and, if they end early, once more when the whole reply is here.
    ///
    /// # Errors
    /// As [`BlockingConn::query`], and whatever `read` refuses.
    pub(crate) async fn query_with<T>(
        &mut self,
        cmd: &redis::Cmd,
        read: impl FnMut(&mut Reply<'_>) -> Result<T, RespError>,
    ) -> Result<T, LinkError> {
        let deadline = self.response_timeout;
        tokio::time::timeout(deadline, self.exchange(&cmd.get_packed_command(), read))
            .await
            .map_err(|_| LinkError::Timeout(deadline))?
    }

    async fn exchange<T>(
        &mut self,
        packed: &[u8],
        mut read: impl FnMut(&mut Reply<'_>) -> Result<T, RespError>,
    ) -> Result<T, LinkError> {
        self.io.write_all(packed).await?;
        // Read at once, until a read ends early; then only walked until it is whole.
        let mut split = false;
        loop {
            if !self.buf.is_empty() && (!split || resp::complete(&self.buf)?.is_some()) {
                let mut reply = Reply::new(&self.buf);
                match read(&mut reply) {
                    Err(RespError::Incomplete) if !split => split = true,
                    got => {
                        let used = reply.used();
                        self.buf.drain(..used);
                        return Ok(got?);
                    }
                }
            }
            self.buf.reserve(READ_CHUNK);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Err(LinkError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use redis::Value;

    use crate::cluster::RedisLink;
    use crate::testing::RedisServer;

    #[tokio::test]
    async fn a_reply_in_many_reads_is_read_again_only_once_it_is_whole() {
        let redis = RedisServer::start();
        let second = Duration::from_secs(1);
        let link = RedisLink::connect(&redis.url(), second, second, Duration::ZERO)
            .await
            .unwrap();
        let mut conn = link.dedicated(Duration::from_secs(10)).await.unwrap();
        // Far more than one read takes (64 KiB at first).
        let big = "x".repeat(3 << 20);
        conn.query(redis::cmd("SET").arg("k").arg(&big))
            .await
            .unwrap();
        let mut reads = 0;
        let got = conn
            .query_with(redis::cmd("GET").arg("k"), |r| {
                reads += 1;
                Ok(r.bulk()?.map(|b| b == big.as_bytes()))
            })
            .await
            .unwrap();
        assert_eq!(got, Some(true));
        assert_eq!(reads, 2, "read once early, once whole");
        // What it took was that reply and no more: the next reply is the next command's.
        let pong = conn.query(&redis::cmd("PING")).await.unwrap();
        assert_eq!(pong, Value::SimpleString("PONG".into()));
        let err = conn.query(&redis::cmd("NOSUCHCOMMAND")).await.unwrap_err();
        assert!(err.to_string().contains("unknown command"), "{err}");
    }
}
