//! Per-action counters for the `status` action and `/metrics`.
//!
//! Each action name has one [`ActionMeter`], made when an action of that name is first
//! registered and kept across plugin reloads (the counts are per name, as actionhero's
//! are). The registry hands it out with the action, so recording a call is a few atomic
//! updates: no lock, no lookup by name, no label hashing on the request path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::metrics::ActionSeries;

/// Counters of one action.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionCounters {
    /// Calls that returned a result.
    pub succeeded: u64,
    /// Calls that returned an error (including panics).
    pub failed: u64,
    /// Total time spent, in milliseconds.
    pub total_ms: u64,
}

/// The transports whose calls are told apart in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `/api` over HTTP.
    Web,
    /// The actionhero websocket server.
    WebSocket,
    /// Anything else (a connection type a plugin made up).
    Other,
}

impl Transport {
    /// The transport of a connection type: the two the host makes, else `Other` (the
    /// type comes from the transport, but a label set must stay bounded).
    pub fn of(kind: &str) -> Self {
        match kind {
            "web" => Self::Web,
            "webSocket" => Self::WebSocket,
            _ => Self::Other,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::WebSocket => "webSocket",
            Self::Other => "other",
        }
    }
}

/// Everything counted about one action name.
#[derive(Debug)]
pub struct ActionMeter {
    name: String,
    succeeded: AtomicU64,
    failed: AtomicU64,
    total_ms: AtomicU64,
    /// The metrics series per transport, made on the first call over it.
    series: [OnceLock<ActionSeries>; 3],
}

impl ActionMeter {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            total_ms: AtomicU64::new(0),
            series: Default::default(),
        }
    }

    /// Records one call over `transport`.
    pub fn record(&self, transport: Transport, ok: bool, elapsed: Duration) {
        let outcome = if ok { &self.succeeded } else { &self.failed };
        outcome.fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.total_ms.fetch_add(ms, Ordering::Relaxed);
        let slot = &self.series[transport as usize];
        slot.get_or_init(|| ActionSeries::new(&self.name, transport.label()))
            .record(ok, elapsed);
    }

    fn counters(&self) -> ActionCounters {
        ActionCounters {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            total_ms: self.total_ms.load(Ordering::Relaxed),
        }
    }
}

/// The meters of every action name registered so far.
#[derive(Debug, Default)]
pub struct Stats {
    // Locked when actions are registered and when `status` reads, never per call.
    by_action: Mutex<HashMap<String, Arc<ActionMeter>>>,
}

impl Stats {
    /// The meter of `action`, made on first use.
    pub fn meter(&self, action: &str) -> Arc<ActionMeter> {
        let mut map = crate::sync::lock(&self.by_action);
        match map.get(action) {
            Some(meter) => Arc::clone(meter),
            None => Arc::clone(
                map.entry(action.to_owned())
                    .or_insert_with(|| Arc::new(ActionMeter::new(action))),
            ),
        }
    }

    /// A copy of the counters of every action called at least once.
    pub fn snapshot(&self) -> HashMap<String, ActionCounters> {
        crate::sync::lock(&self.by_action)
            .iter()
            .map(|(name, meter)| (name.clone(), meter.counters()))
            .filter(|(_, c)| c.succeeded + c.failed > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_one_meter_and_status_shows_called_actions_only() {
        let stats = Stats::default();
        let first = stats.meter("a");
        assert!(Arc::ptr_eq(&first, &stats.meter("a")));
        let _never_called = stats.meter("b");
        first.record(Transport::Web, true, Duration::from_millis(3));
        first.record(Transport::WebSocket, false, Duration::from_millis(2));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(
            snapshot["a"],
            ActionCounters {
                succeeded: 1,
                failed: 1,
                total_ms: 5
            }
        );
    }
}
