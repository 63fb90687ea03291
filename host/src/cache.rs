//! The key/value cache behind the `cache` host service: JSON values with expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

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
    /// Reads a live entry.
    pub fn get(&self, key: &str) -> Option<Value> {
        let inner = self.inner.lock().ok()?;
        inner
            .entries
            .get(key)
            .filter(|e| e.live(Instant::now()))
            .map(|e| e.value.clone())
    }

    /// Writes an entry, expiring after `ttl` if given.
    pub fn set(&self, key: &str, value: Value, ttl: Option<Duration>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        inner.writes += 1;
        if inner.writes % SWEEP_EVERY == 0 {
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
    pub fn delete(&self, key: &str) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        inner
            .entries
            .remove(key)
            .is_some_and(|e| e.live(Instant::now()))
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.inner
            .lock()
            .map(|i| i.entries.values().filter(|e| e.live(now)).count())
            .unwrap_or(0)
    }

    /// Whether no live entry exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_get_delete_and_expiry() {
        let cache = MemoryCache::default();
        cache.set("k", json!("v"), None);
        assert_eq!(cache.get("k"), Some(json!("v")));
        assert!(cache.delete("k"));
        assert!(!cache.delete("k"));
        cache.set("short", json!(1), Some(Duration::from_millis(0)));
        assert_eq!(cache.get("short"), None);
        assert!(cache.is_empty());
    }
}
