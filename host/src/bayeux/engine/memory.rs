//! The in-process engine: everything in sharded maps behind short std mutexes.
//!
//! Sessions, the subscription index (pattern -> sessions) and bounded per-session queues.
//! A publish looks up only the patterns that can match its channel, so its cost follows
//! the matching subscribers. The same engine is the per-node delivery layer of the Redis
//! engine, which feeds it the shared log's entries for the sessions served on its node
//! (hence [`MemoryEngine::create_with_id`] and [`MemoryEngine::deliver_to`]).

use crate::sync::{lock, read, write};
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    BoxFuture, ClaimKind, Engine, EngineError, EngineHandler, Envelope, LocalLoad, Mailbox,
    MailboxEngine, MemoryEngineConfig, PubSubEngine, PublishOptions, QuotaExceeded, SessionEngine,
    SessionInfo, SessionOptions, SessionQuota, SubscribeOptions, SubscribeOutcome, new_client_id,
};
use crate::bayeux::channel;

/// Shards of the session and subscription maps: spreads lock contention.
const SHARDS: usize = 16;

/// The memory engine; clone-cheap.
#[derive(Clone)]
pub struct MemoryEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// Maps keyed by client id: ids are random, so a fast hash needs no flood protection.
type ById<V> = HashMap<Arc<str>, V, RandomState>;

/// One shard of the subscription index: pattern -> (client id -> session). Patterns come
/// from clients, so that map keeps std's keyed SipHash.
type SubscriptionShard = RwLock<HashMap<Arc<str>, ById<Arc<Session>>>>;

struct Shared {
    config: MemoryEngineConfig,
    hasher: RandomState,
    /// client id -> session.
    sessions: Vec<Mutex<ById<Arc<Session>>>>,
    /// pattern -> (client id -> session): the exact and wildcard index in one map, since a
    /// publish looks up each pattern that can match its channel.
    subscriptions: Vec<SubscriptionShard>,
    /// Live wildcard subscriptions: while there are none, a publish looks up only its
    /// own channel name.
    wildcards: AtomicUsize,
    handler: OnceLock<Weak<dyn EngineHandler>>,
    stop: CancellationToken,
    /// The expiry task, waited for by `close`.
    tasks: TaskTracker,
    /// Network sessions created here, in all and by address.
    quota: Quota,
    epoch: Instant,
}

struct Session {
    id: Arc<str>,
    remote_ip: Option<std::net::IpAddr>,
    /// Holds a place in the quota, given back when the session ends.
    counted: bool,
    local: bool,
    /// Milliseconds since `Shared::epoch` of the last ping.
    last_ping: AtomicU64,
    /// Set (under `state`) when destroyed; read without the lock on hot paths.
    closed: AtomicBool,
    state: Mutex<SessionState>,
    notify: Notify,
}

/// Counts of the network sessions this engine created, for [`SessionQuota`]: one short
/// lock per handshake and per end of a session.
#[derive(Default)]
struct Quota(Mutex<QuotaCounts>);

#[derive(Default)]
struct QuotaCounts {
    total: usize,
    by_ip: HashMap<std::net::IpAddr, usize>,
}

impl Quota {
    /// Takes a place for a session of `opts`, or says which cap it hits.
    fn admit(&self, opts: &SessionOptions) -> Result<(), QuotaExceeded> {
        let SessionQuota {
            max_sessions,
            max_sessions_per_ip,
        } = opts.quota;
        let mut counts = lock(&self.0);
        if max_sessions > 0 && counts.total >= max_sessions {
            return Err(QuotaExceeded::Sessions(max_sessions));
        }
        if let Some(ip) = opts.remote_ip {
            let n = counts.by_ip.entry(ip).or_default();
            if max_sessions_per_ip > 0 && *n >= max_sessions_per_ip {
                return Err(QuotaExceeded::PerIp(max_sessions_per_ip));
            }
            *n += 1;
        }
        counts.total += 1;
        Ok(())
    }

