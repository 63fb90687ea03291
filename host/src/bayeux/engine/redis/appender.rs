//! The node's publishes to the log, sent to Redis in batches: one pipeline of `XADD`s
//! for every publish that is ready at the same moment.
//!
//! Sent one by one, each publish cost the node a `writev` and Redis a `read` of its own
//! (tokio runs the connection's writer as soon as one command is queued). Here one task
//! takes a publish, lets every other task that is ready run first (`yield_now` puts it
//! behind them and behind the I/O driver), takes everything they queued, and sends it as
//! one pipeline. One batch is in flight at a time, so a batch grows with the load (group
//! commit): under light load it is one publish and waits for nothing.
//!
//! Order: the batches go out in the order publishes were queued, over one connection;
//! a publisher that waits for its publish before the next (as every Bayeux publish
//! does) keeps its order in the log.

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::super::EngineError;
use crate::cluster::RedisLink;

/// Publishes sent in one pipeline at most.
const MAX_BATCH: usize = 256;

/// The result a publisher waits for.
type Done = oneshot::Sender<Result<(), EngineError>>;

/// Queues packed publish entries for the batching task.
pub(super) struct Appender {
    queue: mpsc::UnboundedSender<(String, Done)>,
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
        tasks.spawn(run(target, rx, stop));
        Self { queue }
    }

    /// Appends one packed publish entry (field `P`), once Redis has it.
    ///
    /// # Errors
    /// Redis failed or timed out (the whole batch fails alike), or the engine is closing.
    pub(super) async fn append(&self, packed: String) -> Result<(), EngineError> {
        let closing = || EngineError::Backend("the engine is closing".to_owned());
        let (done, result) = oneshot::channel();
        self.queue.send((packed, done)).map_err(|_| closing())?;
        result.await.map_err(|_| closing())?
    }
}

/// The batching task.
async fn run(
    target: Target,
    mut rx: mpsc::UnboundedReceiver<(String, Done)>,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            next = rx.recv() => match next {
                Some(first) => first,
                None => return,
            },
        };
        batch.push(first);
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for (packed, _) in &batch {
            pipe.cmd("XADD")
                .arg(&target.log)
                .arg("MAXLEN")
                .arg("~")
                .arg(target.maxlen)
                .arg("*")
                .arg("P")
                .arg(packed)
                .ignore();
        }
        let result = tokio::select! {
            () = stop.cancelled() => return,
            r = target.link.pipe::<()>(&pipe) => r,
        };
        for (_, done) in batch.drain(..) {
            // A publisher that gave up waiting is no one's concern here.
            let _ = done.send(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(EngineError::Backend(e.to_string())),
            });
        }
    }
}
