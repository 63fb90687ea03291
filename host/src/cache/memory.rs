//! The cache of a single node: a map behind one mutex, swept of expired entries every
//! so many writes (reads skip them), so a write-only workload stays bounded.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Cache, CacheError};
use crate::bayeux::BoxFuture;

/// Entries between sweeps of expired keys; keeps a write-only workload bounded.
const SWEEP_EVERY: usize = 1024;

#[derive(Debug)]
struct Entry {
    value: Value,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    writes: usize,
}

/// An in-memory cache shared by every action of this process.
#[derive(Debug, Default)]
pub struct MemoryCache {
    inner: Mutex<Inner>,
}

impl MemoryCache {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Reads a live entry.
    pub fn get_now(&self, key: &str) -> Option<Value> {
        self.inner()
            .entries
            .get(key)
            .filter(|e| e.live(Instant::now()))
            .map(|e| e.value.clone())
    }

    /// Writes an entry, expiring after `ttl` if given.
    pub fn set_now(&self, key: &str, value: Value, ttl: Option<Duration>) {
        let mut inner = self.inner();
        let now = Instant::now();
        inner.writes += 1;
        if inner.writes.is_multiple_of(SWEEP_EVERY) {
            inner.entries.retain(|_, e| e.live(now));
        }
        inner.entries.insert(
            key.to_owned(),
            Entry {
                value,
                expires: ttl.map(|ttl| now + ttl),
            },
        );
    }

    /// Deletes an entry; `true` if a live one existed.
    pub fn delete_now(&self, key: &str) -> bool {
        self.inner()
            .entries
            .remove(key)
            .is_some_and(|e| e.live(Instant::now()))
    }

    /// Number of live entries.
    pub fn len_now(&self) -> usize {
        let now = Instant::now();
        self.inner()
            .entries
            .values()
            .filter(|e| e.live(now))
            .count()
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl Cache for MemoryCache {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Value>, CacheError>> {
        ready(Ok(self.get_now(key)))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        self.set_now(key, value, ttl);
        ready(Ok(()))
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, CacheError>> {
        ready(Ok(self.delete_now(key)))
    }

    fn count(&self) -> BoxFuture<'_, Result<usize, CacheError>> {
        ready(Ok(self.len_now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        super::super::conformance::run_all(&MemoryCache::default()).await;
    }
}
