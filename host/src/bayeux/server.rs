//! The `Bayeux` handle: message processing (PROTOCOL 1.2), extensions, held connects.
//!
//! Transports hand it messages with a [`MessageContext`]; it checks the client id
//! against its binding, runs incoming hooks, then handles handshake, connect,
//! subscribe, unsubscribe, disconnect and publish against the [`Engine`]. A connect is
//! held on a claimed mailbox until a delivery, its timeout, a newer connect or the
//! session's end; replies and deliveries go out through the outgoing hooks. Engine
//! failures become `500` errors with a paused-retry advice here, in one place.

use crate::sync::{lock, read, write};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::channel;
use super::config::BayeuxConfig;
use super::engine::{
    ClaimKind, Engine, EngineError, EngineHandler, Envelope, Mailbox, MemoryEngine,
    MemoryEngineConfig, PublishOptions, QuotaExceeded, SessionInfo, SessionOptions, SessionQuota,
    SubscribeOptions, SubscribeOutcome,
};
use super::error::BayeuxError;
use super::extension::{Extension, MessageContext, OutgoingContext, OutgoingKind, Verdict};
use super::local::LocalClient;
use super::message::{
    BAYEUX_VERSION, CONNECT, DISCONNECT, HANDSHAKE, Message, SUBSCRIBE, UNSUBSCRIBE,
};
use super::receipt::{Receipt, Taken};

/// Advice `interval` when the engine cannot be reached: how long clients wait before
/// they try again.
const BACKEND_RETRY_MS: u64 = 1_000;

/// Connection types the server advertises.
pub const CONNECTION_TYPES: [&str; 6] = [
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
];

/// The Bayeux server: clone-cheap handle around shared state.
///
/// # Client-id binding
///
/// A client id is bound to the **peer IP address that handshook** (or the first
/// `X-Forwarded-For` address when `trust_forwarded_for` is set). Any message, websocket or
/// EventSource stream presenting the id from another address is treated as an unknown
/// client (`401`). The binding is by address rather than by socket because the real faye
/// client handshakes over HTTP long-polling, then connects over a websocket, and reopens
/// the websocket with the same id after a drop. On top of that, only **one live push
/// socket** (websocket or EventSource) receives a client's deliveries at a time: a new
/// one attaching takes over and the previous one stops receiving.
#[derive(Clone)]
pub struct Bayeux {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Bayeux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bayeux")
            .field("mount_path", &self.inner.config.mount_path)
            .field("engine", &self.inner.engine)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: BayeuxConfig,
    pub(crate) engine: Arc<dyn Engine>,
    extensions: RwLock<Arc<[Arc<dyn Extension>]>>,
    /// Held long-poll connects on this node: client id -> (token, release).
    held: Mutex<HashMap<String, (u64, Arc<Notify>)>>,
    /// Push sockets (websocket/EventSource) on this node: client id -> (token, stop).
    attached: Mutex<HashMap<String, (u64, CancellationToken)>>,
    next_token: AtomicU64,
    /// In-process subscriptions to `/meta/...` patterns; meta messages are forwarded only
    /// while there are some.
    meta_subscriptions: AtomicUsize,
    handler: Arc<dyn EngineHandler>,
    started: OnceLock<()>,
    pub(crate) shutdown: CancellationToken,
    /// Every task the server spawns (sockets, pumps, hooks), waited for at shutdown.
    tasks: TaskTracker,
    /// Woken whenever a session ends here (shutdown waits on it, not on a timer).
    ended: Notify,
}

/// Forwards engine callbacks to the protocol layer without keeping it alive.
struct Handler(Weak<Inner>);

impl EngineHandler for Handler {
    fn session_destroyed(&self, client_id: &str) {
        if let Some(inner) = self.0.upgrade() {
            Bayeux { inner }.on_session_destroyed(client_id);
        }
    }
}

/// What handling one message produced.
#[expect(
    clippy::large_enum_variant,
    reason = "lives for one message; boxing the reply would cost an allocation per message"
)]
pub(crate) enum Outcome {
    /// Replies to send now.
    Reply(Message),
    /// A valid connect: `reply` is sent after holding for up to `hold`.
    Hold { reply: HeldReply, hold: Duration },
}

/// A successful connect's reply while it is held: only what differs between clients,
/// since an idle client holds one for as long as it is idle (a whole [`Message`] is
/// about 500 bytes). [`Bayeux::held_reply`] makes it the reply.
#[derive(Debug)]
pub(crate) struct HeldReply {
    id: Option<Value>,
    client_id: String,
    eventsource: bool,
}

