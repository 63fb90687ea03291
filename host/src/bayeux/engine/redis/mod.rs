//! The Redis engine: every node with the same Redis and namespace is one Bayeux server.
//!
//! # Design
//!
//! - **One ordered log** (a Redis stream) holds every change nodes must see in order:
//!   publishes (the delivery JSON, serialised once), subscription changes, claims and
//!   destroys. A publish is one `XADD`, whatever the number of subscribers; the
//!   publishes ready at the same moment on a node go in one pipeline (see [`appender`]),
//!   and a client's burst of publishes ([`PubSubEngine::publish_run`]) is one unit in it.
//! - **Every node reads the whole log once** (`XREAD BLOCK` on a connection of its own)
//!   and feeds each entry to a per-node [`MemoryEngine`] that holds only the sessions the
//!   node is serving right now (a held connect or a push socket): matching, exactly one
//!   copy per publish, the mailbox bound and the slow-consumer rule are the memory
//!   engine's. The node also keeps the most recent entries in memory. Under a sustained
//!   fan-out, or a busy log of small publishes, the reader waits (up to `read_linger_ms`)
//!   between reads, so each socket sends several deliveries per frame (see [`linger`]).
//! - **One read position per session** (in its Redis hash). A connect *claims* the
//!   session: one script bumps its claim number, reads its position and subscriptions,
//!   and logs the claim. The claiming node replays the log from that position for this
//!   session alone (from memory, or from Redis for a client that was away long), then
//!   serves it live. A long-poll reply advances the position with a compare-and-set on
//!   the claim number right before it is written; a newer claim (a connect on any node)
//!   makes that fail, and the superseded node sends its reply without deliveries: the
//!   newer claim delivers them. Push sockets advance the position in memory and save it
//!   when they end, and every `position_flush_ms` in one command per node.
//! - **Liveness**: connects ping a sorted set scored by Redis's clock; one node at a time
//!   (a lock with a TTL) collects sessions not pinged within their TTL. Destroys are log
//!   entries, so the node serving a session closes it, and every node runs its
//!   `session_destroyed` handler, wherever the destroy happened.
//! - **Redis away**: every call has a deadline and fails with [`EngineError::Backend`];
//!   the link reconnects with capped backoff. A Redis that comes back empty (its epoch key
//!   is gone) makes every node drop the sessions it served: their clients get `401` and
//!   handshake again, as faye clients do.
//!
//! # Delivery guarantee
//!
//! A message published after a subscribe was answered reaches that client **once, in
//! publish order**, on whichever nodes it connects, while its session lives:
//! - a long-poll (or JSONP) reply carries a message only if its claim was still current
//!   when the reply was committed; a reply lost on the wire after that is lost (as with
//!   any Bayeux server: the protocol has no acknowledgement);
//! - a websocket that closes saves its position, so the next connect (on any node) goes
//!   on from there; if a **node dies** mid-delivery, its push clients go on from the
//!   position last saved, so they may see again at most `position_flush_ms` worth of
//!   messages (never fewer); long-polling clients lose nothing;
//! - a client further behind than the log keeps (`log_max_entries`), or with more than
//!   `max_queue` messages waiting, is destroyed (slow consumer): it gets `401` and starts
//!   over, never a silent gap.

mod appender;
mod linger;
mod log;
mod scripts;

use crate::sync::lock;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use redis::Value;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::appender::{Appender, Target};
use self::linger::{Linger, ReadLoad};
use self::log::{Entry, LogEntry, Why};
use self::scripts::Keys;
use super::memory::Fanout;
use super::{
    BoxFuture, ClaimKind, Engine, EngineError, EngineHandler, Envelope, LocalLoad, LogId, Mailbox,
    MailboxEngine, MemoryEngine, MemoryEngineConfig, PubSubEngine, PublishOptions, QuotaExceeded,
    SessionEngine, SessionInfo, SessionOptions, SubscribeOptions, SubscribeOutcome, new_client_id,
};
use crate::bayeux::message::Message;
use crate::cluster::value::{int, list, text};
use crate::cluster::{ClusterConfig, LinkError, RedisLink};

/// How long a cached session lookup is trusted before asking Redis again (destroys
/// seen in the log drop entries sooner).
const SESSION_CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries read from the log per `XREAD`.
const READ_BATCH: usize = 512;
/// How long one `XREAD` blocks.
const READ_BLOCK: Duration = Duration::from_secs(1);
/// Expired sessions collected per pass.
const COLLECT_LIMIT: usize = 200;
/// Settings of the Redis engine.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisEngineConfig {
    /// Lifetime of a session without a ping.
    pub session_ttl: Duration,
    /// Messages that may wait for one client.
    pub max_queue: usize,
    /// Namespace, timeouts and log sizes.
    pub cluster: ClusterConfig,
}

impl RedisEngineConfig {
    /// A config with the given TTL, queue bound and cluster settings.
    pub fn new(session_ttl: Duration, max_queue: usize, cluster: ClusterConfig) -> Self {
        Self {
            session_ttl,
            max_queue,
            cluster,
        }
    }
}

