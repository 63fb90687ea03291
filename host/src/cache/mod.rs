//! The key/value cache behind the `cache` host service: JSON values with an optional
//! expiry, in memory ([`MemoryCache`]) or shared by a cluster in Redis ([`RedisCache`]).
//! Both pass one conformance suite; [`crate::backends`] picks one.

mod memory;
mod redis;

pub use memory::MemoryCache;
pub use redis::RedisCache;

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::bayeux::BoxFuture;
use crate::cluster::LinkError;

/// A cache operation failed (the backend is unreachable).
#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(#[from] LinkError);

/// A key/value store with expiry.
///
/// Guarantees: a value set with a TTL is gone once the TTL has passed and is readable
/// until then; reading does not change the TTL; `delete` reports whether a live value
/// was there.
pub trait Cache: Send + Sync + fmt::Debug {
    /// Reads a live value.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Value>, CacheError>>;
    /// Writes a value, expiring after `ttl` if given (a write replaces the TTL).
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>>;
    /// Deletes a value; `true` if a live one existed.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>>;
    /// Number of live values (for `status`; a clustered cache may count approximately).
    fn count(&self) -> BoxFuture<'_, Result<usize, CacheError>>;
}

#[cfg(test)]
pub(crate) mod conformance {
    //! One suite every cache passes.
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use serde_json::json;

    use super::Cache;

    /// Runs every case on an empty cache.
    pub(crate) async fn run_all(cache: &dyn Cache) {
        assert_eq!(cache.get("k").await.unwrap(), None);
        cache.set("k", json!({"v": [1, 2]}), None).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(json!({"v": [1, 2]})));
        cache.set("k", json!("again"), None).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap(), Some(json!("again")));
        assert_eq!(cache.count().await.unwrap(), 1);
        assert!(cache.delete("k").await.unwrap());
        assert!(!cache.delete("k").await.unwrap());
        assert_eq!(cache.get("k").await.unwrap(), None);

        // Expiry is exact, and reads do not reset it.
        cache
            .set("short", json!(1), Some(Duration::from_millis(300)))
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(cache.get("short").await.unwrap(), Some(json!(1)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cache.get("short").await.unwrap(), None, "expired on time");
        assert!(
            !cache.delete("short").await.unwrap(),
            "nothing live to delete"
        );

        // A write replaces the TTL; no TTL means for ever.
        cache
            .set("t", json!(1), Some(Duration::from_millis(100)))
            .await
            .unwrap();
        cache.set("t", json!(2), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(cache.get("t").await.unwrap(), Some(json!(2)));
        assert!(cache.delete("t").await.unwrap());
        assert_eq!(cache.count().await.unwrap(), 0);
    }
}
