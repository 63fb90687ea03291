//! When the log reader waits between reads, so that a fan-out reaches each socket in
//! fewer, larger frames.
//!
//! Log entries reach a node a few at a time, and each entry the node applies wakes every
//! local subscriber of its channel, which writes it in a frame of its own: a saturated
//! fan-out across nodes cost a `sendto` per 2 deliveries, against one per 7 on a single
//! node, where deliveries gather in the mailboxes while the sockets catch up. Waiting
//! between reads gathers several publishes per read, and every socket writes them in
//! one frame.
//!
//! How long to wait depends on the fan-out: a publisher that waits for its deliveries
//! before publishing more is capped at its window per wait, so a fixed wait that suits
//! 1,000 subscribers (20 ms) cut the throughput of 100 by 3x, and one that suits 100
//! (3 ms) did nothing for 1,000. What the wait buys, the sockets and their clients
//! spend per delivery, so the wait grows with the fan-out's deliveries on this node:
//! [`WAIT_PER_DELIVERY`] each, up to `read_linger_ms`. (Measuring the rate and climbing
//! towards the best wait was tried: on a shared machine the rate's noise hid the slope.)
//!
//! Whether to wait for a fan-out is [`ReadLoad::lingers`]: only under a fan-out that
//! finds the sockets still busy.
//!
//! Many small publishes (pairs, private channels) pay the same way when the log is
//! busy: each read brings a few, each socket writes about one delivery per frame, and
//! the reader's `XREAD`s cost Redis and the node per call. A read that applied at least
//! [`STEADY_MIN`] publishes waits [`STEADY_WAIT`] before the next: it goes on only while
//! the log brings at least that many per wait (4,000 publishes a second), so traffic
//! below that never waits, and above it a delivery waits at most 2 ms more, in a node
//! that was queueing it anyway. Three nodes, pairs 50 (`bench/cluster.sh`): messages/s
//! +20%, CPU per message -15% against no wait; 4 ms bought no more than 2.
//!
//! A connect that needs the reader cuts any wait short.

use std::time::Duration;

use super::super::memory::Fanout;

/// Local deliveries of one publish from which it counts as a fan-out.
const MIN_FANOUT: usize = 32;
/// The wait per local delivery of a fan-out. Three nodes sharing two cores with the
/// load generator, fan-outs of 100 and 1,000 (`bench/cluster.sh`): 15 us gained little
/// at 1,000, 90 us already capped 100; 40 us tripled both against no wait.
const WAIT_PER_DELIVERY: Duration = Duration::from_micros(40);
/// Publishes applied by one read from which the log counts as busy.
const STEADY_MIN: usize = 8;
/// The wait after a busy read that is not a fan-out's.
const STEADY_WAIT: Duration = Duration::from_millis(2);

/// The publishes of one log read on this node, and its fan-outs: publishes that reached
/// at least [`MIN_FANOUT`] subscribers here.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ReadLoad {
    /// Publishes applied.
    publishes: usize,
    /// Fan-outs.
    fanouts: usize,
    /// Their deliveries here.
    deliveries: usize,
    /// Of those, deliveries queued behind an earlier one the socket had not taken yet.
    behind: usize,
}

impl ReadLoad {
    /// Counts one publish, and its deliveries if it fanned out.
    pub(super) fn add(&mut self, fanout: Fanout) {
        self.publishes += 1;
        if fanout.delivered >= MIN_FANOUT {
            self.fanouts += 1;
            self.deliveries += fanout.delivered;
            self.behind += fanout.behind;
        }
    }

    /// Whether the reader should wait before its next read, after this read (`was`:
    /// whether it waited before it).
    ///
    /// It waits while a fan-out finds the sockets still busy with the previous publish
    /// (a quarter of its deliveries queued behind another), and while each wait gathers
    /// more than one fan-out: traffic that slows down stops it.
    fn lingers(&self, was: bool) -> bool {
        self.fanouts > 0
            && (self.behind.saturating_mul(4) >= self.deliveries || (was && self.fanouts > 1))
    }

    /// The wait this read's fan-outs call for, before the cap.
    fn wait(&self) -> Duration {
        let each = self.deliveries / self.fanouts.max(1);
        WAIT_PER_DELIVERY.saturating_mul(u32::try_from(each).unwrap_or(u32::MAX))
    }
}

/// The reader's waits between reads.
#[derive(Debug)]
pub(super) struct Linger {
    /// The longest wait (`read_linger_ms`).
    max: Duration,
    /// Whether the reader waited before its last read.
    lingering: bool,
}