/// The Redis engine; clone-cheap.
#[derive(Clone)]
pub struct RedisEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("url", &self.shared.link.url())
            .field("namespace", &self.shared.config.cluster.namespace)
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: RedisEngineConfig,
    link: RedisLink,
    keys: Keys,
    /// This node's id (random per process).
    node: String,
    /// The sessions this node serves now, and its in-process clients.
    local: MemoryEngine,
    /// Ids of in-process clients (they live only here, never in Redis).
    in_process: Mutex<HashSet<String>>,
    state: Mutex<NodeState>,
    /// The reader's position, for claims waiting to be caught up.
    head: watch::Sender<LogId>,
    /// Notified when a claim waits for the reader: it cuts a linger short.
    catch_up: Arc<Notify>,
    /// Network sessions known to exist (`Some`) or to be destroyed (`None`: a lookup
    /// that raced the destroy must not cache the session again), with when.
    cache: Mutex<HashMap<String, (Option<SessionInfo>, Instant)>>,
    /// The epoch of the Redis data this node's state belongs to.
    epoch: Mutex<Option<String>>,
    /// Set when the reader should renew the node's registration and check the epoch.
    beat_due: AtomicBool,
    handler: OnceLock<Weak<dyn EngineHandler>>,
    stop: CancellationToken,
    /// The log reader, the maintenance task and the appender's, waited for by `close`.
    tasks: TaskTracker,
    /// Sends this node's publishes to the log in batches.
    appender: Appender,
    /// Positions being saved as claims end here (client id -> done when saved): a new
    /// claim of the same client on this node waits for its save, so that it reads the
    /// position the old claim ended at (one that handed deliveries back moved it back).
    /// Keyed by client id, with the ending claim's number.
    settling: Mutex<HashMap<String, (u64, CancellationToken)>>,
}

/// What the log reader and claims share, under one lock: the reader's position, the
/// recent entries, and the sessions served here.
struct NodeState {
    /// The last entry applied.
    head: LogId,
    /// Every entry after `floor` (up to `head`) is in `recent`.
    floor: LogId,
    recent: VecDeque<Arc<LogEntry>>,
    served: HashMap<String, Served>,
}

/// A session this node serves for one claim. The claim ends when its per-node record
/// (in `local`) is closed, which also wakes whoever waits on it.
struct Served {
    token: u64,
    kind: ClaimKind,
    /// The position through which the claim has taken deliveries.
    taken: Arc<Mutex<LogId>>,
    /// The position last saved for a push claim (see `flush_positions`).
    saved: LogId,
}

fn backend(e: LinkError) -> EngineError {
    EngineError::Backend(e.to_string())
}

/// Reports the per-node layer's evictions (slow consumers) to the cluster.
struct LocalHandler(Weak<Shared>);

impl EngineHandler for LocalHandler {
    fn session_destroyed(&self, client_id: &str) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        if lock(&shared.in_process).remove(client_id) {
            shared.report(client_id);
            return;
        }
        // A served session overflowed: destroy it everywhere (the log entry makes every
        // node, this one included, run its handler).
        let id = client_id.to_owned();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = shared.destroy_in_redis(&id, Why::Evicted, None).await {
                    tracing::warn!(client_id = %id, error = %e, "bayeux: cannot evict a slow client");
                }
            });
        }
    }
}

impl RedisEngine {
    /// An engine on `link`, joined to the cluster of its namespace; starts the log
    /// reader and the maintenance task (heartbeat, expiry collection, position saves).
    ///
    /// # Errors
    /// Redis fails to answer the first read.
    pub async fn start_on(link: RedisLink, config: RedisEngineConfig) -> Result<Self, EngineError> {
        let keys = Keys::new(&config.cluster.namespace);
        let newest: Value = link
            .query(
                redis::cmd("XREVRANGE")
                    .arg(keys.log())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
            )
            .await
            .map_err(backend)?;
        let start = log::parse_range(&newest)
            .first()
            .map_or(LogId::ZERO, |e| e.id);
        let local = MemoryEngine::new(MemoryEngineConfig::new(Duration::MAX, config.max_queue));
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        let target = Target {
            link: link.clone(),
            log: keys.log(),
            maxlen: log_maxlen(&config.cluster),
        };
        let appender = Appender::start(target, &tasks, stop.clone());
        let shared = Arc::new(Shared {
            keys,
            node: new_client_id(),
            local,
            in_process: Mutex::default(),
            state: Mutex::new(NodeState {
                head: start,
                floor: start,
                recent: VecDeque::new(),
                served: HashMap::new(),
            }),
            head: watch::Sender::new(start),
            catch_up: Arc::new(Notify::new()),
            cache: Mutex::default(),
            epoch: Mutex::new(None),
            beat_due: AtomicBool::new(true),
            handler: OnceLock::new(),
            stop,
            tasks,
            appender,
            settling: Mutex::new(HashMap::new()),
            config,
            link,
        });
        let handler: Arc<dyn EngineHandler> = Arc::new(LocalHandler(Arc::downgrade(&shared)));
        // The handler is kept alive by the task below for as long as the engine lives.
        shared.local.start(Arc::downgrade(&handler));
        shared
            .tasks
            .spawn(read_log(Arc::downgrade(&shared), handler));
        shared.tasks.spawn(maintain(Arc::downgrade(&shared)));
        Ok(Self { shared })
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }
}

impl Shared {
    fn report(&self, id: &str) {
        if let Some(handler) = self.handler.get().and_then(Weak::upgrade) {
            handler.session_destroyed(id);
        }
    }

    fn is_in_process(&self, id: &str) -> bool {
        lock(&self.in_process).contains(id)
    }

    fn maxlen(&self) -> usize {
        log_maxlen(&self.config.cluster)
    }

