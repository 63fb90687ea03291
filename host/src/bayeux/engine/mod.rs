//! Where Bayeux state lives: sessions, subscriptions and per-client mailboxes.
//!
//! The protocol layer (`bayeux::server`) only talks to an [`Engine`]; a backend implements
//! the small traits below and nothing about transports or the wire format. The cut follows
//! centrifuge's broker/presence split:
//!
//! - [`SessionEngine`]: create, look up, ping (liveness) and destroy client sessions;
//! - [`PubSubEngine`]: subscriptions and publish (fan-out into mailboxes);
//! - [`MailboxEngine`]: a transport *claims* a session's mailbox for one held connect or
//!   one push socket, takes deliveries from it and waits on it; a newer claim supersedes
//!   an older one, so a client that moves between connections (or nodes) gets every
//!   message once.
//!
//! Connections (held long-polls, websockets) stay in the protocol layer. The engine
//! reports what it decides on its own (expiry, slow-consumer eviction) through an
//! [`EngineHandler`] registered once at [`Engine::start`].
//!
//! # Slow consumers: one policy
//!
//! Messages wait for a client in its mailbox, bounded by `max_queue`; a publish that
//! finds it full destroys the session (the client gets `401` and starts over). That
//! rule lives in the per-client delivery layer, [`MemoryEngine`], and only there: the
//! Redis engine delivers through a per-node `MemoryEngine`, so it applies the same rule
//! to live clients, and at a claim counts a returning client's backlog the same way. A
//! transport only drains a mailbox while it can write, and closes a socket whose write
//! stalls; what the client did not read then waits in the mailbox under the same bound.
//!
//! [`MemoryEngine`] is the reference implementation and the default; [`RedisEngine`]
//! shares the state of a cluster of nodes through Redis (see its module docs for the
//! protocol and its delivery guarantee). Both pass one conformance suite.

mod log_id;
mod memory;
pub mod redis;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

pub(crate) use log_id::LogId;
pub use memory::MemoryEngine;
pub use redis::{RedisEngine, RedisEngineConfig};

use serde_json::Value;

use super::message::Message;

/// A boxed, sendable future: the engine traits are used as `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A backend failure (e.g. Redis unreachable); the protocol layer answers `500`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The backend cannot be reached or answered nonsense.
    #[error("engine backend: {0}")]
    Backend(String),
    /// A new session would pass a [`SessionQuota`].
    #[error("{0}")]
    Quota(QuotaExceeded),
    /// The engine was closed.
    #[error("engine closed")]
    Closed,
}

/// What the engine knows of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The client id.
    pub client_id: String,
    /// The peer address that handshook (the session is bound to it).
    pub remote_ip: Option<IpAddr>,
    /// An in-process (trusted) client: never expires, receives internal channels.
    pub local: bool,
}

/// Options for [`SessionEngine::create_session`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SessionOptions {
    /// The peer address that handshook.
    pub remote_ip: Option<IpAddr>,
    /// An in-process client (see [`SessionInfo::local`]).
    pub local: bool,
    /// Caps a network session is created under (in-process ones are not counted).
    pub quota: SessionQuota,
}

/// Caps on network sessions, checked by the engine atomically with the creation (so
/// a burst of handshakes cannot overshoot them); `0` means no cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionQuota {
    /// Network sessions in all (cluster-wide with the Redis engine).
    pub max_sessions: usize,
    /// Network sessions handshaken from one address.
    pub max_sessions_per_ip: usize,
}

/// Which cap a handshake hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    /// `max_sessions`.
    #[error("Too many sessions (at most {0} - max_sessions)")]
    Sessions(usize),
    /// `max_sessions_per_ip`.
    #[error("Too many sessions from your address (at most {0} - max_sessions_per_ip)")]
    PerIp(usize),
}

impl SessionOptions {
    /// Options for a network client seen at `remote_ip`.
    pub fn network(remote_ip: Option<IpAddr>) -> Self {
        Self {
            remote_ip,
            local: false,
            quota: SessionQuota::default(),
        }
    }