    /// Gives back the place of a session from `ip`.
    fn release(&self, ip: Option<std::net::IpAddr>) {
        let mut counts = lock(&self.0);
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = ip
            && let Some(n) = counts.by_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.by_ip.remove(&ip);
            }
        }
    }
}

#[derive(Default)]
struct SessionState {
    queue: VecDeque<Arc<Envelope>>,
    subscriptions: HashSet<Arc<str>>,
}

impl MemoryEngine {
    /// A memory engine with the given settings.
    pub fn new(config: MemoryEngineConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                hasher: RandomState::default(),
                sessions: (0..SHARDS).map(|_| Mutex::default()).collect(),
                subscriptions: (0..SHARDS).map(|_| RwLock::default()).collect(),
                wildcards: AtomicUsize::new(0),
                handler: OnceLock::new(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
                quota: Quota::default(),
                epoch: Instant::now(),
            }),
        }
    }
}

impl MemoryEngine {
    /// Registers a session under a known id (a clustered engine serving a session that
    /// lives elsewhere); an existing record of that id is replaced and closed.
    pub(crate) fn create_with_id(&self, id: &str, opts: &SessionOptions) {
        self.shared.insert(id, opts);
    }

    /// Publishes to the matching sessions; says how many got it.
    pub(crate) fn publish_local(
        &self,
        channel: &str,
        envelope: &Arc<Envelope>,
        opts: &PublishOptions,
    ) -> Fanout {
        self.shared.publish(channel, envelope, opts)
    }

    /// Whether a publish on `channel` may reach anyone here (cheap: an exact-name lookup
    /// while there is no wildcard subscription).
    pub(crate) fn may_deliver(&self, channel: &str) -> bool {
        self.shared.wildcards.load(Ordering::Acquire) > 0
            || read(self.shared.subs_shard(channel)).contains_key(channel)
    }

    /// Whether session `id` would get a publish on `channel`.
    pub(crate) fn would_deliver_to(&self, id: &str, channel: &str, opts: &PublishOptions) -> bool {
        self.shared
            .get(id)
            .is_some_and(|s| s.matches(channel, opts))
    }

    /// Queues `envelope` for session `id` alone, if one of its subscriptions matches
    /// (replaying a shared log for one session); `true` if queued. A full mailbox
    /// evicts the session as a publish would.
    pub(crate) fn deliver_to(
        &self,
        id: &str,
        channel: &str,
        envelope: &Arc<Envelope>,
        opts: &PublishOptions,
    ) -> bool {
        self.shared.deliver_to(id, channel, envelope, opts)
    }

    /// The mailbox of session `id`, if it exists.
    pub(crate) fn mailbox_of(&self, id: &str) -> Option<Arc<dyn Mailbox>> {
        self.shared.get(id).map(|s| -> Arc<dyn Mailbox> { s })
    }

    /// Whether session `id` has nothing queued (`true` if there is no such session).
    pub(crate) fn is_drained(&self, id: &str) -> bool {
        self.shared.get(id).is_none_or(|s| s.is_empty())
    }

    /// Creates a session now, outside the quota (a clustered engine's in-process
    /// sessions, which it does not count).
    pub(crate) fn create_now(&self, opts: &SessionOptions) -> String {
        let id = new_client_id();
        self.shared.insert_session(&id, opts, false);
        id
    }

    /// Subscribes now, without a per-client limit.
    pub(crate) fn subscribe_now(&self, id: &str, pattern: &str) {
        self.shared
            .subscribe(id, pattern, &SubscribeOptions::default());
    }

    /// Subscribes now with the given limit.
    pub(crate) fn subscribe_limited(
        &self,
        id: &str,
        pattern: &str,
        opts: &SubscribeOptions,
    ) -> SubscribeOutcome {
        self.shared.subscribe(id, pattern, opts)
    }

    /// Unsubscribes now; `false` if there is no such session.
    pub(crate) fn unsubscribe_now(&self, id: &str, pattern: &str) -> bool {
        self.shared.unsubscribe(id, pattern)
    }

