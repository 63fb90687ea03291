//! Positions in a shared log: Redis stream ids (`<ms>-<seq>`), ordered as numbers.
//!
//! Clustered engines stamp every envelope with its position so a claim can say exactly
//! which messages a client has had; ordering by `(ms, seq)` is the stream's own order.

use std::fmt;
use std::str::FromStr;

/// A stream id: totally ordered, `0-0` is before every entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LogId {
    ms: u64,
    seq: u64,
}

impl LogId {
    /// Before every entry.
    pub(crate) const ZERO: LogId = LogId { ms: 0, seq: 0 };

    /// The greatest id before this one (`ZERO` stays `ZERO`): reading the log after it
    /// starts at this entry.
    pub(crate) fn before(self) -> LogId {
        match (self.ms, self.seq) {
            (ms, seq) if seq > 0 => LogId { ms, seq: seq - 1 },
            (0, _) => LogId::ZERO,
            (ms, _) => LogId {
                ms: ms - 1,
                seq: u64::MAX,
            },
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Not a stream id.
#[derive(Debug, thiserror::Error)]
#[error("not a stream id: {0:?}")]
pub(crate) struct BadLogId(String);

impl FromStr for LogId {
    type Err = BadLogId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadLogId(s.to_owned());
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(LogId {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_print_and_order_as_numbers() {
        let a: LogId = "1700000000000-9".parse().unwrap();
        let b: LogId = "1700000000000-10".parse().unwrap();
        let c: LogId = "1700000000001-0".parse().unwrap();
        assert!(LogId::ZERO < a && a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-10");
        assert_eq!("5".parse::<LogId>().unwrap().to_string(), "5-0");
        assert!("x-1".parse::<LogId>().is_err());
        assert!("".parse::<LogId>().is_err());
    }

    #[test]
    fn before_is_the_greatest_smaller_id() {
        let id = |s: &str| s.parse::<LogId>().unwrap();
        assert_eq!(id("7-3").before(), id("7-2"));
        assert_eq!(id("7-0").before().to_string(), format!("6-{}", u64::MAX));
        assert!(id("6-99999") < id("7-0").before());
        assert_eq!(LogId::ZERO.before(), LogId::ZERO);
    }
}
