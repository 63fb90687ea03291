//! The websocket server protocol over Bayeux (PROTOCOL 2).
//!
//! Built as a Bayeux [`Extension`] plus server-side publishes:
//!
//! - a subscribe to a setup channel (`/client/websocket/_incoming/<random>`) creates a
//!   [`Connection`] owned by the subscribing Bayeux client, and publishes its id there;
//! - the owner's subscribe to `/client/websocket/connection/<id>` gets the welcome;
//! - the owner's publishes on that channel are the verbs (`action`, `file`, `say`, ...):
//!   each is handled here, answered with a publish on the same channel, and **dropped**
//!   (never delivered back, so the client gets no echo of its own messages);
//! - nobody but the owner may subscribe or publish to a connection channel, wildcard
//!   subscriptions under `/client/websocket` are refused (`403`, the same error whether
//!   the connection exists or not), and deliveries on these channels reach only their
//!   owner even through `/**`;
//! - the end of the owner's Bayeux session destroys its connections.
//!
//! Connection middleware runs here, on the owner node, once per connection: `create`
//! after the connection is registered and before its id is published to the client (so
//! what the hooks set is there for its first verb), `destroy` after it left its rooms,
//! whichever way it goes (`quit`, server-side destroy, end of the Bayeux session).
//!
//! # Layout
//!
//! - [`privacy`]: who may use which channel, as pure rules (with their tests);
//! - [`verbs`]: a connection's messages parsed once into a `Verb`, and the shapes of
//!   the answers; `WebSocketServer::apply` carries one out;
//! - `files`: the `file` verb's answer;
//! - this module: the Bayeux extension that ties them to connections, rooms, actions
//!   and the other nodes.
//!
//! # In a cluster
//!
//! A connection's state lives on the node where its setup subscribe arrived (its owner
//! node); the [`ConnectionDirectory`](crate::connections::ConnectionDirectory) tells every node who owns it. A verb (or the
//! connection-channel subscribe that earns the welcome) that reaches another node, as
//! a long-polling client's requests do behind a balancer, is forwarded to the owner node
//! on its internal channel `/hero/verbs/<node>`: one log entry, handled once, there. The
//! owner acknowledges a verb at once; if it does not within three call deadlines (it is
//! stuck or gone), the client's session is ended so it starts over on a live node.

mod files;
pub mod privacy;
pub mod verbs;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::oneshot;

use plugin_api::{ActionError, Params, Value};
use serde_json::{Map, json};

use crate::actions::{ActionRequest, merge_result};
use crate::app::App;
use crate::bayeux::{
    Bayeux, BayeuxError, BoxFuture, Extension, Message, MessageContext, OutgoingContext,
    OutgoingKind, Verdict, channel,
};
use crate::connections::{Connection, Owner, StickyLimits};
use crate::rooms::{RoomDelivery, RoomError};
use crate::servers::documentation::documentation;
use crate::sync::lock;

pub use privacy::{CONNECTION_PREFIX, ROOT, SETUP_PREFIX, connection_channel};
use privacy::{Publish, Subscription, is_setup_channel};
use verbs::{Verb, ok_data, room_status, verb_not_found};

/// Most live connections one Bayeux client may open (each setup subscribe opens one).
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 64;

/// The internal channel where node `node` takes the verbs other nodes forward to it.
fn verbs_channel(node: &str) -> String {
    format!("/hero/verbs/{node}")
}

/// The websocket server: a Bayeux extension over the app's connections and rooms.
#[derive(Debug)]
pub struct WebSocketServer {
    app: Weak<App>,
    bayeux: Bayeux,
    /// Itself, for work spawned from the `&self` extension hooks.
    me: Weak<WebSocketServer>,
    /// Verbs forwarded to other nodes, waiting for the owner's acknowledgement.
    forwarded: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_forward: AtomicU64,
}

/// Delivers room messages on connection channels.
#[derive(Debug)]
struct Delivery(Bayeux);

impl RoomDelivery for Delivery {
    fn deliver<'a>(&'a self, ids: &'a [String], message: Value) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let channels: Vec<String> = ids.iter().map(|id| connection_channel(id)).collect();
            if let Err(err) = self.0.publish_each(&channels, message).await {
                tracing::warn!(%err, members = ids.len(), "room delivery failed");
            }
        })
    }

    fn room_changed<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(err) = self.0.publish(ROOMS_CHANGED, json!({"room": room})).await {
                tracing::warn!(%err, room, "cannot tell the other nodes of a room change");
            }
        })
    }
}