impl HeldReply {
    /// The client whose connect it answers.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// One element of a reply array: a message, or a delivery still in its serialised form.
#[derive(Debug)]
pub(crate) enum OutItem {
    /// A reply or a delivery rewritten by an extension.
    Msg(Box<Message>),
    /// A delivery as published (no outgoing extension registered).
    Raw(Arc<Envelope>),
}

/// Serialises items as reply arrays of at most `max_bytes` each (a single item larger
/// than that gets a frame of its own), each with the number of items in it: a websocket
/// frame over the writer's cap would fail whole, losing every delivery in it.
pub(crate) fn to_json_frames(items: &[OutItem], max_bytes: usize) -> Vec<(String, usize)> {
    let total: usize = items.iter().map(OutItem::size_hint).sum::<usize>() + items.len() + 2;
    if total <= max_bytes {
        return vec![(to_json_array(items), items.len())];
    }
    let mut frames = Vec::new();
    let mut frame = String::from("[");
    let mut in_frame = 0;
    for item in items {
        let owned;
        let json = match item {
            OutItem::Msg(m) => {
                owned = serde_json::to_string(&**m).unwrap_or_else(|_| "{}".into());
                owned.as_str()
            }
            OutItem::Raw(e) => e.json(),
        };
        if frame.len() > 1 && frame.len() + json.len() + 2 > max_bytes {
            frame.push(']');
            let full = std::mem::replace(&mut frame, String::from("["));
            frames.push((full, std::mem::take(&mut in_frame)));
        }
        if frame.len() > 1 {
            frame.push(',');
        }
        frame.push_str(json);
        in_frame += 1;
    }
    frame.push(']');
    frames.push((frame, in_frame));
    frames
}

impl OutItem {
    /// Bytes it will take, exactly for a delivery, roughly for a reply.
    fn size_hint(&self) -> usize {
        match self {
            OutItem::Msg(_) => 256,
            OutItem::Raw(e) => e.json().len(),
        }
    }
}

/// Serialises a reply array.
pub(crate) fn to_json_array(items: &[OutItem]) -> String {
    // Deliveries are already JSON: size the buffer for them, so it is allocated once.
    let raw: usize = items.iter().map(OutItem::size_hint).sum();
    let mut out = String::with_capacity(raw + items.len() + 2);
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            OutItem::Msg(m) => {
                out.push_str(&serde_json::to_string(&**m).unwrap_or_else(|_| "{}".into()))
            }
            OutItem::Raw(e) => out.push_str(e.json()),
        }
    }
    out.push(']');
    out
}

impl Bayeux {
    /// A server with the memory engine.
    pub fn new(config: BayeuxConfig) -> Self {
        let engine = MemoryEngine::new(MemoryEngineConfig::new(
            config.session_ttl(),
            config.max_queue,
        ));
        Self::with_engine(config, Arc::new(engine))
    }