    /// Applies entries read from the log, in order.
    fn apply(&self, entries: Vec<LogEntry>) -> ReadLoad {
        let mut destroyed = Vec::new();
        let mut load = ReadLoad::default();
        let head = {
            let mut st = lock(&self.state);
            for e in entries {
                if e.id <= st.head {
                    continue; // read twice across a reconnection
                }
                match &e.entry {
                    Entry::Publish(_) | Entry::PublishEach { .. } => {
                        load.add(self.deliver(&e, None));
                    }
                    Entry::Subscribe { client, pattern } => {
                        if st.served.contains_key(client) {
                            self.local.subscribe_now(client, pattern);
                        }
                    }
                    Entry::Unsubscribe { client, pattern } => {
                        if st.served.contains_key(client) {
                            self.local.unsubscribe_now(client, pattern);
                        }
                    }
                    Entry::Claim { client, token } => {
                        if st.served.get(client).is_some_and(|s| s.token < *token) {
                            // A newer connect (elsewhere) took the session over.
                            self.end_served(&mut st, client);
                        }
                    }
                    Entry::Destroy { client, node, why } => {
                        self.forget(client);
                        self.end_served(&mut st, client);
                        if !(node == &self.node && *why == Why::Explicit) {
                            destroyed.push(client.clone());
                        }
                    }
                    Entry::Other => {}
                }
                st.head = e.id;
                st.recent.push_back(Arc::new(e));
                while st.recent.len() > self.config.cluster.log_cache_entries.max(100) {
                    if let Some(old) = st.recent.pop_front() {
                        st.floor = old.id;
                    }
                }
            }
            st.head
        };
        self.head.send_replace(head);
        for id in destroyed {
            self.report(&id);
        }
        load
    }

    /// Marks `id` destroyed in the session cache.
    fn forget(&self, id: &str) {
        lock(&self.cache).insert(id.to_owned(), (None, Instant::now()));
    }

    /// Caches a session found in Redis, unless it was destroyed meanwhile.
    fn remember(&self, info: &SessionInfo) {
        let mut cache = lock(&self.cache);
        if !matches!(cache.get(&info.client_id), Some((None, _))) {
            cache.insert(info.client_id.clone(), (Some(info.clone()), Instant::now()));
        }
    }

    /// Drops cache entries too old to trust.
    fn sweep_cache(&self) {
        lock(&self.cache).retain(|_, (_, at)| at.elapsed() < SESSION_CACHE_TTL);
    }

    /// Feeds a publish entry to the per-node layer: to every session it matches (live),
    /// or to session `only` (catching one up); says how many got it. An envelope (a
    /// packed publish's, a fan-out's copy for a channel) is built only where it will be
    /// delivered.
    fn deliver(&self, e: &LogEntry, only: Option<&str>) -> Fanout {
        let send = |channel: &str, envelope: &Arc<Envelope>, opts: &PublishOptions| match only {
            None => self.local.publish_local(channel, envelope, opts),
            Some(id) => Fanout {
                delivered: usize::from(self.local.deliver_to(id, channel, envelope, opts)),
                behind: 0,
            },
        };
        match &e.entry {
            Entry::Publish(publish) => {
                let Some((channel, opts)) = publish.head() else {
                    return Fanout::default();
                };
                // Most nodes serve no subscriber of a given publish: they never build it.
                let wanted = match only {
                    None => self.local.may_deliver(channel),
                    Some(id) => self.local.would_deliver_to(id, channel, &opts),
                };
                if !wanted {
                    return Fanout::default();
                }
                match publish.envelope(e.id) {
                    Some(envelope) => send(channel, &envelope, &opts),
                    None => Fanout::default(),
                }
            }
            Entry::PublishEach {
                channels,
                message,
                opts,
            } => {
                let mut total = Fanout::default();
                for channel in channels {
                    let wanted = match only {
                        // Most channels of a fan-out have no subscriber here.
                        None => self.local.may_deliver(channel),
                        Some(id) => self.local.would_deliver_to(id, channel, opts),
                    };
                    if wanted {
                        let envelope = Arc::new(Envelope::for_position(message, channel, e.id));
                        total += send(channel, &envelope, opts);
                    }
                }
                total
            }
            _ => Fanout::default(),
        }
    }

    /// Stops serving `id` here (its claim is over).
    fn end_served(&self, st: &mut NodeState, id: &str) {
        if st.served.remove(id).is_some() {
            self.local.destroy_now(id);
        }
    }

    /// Forgets everything of the previous Redis data (it came back empty).
    fn reset(&self, epoch: String) {
        let (dropped, had_epoch) = {
            let mut st = lock(&self.state);
            let ids: Vec<String> = st.served.keys().cloned().collect();
            for id in &ids {
                self.end_served(&mut st, id);
            }
            st.recent.clear();
            st.head = LogId::ZERO;
            st.floor = LogId::ZERO;
            lock(&self.cache).clear();
            let had = lock(&self.epoch).replace(epoch).is_some();
            (ids, had)
        };
        self.head.send_replace(LogId::ZERO);
        if had_epoch {
            tracing::warn!(
                sessions = dropped.len(),
                "bayeux: redis lost the cluster's state; the sessions served here must handshake again"
            );
            for id in dropped {
                self.report(&id);
            }
        }
    }