    /// Destroys now; `true` if it existed. The handler is not called.
    pub(crate) fn destroy_now(&self, id: &str) -> bool {
        self.shared.destroy(id)
    }

    /// What is known of session `id`.
    pub(crate) fn info_now(&self, id: &str) -> Option<SessionInfo> {
        self.shared.get(id).map(|s| SessionInfo {
            client_id: s.id.to_string(),
            remote_ip: s.remote_ip,
            local: s.local,
        })
    }
}

impl Shared {
    fn shard(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn sessions_shard(&self, id: &str) -> MutexGuard<'_, ById<Arc<Session>>> {
        // `shard` is always < SHARDS == len.
        lock(&self.sessions[self.shard(id) % self.sessions.len()])
    }

    fn subs_shard(&self, pattern: &str) -> &SubscriptionShard {
        &self.subscriptions[self.shard(pattern) % self.subscriptions.len()]
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions_shard(id).get(id).cloned()
    }

    fn create(&self, opts: &SessionOptions) -> Result<String, QuotaExceeded> {
        let id = new_client_id();
        let counted = !opts.local;
        if counted {
            self.quota.admit(opts)?;
        }
        self.insert_session(&id, opts, counted);
        Ok(id)
    }

    fn insert(&self, id: &str, opts: &SessionOptions) {
        self.insert_session(id, opts, false);
    }

    /// Inserts a session; `counted`: it holds a place in the quota (sessions this engine
    /// created for the network, not records of a clustered engine's sessions).
    fn insert_session(&self, id: &str, opts: &SessionOptions, counted: bool) {
        let id: Arc<str> = Arc::from(id);
        let session = Arc::new(Session {
            id: id.clone(),
            remote_ip: opts.remote_ip,
            counted,
            local: opts.local,
            last_ping: AtomicU64::new(self.now_ms()),
            closed: AtomicBool::new(false),
            state: Mutex::default(),
            notify: Notify::new(),
        });
        if let Some(old) = self.sessions_shard(&id).insert(id.clone(), session) {
            // Replaced (a clustered engine re-registering a session): the old record
            // ends like a destroyed one, its subscriptions leave the index.
            self.retire(&id, &old);
        }
    }

    fn destroy(&self, id: &str) -> bool {
        let Some(session) = self.sessions_shard(id).remove(id) else {
            return false;
        };
        self.retire(id, &session);
        true
    }

    /// Closes a session record that left the map: empties it, unindexes it, wakes it.
    fn retire(&self, id: &str, session: &Session) {
        if session.counted {
            self.quota.release(session.remote_ip);
        }
        let subscriptions = {
            let mut state = lock(&session.state);
            session.closed.store(true, Ordering::Release);
            state.queue.clear();
            std::mem::take(&mut state.subscriptions)
        };
        for pattern in subscriptions {
            self.index_remove_session(&pattern, id, session);
        }
        session.notify.notify_waiters();
    }

    fn report_destroyed(&self, id: &str) {
        if let Some(handler) = self.handler.get().and_then(Weak::upgrade) {
            handler.session_destroyed(id);
        }
    }

    /// Adds `session` under `pattern` in the subscription index.
    fn index_add(&self, pattern: Arc<str>, session: &Arc<Session>) {
        if channel::is_wildcard(&pattern) {
            self.wildcards.fetch_add(1, Ordering::AcqRel);
        }
        write(self.subs_shard(&pattern))
            .entry(pattern)
            .or_default()
            .insert(session.id.clone(), session.clone());
    }

    /// Removes client `id` from `pattern` in the subscription index.
    fn index_remove(&self, pattern: &str, id: &str) {
        self.index_remove_if(pattern, id, |_| true);
    }

    /// As `index_remove`, only if the index holds this very record (a replaced record
    /// must not unindex its successor).
    fn index_remove_session(&self, pattern: &str, id: &str, session: &Session) {
        self.index_remove_if(pattern, id, |s| std::ptr::eq(Arc::as_ptr(s), session));
    }