/// The internal channel where every node hears of room changes (pattern, deletion).
const ROOMS_CHANGED: &str = "/hero/rooms/changed";

impl WebSocketServer {
    /// Starts the protocol on `bayeux`: registers the extension and room delivery.
    pub fn attach(app: &Arc<App>, bayeux: &Bayeux) -> Arc<Self> {
        let server = Arc::new_cyclic(|me| Self {
            app: Arc::downgrade(app),
            bayeux: bayeux.clone(),
            me: me.clone(),
            forwarded: Mutex::default(),
            next_forward: AtomicU64::new(1),
        });
        app.rooms.set_delivery(Arc::new(Delivery(bayeux.clone())));
        bayeux.add_extension(Arc::clone(&server) as Arc<dyn Extension>);
        if app.redis.is_some() {
            bayeux.spawn(Self::take_forwarded(
                Arc::downgrade(&server),
                app.node_id.clone(),
            ));
        }
        server
    }

    /// Handles what other nodes forward to this one (verbs and welcomes for the
    /// connections it owns), until the server goes away.
    async fn take_forwarded(server: Weak<Self>, node: String) {
        let Some(bayeux) = server.upgrade().map(|s| s.bayeux.clone()) else {
            return;
        };
        let mut inbox = match bayeux.local_client().await {
            Ok(c) => c,
            Err(err) => {
                tracing::error!(%err, "cannot receive forwarded verbs; cross-node verbs will be lost");
                return;
            }
        };
        for channel in [verbs_channel(&node), ROOMS_CHANGED.to_owned()] {
            if let Err(err) = inbox.subscribe(&channel).await {
                tracing::error!(%err, channel, "cannot hear the other nodes; cross-node verbs and room changes will be lost");
                return;
            }
        }
        while let Some(msg) = inbox.recv().await {
            let (Some(server), Some(data)) = (server.upgrade(), msg.data) else {
                break;
            };
            let Some(app) = server.app.upgrade() else {
                break;
            };
            if msg.channel.as_deref() == Some(ROOMS_CHANGED) {
                if let Some(room) = data.get("room").and_then(Value::as_str)
                    && let Err(err) = app.rooms.recheck(room).await
                {
                    tracing::warn!(%err, room, "cannot recheck a room's members");
                }
                continue;
            }
            server.on_forwarded(app, data).await;
        }
    }

    /// One message on this node's verbs channel: an acknowledgement of a verb this node
    /// forwarded, or a verb (or welcome) for a connection it owns, acknowledged first.
    async fn on_forwarded(self: Arc<Self>, app: Arc<App>, data: Value) {
        if let Some(req) = data.get("ack").and_then(Value::as_u64) {
            if let Some(done) = lock(&self.forwarded).remove(&req) {
                let _ = done.send(());
            }
            return;
        }
        let (Some(id), Some(client)) = (
            data.get("connection").and_then(Value::as_str),
            data.get("client").and_then(Value::as_str),
        ) else {
            return;
        };
        let Some(connection) = app.connections.get(id).filter(|c| c.owner == client) else {
            // Gone meanwhile: no acknowledgement, so the sender ends the session.
            return;
        };
        if let (Some(from), Some(req)) = (
            data.get("from").and_then(Value::as_str),
            data.get("req").and_then(Value::as_u64),
        ) && let Err(err) = self
            .bayeux
            .publish(&verbs_channel(from), json!({"ack": req}))
            .await
        {
            tracing::warn!(%err, "cannot acknowledge a forwarded verb");
        }
        match data.get("verb") {
            Some(verb) => {
                let verb = verb.clone();
                tokio::spawn(async move { self.handle(app, connection, verb).await });
            }
            None => self.welcome(&app, &connection).await,
        }
    }

