//! Wall-clock time as the protocols show it: milliseconds since the Unix epoch
//! (`connectedAt`, `joinedAt`, `sentAt`, `serverInformation.currentTime`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