    fn index_remove_if(&self, pattern: &str, id: &str, this: impl Fn(&Arc<Session>) -> bool) {
        let mut shard = write(self.subs_shard(pattern));
        let Some(subs) = shard.get_mut(pattern) else {
            return;
        };
        if subs.get(id).is_some_and(this) {
            subs.remove(id);
            if channel::is_wildcard(pattern) {
                self.wildcards.fetch_sub(1, Ordering::AcqRel);
            }
        }
        if subs.is_empty() {
            shard.remove(pattern);
        }
    }

    fn subscribe(&self, id: &str, pattern: &str, opts: &SubscribeOptions) -> SubscribeOutcome {
        let Some(session) = self.get(id) else {
            return SubscribeOutcome::UnknownClient;
        };
        // Lock order: session state, then index shard (destroy never nests them), so a
        // concurrent destroy either sees this subscription or makes us see `closed`.
        let mut state = lock(&session.state);
        if session.closed.load(Ordering::Acquire) {
            return SubscribeOutcome::UnknownClient;
        }
        if state.subscriptions.contains(pattern) {
            return SubscribeOutcome::Subscribed;
        }
        if opts.max_per_client > 0 && state.subscriptions.len() >= opts.max_per_client {
            return SubscribeOutcome::TooMany;
        }
        let pattern: Arc<str> = Arc::from(pattern);
        state.subscriptions.insert(pattern.clone());
        self.index_add(pattern, &session);
        SubscribeOutcome::Subscribed
    }

    fn unsubscribe(&self, id: &str, pattern: &str) -> bool {
        let Some(session) = self.get(id) else {
            return false;
        };
        let mut state = lock(&session.state);
        if session.closed.load(Ordering::Acquire) {
            return false;
        }
        if state.subscriptions.remove(pattern) {
            self.index_remove(pattern, id);
        }
        true
    }