    /// The owner of connection `id`, wherever it lives.
    async fn owner(app: &App, id: &str) -> Option<Owner> {
        // Closed connections keep their owner for a while: their last messages (the
        // `quit` answer, `ClientDisconnect`) still go to the owner alone.
        if let Some(client) = app.connections.owner_of(id) {
            return Some(Owner {
                client,
                node: app.node_id.clone(),
            });
        }
        match app.directory.lookup(id).await {
            Ok(owner) => owner,
            Err(err) => {
                tracing::warn!(%err, connection = id, "cannot look a connection up");
                None
            }
        }
    }

    /// Sends the welcome once per connection.
    async fn welcome(&self, app: &App, connection: &Connection) {
        if connection.mark_welcomed() {
            self.send(
                &connection.id,
                json!({"welcome": app.config.welcome_message, "context": "api"}),
            )
            .await;
        }
    }

    /// Hands `data` for connection `id` to its owner node.
    ///
    /// A verb must be acknowledged by the owner node within a few call deadlines; if it
    /// is not (that node is stuck or gone, or the connection went with it), the client's
    /// Bayeux session is ended: its pending calls fail ("connection lost") and it starts
    /// over with a new connection on a live node, rather than waiting for ever.
    async fn forward(&self, owner: &Owner, id: &str, verb: Option<Value>) {
        let mut data = json!({"connection": id, "client": owner.client});
        let mut answered = None;
        if let Some(verb) = verb {
            data["verb"] = verb;
            if let Some(app) = self.app.upgrade() {
                let req = self.next_forward.fetch_add(1, Ordering::Relaxed);
                let (done, wait) = oneshot::channel();
                lock(&self.forwarded).insert(req, done);
                data["from"] = json!(app.node_id);
                data["req"] = json!(req);
                answered = Some((req, wait, app.config.cluster.call_timeout() * 3));
            }
        }
        if let Err(err) = self.bayeux.publish(&verbs_channel(&owner.node), data).await {
            tracing::warn!(%err, connection = id, "cannot forward to the owner node");
        }
        let (Some((req, wait, deadline)), Some(me)) = (answered, self.me.upgrade()) else {
            return;
        };
        let (client, node, id) = (owner.client.clone(), owner.node.clone(), id.to_owned());
        self.bayeux.spawn(async move {
            if tokio::time::timeout(deadline, wait).await.is_ok_and(|r| r.is_ok()) {
                return;
            }
            lock(&me.forwarded).remove(&req);
            tracing::warn!(
                connection = %id,
                node = %node,
                "the node holding this connection did not answer a verb in {deadline:?}; its client starts over"
            );
            me.bayeux.disconnect_client(&client).await;
        });
    }

    /// Sends `message` to connection `id`.
    async fn send(&self, id: &str, message: Value) {
        if let Err(err) = self.bayeux.publish(&connection_channel(id), message).await {
            tracing::debug!(%err, connection = id, "websocket send failed");
        }
    }

    /// Destroys connection `id` from the server side: sends `ClientDisconnect` (the
    /// client stops), then removes it from its rooms and from every count.
    /// `false` if there was no such connection.
    pub async fn destroy(&self, id: &str, reason: &str) -> bool {
        let Some(app) = self.app.upgrade() else {
            return false;
        };
        let Some(connection) = app.connections.get(id) else {
            return false;
        };
        self.send(
            id,
            json!({"status": "ClientDisconnect", "context": "api", "reason": reason}),
        )
        .await;
        self.close(&app, &connection).await;
        true
    }

