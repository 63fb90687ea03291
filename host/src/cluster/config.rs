//! The `[cluster]` settings: how a node shares state with its peers through Redis.
//!
//! Read with the rest of the configuration (`[cluster]` in the file,
//! `HERO_CLUSTER__<KEY>`), used only when `redis` is set.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of a clustered node (used only with `redis`); every field has a default.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Prefix of every Redis key: nodes with the same Redis and namespace are one cluster.
    pub namespace: String,
    /// How often a node renews its registration and checks on Redis, in ms.
    pub heartbeat_ms: u64,
    /// A node not heard of for this long is dead, in ms.
    pub node_timeout_ms: u64,
    /// Deadline of every Redis call, in ms; past it the request fails with a clear error.
    pub call_timeout_ms: u64,
    /// How long start-up waits for Redis, in ms (0: exit at once if it is unreachable).
    pub connect_wait_ms: u64,
    /// Longest pause between reconnection attempts, in ms.
    pub reconnect_max_ms: u64,
    /// Entries the shared Bayeux log keeps (approximately); a client further behind
    /// than that has lost messages and must handshake again.
    pub log_max_entries: usize,
    /// Recent log entries each node keeps in memory to catch clients up without Redis.
    pub log_cache_entries: usize,
    /// How often a node saves the positions of the push clients (websockets) it serves,
    /// in ms: what a client may see twice if its node dies.
    pub position_flush_ms: u64,
    /// The longest the log reader waits between reads of a busy log, in ms, so that
    /// deliveries reach each socket in fewer, larger frames (the wait grows with a
    /// fan-out's subscribers on the node; 0: never wait).
    pub read_linger_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            namespace: "hero".to_owned(),
            heartbeat_ms: 1_000,
            node_timeout_ms: 10_000,
            call_timeout_ms: 1_000,
            connect_wait_ms: 0,
            reconnect_max_ms: 2_000,
            log_max_entries: 100_000,
            log_cache_entries: 10_000,
            position_flush_ms: 1_000,
            read_linger_ms: 25,
        }
    }
}

impl ClusterConfig {
    /// The deadline of one Redis call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms.max(1))
    }

    /// The longest wait between log reads after a fan-out (`None`: off).
    pub fn read_linger(&self) -> Option<Duration> {
        (self.read_linger_ms > 0).then(|| Duration::from_millis(self.read_linger_ms))
    }
}