    /// Options for an in-process client.
    pub fn local() -> Self {
        Self {
            remote_ip: None,
            local: true,
            quota: SessionQuota::default(),
        }
    }

    /// These options under `quota`.
    pub fn with_quota(mut self, quota: SessionQuota) -> Self {
        self.quota = quota;
        self
    }
}

/// Options for [`PubSubEngine::publish`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PublishOptions {
    /// Deliver only to in-process sessions (internal channels).
    pub local_only: bool,
    /// Network sessions receive it only through an exact-name subscription, not a
    /// wildcard (private per-connection channels).
    pub exact_only: bool,
}

/// Options for [`PubSubEngine::subscribe`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Most subscriptions the client may hold (0 = unlimited).
    pub max_per_client: usize,
}

/// Result of a subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeOutcome {
    /// Subscribed (or already was).
    Subscribed,
    /// No such session.
    UnknownClient,
    /// The client holds too many subscriptions.
    TooMany,
}

/// A published message as stored in mailboxes: the delivery copy (no `clientId`),
/// who published it, and its JSON, serialised once for every recipient.
#[derive(Debug)]
pub struct Envelope {
    /// The parsed message; an envelope read back from a shared log parses its JSON only
    /// when something asks (most deliveries go out as the JSON alone).
    message: OnceLock<Message>,
    channel: String,
    publisher: Option<String>,
    json: String,
    /// Where the publish sits in a shared log (clustered engines); `None` in memory.
    position: Option<LogId>,
}

impl Envelope {
    /// Wraps a message for delivery; `clientId` and reply fields are dropped.
    pub fn new(message: &Message, publisher: Option<String>) -> Self {
        Self::from_message(message.for_delivery(), publisher)
    }

    /// As [`Envelope::for_channel`], read back from a shared log at `position`.
    pub(crate) fn for_position(message: &Message, channel: &str, position: LogId) -> Self {
        let mut envelope = Self::for_channel(message, channel);
        envelope.position = Some(position);
        envelope
    }

    /// A copy of `message` for delivery on `channel`.
    pub fn for_channel(message: &Message, channel: &str) -> Self {
        let mut copy = message.for_delivery();
        copy.channel = Some(channel.to_owned());
        Self::from_message(copy, None)
    }

    /// As [`Envelope::new`], taking the message (no copy of its data).
    pub fn from_message(message: Message, publisher: Option<String>) -> Self {
        let message = message.into_delivery();
        // A Message of plain JSON values always serialises.
        let json = serde_json::to_string(&message).unwrap_or_else(|_| "{}".to_owned());
        Self {
            channel: message.channel_str().to_owned(),
            message: OnceLock::from(message),
            publisher,
            json,
            position: None,
        }
    }

    /// An envelope read back from a shared log: the delivery JSON of a publish on
    /// `channel`, as it was published (parsed only if something looks at it).
    pub(crate) fn from_log(
        channel: String,
        json: String,
        publisher: Option<String>,
        position: LogId,
    ) -> Self {
        Self {
            message: OnceLock::new(),
            channel,
            publisher,
            json,
            position: Some(position),
        }
    }

    /// The publish's position in the shared log, for clustered engines.
    pub(crate) fn position(&self) -> Option<LogId> {
        self.position
    }

    /// The message subscribers receive.
    pub fn message(&self) -> &Message {
        self.message.get_or_init(|| {
            // Written by `from_message` on some node, so it parses; should the log hold
            // anything else, subscribers still get a message on the right channel.
            serde_json::from_str(&self.json)
                .unwrap_or_else(|_| Message::publish(self.channel.as_str(), Value::Null))
        })
    }

    /// The channel it was published on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The client id of the publisher (`None` for server-side publishes).
    pub fn publisher(&self) -> Option<&str> {
        self.publisher.as_deref()
    }

    /// The message as JSON.
    pub fn json(&self) -> &str {
        &self.json
    }
}

/// Callbacks from the engine into the protocol layer, registered once.
pub trait EngineHandler: Send + Sync {
    /// The engine destroyed a session on its own (expiry or full mailbox).
    fn session_destroyed(&self, client_id: &str);
}