    /// A server over the given engine.
    pub fn with_engine(config: BayeuxConfig, engine: Arc<dyn Engine>) -> Self {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner {
            config,
            engine,
            extensions: RwLock::new(Arc::from(Vec::new())),
            held: Mutex::default(),
            attached: Mutex::default(),
            next_token: AtomicU64::new(1),
            meta_subscriptions: AtomicUsize::new(0),
            handler: Arc::new(Handler(weak.clone())),
            started: OnceLock::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            ended: Notify::new(),
        });
        let bayeux = Self { inner };
        bayeux.ensure_started();
        bayeux
    }

    /// Starts engine background work once we are inside a Tokio runtime.
    pub(crate) fn ensure_started(&self) {
        if self.inner.started.get().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.inner.started.set(()).is_ok() {
            self.inner.engine.start(Arc::downgrade(&self.inner.handler));
        }
    }

    /// The settings.
    pub fn config(&self) -> &BayeuxConfig {
        &self.inner.config
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.inner.engine
    }

    /// Registers a hook; hooks run in registration order.
    pub fn add_extension(&self, extension: Arc<dyn Extension>) {
        let mut guard = write(&self.inner.extensions);
        let mut list: Vec<_> = guard.iter().cloned().collect();
        list.push(extension);
        *guard = Arc::from(list);
    }

    pub(crate) fn extensions(&self) -> Arc<[Arc<dyn Extension>]> {
        read(&self.inner.extensions).clone()
    }

    /// Publishes `data` on `channel` as the server (trusted: any valid channel name,
    /// internal ones included; no incoming hooks). Every subscriber gets exactly one copy.
    ///
    /// # Errors
    /// `405` for an invalid channel name, `500` if the engine fails.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<(), BayeuxError> {
        self.ensure_started();
        self.check_channel(channel, false)?;
        let msg = Message::publish(channel, data);
        self.engine_publish(msg, None).await
    }

    /// Publishes `data` once on each of `channels` as the server (trusted, no hooks),
    /// as one engine operation: a chat room's fan-out to its members' channels.
    ///
    /// # Errors
    /// `405` for an invalid channel name, `500` if the engine fails.
    pub async fn publish_each(&self, channels: &[String], data: Value) -> Result<(), BayeuxError> {
        self.ensure_started();
        for name in channels {
            self.check_channel(name, false)?;
        }
        let Some(first) = channels.first() else {
            return Ok(());
        };
        let opts = PublishOptions {
            local_only: channels
                .iter()
                .any(|c| self.is_internal(c) || channel::is_meta(c)),
            exact_only: channels.iter().any(|c| self.is_exact_only(c)),
        };
        let msg = Message::publish(first.as_str(), data);
        self.inner
            .engine
            .publish_each(channels, &msg, &opts)
            .await
            .map_err(engine_error)
    }

    async fn engine_publish(
        &self,
        msg: Message,
        publisher: Option<String>,
    ) -> Result<(), BayeuxError> {
        let (envelope, opts) = self.envelope(msg, publisher)?;
        self.inner
            .engine
            .publish(envelope.channel(), envelope.clone(), &opts)
            .await
            .map_err(engine_error)
    }

    /// What the engine publishes for `msg`, and how.
    ///
    /// # Errors
    /// `407` for a delivery too large for any websocket to carry.
    fn envelope(
        &self,
        msg: Message,
        publisher: Option<String>,
    ) -> Result<(Arc<Envelope>, PublishOptions), BayeuxError> {
        let name = msg.channel_str();
        let opts = PublishOptions {
            local_only: self.is_internal(name) || channel::is_meta(name),
            exact_only: self.is_exact_only(name),
        };
        let envelope = Arc::new(Envelope::from_message(msg, publisher));
        // A delivery that no websocket could carry is refused here, to its publisher,
        // rather than failing later on every subscriber's socket.
        let max = self.inner.config.max_delivery_bytes();
        if envelope.json().len() > max {
            return Err(BayeuxError::custom(
                407,
                [envelope.channel()],
                format!("Message too large to deliver (at most {max} bytes - 4 x max_frame_bytes)"),
            ));
        }
        Ok((envelope, opts))
    }

    /// A new in-process client (trusted: may subscribe to any pattern, meta, service and
    /// internal channels included).
    ///
    /// # Errors
    /// `500` if the engine fails.
    pub async fn local_client(&self) -> Result<LocalClient, BayeuxError> {
        self.ensure_started();
        let id = self
            .inner
            .engine
            .create_session(&SessionOptions::local())
            .await
            .map_err(engine_error)?;
        Ok(LocalClient::start(self.clone(), id))
    }

    /// Destroys a client's session (as if it had sent `/meta/disconnect`); `true` if it
    /// existed. Its held connect is answered and its push socket stops receiving; the
    /// client's next message gets `401` and it handshakes again.
    pub async fn disconnect_client(&self, client_id: &str) -> bool {
        match self.inner.engine.destroy_session(client_id).await {
            Ok(true) => {
                self.on_session_destroyed(client_id);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(error = %e, "bayeux: destroy failed");
                false
            }
        }
    }

    /// Number of live sessions (in-process clients included).
    pub async fn session_count(&self) -> usize {
        self.inner.engine.session_count().await.unwrap_or(0)
    }

    /// Stops the server: held connects are answered, push sockets write what they hold
    /// and close, and the engine's background work stops. Waits for the server's tasks
    /// to end, at most `grace`.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.inner.tasks.len(),
                "bayeux: tasks still running at the end of the grace period"
            );
        }
        self.inner.engine.close().await;
    }

    /// Runs `task` on the runtime as one of the server's tasks (waited for at shutdown).
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(task);
    }

    /// Resolves when some session ends here after the call (register before checking).
    pub(crate) fn session_ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.ended.notified()
    }

    /// A token cancelled at shutdown.
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Whether `name` (a channel or a wildcard's prefix) lies under an exact-only prefix.
    fn is_exact_only(&self, name: &str) -> bool {
        self.inner
            .config
            .exact_only_prefixes
            .iter()
            .any(|p| channel::is_under(name, p.trim_end_matches('/')))
    }

    /// Whether a network client may not subscribe to `pattern`.
    fn is_forbidden_pattern(&self, pattern: &str) -> bool {
        if channel::is_meta(pattern) || channel::is_service(pattern) || self.is_internal(pattern) {
            return true;
        }
        let prefix = pattern
            .strip_suffix("/**")
            .or_else(|| pattern.strip_suffix("/*"));
        prefix.is_some_and(|p| self.is_exact_only(p))
    }

    fn is_internal(&self, name: &str) -> bool {
        channel::is_under(
            name,
            self.inner.config.internal_prefix.trim_end_matches('/'),
        )
    }

    /// Engine-side destruction already happened: release this node's state, run hooks.
    pub(crate) fn on_session_destroyed(&self, client_id: &str) {
        self.inner.ended.notify_waiters();
        if let Some((_, release)) = lock(&self.inner.held).remove(client_id) {
            release.notify_one();
        }
        if let Some((_, stop)) = lock(&self.inner.attached).remove(client_id) {
            stop.cancel();
        }
        let exts = self.extensions();
        if exts.is_empty() {
            return;
        }
        let id = client_id.to_owned();
        if tokio::runtime::Handle::try_current().is_ok() {
            self.spawn(async move {
                for ext in exts.iter() {
                    ext.session_destroyed(&id).await;
                }
            });
        }
    }

    /// Whether a long-poll connect of `client_id` is held on this node (tests).
    #[cfg(test)]
    pub(crate) fn inner_held(&self, client_id: &str) -> bool {
        lock(&self.inner.held).contains_key(client_id)
    }

    /// Attaches a push socket for `client_id`; the previous one (if any) is stopped.
    /// Returns the token to detach with and the stop signal.
    pub(crate) fn attach(&self, client_id: &str) -> (u64, CancellationToken) {
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let stop = self.inner.shutdown.child_token();
        if let Some((_, old)) =
            lock(&self.inner.attached).insert(client_id.to_owned(), (token, stop.clone()))
        {
            old.cancel();
        }
        (token, stop)
    }

    /// Detaches the push socket `token` (no-op if another one took over).
    pub(crate) fn detach(&self, client_id: &str, token: u64) {
        let mut attached = lock(&self.inner.attached);
        if attached.get(client_id).is_some_and(|(t, _)| *t == token) {
            attached.remove(client_id);
        }
    }

    /// The peer address a session is bound to.
    fn peer_ip(&self, ctx: &MessageContext) -> Option<IpAddr> {
        ctx.remote_addr.map(|a| a.ip())
    }

    /// Looks `client_id` up and checks it is usable from `ctx` (see the binding rule).
    pub(crate) async fn verified_session(
        &self,
        client_id: &str,
        ctx: &MessageContext,
    ) -> Result<Option<SessionInfo>, BayeuxError> {
        let info = self
            .inner
            .engine
            .session(client_id)
            .await
            .map_err(engine_error)?;
        Ok(info.filter(|info| {
            if ctx.trusted {
                return true;
            }
            !info.local && (info.remote_ip.is_none() || info.remote_ip == self.peer_ip(ctx))
        }))
    }

    /// Processes one in-process request: as [`Bayeux::process_for_write`], with the reply
    /// handed over at once (nothing can fail to write).
    pub(crate) async fn process(
        &self,
        messages: Vec<Message>,
        ctx: &MessageContext,
    ) -> Vec<OutItem> {
        let (items, receipt) = self.process_for_write(messages, ctx).await;
        receipt.written();
        items
    }

    /// Processes one request: messages in order, held connects concurrently with the rest
    /// and with each other; returns the reply array (replies then deliveries) and the
    /// receipt for its deliveries, to mark written once the reply is.
    pub(crate) async fn process_for_write(
        &self,
        messages: Vec<Message>,
        ctx: &MessageContext,
    ) -> (Vec<OutItem>, Receipt) {
        self.ensure_started();
        let mut replies: Vec<Option<Message>> = Vec::with_capacity(messages.len());
        let mut holds = Vec::new();
        let mut deliveries = Vec::new();
        let mut rest = Vec::new();
        // Connects first (so a batched `advice.timeout: 0` connect does not wait for its
        // siblings), the others in order; then wait for holds while nothing else blocks.
        // Handshakes past `max_handshakes_per_request` are refused, not run: one request
        // must not create sessions by the thousand.
        let mut handshakes = 0;
        let max_handshakes = self.inner.config.max_handshakes_per_request;
        for (i, msg) in messages.into_iter().enumerate() {
            if msg.channel.as_deref() == Some(HANDSHAKE) && !ctx.trusted {
                handshakes += 1;
                if max_handshakes > 0 && handshakes > max_handshakes {
                    crate::metrics::bayeux_refusal("max_handshakes_per_request");
                    let mut reply = msg.reply();
                    reply.set_outcome(Some(
                        BayeuxError::custom(
                            403,
                            [] as [&str; 0],
                            format!(
                                "Too many handshakes in one request (at most {max_handshakes} - max_handshakes_per_request)"
                            ),
                        )
                        .to_string(),
                    ));
                    replies.push(Some(reply));
                    continue;
                }
            }
            replies.push(None);
            if msg.channel.as_deref() == Some(CONNECT) {
                holds.push((i, msg));
            } else {
                rest.push((i, msg));
            }
        }
        let others = async {
            let (slots, msgs): (Vec<usize>, Vec<Message>) = rest.into_iter().unzip();
            slots.into_iter().zip(self.handle_many(msgs, ctx).await)
        };
        // Each connect is held at the same time as the others: one after another, a
        // batch of n connects would take n timeouts.
        let connects =
            futures_util::future::join_all(holds.into_iter().map(|(i, msg)| async move {
                let outcome = match self.handle(msg, ctx).await {
                    Outcome::Hold { reply, hold } => {
                        let client_id = reply.client_id().to_owned();
                        let taken = self.hold_poll(&client_id, hold).await;
                        (self.held_reply(reply), taken, Some(client_id))
                    }
                    Outcome::Reply(reply) => (reply, None, None),
                };
                (i, outcome)
            }));
        let (others, connects) = tokio::join!(others, connects);
        for (i, outcome) in others {
            if let (Some(slot), Outcome::Reply(r)) = (replies.get_mut(i), outcome) {
                *slot = Some(r);
            }
        }
        for (i, (reply, taken, client_id)) in connects {
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(reply);
            }
            if let (Some(id), Some(taken)) = (client_id, taken) {
                deliveries.push((id, taken));
            }
        }
        let mut out = Vec::with_capacity(replies.len());
        for reply in replies.into_iter().flatten() {
            if let Some(r) = self.outgoing_reply(reply).await {
                out.push(OutItem::Msg(Box::new(r)));
            }
        }
        let mut receipt = Receipt::default();
        for (id, (mailbox, envs)) in deliveries {
            self.outgoing_deliveries(&id, &envs, &mut out).await;
            receipt.add(mailbox, envs);
        }
        (out, receipt)
    }

    /// Runs outgoing hooks on a reply; `None` if dropped.
    pub(crate) async fn outgoing_reply(&self, mut reply: Message) -> Option<Message> {
        let exts = self.extensions();
        if exts.is_empty() {
            return Some(reply);
        }
        let ctx = OutgoingContext {
            client_id: reply.client_id.clone(),
            publisher: None,
            kind: OutgoingKind::Reply,
        };
        for ext in exts.iter() {
            match ext.outgoing(&ctx, &mut reply).await {
                Verdict::Pass => {}
                Verdict::Reject(e) => {
                    reply.set_outcome(Some(e.to_string()));
                    break;
                }
                Verdict::Drop => return None,
            }
        }
        Some(reply)
    }

    /// Runs outgoing hooks on deliveries to `client_id`, appending what survives.
    pub(crate) async fn outgoing_deliveries(
        &self,
        client_id: &str,
        envs: &[Arc<Envelope>],
        out: &mut Vec<OutItem>,
    ) {
        let exts = self.extensions();
        if exts.is_empty() {
            out.extend(envs.iter().cloned().map(OutItem::Raw));
            return;
        }
        'next: for env in envs {
            let channel = env.channel();
            if !exts.iter().any(|ext| ext.sees_deliveries_on(channel)) {
                // Every hook would pass it unchanged: skip the copy and the calls.
                out.push(OutItem::Raw(env.clone()));
                continue;
            }
            let ctx = OutgoingContext {
                client_id: Some(client_id.to_owned()),
                publisher: env.publisher().map(str::to_owned),
                kind: OutgoingKind::Delivery,
            };
            let mut msg = env.message().clone();
            for ext in exts.iter() {
                match ext.outgoing(&ctx, &mut msg).await {
                    Verdict::Pass => {}
                    Verdict::Reject(_) | Verdict::Drop => continue 'next,
                }
            }
            // Hooks that only look (e.g. dropping echoes) leave the message as published:
            // send the JSON shared by every recipient rather than serialising a copy.
            if msg == *env.message() {
                out.push(OutItem::Raw(env.clone()));
            } else {
                out.push(OutItem::Msg(Box::new(msg)));
            }
        }
    }

    /// Holds a long-poll connect: returns at once with what is queued, else when a
    /// delivery arrives (one tick later, to batch), the hold time passes, another connect
    /// of the same client arrives, the session ends, or the server shuts down. The
    /// committed deliveries come with their claim, which stays open until the reply is
    /// written (see [`Receipt`]); `None` when there are none.
    async fn hold_poll(&self, client_id: &str, hold: Duration) -> Option<Taken> {
        let engine = &self.inner.engine;
        let max = self.inner.config.max_batch;
        let mailbox = match engine.claim(client_id, ClaimKind::Poll).await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => {
                engine_error(e);
                return None;
            }
        };
        let mut envs = mailbox.take(max);
        if envs.is_empty() && !hold.is_zero() {
            envs = self.hold(client_id, &mailbox, hold).await;
        }
        if !envs.is_empty() {
            match mailbox.commit().await {
                Ok(true) => {}
                // A newer connect took the session over: it delivers these instead.
                Ok(false) => envs.clear(),
                Err(e) => {
                    // Not committed, so not lost: the next connect delivers them.
                    engine_error(e);
                    envs.clear();
                }
            }
        }
        let _ = engine.ping(client_id).await;
        (!envs.is_empty()).then_some((mailbox, envs))
    }

    /// Waits on a claimed mailbox until a delivery arrives (one tick later, to batch),
    /// the hold time passes, another connect of the same client arrives here, the claim
    /// ends, or the server shuts down.
    async fn hold(
        &self,
        client_id: &str,
        mailbox: &Arc<dyn Mailbox>,
        hold: Duration,
    ) -> Vec<Arc<Envelope>> {
        let max = self.inner.config.max_batch;
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let release = Arc::new(Notify::new());
        if let Some((_, previous)) =
            lock(&self.inner.held).insert(client_id.to_owned(), (token, release.clone()))
        {
            // A second connect releases the first.
            previous.notify_one();
        }
        let deadline = tokio::time::sleep(hold);
        tokio::pin!(deadline);
        let mut envs = Vec::new();
        loop {
            tokio::select! {
                () = mailbox.clone().wait() => {
                    tokio::task::yield_now().await;
                    envs = mailbox.take(max);
                    if !envs.is_empty() || mailbox.is_closed() {
                        break;
                    }
                }
                () = release.notified() => break,
                () = &mut deadline => break,
                () = self.inner.shutdown.cancelled() => break,
            }
        }
        let mut held = lock(&self.inner.held);
        if held.get(client_id).is_some_and(|(t, _)| *t == token) {
            held.remove(client_id);
        }
        envs
    }

    /// Runs incoming hooks; `Some(reply)` if one rejected or dropped the message.
    async fn incoming(&self, ctx: &MessageContext, msg: &mut Message) -> Option<Message> {
        let exts = self.extensions();
        for ext in exts.iter() {
            match ext.incoming(ctx, msg).await {
                Verdict::Pass => {}
                Verdict::Reject(e) => {
                    let mut reply = msg.reply();
                    reply.set_outcome(Some(e.to_string()));
                    if matches!(msg.channel.as_deref(), Some(HANDSHAKE | CONNECT)) {
                        reply.advice = Some(json!({"reconnect": "handshake"}));
                        reply.client_id = None;
                    }
                    return Some(reply);
                }
                Verdict::Drop => {
                    let mut reply = msg.reply();
                    reply.set_outcome(None);
                    return Some(reply);
                }
            }
        }
        None
    }

    /// Handles one message (everything but the hold itself).
    pub(crate) async fn handle(&self, msg: Message, base: &MessageContext) -> Outcome {
        match self.admit(msg, base).await {
            Err(reply) => Outcome::Reply(reply),
            Ok(a) if !channel::is_meta(a.msg.channel_str()) => {
                let (reply, item) = self.check_publish(a);
                let mut outcomes = [Outcome::Reply(reply)];
                if let Some(item) = item {
                    let mut run = PublishRun {
                        slots: vec![0],
                        items: vec![item],
                    };
                    self.publish_run(&mut run, &mut outcomes).await;
                }
                let [outcome] = outcomes;
                outcome
            }
            Ok(a) => self.handle_meta(a).await,
        }
    }

    /// Handles `messages` in order, as [`Bayeux::handle`] one after another would, except
    /// that a run of consecutive publishes reaches the engine as one
    /// [`PubSubEngine::publish_run`]: a client's burst of publishes waits for a clustered
    /// engine once, not once each. The run is published before any meta message after it
    /// is handled.
    ///
    /// [`PubSubEngine::publish_run`]: super::engine::PubSubEngine::publish_run
    pub(crate) async fn handle_many(
        &self,
        messages: Vec<Message>,
        base: &MessageContext,
    ) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut run = PublishRun::default();
        for msg in messages {
            let a = match self.admit(msg, base).await {
                Ok(a) => a,
                Err(reply) => {
                    outcomes.push(Outcome::Reply(reply));
                    continue;
                }
            };
            if !channel::is_meta(a.msg.channel_str()) {
                let (reply, item) = self.check_publish(a);
                if let Some(item) = item {
                    run.slots.push(outcomes.len());
                    run.items.push(item);
                }
                outcomes.push(Outcome::Reply(reply));
                continue;
            }
            self.publish_run(&mut run, &mut outcomes).await;
            outcomes.push(self.handle_meta(a).await);
        }
        self.publish_run(&mut run, &mut outcomes).await;
        outcomes
    }

    /// Publishes the run gathered so far and sets its replies' outcomes; empties it.
    async fn publish_run(&self, run: &mut PublishRun, outcomes: &mut [Outcome]) {
        if run.items.is_empty() {
            return;
        }
        let mut results = self.inner.engine.publish_run(&run.items).await.into_iter();
        for slot in run.slots.drain(..) {
            let result = results
                .next()
                .unwrap_or_else(|| Err(EngineError::Backend("no result for a publish".into())));
            if let Some(Outcome::Reply(reply)) = outcomes.get_mut(slot) {
                reply.set_outcome(result.err().map(|e| engine_error(e).to_string()));
            }
        }
        run.items.clear();
    }

    /// Checks `msg`'s client id against its binding and runs the incoming hooks: the
    /// message as the hooks left it, or the reply that ends it.
    async fn admit(&self, mut msg: Message, base: &MessageContext) -> Result<Admitted, Message> {
        let mut ctx = base.clone();
        ctx.client_id = None;
        if let Some(id) = msg.client_id.as_deref() {
            match self.verified_session(id, base).await {
                Ok(Some(_)) => ctx.client_id = Some(id.to_owned()),
                Ok(None) => {}
                Err(e) => {
                    let mut reply = msg.reply();
                    reply.set_outcome(Some(e.to_string()));
                    return Err(reply);
                }
            }
        }
        if let Some(reply) = self.incoming(&ctx, &mut msg).await {
            return Err(reply);
        }
        // Verified only if the hooks left the id alone.
        let known = ctx.client_id.is_some() && ctx.client_id == msg.client_id;
        Ok(Admitted { msg, ctx, known })
    }

    /// Handles an admitted meta message.
    async fn handle_meta(&self, a: Admitted) -> Outcome {
        let Admitted { msg, ctx, known } = a;
        let name = msg.channel_str();
        let outcome = match name {
            HANDSHAKE => Outcome::Reply(self.handshake(&msg, &ctx).await),
            CONNECT => self.connect(&msg, known).await,
            SUBSCRIBE => Outcome::Reply(self.subscribe(&msg, &ctx, known, true).await),
            UNSUBSCRIBE => Outcome::Reply(self.subscribe(&msg, &ctx, known, false).await),
            DISCONNECT => Outcome::Reply(self.disconnect(&msg, known).await),
            _ => {
                let mut reply = msg.reply();
                reply.set_outcome(Some(BayeuxError::channel_forbidden(name).to_string()));
                Outcome::Reply(reply)
            }
        };
        let succeeded = match &outcome {
            Outcome::Reply(r) if r.successful == Some(true) => Some(r.client_id.as_ref()),
            Outcome::Reply(_) => None,
            Outcome::Hold { reply, .. } => Some(Some(&reply.client_id)),
        };
        if let Some(client_id) = succeeded
            && !ctx.trusted
            && self.inner.meta_subscriptions.load(Ordering::Relaxed) > 0
        {
            // In-process observers of meta traffic (never network clients).
            let mut copy = msg.clone();
            copy.data = Some(json!({
                "clientId": client_id.or(msg.client_id.as_ref()),
                "subscription": msg.subscription.clone(),
            }));
            let _ = self.engine_publish(copy, ctx.client_id.clone()).await;
        }
        outcome
    }

    fn advise(&self, reply: &mut Message, connection_type: Option<&str>) {
        let c = &self.inner.config;
        let backend_failed = reply
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("500:"));
        reply.advice = Some(if backend_failed {
            // The server cannot serve now (its engine is unreachable): the client keeps
            // its session and tries again after a pause, rather than at once in a loop.
            let retry = if reply.channel.as_deref() == Some(HANDSHAKE) {
                "handshake"
            } else {
                "retry"
            };
            json!({"reconnect": retry, "interval": BACKEND_RETRY_MS})
        } else if reply.error.is_some() {
            json!({"reconnect": "handshake"})
        } else if connection_type == Some("eventsource") {
            json!({"reconnect": "retry", "interval": c.timeout_ms, "timeout": 0})
        } else {
            json!({"reconnect": "retry", "interval": c.interval_ms, "timeout": c.timeout_ms})
        });
    }

    async fn handshake(&self, msg: &Message, ctx: &MessageContext) -> Message {
        let mut reply = msg.reply();
        reply.client_id = None;
        reply.version = Some(BAYEUX_VERSION.to_owned());
        reply.supported_connection_types =
            Some(CONNECTION_TYPES.iter().map(|s| (*s).to_owned()).collect());
        let mut error = None;
        if msg.version.as_deref().is_none_or(str::is_empty) {
            error = Some(BayeuxError::parameter_missing("version"));
        }
        match &msg.supported_connection_types {
            Some(theirs) => {
                if !theirs
                    .iter()
                    .any(|t| CONNECTION_TYPES.contains(&t.as_str()))
                {
                    error = Some(BayeuxError::conntype_mismatch(theirs));
                }
            }
            None => error = Some(BayeuxError::parameter_missing("supportedConnectionTypes")),
        }
        if error.is_none() {
            let opts = if ctx.trusted {
                SessionOptions::local()
            } else {
                SessionOptions::network(self.peer_ip(ctx)).with_quota(SessionQuota {
                    max_sessions: self.inner.config.max_sessions,
                    max_sessions_per_ip: self.inner.config.max_sessions_per_ip,
                })
            };
            match self.inner.engine.create_session(&opts).await {
                Ok(id) => reply.client_id = Some(id),
                Err(EngineError::Quota(exceeded)) => {
                    crate::metrics::bayeux_refusal(match exceeded {
                        QuotaExceeded::Sessions(_) => "max_sessions",
                        QuotaExceeded::PerIp(_) => "max_sessions_per_ip",
                    });
                    error = Some(BayeuxError::custom(
                        403,
                        [] as [&str; 0],
                        exceeded.to_string(),
                    ));
                }
                Err(e) => error = Some(engine_error(e)),
            }
        }
        reply.set_outcome(error.map(|e| e.to_string()));
        self.advise(&mut reply, None);
        reply
    }

    async fn connect(&self, msg: &Message, known: bool) -> Outcome {
        let mut reply = msg.reply();
        let connection_type = msg.connection_type.as_deref();
        let mut error = client_error(msg, known);
        if !connection_type.is_some_and(|t| CONNECTION_TYPES.contains(&t)) {
            error = Some(BayeuxError::conntype_mismatch(&[connection_type
                .unwrap_or("")
                .to_owned()]));
        }
        if connection_type.is_none() {
            error = Some(BayeuxError::parameter_missing("connectionType"));
        }
        let client_id = match (error, msg.client_id.as_deref()) {
            (None, Some(id)) => id,
            (error, _) => {
                reply.client_id = None;
                reply.set_outcome(Some(
                    error.unwrap_or_else(BayeuxError::server_error).to_string(),
                ));
                self.advise(&mut reply, connection_type);
                return Outcome::Reply(reply);
            }
        };
        let error = match self.inner.engine.ping(client_id).await {
            Ok(true) => None,
            // Destroyed elsewhere a moment ago (this node had not heard yet).
            Ok(false) => Some(BayeuxError::client_unknown(client_id)),
            Err(e) => Some(engine_error(e)),
        };
        if let Some(error) = error {
            reply.client_id = None;
            reply.set_outcome(Some(error.to_string()));
            self.advise(&mut reply, connection_type);
            return Outcome::Reply(reply);
        }
        let eventsource = connection_type == Some("eventsource");
        let server_hold = Duration::from_millis(self.inner.config.timeout_ms);
        let hold = if eventsource {
            Duration::ZERO
        } else {
            msg.advice_timeout_ms()
                .map_or(server_hold, |t| Duration::from_millis(t).min(server_hold))
        };
        Outcome::Hold {
            reply: HeldReply {
                id: reply.id,
                client_id: client_id.to_owned(),
                eventsource,
            },
            hold,
        }
    }

    /// The reply a held connect is answered with.
    pub(crate) fn held_reply(&self, held: HeldReply) -> Message {
        let mut reply = Message {
            id: held.id,
            channel: Some(CONNECT.to_owned()),
            client_id: Some(held.client_id),
            ..Message::default()
        };
        reply.set_outcome(None);
        self.advise(&mut reply, held.eventsource.then_some("eventsource"));
        reply
    }

    async fn subscribe(
        &self,
        msg: &Message,
        ctx: &MessageContext,
        known: bool,
        add: bool,
    ) -> Message {
        let mut reply = msg.reply();
        reply.subscription = Some(msg.subscription.clone().unwrap_or_else(|| json!([])));
        let mut error = client_error(msg, known);
        if msg.subscription.is_none() {
            error = Some(BayeuxError::parameter_missing("subscription"));
        }
        let channels = match msg.subscriptions() {
            Some(c) => c,
            None => {
                if error.is_none() {
                    let raw = msg
                        .subscription
                        .as_ref()
                        .map(Value::to_string)
                        .unwrap_or_default();
                    error = Some(BayeuxError::channel_invalid(&raw));
                }
                Vec::new()
            }
        };
        let max = self.inner.config.max_channels_per_subscribe;
        if error.is_none() && max > 0 && channels.len() > max {
            error = Some(BayeuxError::custom(
                400,
                [channels.len().to_string()],
                format!("Too many channels in one request (at most {max})"),
            ));
        }
        let client_id = msg.client_id.as_deref().unwrap_or("");
        let opts = SubscribeOptions {
            max_per_client: if ctx.trusted {
                0
            } else {
                self.inner.config.max_subscriptions_per_client
            },
        };
        for name in channels {
            if error.is_some() {
                break;
            }
            if let Err(e) = self.check_channel(name, true) {
                error = Some(e);
                break;
            }
            if add && !ctx.trusted && self.is_forbidden_pattern(name) {
                error = Some(BayeuxError::channel_forbidden(name));
                break;
            }
            if add {
                match self.inner.engine.subscribe(client_id, name, &opts).await {
                    Ok(SubscribeOutcome::Subscribed) => {
                        if ctx.trusted && channel::is_meta(name) {
                            self.inner
                                .meta_subscriptions
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        for ext in self.extensions().iter() {
                            ext.subscribed(ctx, name).await;
                        }
                    }
                    Ok(SubscribeOutcome::TooMany) => {
                        error = Some(BayeuxError::custom(403, [name], "Too many subscriptions"));
                    }
                    Ok(_) => error = Some(BayeuxError::client_unknown(client_id)),
                    Err(e) => error = Some(engine_error(e)),
                }
            } else {
                match self.inner.engine.unsubscribe(client_id, name).await {
                    Ok(true) => {
                        if ctx.trusted && channel::is_meta(name) {
                            let _ = self.inner.meta_subscriptions.fetch_update(
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                                |n| n.checked_sub(1),
                            );
                        }
                    }
                    Ok(false) => error = Some(BayeuxError::client_unknown(client_id)),
                    Err(e) => error = Some(engine_error(e)),
                }
            }
        }
        reply.set_outcome(error.map(|e| e.to_string()));
        reply
    }

    /// A channel name (or, with `pattern`, a subscription pattern) within the size
    /// limits and well formed. The limits come first: they bound the cost of every
    /// later step (matching a publish costs the name's length times its depth).
    fn check_channel(&self, name: &str, pattern: bool) -> Result<(), BayeuxError> {
        let config = &self.inner.config;
        if name.len() > config.max_channel_bytes {
            return Err(BayeuxError::custom(
                405,
                [abbreviate(name)],
                format!(
                    "Channel name too long (at most {} bytes - max_channel_bytes)",
                    config.max_channel_bytes
                ),
            ));
        }
        let segments = name.bytes().filter(|&b| b == b'/').count();
        if segments > config.max_channel_segments {
            return Err(BayeuxError::custom(
                405,
                [abbreviate(name)],
                format!(
                    "Channel name too deep (at most {} segments - max_channel_segments)",
                    config.max_channel_segments
                ),
            ));
        }
        let valid = if pattern {
            channel::is_valid_pattern(name)
        } else {
            channel::is_valid_name(name)
        };
        if valid {
            Ok(())
        } else {
            Err(BayeuxError::channel_invalid(name))
        }
    }

    async fn disconnect(&self, msg: &Message, known: bool) -> Message {
        let mut reply = msg.reply();
        let error = client_error(msg, known);
        if error.is_none()
            && let Some(id) = msg.client_id.as_deref()
        {
            self.disconnect_client(id).await;
        }
        reply.set_outcome(error.map(|e| e.to_string()));
        reply
    }

    /// Checks an admitted publish: its reply, with what to publish if it passed (the
    /// reply's outcome then still to set), or refusing it.
    fn check_publish(&self, a: Admitted) -> (Message, Option<(Arc<Envelope>, PublishOptions)>) {
        let Admitted { msg, ctx, known } = a;
        let mut reply = msg.reply();
        let name = msg.channel_str();
        let mut error = None;
        // Anonymous publishes are accepted as faye does; a presented id must be valid.
        if msg.client_id.is_some() && !known {
            error = Some(BayeuxError::client_unknown(
                msg.client_id.as_deref().unwrap_or(""),
            ));
        }
        if !ctx.trusted && self.is_internal(name) {
            error = Some(BayeuxError::channel_forbidden(name));
        }
        if let Err(e) = self.check_channel(name, false) {
            error = Some(e);
        }
        if msg.data.is_none() {
            error = Some(BayeuxError::parameter_missing("data"));
        }
        let checked = match error {
            Some(e) => Err(e),
            None => self.envelope(msg, ctx.client_id),
        };
        match checked {
            Ok(item) => (reply, Some(item)),
            Err(e) => {
                reply.set_outcome(Some(e.to_string()));
                (reply, None)
            }
        }
    }
}