    /// Renews this node's registration and checks the epoch; resets on a change.
    async fn heartbeat(&self) -> Result<(), LinkError> {
        let c = &self.config.cluster;
        let ours = lock(&self.epoch).clone();
        // Set only if Redis has none: then its data is new (first start, or lost), and
        // a value nobody had makes every node notice.
        let fresh = new_client_id();
        let mut inv = scripts::HEARTBEAT.key(self.keys.node(&self.node));
        inv.key(self.keys.epoch())
            .arg(c.node_timeout_ms.max(1))
            .arg(&fresh);
        let epoch: String = self.link.invoke(&inv).await?;
        if ours.as_deref() != Some(epoch.as_str()) {
            self.reset(epoch);
        }
        Ok(())
    }

    async fn destroy_in_redis(
        &self,
        id: &str,
        why: Why,
        cutoff: Option<&str>,
    ) -> Result<bool, LinkError> {
        let mut inv = scripts::DESTROY.key(self.keys.session(id));
        inv.key(self.keys.subscriptions(id))
            .key(self.keys.alive())
            .key(self.keys.log())
            .key(self.keys.ips())
            .arg(id)
            .arg(&self.node)
            .arg(why.code())
            .arg(cutoff.unwrap_or(""))
            .arg(self.maxlen());
        let n: i64 = self.link.invoke(&inv).await?;
        Ok(n == 1)
    }

    /// Appends an entry of kind `kind` (a server-side fan-out) to the log: one `XADD`.
    async fn append(
        &self,
        kind: &str,
        fields: &[(&str, &str)],
        opts: &PublishOptions,
    ) -> Result<(), EngineError> {
        let mut cmd = log::xadd(&self.keys.log(), self.maxlen());
        cmd.arg("k").arg(kind);
        for (name, value) in fields {
            cmd.arg(*name).arg(*value);
        }
        let flags = log::flags(opts);
        if !flags.is_empty() {
            cmd.arg("f").arg(flags);
        }
        let _id: String = self.link.query(&cmd).await.map_err(backend)?;
        Ok(())
    }

    /// Saves the positions of push claims (one command for all of them).
    async fn flush_positions(&self) -> Result<(), LinkError> {
        let dirty: Vec<(String, u64, LogId)> = {
            let mut st = lock(&self.state);
            st.served
                .iter_mut()
                .filter(|(_, s)| s.kind == ClaimKind::Push)
                .filter_map(|(id, s)| {
                    let taken = *lock(&s.taken);
                    (taken > s.saved).then(|| {
                        s.saved = taken;
                        (id.clone(), s.token, taken)
                    })
                })
                .collect()
        };
        if dirty.is_empty() {
            return Ok(());
        }
        let key = self.keys.positions(&self.node);
        let mut hset = redis::cmd("HSET");
        hset.arg(&key);
        for (id, token, pos) in &dirty {
            hset.arg(id).arg(format!("{token}:{pos}"));
        }
        let keep = (self.config.session_ttl * 4).max(Duration::from_secs(60));
        let mut pipe = redis::pipe();
        pipe.add_command(hset)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
            .ignore();
        self.link.pipe::<()>(&pipe).await
    }

