//! The cluster's cache in Redis: `<ns>:cache:<key>` holds the JSON; a TTL is Redis's own
//! (`SET ... PX`), so it is exact, shared by every node, and untouched by reads.

use std::time::Duration;

use serde_json::Value;

use super::{Cache, CacheError};
use crate::bayeux::BoxFuture;
use crate::cluster::RedisLink;

/// Most keys `count` counts (it scans; `status` only needs an idea).
const COUNT_MAX: usize = 100_000;

/// A cache shared by every node of a namespace.
#[derive(Debug)]
pub struct RedisCache {
    link: RedisLink,
    prefix: String,
}

impl RedisCache {
    /// A cache in `namespace` on `link`.
    pub fn new(link: RedisLink, namespace: &str) -> Self {
        Self {
            link,
            prefix: format!("{namespace}:cache:"),
        }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl Cache for RedisCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Value>, CacheError>> {
        Box::pin(async move {
            let text: Option<String> = self
                .link
                .query(redis::cmd("GET").arg(self.key(key)))
                .await?;
            // Only this cache writes these keys, always as JSON; anything else is absent.
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(key)).arg(value.to_string());
            if let Some(ttl) = ttl {
                cmd.arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            }
            self.link.query::<()>(&cmd).await?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
        Box::pin(async move {
            let n: i64 = self
                .link
                .query(redis::cmd("DEL").arg(self.key(key)))
                .await?;
            Ok(n == 1)
        })
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, CacheError>> {
        Box::pin(async move {
            let mut cursor = 0u64;
            let mut count = 0usize;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .link
                    .query(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(format!("{}*", self.prefix))
                            .arg("COUNT")
                            .arg(1000),
                    )
                    .await?;
                count += keys.len();
                cursor = next;
                if cursor == 0 || count >= COUNT_MAX {
                    return Ok(count);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::RedisServer;

    #[tokio::test]
    async fn conformance() {
        let redis = RedisServer::start();
        let link = redis.link().await;
        super::super::conformance::run_all(&RedisCache::new(link, "cachetest")).await;
    }
}
