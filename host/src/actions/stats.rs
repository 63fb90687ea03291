//! Per-action counters for the `status` action and `/metrics`.
//!
//! One map behind one short lock, updated once per call by the processor; a snapshot
//! copies it for `status`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Counters of one action.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionCounters {
    /// Calls that returned a result.
    pub succeeded: u64,
    /// Calls that returned an error (including panics).
    pub failed: u64,
    /// Total time spent, in milliseconds.
    pub total_ms: u64,
}

/// Counters of every action called so far.
#[derive(Debug, Default)]
pub struct Stats {
    // A short critical section per call; contention is far below the cost of a call.
    by_action: Mutex<HashMap<String, ActionCounters>>,
}

impl Stats {
    /// Records one call.
    pub fn record(&self, action: &str, ok: bool, elapsed: Duration) {
        let mut map = crate::sync::lock(&self.by_action);
        let entry = match map.get_mut(action) {
            Some(entry) => entry,
            None => map.entry(action.to_owned()).or_default(),
        };
        if ok {
            entry.succeeded += 1;
        } else {
            entry.failed += 1;
        }
        entry.total_ms += u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> HashMap<String, ActionCounters> {
        crate::sync::lock(&self.by_action).clone()
    }
}