    /// One pass of expiry collection, if this node holds the collector lock.
    async fn collect(&self) -> Result<(), LinkError> {
        let ttl = u64::try_from(self.config.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let period = collect_period(self.config.session_ttl);
        let lock_ms = u64::try_from((period * 4).as_millis()).unwrap_or(u64::MAX);
        let mut inv = scripts::COLLECT.key(self.keys.alive());
        inv.key(self.keys.collector())
            .arg(&self.node)
            .arg(ttl)
            .arg(lock_ms)
            .arg(COLLECT_LIMIT);
        let ids: Vec<String> = self.link.invoke(&inv).await?;
        let Some((cutoff, ids)) = ids.split_first() else {
            return Ok(());
        };
        for id in ids {
            if self
                .destroy_in_redis(id, Why::Expired, Some(cutoff))
                .await?
            {
                tracing::debug!(client_id = %id, "bayeux: session expired");
            }
        }
        Ok(())
    }

    /// Serves `id` here for claim `token`: replays the log from `pos` for it alone, then
    /// lets the reader feed it live.
    async fn serve(
        self: &Arc<Self>,
        id: &str,
        claim: Claimed,
        kind: ClaimKind,
    ) -> Result<Arc<dyn Mailbox>, EngineError> {
        let mut pos = claim.pos;
        let mut fetched: Vec<Arc<LogEntry>> = Vec::new();
        loop {
            let have = {
                let mut st = lock(&self.state);
                if let Some(old) = st.served.get(id) {
                    if old.token > claim.token {
                        return Ok(self.closed_lease(id, claim.token, kind, pos));
                    }
                    if old.token + 1 == claim.token && old.kind == ClaimKind::Push {
                        // Superseded here: what it pushed is delivered, saved or not.
                        pos = pos.max(*lock(&old.taken));
                    }
                }
                let have = fetched.last().map_or(pos, |e| e.id.max(pos));
                if have >= st.floor {
                    return Ok(self.install(&mut st, id, &claim, kind, pos, &fetched));
                }
                have
            };
            // The client was away longer than this node remembers: read from Redis.
            if fetched.is_empty() && self.lost_since(pos).await? {
                tracing::info!(client_id = %id, "bayeux: client too far behind the log, destroyed");
                self.destroy_in_redis(id, Why::Evicted, None)
                    .await
                    .map_err(backend)?;
                return Ok(self.closed_lease(id, claim.token, kind, pos));
            }
            let reply: Value = self
                .link
                .query(
                    redis::cmd("XRANGE")
                        .arg(self.keys.log())
                        .arg(format!("({have}"))
                        .arg("+")
                        .arg("COUNT")
                        .arg(READ_BATCH),
                )
                .await
                .map_err(backend)?;
            let batch = log::parse_range(&reply);
            if batch.is_empty() {
                // Nothing after `have` in Redis, yet the reader is past it: the log was
                // reset under us. Serve what we have; the epoch check resets the node.
                let mut st = lock(&self.state);
                return Ok(self.install(&mut st, id, &claim, kind, pos, &fetched));
            }
            fetched.extend(batch.into_iter().map(Arc::new));
        }
    }

    /// Whether entries after `pos` were trimmed from the log.
    async fn lost_since(&self, pos: LogId) -> Result<bool, EngineError> {
        let info: Value = self
            .link
            .query(redis::cmd("XINFO").arg("STREAM").arg(self.keys.log()))
            .await
            .map_err(backend)?;
        Ok(log::max_deleted(&info).is_some_and(|deleted| deleted > pos))
    }

    /// Registers the served session and replays its backlog (under the state lock).
    fn install(
        self: &Arc<Self>,
        st: &mut NodeState,
        id: &str,
        claim: &Claimed,
        kind: ClaimKind,
        pos: LogId,
        fetched: &[Arc<LogEntry>],
    ) -> Arc<dyn Mailbox> {
        let fetched_to = fetched.last().map_or(pos, |e| e.id);
        let backlog: Vec<&Arc<LogEntry>> = fetched
            .iter()
            .filter(|e| e.id > pos)
            .chain(st.recent.iter().filter(|e| e.id > fetched_to.max(pos)))
            .collect();
        // The subscriptions as they were at `pos`: those read at the claim, with the
        // changes between `pos` and the claim undone.
        let mut patterns: HashSet<String> = claim.patterns.iter().cloned().collect();
        for e in backlog.iter().rev().filter(|e| e.id <= claim.at) {
            match &e.entry {
                Entry::Subscribe { client, pattern } if client == id => {
                    patterns.remove(pattern);
                }
                Entry::Unsubscribe { client, pattern } if client == id => {
                    patterns.insert(pattern.clone());
                }
                _ => {}
            }
        }
        // A previous claim here ends as its record is replaced (which closes it).
        st.served.remove(id);
        self.local
            .create_with_id(id, &SessionOptions::network(None));
        for p in &patterns {
            self.local.subscribe_now(id, p);
        }
        let mut alive = true;
        for e in &backlog {
            match &e.entry {
                Entry::Publish(_) | Entry::PublishEach { .. } => {
                    self.deliver(e, Some(id));
                }
                Entry::Subscribe { client, pattern } if client == id => {
                    self.local.subscribe_now(id, pattern);
                }
                Entry::Unsubscribe { client, pattern } if client == id => {
                    self.local.unsubscribe_now(id, pattern);
                }
                Entry::Claim { client, token } if client == id && *token > claim.token => {
                    alive = false;
                }
                Entry::Destroy { client, .. } if client == id => alive = false,
                _ => {}
            }
        }
        let taken = Arc::new(Mutex::new(pos));
        let mailbox = self.local.mailbox_of(id);
        if alive && mailbox.is_some() {
            st.served.insert(
                id.to_owned(),
                Served {
                    token: claim.token,
                    kind,
                    taken: taken.clone(),
                    saved: pos,
                },
            );
        } else {
            self.local.destroy_now(id);
        }
        Arc::new(Lease {
            shared: Arc::clone(self),
            id: id.to_owned(),
            token: claim.token,
            kind,
            base: pos,
            mailbox,
            taken,
            uncommitted: AtomicBool::new(false),
            rewound: AtomicBool::new(false),
        })
    }

    fn closed_lease(
        self: &Arc<Self>,
        id: &str,
        token: u64,
        kind: ClaimKind,
        pos: LogId,
    ) -> Arc<dyn Mailbox> {
        Arc::new(Lease {
            shared: Arc::clone(self),
            id: id.to_owned(),
            token,
            kind,
            base: pos,
            mailbox: None,
            taken: Arc::new(Mutex::new(pos)),
            uncommitted: AtomicBool::new(false),
            rewound: AtomicBool::new(false),
        })
    }

    async fn settle(&self, id: &str, token: u64, pos: LogId) -> Result<bool, LinkError> {
        let mut inv = scripts::SETTLE.key(self.keys.session(id));
        inv.arg(token).arg(pos.to_string());
        let n: i64 = self.link.invoke(&inv).await?;
        Ok(n == 1)
    }
}

/// What the claim script returned.
struct Claimed {
    token: u64,
    pos: LogId,
    /// The claim's own log entry.
    at: LogId,
    patterns: Vec<String>,
}

impl Claimed {
    fn parse(v: &Value) -> Option<Self> {
        let parts = list(v);
        Some(Self {
            token: u64::try_from(int(parts.first()?)?).ok()?,
            pos: text(parts.get(1)?)?.parse().ok()?,
            at: text(parts.get(2)?)?.parse().ok()?,
            patterns: list(parts.get(3)?).iter().filter_map(text).collect(),
        })
    }
}

/// One claim on a session served by this node.
struct Lease {
    shared: Arc<Shared>,
    id: String,
    token: u64,
    kind: ClaimKind,
    /// The position at the claim.
    base: LogId,
    /// The session's mailbox in the per-node layer (`None`: the claim never started);
    /// closed once the claim is over.
    mailbox: Option<Arc<dyn Mailbox>>,
    taken: Arc<Mutex<LogId>>,
    /// A poll claim took deliveries that are not committed yet.
    uncommitted: AtomicBool,
    /// Deliveries were handed back: `taken` is final as it stands (not the reader's head).
    rewound: AtomicBool,
}

impl Mailbox for Lease {
    fn take(&self, max: usize) -> Vec<Arc<Envelope>> {
        let Some(mailbox) = &self.mailbox else {
            return Vec::new();
        };
        // The reader's position first: every entry up to it that matches this session
        // is in the mailbox by now, so once the mailbox is drained, the session has had
        // everything up to there. (Read after the drain, it could count an entry pushed
        // in between that is still queued.)
        let head = *self.shared.head.borrow();
        let (envs, drained) = mailbox.take_and_drain(max);
        let last = envs
            .last()
            .and_then(|e| e.position())
            .unwrap_or(LogId::ZERO);
        let pos = if drained { head.max(last) } else { last };
        {
            let mut taken = lock(&self.taken);
            *taken = (*taken).max(pos);
        }
        if self.kind == ClaimKind::Poll && !envs.is_empty() {
            self.uncommitted.store(true, Ordering::Release);
        }
        envs
    }