/// Session registry.
///
/// Guarantees: ids are unguessable (>= 128 bits from a CSPRNG, lower-case base 36);
/// a session not pinged for the configured TTL is destroyed and reported through
/// [`EngineHandler::session_destroyed`]; local sessions never expire.
pub trait SessionEngine: Send + Sync {
    /// Creates a session and returns its client id.
    fn create_session<'a>(
        &'a self,
        opts: &'a SessionOptions,
    ) -> BoxFuture<'a, Result<String, EngineError>>;
    /// Looks a session up.
    fn session<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SessionInfo>, EngineError>>;
    /// Marks the session alive now; `false` if it does not exist.
    fn ping<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, Result<bool, EngineError>>;
    /// Destroys a session, its subscriptions and mailbox; `true` if it existed. Waiters
    /// on its mailbox are woken. The caller reports the destruction (the handler is not
    /// called for explicit destroys).
    fn destroy_session<'a>(
        &'a self,
        client_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, EngineError>>;
    /// Number of live sessions (local ones included).
    fn session_count(&self) -> BoxFuture<'_, Result<usize, EngineError>>;
    /// What this process holds now: its sessions and their queued deliveries (for
    /// `/metrics`; cluster-wide counts need [`SessionEngine::session_count`]).
    fn local_load(&self) -> LocalLoad;
}

/// Sessions held by this process and deliveries waiting in their mailboxes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalLoad {
    /// Sessions in this process's memory.
    pub sessions: usize,
    /// Deliveries queued for them, not yet taken by a transport.
    pub queued: usize,
}

/// Subscriptions and publish.
///
/// Guarantees: a publish puts **exactly one** envelope in the mailbox of every session
/// with at least one matching subscription, however many match; a subscription made
/// before `publish` is called sees that publish, one removed before it does not; cost
/// follows the number of matching subscribers, not the number of sessions or channels.
pub trait PubSubEngine: Send + Sync {
    /// Subscribes a session to a (validated) pattern.
    fn subscribe<'a>(
        &'a self,
        client_id: &'a str,
        pattern: &'a str,
        opts: &'a SubscribeOptions,
    ) -> BoxFuture<'a, Result<SubscribeOutcome, EngineError>>;
    /// Removes a subscription; `false` if the session does not exist.
    fn unsubscribe<'a>(
        &'a self,
        client_id: &'a str,
        pattern: &'a str,
    ) -> BoxFuture<'a, Result<bool, EngineError>>;
    /// Fans an envelope out to the mailboxes of matching sessions. A session whose
    /// mailbox is full is destroyed (slow consumer) and reported through the handler.
    /// `Ok` means the publish is accepted: a clustered engine delivers it shortly after,
    /// on whichever nodes serve the subscribers.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        envelope: Arc<Envelope>,
        opts: &'a PublishOptions,
    ) -> BoxFuture<'a, Result<(), EngineError>>;

    /// Publishes each envelope on its own channel, in order, as [`publish`] one after
    /// another would; a result per envelope. A clustered engine sends the run as one
    /// operation, so a client's burst of publishes costs one wait, not one each.
    ///
    /// [`publish`]: PubSubEngine::publish
    fn publish_run<'a>(
        &'a self,
        run: &'a [(Arc<Envelope>, PublishOptions)],
    ) -> BoxFuture<'a, Vec<Result<(), EngineError>>> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(run.len());
            for (envelope, opts) in run {
                results.push(
                    self.publish(envelope.channel(), envelope.clone(), opts)
                        .await,
                );
            }
            results
        })
    }

    /// Publishes `message` once on each of `channels` (server-side fan-out, e.g. a chat
    /// room's members): the subscribers of each channel get a copy whose `channel` is
    /// that one. A clustered engine makes it one shared operation, whatever the number
    /// of channels.
    fn publish_each<'a>(
        &'a self,
        channels: &'a [String],
        message: &'a Message,
        opts: &'a PublishOptions,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(async move {
            for channel in channels {
                let envelope = Arc::new(Envelope::for_channel(message, channel));
                self.publish(channel, envelope, opts).await?;
            }
            Ok(())
        })
    }
}