/// A message past its session check and incoming hooks.
struct Admitted {
    msg: Message,
    /// The context with the client id, if it was verified.
    ctx: MessageContext,
    /// The id is verified and the hooks left it alone.
    known: bool,
}

/// Publishes gathered by [`Bayeux::handle_many`] for one engine call, with the slots
/// of their replies.
#[derive(Default)]
struct PublishRun {
    slots: Vec<usize>,
    items: Vec<(Arc<Envelope>, PublishOptions)>,
}

/// The first 64 bytes of a refused name (whole names may be a megabyte).
fn abbreviate(name: &str) -> String {
    if name.len() <= 64 {
        return name.to_owned();
    }
    let mut end = 64;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &name[..end])
}

/// The one place engine failures become protocol errors.
pub(crate) fn engine_error(e: EngineError) -> BayeuxError {
    tracing::error!(error = %e, "bayeux: engine failure");
    BayeuxError::server_error()
}

/// The error of a meta message whose `clientId` is missing or unknown. As in faye, later
/// checks override earlier ones: a missing id wins over an unknown one.
fn client_error(msg: &Message, known: bool) -> Option<BayeuxError> {
    if msg.client_id.is_none() {
        Some(BayeuxError::parameter_missing("clientId"))
    } else if !known {
        Some(BayeuxError::client_unknown(
            msg.client_id.as_deref().unwrap_or(""),
        ))
    } else {
        None
    }
}