    fn wait(self: Arc<Self>) -> BoxFuture<'static, ()> {
        match self.mailbox.clone() {
            Some(mailbox) => mailbox.wait(),
            None => Box::pin(std::future::ready(())),
        }
    }

    fn commit(&self) -> BoxFuture<'_, Result<bool, EngineError>> {
        Box::pin(async move {
            if self.is_closed() {
                return Ok(false);
            }
            let pos = *lock(&self.taken);
            let ok = self
                .shared
                .settle(&self.id, self.token, pos)
                .await
                .map_err(backend)?;
            if ok {
                self.uncommitted.store(false, Ordering::Release);
            }
            Ok(ok)
        })
    }

    fn is_closed(&self) -> bool {
        self.mailbox.as_ref().is_none_or(|m| m.is_closed())
    }

    fn restore(&self, unsent: Vec<Arc<Envelope>>) {
        // Every delivery comes from the log, so handing back is moving the position to
        // just before the first unsent one: the next claim replays from there.
        let Some(first) = unsent.first().and_then(|e| e.position()) else {
            return;
        };
        let mut taken = lock(&self.taken);
        *taken = (*taken).min(first.before());
        self.rewound.store(true, Ordering::Release);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.mailbox.is_none() {
            return;
        }
        let final_pos = {
            let mut st = lock(&self.shared.state);
            let current = st
                .served
                .get(&self.id)
                .is_some_and(|s| s.token == self.token);
            if !current {
                return; // superseded or destroyed: the successor owns the position
            }
            let drained = self.shared.local.is_drained(&self.id);
            self.shared.end_served(&mut st, &self.id);
            if self.uncommitted.load(Ordering::Acquire) {
                self.base // what was taken was never sent
            } else if drained && !self.rewound.load(Ordering::Acquire) {
                st.head.max(*lock(&self.taken))
            } else {
                *lock(&self.taken)
            }
        };
        let (shared, id, token) = (Arc::clone(&self.shared), self.id.clone(), self.token);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let saved = CancellationToken::new();
            lock(&shared.settling).insert(id.clone(), (token, saved.clone()));
            rt.spawn(async move {
                if let Err(e) = shared.settle(&id, token, final_pos).await {
                    // The position stays where it was: the next connect may see again
                    // what this claim delivered since its last save.
                    tracing::debug!(client_id = %id, error = %e, "bayeux: cannot save a position");
                }
                let mut settling = lock(&shared.settling);
                if settling.get(&id).is_some_and(|(t, _)| *t == token) {
                    settling.remove(&id);
                }
                saved.cancel();
            });
        }
    }
}

/// About how many entries the log is trimmed to.
fn log_maxlen(c: &ClusterConfig) -> usize {
    c.log_max_entries.max(1000)
}

/// How often expiry is collected for a TTL.
fn collect_period(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(10), Duration::from_secs(5))
}

/// The log reader: applies every entry, in order, on this node.
async fn read_log(shared: Weak<Shared>, _local_handler: Arc<dyn EngineHandler>) {
    let mut conn = None;
    let mut pause = Duration::from_millis(50);
    let mut linger = shared
        .upgrade()
        .and_then(|s| s.config.cluster.read_linger())
        .map(Linger::new);
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        if s.stop.is_cancelled() {
            return;
        }
        let backoff_max = Duration::from_millis(s.config.cluster.reconnect_max_ms.max(10));
        if conn.is_none() {
            match s.link.dedicated(READ_BLOCK + s.link.call_timeout()).await {
                Ok(c) => {
                    conn = Some(c);
                    s.beat_due.store(true, Ordering::Release);
                    pause = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "bayeux: log reader cannot connect");
                    let stop = s.stop.clone();
                    drop(s);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(backoff_max);
                    continue;
                }
            }
        }
        if s.beat_due.swap(false, Ordering::AcqRel)
            && let Err(e) = s.heartbeat().await
        {
            tracing::debug!(error = %e, "bayeux: heartbeat failed");
            s.beat_due.store(true, Ordering::Release);
        }
        let from = lock(&s.state).head;
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(u64::try_from(READ_BLOCK.as_millis()).unwrap_or(1000))
            .arg("STREAMS")
            .arg(s.keys.log())
            .arg(from.to_string());
        let Some(c) = conn.as_mut() else { continue };
        let stop = s.stop.clone();
        let reply = tokio::select! {
            () = stop.cancelled() => return,
            r = c.query_with(&cmd, log::read_stream) => r,
        };
        match reply {
            Ok(entries) => {
                let load = s.apply(entries);
                if let Some(pause) = linger.as_mut().and_then(|l| l.after_read(load)) {
                    let catch_up = s.catch_up.clone();
                    drop(s);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = catch_up.notified() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "bayeux: log reader lost redis; reconnecting");
                conn = None;
                drop(s);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(backoff_max);
            }
        }
    }
}

