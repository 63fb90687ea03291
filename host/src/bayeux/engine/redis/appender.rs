//! The node's publishes to the log, sent to Redis in batches when they come faster than
//! Redis answers: one pipeline of `XADD`s for the publishes that queued meanwhile.
//!
//! Sent one by one, each publish cost the node a `writev` and Redis a `read` of its own
//! (tokio runs the connection's writer as soon as one command is queued). So a publish
//! that finds another still waiting for Redis is queued for one task, which lets every
//! other task that is ready run first (`yield_now` puts it behind them and the I/O
//! driver), takes everything they queued, and sends it as one pipeline; one batch is in
//! flight at a time, so a batch grows with the load (group commit).
//!
//! A publish that finds none in flight goes straight to the connection: a lone
//! publisher that waits for each publish (a fan-out's) would otherwise pay two task
//! hops and the yield per publish, which halved fan-out 100x1000 on three nodes.
//!
//! A run of publishes (one client's burst, see [`Appender::append`]) is one unit: its
//! entries go in one pipeline, in order, whichever way it is sent.
//!
//! Order: everything goes over one connection, in the order it was handed to it; a
//! publisher that waits for its publish (or run) before the next keeps its order in
//! the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::super::EngineError;
use super::log;
use crate::cluster::RedisLink;

/// Entries the batching task gathers into one pipeline before it sends (a run is never
/// split, so one pipeline may hold more).
const MAX_BATCH: usize = 256;

/// The result a publisher waits for.
type Done = oneshot::Sender<Result<(), EngineError>>;

/// Sends packed publish entries, directly or through the batching task.
pub(super) struct Appender {
    queue: mpsc::UnboundedSender<(Vec<String>, Done)>,
    target: Arc<Target>,
    /// Appends begun and not finished (either way).
    in_flight: Arc<AtomicUsize>,
}

/// Counts one append as in flight while it lives (a dropped publish included).
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where the batching task appends, and how.
pub(super) struct Target {
    /// The link the pipelines go over.
    pub(super) link: RedisLink,
    /// The log's key.
    pub(super) log: String,
    /// The approximate `MAXLEN` the log is trimmed to.
    pub(super) maxlen: usize,
}

impl Appender {
    /// Starts the batching task on `tasks`; it ends at `stop` or when this is dropped.
    pub(super) fn start(target: Target, tasks: &TaskTracker, stop: CancellationToken) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let target = Arc::new(target);
        tasks.spawn(run(Arc::clone(&target), rx, stop));
        Self {
            queue,
            target,
            in_flight: Arc::default(),
        }
    }

    /// Appends packed publish entries (field `P`), in order, once Redis has them all.
    ///
    /// # Errors
    /// Redis failed or timed out (the whole batch fails alike), or the engine is closing.
    pub(super) async fn append(&self, packed: Vec<String>) -> Result<(), EngineError> {
        if packed.is_empty() {
            return Ok(());
        }
        let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let _in_flight = InFlight(Arc::clone(&self.in_flight));
        if alone {
            return self.target.send(&packed).await;
        }
        let closing = || EngineError::Closed;
        let (done, result) = oneshot::channel();
        self.queue.send((packed, done)).map_err(|_| closing())?;
        result.await.map_err(|_| closing())?
    }
}

impl Target {
    /// Appends `entries` in one pipeline.
    async fn send(&self, entries: &[String]) -> Result<(), EngineError> {
        let mut pipe = redis::pipe();
        for packed in entries {
            let mut xadd = log::xadd(&self.log, self.maxlen);
            xadd.arg("P").arg(packed);
            pipe.add_command(xadd).ignore();
        }
        self.link
            .pipe::<()>(&pipe)
            .await
            .map_err(|e| EngineError::Backend(e.to_string()))
    }
}

/// The batching task.
async fn run(
    target: Arc<Target>,
    mut rx: mpsc::UnboundedReceiver<(Vec<String>, Done)>,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    let mut entries = Vec::new();
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            next = rx.recv() => match next {
                Some(first) => first,
                None => return,
            },
        };
        let mut gathered = first.0.len();
        batch.push(first);
        tokio::task::yield_now().await;
        while gathered < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => {
                    gathered += next.0.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        for (run, _) in &mut batch {
            entries.append(run);
        }
        let result = tokio::select! {
            () = stop.cancelled() => return,
            r = target.send(&entries) => r,
        };
        entries.clear();
        for (_, done) in batch.drain(..) {
            // A publisher that gave up waiting is no one's concern here.
            let _ = done.send(result.clone());
        }
    }
}
