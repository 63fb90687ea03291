//! Server-side hooks, the equivalent of faye's incoming/outgoing extensions.
//!
//! An [`Extension`] sees each incoming message (and may pass, reject or drop it), each
//! outgoing reply and delivery, each successful subscribe and each destroyed session.
//! The websocket server is one; deliveries on channels no hook asks for skip the hooks.

use std::fmt;
use std::net::SocketAddr;

use super::engine::BoxFuture;
use super::error::BayeuxError;
use super::message::Message;

/// The transport a message came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// `websocket`.
    WebSocket,
    /// `long-polling` (POST JSON).
    LongPolling,
    /// `cross-origin-long-polling` (POST form).
    CrossOriginLongPolling,
    /// `callback-polling` (JSONP).
    CallbackPolling,
    /// `eventsource`.
    EventSource,
    /// `in-process` (the server itself; trusted).
    InProcess,
}

impl Transport {
    /// The Bayeux connection-type name.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::LongPolling => "long-polling",
            Self::CrossOriginLongPolling => "cross-origin-long-polling",
            Self::CallbackPolling => "callback-polling",
            Self::EventSource => "eventsource",
            Self::InProcess => "in-process",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a message comes from, as seen by [`Extension::incoming`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MessageContext {
    /// The sender's client id, **verified**: the session exists and is bound to this
    /// peer. `None` on a handshake, an anonymous publish, or an unknown/foreign id.
    pub client_id: Option<String>,
    /// The client's address: the transport peer, or the forwarded address behind a
    /// trusted proxy (decided by [`crate::edge::client`]).
    pub remote_addr: Option<SocketAddr>,
    /// The transport.
    pub transport: Transport,
    /// In-process (server-side) sender: may use meta, service and internal channels.
    pub trusted: bool,
}

impl MessageContext {
    /// A context for a network request.
    pub fn network(transport: Transport, remote_addr: Option<SocketAddr>) -> Self {
        Self {
            client_id: None,
            remote_addr,
            transport,
            trusted: false,
        }
    }

    /// A context for the in-process client `client_id`.
    pub fn in_process(client_id: Option<String>) -> Self {
        Self {
            client_id,
            remote_addr: None,
            transport: Transport::InProcess,
            trusted: true,
        }
    }
}

/// What an outgoing message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutgoingKind {
    /// A reply to a message the client sent.
    Reply,
    /// A published message delivered to a subscriber.
    Delivery,
}

/// Where an outgoing message goes, as seen by [`Extension::outgoing`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OutgoingContext {
    /// The recipient's client id (`None` on a failed handshake).
    pub client_id: Option<String>,
    /// For deliveries: the publisher's client id (`None` for server-side publishes);
    /// lets a hook skip echoing a client's own publishes.
    pub publisher: Option<String>,
    /// Reply or delivery.
    pub kind: OutgoingKind,
}

/// A hook's decision about a message.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// Carry on.
    Pass,
    /// Incoming: refuse; the error becomes the reply's `error` (e.g.
    /// `BayeuxError::custom(403, [] as [&str; 0], "Password required")`).
    /// Outgoing: a reply gets this error; a delivery is not sent.
    Reject(BayeuxError),
    /// Incoming: answer `successful: true` without acting on it (not delivered).
    /// Outgoing: do not send it.
    Drop,
}

/// A server-side hook. Every method has a do-nothing default.
///
/// Hooks run in registration order; the first non-[`Verdict::Pass`] wins. They run on the
/// request path: keep them quick, and never block (spawn for slow work).
pub trait Extension: Send + Sync + 'static {
    /// Every incoming message, meta messages included, before it is processed; may
    /// rewrite it.
    fn incoming<'a>(
        &'a self,
        ctx: &'a MessageContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        let _ = (ctx, msg);
        Box::pin(std::future::ready(Verdict::Pass))
    }

    /// Every reply and every delivery to a network or in-process client, before it is
    /// sent; may rewrite it (e.g. strip secrets from `ext`).
    fn outgoing<'a>(
        &'a self,
        ctx: &'a OutgoingContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        let _ = (ctx, msg);
        Box::pin(std::future::ready(Verdict::Pass))
    }

    /// Whether `outgoing` must see deliveries published on `channel`. Return `false` only
    /// for channels whose deliveries `outgoing` passes unchanged whoever publishes or
    /// receives them: such deliveries are then sent as published, without the per-recipient
    /// copy and call (when no other extension wants them either).
    fn sees_deliveries_on(&self, channel: &str) -> bool {
        let _ = channel;
        true
    }

    /// After a successful subscribe of `ctx.client_id` to `channel`, before the reply is
    /// sent: a publish made here reaches the new subscriber.
    fn subscribed<'a>(&'a self, ctx: &'a MessageContext, channel: &'a str) -> BoxFuture<'a, ()> {
        let _ = (ctx, channel);
        Box::pin(std::future::ready(()))
    }

    /// A session ended: disconnect, expiry, slow-consumer eviction or
    /// `Bayeux::disconnect_client`.
    fn session_destroyed<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, ()> {
        let _ = client_id;
        Box::pin(std::future::ready(()))
    }
}