/// Periodic work: heartbeat (through the reader), expiry collection, position saves.
async fn maintain(shared: Weak<Shared>) {
    let Some((stop, c, ttl)) = shared.upgrade().map(|s| {
        (
            s.stop.clone(),
            s.config.cluster.clone(),
            s.config.session_ttl,
        )
    }) else {
        return;
    };
    let every = |ms: u64| {
        let mut i = tokio::time::interval(Duration::from_millis(ms.max(10)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    };
    let mut beat = every(c.heartbeat_ms);
    let mut flush = every(c.position_flush_ms);
    let mut collect = tokio::time::interval(collect_period(ttl));
    collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = beat.tick() => {
                if let Some(s) = shared.upgrade() {
                    s.beat_due.store(true, Ordering::Release);
                    s.sweep_cache();
                }
            }
            _ = flush.tick() => {
                let Some(s) = shared.upgrade() else { return };
                if let Err(e) = s.flush_positions().await {
                    tracing::debug!(error = %e, "bayeux: cannot save positions");
                }
            }
            _ = collect.tick() => {
                let Some(s) = shared.upgrade() else { return };
                if let Err(e) = s.collect().await {
                    tracing::debug!(error = %e, "bayeux: expiry collection failed");
                }
            }
        }
    }
}

impl SessionEngine for RedisEngine {
    fn create_session<'a>(
        &'a self,
        opts: &'a SessionOptions,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if opts.local {
                let id = s.local.create_now(opts);
                lock(&s.in_process).insert(id.clone());
                return Ok(id);
            }
            let id = new_client_id();
            let mut inv = scripts::CREATE.key(s.keys.session(&id));
            inv.key(s.keys.alive())
                .key(s.keys.log())
                .key(s.keys.ips())
                .arg(&id)
                .arg(opts.remote_ip.map(|ip| ip.to_string()).unwrap_or_default())
                .arg(opts.quota.max_sessions)
                .arg(opts.quota.max_sessions_per_ip);
            let (created, detail): (i64, String) = s.link.invoke(&inv).await.map_err(backend)?;
            if created == 0 {
                return Err(EngineError::Quota(if detail == "max_sessions" {
                    QuotaExceeded::Sessions(opts.quota.max_sessions)
                } else {
                    QuotaExceeded::PerIp(opts.quota.max_sessions_per_ip)
                }));
            }
            let info = SessionInfo {
                client_id: id.clone(),
                remote_ip: opts.remote_ip,
                local: false,
            };
            s.remember(&info);
            Ok(id)
        })
    }

    fn session<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionInfo>, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if s.is_in_process(client_id) {
                return Ok(s.local.info_now(client_id));
            }
            if let Some((info, at)) = lock(&s.cache).get(client_id)
                && at.elapsed() < SESSION_CACHE_TTL
            {
                return Ok(info.clone());
            }
            let ip: Option<String> = s
                .link
                .query(redis::cmd("HGET").arg(s.keys.session(client_id)).arg("ip"))
                .await
                .map_err(backend)?;
            let Some(ip) = ip else {
                return Ok(None);
            };
            let info = SessionInfo {
                client_id: client_id.to_owned(),
                remote_ip: ip.parse::<IpAddr>().ok(),
                local: false,
            };
            s.remember(&info);
            Ok(Some(info))
        })
    }

    fn ping<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if s.is_in_process(client_id) {
                return Ok(true);
            }
            let mut inv = scripts::PING.key(s.keys.alive());
            inv.arg(client_id);
            let n: i64 = s.link.invoke(&inv).await.map_err(backend)?;
            if n == 0 {
                s.forget(client_id);
            }
            Ok(n == 1)
        })
    }

    fn destroy_session<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if lock(&s.in_process).remove(client_id) {
                return Ok(s.local.destroy_now(client_id));
            }
            let existed = s
                .destroy_in_redis(client_id, Why::Explicit, None)
                .await
                .map_err(backend)?;
            s.forget(client_id);
            let mut st = lock(&s.state);
            s.end_served(&mut st, client_id);
            Ok(existed)
        })
    }

    fn session_count(&self) -> BoxFuture<'_, Result<usize, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            let n: usize = s
                .link
                .query(redis::cmd("ZCARD").arg(s.keys.alive()))
                .await
                .map_err(backend)?;
            Ok(n + lock(&s.in_process).len())
        })
    }

    fn local_load(&self) -> LocalLoad {
        self.shared.local.local_load()
    }
}