    /// Destroys every connection (at shutdown), telling each client why, then waits
    /// (at most `grace`) for their Bayeux clients to disconnect, so the message is
    /// delivered before the transports close.
    pub async fn destroy_all(&self, reason: &str, grace: std::time::Duration) {
        let Some(app) = self.app.upgrade() else {
            return;
        };
        let mut owners: Vec<String> = Vec::new();
        for connection in app.connections.all() {
            if self.destroy(&connection.id, reason).await && !owners.contains(&connection.owner) {
                owners.push(connection.owner.clone());
            }
        }
        let deadline = tokio::time::Instant::now() + grace;
        let engine = self.bayeux.engine();
        // Woken by each session that ends, not by a timer.
        while !owners.is_empty() {
            let ended = self.bayeux.session_ended();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let mut live = Vec::with_capacity(owners.len());
            for owner in owners {
                if matches!(engine.session(&owner).await, Ok(Some(_))) {
                    live.push(owner);
                }
            }
            owners = live;
            if owners.is_empty() || tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
    }

    /// Removes a connection: from the registry, its rooms (announced), its pending work.
    async fn close(&self, app: &App, connection: &Arc<Connection>) {
        if app.connections.remove(&connection.id).is_none() {
            return;
        }
        if let Err(err) = app.directory.retire(&connection.id).await {
            tracing::warn!(%err, connection = %connection.id, "cannot unregister a connection");
        }
        connection.closed.cancel();
        app.rooms.leave_all(connection).await;
        Self::destroyed(app, connection).await;
        tracing::debug!(connection = %connection.id, "websocket connection closed");
    }

    /// Runs the connection middleware's `destroy` hooks for a connection just removed.
    async fn destroyed(app: &App, connection: &Connection) {
        let middleware = app.middleware();
        if middleware.has_connection_hooks() {
            middleware
                .run_connection(false, connection.info(), app.processor.services())
                .await;
        }
    }

    /// The client as the connection should record it (the transport already decided
    /// it, forwarded address included, in `edge::client`).
    fn peer(ctx: &MessageContext) -> (String, u16) {
        match ctx.remote_addr {
            Some(addr) => (addr.ip().to_canonical().to_string(), addr.port()),
            None => ("0.0.0.0".to_owned(), 0),
        }
    }

    /// Whether the network client `client` may subscribe to `name` (a channel or
    /// pattern). Patterns that merely cover the root (`/**`, `/client/**`) pass: their
    /// deliveries are filtered on the way out.
    async fn allowed(app: &App, client: Option<&str>, name: &str) -> bool {
        match privacy::subscription(name) {
            Subscription::Outside | Subscription::Setup => true,
            Subscription::Forbidden => false,
            Subscription::Connection(id) => match client {
                Some(client) => Self::owner(app, id)
                    .await
                    .is_some_and(|o| o.client == client),
                None => false,
            },
        }
    }

    /// One message from the owner of `connection`: counted, parsed, carried out; the
    /// answer is published on its channel.
    async fn handle(self: Arc<Self>, app: Arc<App>, connection: Arc<Connection>, data: Value) {
        let n = connection.count_message();
        self.apply(app, connection, n, Verb::parse(data)).await;
    }

    /// Carries out verb number `n` of `connection`.
    async fn apply(
        self: Arc<Self>,
        app: Arc<App>,
        connection: Arc<Connection>,
        n: u64,
        verb: Verb,
    ) {
        let id = connection.id.as_str();
        let reply = match verb {
            Verb::Action(params) => {
                self.start_action(app, connection, n, params);
                return;
            }
            Verb::File(path) => {
                // A file read counts against `simultaneousActions` like an action: a
                // frame of a thousand `file` verbs must not read a thousand files at once.
                let slot = connection
                    .pending
                    .try_acquire(app.config.simultaneous_actions);
                let server = Arc::clone(&self);
                tokio::spawn(async move {
                    let reply = match slot {
                        Some(_slot) => {
                            let limit = app.config.max_file_verb_bytes;
                            files::file_reply(&app.config.public, &path, limit).await
                        }
                        None => {
                            let mut r = Map::new();
                            r.insert(
                                "error".into(),
                                ActionError::too_many_requests().client_message().into(),
                            );
                            r
                        }
                    };
                    server.respond(&connection, n, reply).await;
                });
                return;
            }
            Verb::DetailsView => ok_data(connection.details()),
            Verb::Documentation => {
                let mut r = ok_data(Value::Null);
                r.remove("data");
                r.insert("documentation".into(), documentation(app.registry()));
                r
            }
            Verb::RoomAdd(room) => room_status(app.rooms.join(id, &room).await),
            Verb::RoomLeave(room) => room_status(app.rooms.leave(id, &room).await),
            Verb::RoomView(room) => match app.rooms.view(id, &room).await {
                Ok(view) => ok_data(view),
                Err(err) => room_status(Err(err)),
            },
            Verb::RoomChange(room) if room.is_empty() => room_status(Err(RoomError::RoomRequired)),
            Verb::RoomChange(room) => {
                for old in connection.rooms() {
                    let _ = app.rooms.leave(id, &old).await;
                }
                room_status(app.rooms.join(id, &room).await)
            }
            Verb::ListenToRoom(room) => room_status(app.rooms.listen(id, &room, true).await),
            Verb::SilenceRoom(room) => room_status(app.rooms.listen(id, &room, false).await),
            Verb::Say { room, message } => room_status(app.rooms.say(id, &room, message).await),
            Verb::Quit => {
                self.respond(&connection, n, ok_data(Value::Bool(true)))
                    .await;
                self.close(&app, &connection).await;
                return;
            }
            Verb::Unknown => verb_not_found(),
        };
        self.respond(&connection, n, reply).await;
    }

    /// A network client's subscribe: every channel must be allowed to it, and a setup
    /// channel only while it holds fewer than [`MAX_CONNECTIONS_PER_CLIENT`].
    async fn check_subscribe(
        app: &App,
        client: Option<&str>,
        subscription: Option<&Value>,
    ) -> Verdict {
        let subs: Vec<&str> = match subscription {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for sub in subs {
            if !Self::allowed(app, client, sub).await {
                return Verdict::Reject(BayeuxError::channel_forbidden(sub));
            }
            if is_setup_channel(sub)
                && client.is_some_and(|c| {
                    app.connections.count_owned_by(c) >= MAX_CONNECTIONS_PER_CLIENT
                })
            {
                return Verdict::Reject(BayeuxError::custom(403, [sub], "Too many connections"));
            }
        }
        Verdict::Pass
    }

    /// A publish under the root: a verb, from its connection's owner alone, handled here
    /// or forwarded to the owner node; never delivered (no echo).
    async fn take_verb(
        &self,
        app: Arc<App>,
        name: &str,
        client: Option<&str>,
        data: Value,
    ) -> Verdict {
        let (Publish::Verb(id), Some(client)) = (privacy::publish(name), client) else {
            return Verdict::Reject(BayeuxError::channel_forbidden(name));
        };
        if let Some(connection) = app.connections.get(id).filter(|c| c.owner == client) {
            if let Some(server) = self.me.upgrade() {
                server.handle(app, connection, data).await;
            }
            return Verdict::Drop;
        }
        match Self::owner(&app, id).await {
            Some(owner) if owner.client == client => {
                // Owned by the cluster's word, but living on another node.
                self.forward(&owner, id, Some(data)).await;
                Verdict::Drop
            }
            _ => Verdict::Reject(BayeuxError::channel_forbidden(name)),
        }
    }

    /// Runs an action concurrently, within `simultaneousActions`.
    fn start_action(
        self: Arc<Self>,
        app: Arc<App>,
        connection: Arc<Connection>,
        n: u64,
        params: Params,
    ) {
        let Some(slot) = connection
            .pending
            .try_acquire(app.config.simultaneous_actions)
        else {
            tokio::spawn(async move {
                let mut r = Map::new();
                r.insert(
                    "error".into(),
                    ActionError::too_many_requests().client_message().into(),
                );
                self.respond(&connection, n, r).await;
            });
            return;
        };
        let limits = StickyLimits {
            max_count: app.config.max_sticky_params,
            max_bytes: app.config.max_sticky_param_bytes,
        };
        let params = match connection.merge_params(params, limits) {
            Ok(params) => params,
            Err(limit) => {
                tokio::spawn(async move {
                    drop(slot);
                    let mut r = Map::new();
                    r.insert("error".into(), format!("Error: {limit}").into());
                    self.respond(&connection, n, r).await;
                });
                return;
            }
        };
        connection.count_action();
        let request = ActionRequest {
            params,
            connection: connection.info(),
        };
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = app.processor.process(request) => outcome,
                // A closed connection's pending work is dropped.
                () = connection.closed.cancelled() => return,
            };
            drop(slot);
            let mut r = Map::new();
            match outcome.result {
                Ok(result) => merge_result(&mut r, result),
                Err(err) => {
                    r.insert("error".into(), err.client_message().into());
                }
            }
            self.respond(&connection, n, r).await;
        });
    }

    async fn respond(&self, connection: &Connection, n: u64, mut reply: Map<String, Value>) {
        reply.insert("messageCount".into(), n.into());
        reply.insert("context".into(), "response".into());
        self.send(&connection.id, Value::Object(reply)).await;
    }
}