    fn publish(
        &self,
        channel_name: &str,
        envelope: &Arc<Envelope>,
        opts: &PublishOptions,
    ) -> Fanout {
        let mut recipients: Vec<Arc<Session>> = Vec::new();
        let mut groups = 0;
        let mut collect = |pattern: &str, local_only: bool| {
            let shard = read(self.subs_shard(pattern));
            if let Some(subs) = shard.get(pattern) {
                groups += 1;
                recipients.extend(subs.values().filter(|s| s.local || !local_only).cloned());
            }
        };
        if self.wildcards.load(Ordering::Acquire) == 0 {
            collect(channel_name, opts.local_only);
        } else {
            let mut i = 0;
            channel::for_each_matching_pattern(channel_name, |pattern| {
                // The first pattern is the exact name; the rest are wildcards.
                collect(pattern, opts.local_only || (opts.exact_only && i > 0));
                i += 1;
            });
        }
        if groups > 1 {
            // One copy per session however many of its patterns match.
            recipients.sort_unstable_by_key(|s| Arc::as_ptr(s) as usize);
            recipients.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        let mut fanout = Fanout::default();
        let mut overflowed = Vec::new();
        for session in &recipients {
            match session.enqueue(envelope, self.config.max_queue) {
                Enqueued::Yes { behind } => {
                    fanout.delivered += 1;
                    fanout.behind += usize::from(behind);
                }
                Enqueued::Closed => {}
                Enqueued::Full => overflowed.push(session.id.clone()),
            }
        }
        for id in overflowed {
            self.evict(&id);
        }
        fanout
    }

    /// The slow-consumer rule: a session whose mailbox is full is destroyed.
    fn evict(&self, id: &str) {
        crate::metrics::SLOW_CONSUMER_EVICTIONS.inc();
        tracing::warn!(client_id = %id, "bayeux: mailbox full, disconnecting slow client");
        if self.destroy(id) {
            self.report_destroyed(id);
        }
    }

    /// Queues `envelope` for session `id` alone if one of its subscriptions matches.
    fn deliver_to(
        &self,
        id: &str,
        channel_name: &str,
        envelope: &Arc<Envelope>,
        opts: &PublishOptions,
    ) -> bool {
        let Some(session) = self.get(id) else {
            return false;
        };
        if !session.matches(channel_name, opts) {
            return false;
        }
        match session.enqueue(envelope, self.config.max_queue) {
            Enqueued::Yes { .. } => true,
            Enqueued::Closed => false,
            Enqueued::Full => {
                self.evict(id);
                false
            }
        }
    }

    fn expired(&self) -> Vec<Arc<str>> {
        let ttl = u64::try_from(self.config.session_ttl.as_millis()).unwrap_or(u64::MAX);
        let now = self.now_ms();
        let mut out = Vec::new();
        for shard in &self.sessions {
            let shard = lock(shard);
            out.extend(
                shard
                    .values()
                    .filter(|s| {
                        !s.local && now.saturating_sub(s.last_ping.load(Ordering::Relaxed)) > ttl
                    })
                    .map(|s| s.id.clone()),
            );
        }
        out
    }
}

impl SessionEngine for MemoryEngine {
    fn create_session<'a>(
        &'a self,
        opts: &'a SessionOptions,
    ) -> BoxFuture<'a, Result<String, EngineError>> {
        let created = self.shared.create(opts).map_err(EngineError::Quota);
        Box::pin(std::future::ready(created))
    }

    fn session<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionInfo>, EngineError>> {
        let info = self.shared.get(client_id).map(|s| SessionInfo {
            client_id: s.id.to_string(),
            remote_ip: s.remote_ip,
            local: s.local,
        });
        Box::pin(std::future::ready(Ok(info)))
    }

    fn ping<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, Result<bool, EngineError>> {
        let found = self.shared.get(client_id).map(|s| {
            s.last_ping.store(self.shared.now_ms(), Ordering::Relaxed);
        });
        Box::pin(std::future::ready(Ok(found.is_some())))
    }

    fn destroy_session<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(std::future::ready(Ok(self.shared.destroy(client_id))))
    }

    fn session_count(&self) -> BoxFuture<'_, Result<usize, EngineError>> {
        let n = self.shared.sessions.iter().map(|s| lock(s).len()).sum();
        Box::pin(std::future::ready(Ok(n)))
    }

    fn local_load(&self) -> LocalLoad {
        let mut load = LocalLoad::default();
        for shard in &self.shared.sessions {
            // Copied out so that no session lock is taken under the shard's.
            let sessions: Vec<Arc<Session>> = lock(shard).values().cloned().collect();
            load.sessions += sessions.len();
            load.queued += sessions
                .iter()
                .map(|s| lock(&s.state).queue.len())
                .sum::<usize>();
        }
        load
    }
}

impl PubSubEngine for MemoryEngine {
    fn subscribe<'a>(
        &'a self,
        client_id: &'a str,
        pattern: &'a str,
        opts: &'a SubscribeOptions,
    ) -> BoxFuture<'a, Result<SubscribeOutcome, EngineError>> {
        Box::pin(std::future::ready(Ok(self
            .shared
            .subscribe(client_id, pattern, opts))))
    }

    fn unsubscribe<'a>(
        &'a self,
        client_id: &'a str,
        pattern: &'a str,
    ) -> BoxFuture<'a, Result<bool, EngineError>> {
        Box::pin(std::future::ready(Ok(self
            .shared
            .unsubscribe(client_id, pattern))))
    }

    fn publish<'a>(
        &'a self,
        channel: &'a str,
        envelope: Arc<Envelope>,
        opts: &'a PublishOptions,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        self.shared.publish(channel, &envelope, opts);
        Box::pin(std::future::ready(Ok(())))
    }
}

impl MailboxEngine for MemoryEngine {
    fn claim<'a>(
        &'a self,
        client_id: &'a str,
        _kind: ClaimKind,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Mailbox>>, EngineError>> {
        // One queue per session: every claim drains the same one, so taking is the
        // hand-over (a superseded long-poll is released by the protocol layer).
        let mailbox = self
            .shared
            .get(client_id)
            .map(|s| -> Arc<dyn Mailbox> { s });
        Box::pin(std::future::ready(Ok(mailbox)))
    }
}