impl Linger {
    /// Waits of at most `max`.
    pub(super) fn new(max: Duration) -> Self {
        Self {
            max,
            lingering: false,
        }
    }

    /// How long to wait before the next read, after a read that did `load`: a fan-out's
    /// wait, else the busy log's, else none.
    pub(super) fn after_read(&mut self, load: ReadLoad) -> Option<Duration> {
        self.lingering = load.lingers(self.lingering);
        let wait = if self.lingering {
            load.wait()
        } else if load.publishes >= STEADY_MIN {
            STEADY_WAIT
        } else {
            return None;
        };
        Some(wait.min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read's fan-outs: `n` publishes of `each` local deliveries, `behind` of them in
    /// all queued behind an earlier delivery.
    fn load(n: usize, each: usize, behind: usize) -> ReadLoad {
        let mut load = ReadLoad::default();
        for i in 0..n {
            load.add(Fanout {
                delivered: each,
                behind: if i == 0 { behind } else { 0 },
            });
        }
        load
    }

    #[test]
    fn the_reader_lingers_only_while_a_fan_out_keeps_the_sockets_busy() {
        // Paced: every socket had taken the previous message.
        assert!(!load(1, 333, 0).lingers(false));
        // Publishes reaching few subscribers here (pairs, private channels), however busy.
        assert!(!load(30, 1, 1).lingers(false));
        assert!(!load(30, 1, 1).lingers(true));
        // Sockets still busy with the previous fan-out: wait before the next read.
        assert!(load(1, 333, 200).lingers(false));
        assert!(load(1, 100, 25).lingers(false));
        assert!(!load(1, 100, 24).lingers(false));
        // While lingering: go on while a wait gathers more than one fan-out or the
        // sockets are still busy; stop when one fan-out finds them idle (traffic slowed
        // down), or with none.
        assert!(load(3, 333, 0).lingers(true));
        assert!(load(1, 333, 333).lingers(true));
        assert!(!load(1, 333, 0).lingers(true));
        assert!(!ReadLoad::default().lingers(true));
    }

    #[test]
    fn the_wait_grows_with_the_fan_out_up_to_read_linger_ms() {
        let mut linger = Linger::new(Duration::from_millis(25));
        assert_eq!(
            linger.after_read(load(1, 100, 100)),
            Some(WAIT_PER_DELIVERY * 100)
        );
        assert_eq!(
            linger.after_read(load(4, 333, 333)),
            Some(WAIT_PER_DELIVERY * 333)
        );
        assert_eq!(
            linger.after_read(load(2, 10_000, 10_000)),
            Some(Duration::from_millis(25))
        );
        // Small publishes in the same read do not count.
        let mut mixed = load(1, 200, 200);
        mixed.add(Fanout {
            delivered: 1,
            behind: 1,
        });
        assert_eq!(linger.after_read(mixed), Some(WAIT_PER_DELIVERY * 200));
    }

    #[test]
    fn a_busy_log_of_small_publishes_waits_a_little() {
        let mut linger = Linger::new(Duration::from_millis(25));
        // A few publishes per read: sparse traffic, no wait.
        assert_eq!(linger.after_read(load(STEADY_MIN - 1, 1, 1)), None);
        assert_eq!(linger.after_read(load(STEADY_MIN, 1, 1)), Some(STEADY_WAIT));
        // Publishes that reached no one here count as well: the log is busy all the same.
        assert_eq!(linger.after_read(load(40, 0, 0)), Some(STEADY_WAIT));
        // A fan-out's wait wins; the cap holds for both.
        assert_eq!(
            linger.after_read(load(STEADY_MIN, 333, 333 * STEADY_MIN)),
            Some(WAIT_PER_DELIVERY * 333)
        );
        let mut capped = Linger::new(Duration::from_millis(1));
        assert_eq!(
            capped.after_read(load(STEADY_MIN, 1, 1)),
            Some(Duration::from_millis(1))
        );
    }

    #[test]
    fn traffic_that_stops_ends_the_waits() {
        let mut linger = Linger::new(Duration::from_millis(25));
        assert!(linger.after_read(load(1, 333, 333)).is_some());
        assert!(linger.after_read(load(3, 333, 0)).is_some());
        assert_eq!(linger.after_read(load(1, 333, 0)), None);
        assert_eq!(linger.after_read(ReadLoad::default()), None);
        // And it starts again only with busy sockets.
        assert_eq!(linger.after_read(load(3, 333, 0)), None);
        assert!(linger.after_read(load(1, 333, 333)).is_some());
    }
}