impl Extension for WebSocketServer {
    fn incoming<'a>(
        &'a self,
        ctx: &'a MessageContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            if ctx.trusted {
                return Verdict::Pass;
            }
            let client = ctx.client_id.as_deref();
            if client.is_none() && msg.client_id.is_some() {
                // An unknown or foreign client id: the Bayeux layer answers `401` (so a
                // client whose session was lost learns it) and acts on nothing.
                return Verdict::Pass;
            }
            let name = msg.channel_str();
            if name != "/meta/subscribe" && privacy::publish(name) == Publish::Outside {
                // Neither ours nor a subscribe: the common case, decided without a copy.
                return Verdict::Pass;
            }
            let Some(app) = self.app.upgrade() else {
                return Verdict::Pass;
            };
            if name == "/meta/subscribe" {
                return Self::check_subscribe(&app, client, msg.subscription.as_ref()).await;
            }
            let name = name.to_owned();
            let data = msg.data.take().unwrap_or(Value::Null);
            self.take_verb(app, &name, client, data).await
        })
    }

    fn outgoing<'a>(
        &'a self,
        ctx: &'a OutgoingContext,
        msg: &'a mut Message,
    ) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            if ctx.kind != OutgoingKind::Delivery {
                return Verdict::Pass;
            }
            let Some(about) = privacy::delivery_connection(msg.channel_str(), msg.data.as_ref())
            else {
                return Verdict::Pass;
            };
            let Some(app) = self.app.upgrade() else {
                return Verdict::Drop;
            };
            let owner = match about {
                Some(id) => Self::owner(&app, id).await,
                None => None,
            };
            let recipient = ctx.client_id.as_deref();
            let owner = owner.as_ref().map(|o| o.client.as_str());
            if privacy::delivery_allowed(owner, recipient, ctx.publisher.as_deref()) {
                Verdict::Pass
            } else {
                Verdict::Drop
            }
        })
    }

    fn sees_deliveries_on(&self, channel: &str) -> bool {
        // `outgoing` passes every delivery outside ROOT untouched.
        channel::is_under(channel, ROOT)
    }

    fn subscribed<'a>(&'a self, ctx: &'a MessageContext, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if ctx.trusted {
                return;
            }
            let (Some(app), Some(client)) = (self.app.upgrade(), ctx.client_id.as_deref()) else {
                return;
            };
            if is_setup_channel(name) {
                let (ip, port) = Self::peer(ctx);
                let connection = app.connections.create(client, ip, port);
                tracing::debug!(connection = %connection.id, owner = client, "websocket connection created");
                let owner = Owner {
                    client: client.to_owned(),
                    node: app.node_id.clone(),
                };
                if let Err(err) = app.directory.register(&connection.id, &owner).await {
                    // Other nodes cannot vouch for it; this node still serves it.
                    tracing::warn!(%err, connection = %connection.id, "cannot register a connection");
                }
                let middleware = app.middleware();
                if middleware.has_connection_hooks() {
                    // Attributes the hooks set went through the host services, onto
                    // the connection itself.
                    middleware
                        .run_connection(true, connection.info(), app.processor.services())
                        .await;
                }
                if let Err(err) = self
                    .bayeux
                    .publish(name, json!({"id": connection.id}))
                    .await
                {
                    tracing::warn!(%err, "cannot announce a new connection");
                }
            } else if let Some(id) = name.strip_prefix(CONNECTION_PREFIX) {
                if let Some(connection) = app.connections.get(id).filter(|c| c.owner == client) {
                    self.welcome(&app, &connection).await;
                } else if let Some(owner) = Self::owner(&app, id).await
                    && owner.client == client
                {
                    self.forward(&owner, id, None).await;
                }
            }
        })
    }

    fn session_destroyed<'a>(&'a self, client_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(app) = self.app.upgrade() else {
                return;
            };
            for connection in app.connections.remove_owned_by(client_id) {
                // As `close` does: a connection that ends with its session (no `quit`)
                // must leave the directory too, or every such connection stays there.
                if let Err(err) = app.directory.retire(&connection.id).await {
                    tracing::warn!(%err, connection = %connection.id, "cannot unregister a connection");
                }
                connection.closed.cancel();
                app.rooms.leave_all(&connection).await;
                Self::destroyed(&app, &connection).await;
            }
        })
    }
}