/// What one publish did here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Fanout {
    /// Sessions that got it.
    pub delivered: usize,
    /// Of those, the ones whose mailbox still held an earlier delivery: their socket
    /// has not caught up with the publishes before this one.
    pub behind: usize,
}

impl std::ops::AddAssign for Fanout {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.behind += other.behind;
    }
}

/// What queuing one envelope did.
enum Enqueued {
    /// Queued; `behind` if something was queued already.
    Yes {
        behind: bool,
    },
    Closed,
    Full,
}

impl Session {
    /// Whether one of its subscriptions takes a publish on `channel_name`.
    fn matches(&self, channel_name: &str, opts: &PublishOptions) -> bool {
        if opts.local_only && !self.local {
            return false;
        }
        let wildcards_ok = self.local || !opts.exact_only;
        lock(&self.state).subscriptions.iter().any(|p| {
            (wildcards_ok || !channel::is_wildcard(p)) && channel::matches(p, channel_name)
        })
    }

    fn enqueue(&self, envelope: &Arc<Envelope>, max_queue: usize) -> Enqueued {
        let behind;
        {
            let mut state = lock(&self.state);
            if self.closed.load(Ordering::Acquire) {
                return Enqueued::Closed;
            }
            if max_queue > 0 && state.queue.len() >= max_queue {
                return Enqueued::Full;
            }
            behind = !state.queue.is_empty();
            state.queue.push_back(envelope.clone());
        }
        self.notify.notify_waiters();
        Enqueued::Yes { behind }
    }

    /// Whether nothing is queued.
    fn is_empty(&self) -> bool {
        lock(&self.state).queue.is_empty()
    }

    fn take(&self, max: usize) -> Vec<Arc<Envelope>> {
        self.take_and_drain(max).0
    }

    fn take_and_drain(&self, max: usize) -> (Vec<Arc<Envelope>>, bool) {
        let mut state = lock(&self.state);
        let n = state.queue.len().min(max.max(1));
        let taken = state.queue.drain(..n).collect();
        (taken, state.queue.is_empty())
    }
}

impl Mailbox for Session {
    fn take(&self, max: usize) -> Vec<Arc<Envelope>> {
        Session::take(self, max)
    }

    fn take_and_drain(&self, max: usize) -> (Vec<Arc<Envelope>>, bool) {
        Session::take_and_drain(self, max)
    }

    fn commit(&self) -> BoxFuture<'_, Result<bool, EngineError>> {
        // One process: nothing can take over what this claim took.
        Box::pin(std::future::ready(Ok(!self.closed.load(Ordering::Acquire))))
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn restore(&self, unsent: Vec<Arc<Envelope>>) {
        if unsent.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.state);
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            // Ahead of what came since, in the order taken; over `max_queue` for a
            // moment if need be: these were accepted once and must not be refused now.
            for envelope in unsent.into_iter().rev() {
                state.queue.push_front(envelope);
            }
        }
        self.notify.notify_waiters();
    }

    fn wait(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Register before checking, so a publish between the check and the await
            // still wakes us.
            notified.as_mut().enable();
            {
                let state = lock(&self.state);
                if !state.queue.is_empty() || self.closed.load(Ordering::Acquire) {
                    return;
                }
            }
            notified.await;
        })
    }
}