impl PubSubEngine for RedisEngine {
    fn subscribe<'a>(
        &'a self,
        client_id: &'a str,
        pattern: &'a str,
        opts: &'a SubscribeOptions,
    ) -> BoxFuture<'a, Result<SubscribeOutcome, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if s.is_in_process(client_id) {
                return Ok(s.local.subscribe_limited(client_id, pattern, opts));
            }
            let mut inv = scripts::SUBSCRIBE.key(s.keys.session(client_id));
            inv.key(s.keys.subscriptions(client_id))
                .key(s.keys.log())
                .arg(client_id)
                .arg(pattern)
                .arg(opts.max_per_client)
                .arg(s.maxlen());
            let n: i64 = s.link.invoke(&inv).await.map_err(backend)?;
            Ok(match n {
                1 => SubscribeOutcome::Subscribed,
                -2 => SubscribeOutcome::TooMany,
                _ => SubscribeOutcome::UnknownClient,
            })
        })
    }

    fn unsubscribe<'a>(
        &'a self,
        client_id: &'a str,
        pattern: &'a str,
    ) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if s.is_in_process(client_id) {
                return Ok(s.local.unsubscribe_now(client_id, pattern));
            }
            let mut inv = scripts::UNSUBSCRIBE.key(s.keys.session(client_id));
            inv.key(s.keys.subscriptions(client_id))
                .key(s.keys.log())
                .arg(client_id)
                .arg(pattern)
                .arg(s.maxlen());
            let n: i64 = s.link.invoke(&inv).await.map_err(backend)?;
            Ok(n == 1)
        })
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        envelope: Arc<Envelope>,
        opts: &'a PublishOptions,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            let packed = log::packed_publish(channel, envelope.json(), envelope.publisher(), opts);
            self.shared.appender.append(vec![packed]).await
        })
    }

    fn publish_run<'a>(
        &'a self,
        run: &'a [(Arc<Envelope>, PublishOptions)],
    ) -> BoxFuture<'a, Vec<Result<(), EngineError>>> {
        // One unit for the appender: the run's entries go in one pipeline, in order, and
        // succeed or fail together.
        Box::pin(async move {
            let packed = run
                .iter()
                .map(|(e, opts)| log::packed_publish(e.channel(), e.json(), e.publisher(), opts))
                .collect();
            let result = self.shared.appender.append(packed).await;
            vec![result; run.len()]
        })
    }

    fn publish_each<'a>(
        &'a self,
        channels: &'a [String],
        message: &'a Message,
        opts: &'a PublishOptions,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        // One log entry for the whole fan-out: every node delivers to its own sessions.
        Box::pin(async move {
            let json = |e: serde_json::Error| EngineError::Backend(e.to_string());
            let template = serde_json::to_string(&message.for_delivery()).map_err(json)?;
            let list = serde_json::to_string(channels).map_err(json)?;
            let fields = [("cs", list.as_str()), ("j", template.as_str())];
            self.shared.append("m", &fields, opts).await
        })
    }
}

impl MailboxEngine for RedisEngine {
    fn claim<'a>(
        &'a self,
        client_id: &'a str,
        kind: ClaimKind,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Mailbox>>, EngineError>> {
        Box::pin(async move {
            let s = &self.shared;
            if s.is_in_process(client_id) {
                return Ok(s.local.mailbox_of(client_id));
            }
            let saving = lock(&s.settling).get(client_id).map(|(_, t)| t.clone());
            if let Some(saved) = saving {
                // Bounded like any call: a save that fails leaves the old position.
                let _ = tokio::time::timeout(s.link.call_timeout(), saved.cancelled()).await;
            }
            let lazy = if kind == ClaimKind::Push { "1" } else { "0" };
            let mut inv = scripts::CLAIM.key(s.keys.session(client_id));
            inv.key(s.keys.subscriptions(client_id))
                .key(s.keys.log())
                .arg(client_id)
                .arg(&s.node)
                .arg(lazy)
                .arg(s.maxlen())
                .arg(s.keys.positions_prefix());
            let reply: Value = s.link.invoke(&inv).await.map_err(backend)?;
            if reply == Value::Nil {
                return Ok(None);
            }
            let claim = Claimed::parse(&reply)
                .ok_or_else(|| EngineError::Backend(format!("unexpected claim reply {reply:?}")))?;
            // Everything published before the claim is in the log before its entry:
            // once the reader is past it, the replay below sees all of it (and every
            // subscription change up to the claim, which it needs to undo).
            let mut head = s.head.subscribe();
            s.catch_up.notify_one();
            let caught_up =
                tokio::time::timeout(s.link.call_timeout(), head.wait_for(|h| *h >= claim.at));
            if !matches!(caught_up.await, Ok(Ok(_))) {
                return Err(EngineError::Backend(
                    "the cluster log reader is behind (redis unavailable?)".to_owned(),
                ));
            }
            s.serve(client_id, claim, kind).await.map(Some)
        })
    }
}

impl Engine for RedisEngine {
    fn start(&self, handler: Weak<dyn EngineHandler>) {
        let _ = self.shared.handler.set(handler);
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        let tasks = self.shared.tasks.clone();
        Box::pin(async move {
            // Each task ends at its next await (a read blocks for at most a second).
            if tokio::time::timeout(READ_BLOCK * 2, tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("bayeux: cluster tasks still running at close");
            }
        })
    }
}

#[cfg(test)]
mod tests;