/// What a claim is for; it decides when taken deliveries become final.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimKind {
    /// One `/meta/connect` reply (long-polling, JSONP): taken deliveries are final only
    /// once [`Mailbox::commit`] says so, right before the reply is written.
    Poll,
    /// A push socket (websocket, EventSource, in-process client) that writes deliveries
    /// as they come: what it takes is final at once.
    Push,
}

/// Per-client delivery.
///
/// A transport **claims** a session before it delivers: one claim per held connect or
/// push socket. A newer claim (another connect, on this node or another) supersedes the
/// older one, which then receives nothing more and whose uncommitted deliveries go to the
/// newer claim instead: so a client sees every message once, wherever it connects.
pub trait MailboxEngine: Send + Sync {
    /// Claims the delivery of `client_id`'s messages; `None` if there is no such session.
    /// When it resolves, the mailbox holds every message published before the call.
    fn claim<'a>(
        &'a self,
        client_id: &'a str,
        kind: ClaimKind,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Mailbox>>, EngineError>>;
}

/// One claim on a client's mailbox.
///
/// Guarantees: an envelope is taken at most once (two concurrent takers never both get
/// it) unless handed back with [`Mailbox::restore`]; envelopes come out in publish order for one publisher; once the claim is over
/// ([`Mailbox::is_closed`]) it stays empty and `wait` resolves at once. Dropping the
/// handle ends the claim.
pub trait Mailbox: Send + Sync {
    /// Takes up to `max` queued envelopes (empty if none or the claim is over).
    fn take(&self, max: usize) -> Vec<Arc<Envelope>>;
    /// As [`Mailbox::take`], also saying whether nothing was left queued behind what it
    /// took (`false` when unknown).
    fn take_and_drain(&self, max: usize) -> (Vec<Arc<Envelope>>, bool) {
        (self.take(max), false)
    }
    /// Resolves when the mailbox may be non-empty or the claim is over (at once if that
    /// is already so). Spurious wake-ups are allowed.
    fn wait(self: Arc<Self>) -> BoxFuture<'static, ()>;
    /// Makes what a [`ClaimKind::Poll`] claim took final; `Ok(false)` if a newer claim
    /// superseded this one meanwhile: the taken envelopes must then not be sent (the
    /// newer claim delivers them). Push claims need not call it.
    fn commit(&self) -> BoxFuture<'_, Result<bool, EngineError>>;
    /// Whether the claim is over: the session ended or a newer claim took over.
    fn is_closed(&self) -> bool;
    /// Hands back `unsent`, the tail of what this claim took (in the order taken) that
    /// could not be written: the socket failed or its write deadline passed. The
    /// session's next claim delivers it again, ahead of anything newer; the caller ends
    /// this claim soon after. Lost only if the session ends, or if a newer claim took
    /// over before the failure was known (the client gave up on that reply itself).
    fn restore(&self, unsent: Vec<Arc<Envelope>>);
}

/// A complete Bayeux backend.
pub trait Engine: SessionEngine + PubSubEngine + MailboxEngine + fmt::Debug {
    /// Starts background work (expiry) and registers the handler. Called once, inside
    /// a Tokio runtime.
    fn start(&self, handler: Weak<dyn EngineHandler>);
    /// Stops background work; later calls may fail with [`EngineError::Closed`].
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Settings of the memory engine.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemoryEngineConfig {
    /// Lifetime of a session without a ping.
    pub session_ttl: Duration,
    /// Mailbox bound per client.
    pub max_queue: usize,
}

impl MemoryEngineConfig {
    /// A config with the given TTL and queue bound.
    pub fn new(session_ttl: Duration, max_queue: usize) -> Self {
        Self {
            session_ttl,
            max_queue,
        }
    }
}

/// A fresh client id: 128 bits from the thread-local CSPRNG, in lower-case base 36.
pub fn new_client_id() -> String {
    crate::ids::random_id()
}

#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn client_ids_are_base36_and_distinct() {
        let a = super::new_client_id();
        let b = super::new_client_id();
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert!(a.len() >= 20, "{a}");
    }
}