impl Engine for MemoryEngine {
    fn start(&self, handler: Weak<dyn EngineHandler>) {
        if self.shared.handler.set(handler).is_err() {
            return; // already started
        }
        if self.shared.config.session_ttl == Duration::MAX {
            return; // liveness is kept elsewhere (the per-node layer of a cluster)
        }
        let shared = Arc::downgrade(&self.shared);
        let stop = self.shared.stop.clone();
        let period = (self.shared.config.session_ttl / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(5));
        self.shared.tasks.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                for id in shared.expired() {
                    if shared.destroy(&id) {
                        tracing::debug!(client_id = %id, "bayeux: session expired");
                        shared.report_destroyed(&id);
                    }
                }
            }
        });
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        Box::pin(self.shared.tasks.wait())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn engine() -> MemoryEngine {
        MemoryEngine::new(MemoryEngineConfig::new(Duration::from_millis(200), 3))
    }

    #[tokio::test]
    async fn mailbox_handle_drains_and_ends_with_the_session() {
        use crate::bayeux::message::Message;
        let e = MemoryEngine::new(MemoryEngineConfig::new(Duration::from_secs(60), 10));
        let id = e.create_session(&SessionOptions::default()).await.unwrap();
        assert!(e.claim("nope", ClaimKind::Push).await.unwrap().is_none());
        let mailbox = e.claim(&id, ClaimKind::Push).await.unwrap().unwrap();
        e.subscribe(&id, "/a", &SubscribeOptions::default())
            .await
            .unwrap();
        for n in 0..3 {
            let env = Arc::new(Envelope::new(
                &Message::publish("/a", serde_json::json!(n)),
                None,
            ));
            e.publish("/a", env, &PublishOptions::default())
                .await
                .unwrap();
        }
        mailbox.clone().wait().await;
        let got: Vec<_> = mailbox
            .take(2)
            .iter()
            .map(|e| e.message().data.clone().unwrap())
            .collect();
        assert_eq!(got, [serde_json::json!(0), serde_json::json!(1)]);
        assert_eq!(mailbox.take(10).len(), 1);
        let waiting = tokio::spawn(mailbox.clone().wait());
        assert!(e.destroy_session(&id).await.unwrap());
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(mailbox.take(10).is_empty());
    }

    #[tokio::test]
    async fn wildcard_lookups_follow_the_live_wildcard_subscriptions() {
        use crate::bayeux::message::Message;
        let e = MemoryEngine::new(MemoryEngineConfig::new(Duration::from_secs(60), 10));
        let publish = |n: i32| {
            let e = e.clone();
            async move {
                // Counts are the memory engine's own (the trait's publish reports none).
                let env = Arc::new(Envelope::new(
                    &Message::publish("/a/b", serde_json::json!(n)),
                    None,
                ));
                e.publish_local("/a/b", &env, &PublishOptions::default())
                    .delivered
            }
        };
        let opts = SubscribeOptions::default();
        let exact = e.create_session(&SessionOptions::default()).await.unwrap();
        e.subscribe(&exact, "/a/b", &opts).await.unwrap();
        assert_eq!(publish(1).await, 1);
        assert_eq!(e.shared.wildcards.load(Ordering::Acquire), 0);

        let wild = e.create_session(&SessionOptions::default()).await.unwrap();
        e.subscribe(&wild, "/a/*", &opts).await.unwrap();
        e.subscribe(&wild, "/**", &opts).await.unwrap();
        e.subscribe(&wild, "/**", &opts).await.unwrap(); // again: counted once
        assert_eq!(e.shared.wildcards.load(Ordering::Acquire), 2);
        assert_eq!(
            publish(2).await,
            2,
            "one copy each, the wildcard session included"
        );

        assert!(e.unsubscribe(&wild, "/a/*").await.unwrap());
        assert!(e.unsubscribe(&wild, "/nope/*").await.unwrap());
        assert_eq!(e.shared.wildcards.load(Ordering::Acquire), 1);
        assert_eq!(publish(3).await, 2, "still matched by /**");

        assert!(e.destroy_session(&wild).await.unwrap());
        assert_eq!(e.shared.wildcards.load(Ordering::Acquire), 0);
        assert_eq!(publish(4).await, 1);
        let got: Vec<_> = e
            .mailbox_of(&exact)
            .unwrap()
            .take(10)
            .iter()
            .map(|env| env.message().data.clone().unwrap())
            .collect();
        assert_eq!(
            got,
            (1..=4).map(|n| serde_json::json!(n)).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn conformance() {
        crate::bayeux::engine::conformance::run_all(|| async {
            Arc::new(engine()) as Arc<dyn Engine>
        })
        .await;
    }
}
