//! Chat rooms: create, delete, authorize, join, leave, listen, say (PROTOCOL 2.3, 2.6).
//!
//! Two layers:
//!
//! - [`RoomStore`]: the state (rooms, patterns, members, listeners) behind a small async
//!   trait: [`MemoryRoomStore`] for one node, [`RedisRoomStore`] for a cluster (both pass
//!   one conformance suite).
//! - [`Rooms`]: the rules on top (authorization against connection attributes,
//!   announcements, `say` fan-out) and delivery through a [`RoomDelivery`] sink that the
//!   websocket server registers once.
//!
//! Chat middleware (`plugin_api::ChatMiddleware`) runs in [`Rooms`], on the node that
//! handles the request, so every path (verbs, host services) runs it: `join` after the
//! room and pattern checks and before the store changes, `leave` before the store
//! changes (a forced leave, at disconnect or when a pattern changes, cannot be refused),
//! `say` once per message before it fans out (it may rewrite it). A refusal is
//! [`RoomError::Rejected`], whose text is what the client reads.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use plugin_api::middleware::ChatHook;
use plugin_api::{BoxFuture, ConnectionInfo, HostServices};
use serde_json::{Map, Value, json};

use crate::actions::MiddlewareRegistry;
use crate::clock::now_ms;
use crate::connections::Connections;

mod redis;

pub use redis::RedisRoomStore;

/// An authorization pattern: a connection joins only if each attribute equals the value.
pub type AuthPattern = Map<String, Value>;

/// Said by a connection when it joins a room.
pub const ENTERED: &str = "I have entered the room";
/// Said by a connection when it leaves a room.
pub const LEFT: &str = "I have left the room";
/// Said to the members of a room being deleted.
pub const DELETED: &str = "this room has been deleted";
/// The `from` of messages the server itself says.
pub const SERVER_SENDER: &str = "server";

/// Why a room operation failed; the text is what clients read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// No room by that name.
    #[error("room does not exist")]
    NoSuchRoom,
    /// The connection's attributes do not match the room's pattern.
    #[error("not authorized to join room")]
    NotAuthorized,
    /// Joining a room twice.
    #[error("connection already in this room")]
    AlreadyMember,
    /// Leaving (or speaking in) a room one is not in.
    #[error("connection not in this room")]
    NotMember,
    /// `roomView` of a room one is not in.
    #[error("not member of room {0}")]
    NotMemberOf(String),
    /// The request named no room.
    #[error("a room is required")]
    RoomRequired,
    /// `say` without room or message.
    #[error("both room and message are required")]
    MessageRequired,
    /// The connection is gone.
    #[error("connection not found")]
    NoSuchConnection,
    /// The backing store failed.
    #[error("chat rooms unavailable: {0}")]
    Backend(String),
    /// A chat middleware refused the request; the text is its message.
    #[error("{0}")]
    Rejected(String),
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Connection id.
    pub id: String,
    /// Join time, milliseconds since the epoch.
    pub joined_at: u64,
    /// The node that owns the connection (so a dead node's members can be removed).
    pub node: String,
}

/// Who is in a room: its members and its listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    /// Members, in join order.
    pub members: Vec<Member>,
    /// Listeners (they hear the room without being in it).
    pub listeners: Vec<String>,
}

impl Audience {
    /// Everyone who hears the room, once each: members, then listeners.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.iter().map(|m| m.id.clone()).collect();
        for l in &self.listeners {
            if !ids.contains(l) {
                ids.push(l.clone());
            }
        }
        ids
    }

    /// Whether connection `id` is a member.
    pub fn has_member(&self, id: &str) -> bool {
        self.members.iter().any(|m| m.id == id)
    }
}

/// Room state. Implementations must make each method atomic on its own; [`Rooms`] never
/// needs two calls to be atomic together.
pub trait RoomStore: Send + Sync + fmt::Debug + 'static {
    /// Creates `room`; `Ok(None)` if it is new, `Ok(Some(old pattern))` if it existed
    /// (its pattern is then replaced by `auth`).
    fn upsert<'a>(
        &'a self,
        room: &'a str,
        auth: AuthPattern,
    ) -> BoxFuture<'a, Result<Option<AuthPattern>, RoomError>>;
    /// Deletes `room`; returns its members and listeners.
    fn delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<String>, RoomError>>;
    /// The pattern of `room`.
    fn auth<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<AuthPattern, RoomError>>;
    /// Adds a member (`AlreadyMember` if it is one).
    fn join<'a>(&'a self, room: &'a str, member: Member) -> BoxFuture<'a, Result<(), RoomError>>;
    /// Removes a member (`NotMember` if it is not one).
    fn leave<'a>(&'a self, room: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), RoomError>>;
    /// Adds (`true`) or removes (`false`) a listener; `Ok(false)` if nothing changed.
    fn listen<'a>(
        &'a self,
        room: &'a str,
        id: &'a str,
        on: bool,
    ) -> BoxFuture<'a, Result<bool, RoomError>>;
    /// Members in join order.
    fn members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Member>, RoomError>>;
    /// Members (in join order) and listeners, read at once: who hears what is said in
    /// `room`, and who may say it.
    fn audience<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Audience, RoomError>>;
    /// Every room with its member count.
    fn counts(&self) -> BoxFuture<'_, Result<BTreeMap<String, usize>, RoomError>>;
}

#[derive(Debug, Default)]
struct Room {
    auth: AuthPattern,
    members: Vec<Member>,
    listeners: Vec<String>,
}

/// Rooms in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryRoomStore {
    rooms: Mutex<HashMap<String, Room>>,
}

impl MemoryRoomStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        crate::sync::lock(&self.rooms)
    }

    fn with_room<T>(
        &self,
        room: &str,
        f: impl FnOnce(&mut Room) -> Result<T, RoomError>,
    ) -> Result<T, RoomError> {
        let mut rooms = self.lock();
        rooms.get_mut(room).ok_or(RoomError::NoSuchRoom).and_then(f)
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl RoomStore for MemoryRoomStore {
    fn upsert<'a>(
        &'a self,
        room: &'a str,
        auth: AuthPattern,
    ) -> BoxFuture<'a, Result<Option<AuthPattern>, RoomError>> {
        let mut rooms = self.lock();
        let old = match rooms.get_mut(room) {
            Some(existing) => Some(std::mem::replace(&mut existing.auth, auth)),
            None => {
                rooms.insert(
                    room.to_owned(),
                    Room {
                        auth,
                        ..Room::default()
                    },
                );
                None
            }
        };
        ready(Ok(old))
    }

    fn delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<String>, RoomError>> {
        let removed = self
            .lock()
            .remove(room)
            .ok_or(RoomError::NoSuchRoom)
            .map(|r| {
                let mut ids: Vec<String> = r.members.into_iter().map(|m| m.id).collect();
                ids.extend(r.listeners);
                ids
            });
        ready(removed)
    }

    fn auth<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<AuthPattern, RoomError>> {
        ready(self.with_room(room, |r| Ok(r.auth.clone())))
    }

    fn join<'a>(&'a self, room: &'a str, member: Member) -> BoxFuture<'a, Result<(), RoomError>> {
        ready(self.with_room(room, |r| {
            if r.members.iter().any(|m| m.id == member.id) {
                return Err(RoomError::AlreadyMember);
            }
            r.members.push(member);
            Ok(())
        }))
    }

    fn leave<'a>(&'a self, room: &'a str, id: &'a str) -> BoxFuture<'a, Result<(), RoomError>> {
        ready(self.with_room(room, |r| {
            let before = r.members.len();
            r.members.retain(|m| m.id != id);
            if r.members.len() == before {
                Err(RoomError::NotMember)
            } else {
                Ok(())
            }
        }))
    }

    fn listen<'a>(
        &'a self,
        room: &'a str,
        id: &'a str,
        on: bool,
    ) -> BoxFuture<'a, Result<bool, RoomError>> {
        ready(self.with_room(room, |r| {
            let present = r.listeners.iter().any(|l| l == id);
            match (on, present) {
                (true, false) => r.listeners.push(id.to_owned()),
                (false, true) => r.listeners.retain(|l| l != id),
                _ => return Ok(false),
            }
            Ok(true)
        }))
    }

    fn members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Vec<Member>, RoomError>> {
        ready(self.with_room(room, |r| Ok(r.members.clone())))
    }

    fn audience<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<Audience, RoomError>> {
        ready(self.with_room(room, |r| {
            Ok(Audience {
                members: r.members.clone(),
                listeners: r.listeners.clone(),
            })
        }))
    }

    fn counts(&self) -> BoxFuture<'_, Result<BTreeMap<String, usize>, RoomError>> {
        let counts = self
            .lock()
            .iter()
            .map(|(name, r)| (name.clone(), r.members.len()))
            .collect();
        ready(Ok(counts))
    }
}

/// Where room messages go: the websocket server delivers them on connection channels.
pub trait RoomDelivery: Send + Sync + 'static {
    /// Sends `message` to each connection of `ids` (those gone are skipped silently),
    /// as one fan-out: in a cluster, one message whatever the number of members.
    fn deliver<'a>(&'a self, ids: &'a [String], message: Value) -> BoxFuture<'a, ()>;
    /// `room`'s pattern changed or it was deleted: every other node rechecks its own
    /// members ([`Rooms::recheck`]).
    fn room_changed<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ()> {
        let _ = room;
        Box::pin(std::future::ready(()))
    }
}

/// The room rules over a [`RoomStore`], with connections and delivery.
pub struct Rooms {
    store: Arc<dyn RoomStore>,
    connections: Arc<Connections>,
    /// This node's id, recorded with each member it adds.
    node: String,
    delivery: OnceLock<Arc<dyn RoomDelivery>>,
    /// Chat middleware, and the services its hooks get (set once by the app).
    middleware: OnceLock<(Arc<MiddlewareRegistry>, Arc<dyn HostServices>)>,
}

impl fmt::Debug for Rooms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rooms")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Whether `attributes` satisfy `pattern` (every key present with an equal value).
pub fn authorized(pattern: &AuthPattern, attributes: &Map<String, Value>) -> bool {
    pattern.iter().all(|(k, v)| attributes.get(k) == Some(v))
}

/// A `say` message as members receive it.
pub fn say_message(room: &str, from: &str, message: Value) -> Value {
    json!({
        "message": message,
        "room": room,
        "from": from,
        "context": "user",
        "sentAt": now_ms(),
    })
}

impl Rooms {
    /// Rooms over `store`, checking attributes of `connections`, on node `node`.
    pub fn new(store: Arc<dyn RoomStore>, connections: Arc<Connections>, node: &str) -> Self {
        Self {
            store,
            connections,
            node: node.to_owned(),
            delivery: OnceLock::new(),
            middleware: OnceLock::new(),
        }
    }

    /// Registers the chat middleware to run, with the services its hooks get (once;
    /// later calls are ignored).
    pub fn set_middleware(
        &self,
        middleware: Arc<MiddlewareRegistry>,
        services: Arc<dyn HostServices>,
    ) {
        let _ = self.middleware.set((middleware, services));
    }

    fn has_chat_hooks(&self) -> bool {
        self.middleware
            .get()
            .is_some_and(|(m, _)| m.has_chat_hooks())
    }

    /// Runs the chat middleware's `hook` for connection `id` in `room`: the message as
    /// the hooks left it, or their refusal.
    async fn hooks(
        &self,
        hook: ChatHook,
        id: &str,
        room: &str,
        message: Option<Value>,
    ) -> Result<Option<Value>, RoomError> {
        let Some((middleware, services)) = self.middleware.get() else {
            return Ok(message);
        };
        if !middleware.has_chat_hooks() {
            return Ok(message);
        }
        let connection = self.connections.get(id).map_or_else(
            || ConnectionInfo {
                id: id.to_owned(),
                ..ConnectionInfo::default()
            },
            |c| c.info(),
        );
        middleware
            .run_chat(hook, room, connection, message, services)
            .await
            .map_err(|err| RoomError::Rejected(err.message))
    }

    /// Registers the delivery sink (once; later calls are ignored).
    pub fn set_delivery(&self, delivery: Arc<dyn RoomDelivery>) {
        let _ = self.delivery.set(delivery);
    }

    async fn deliver_to(&self, ids: &[String], except: Option<&str>, message: &Value) {
        let Some(delivery) = self.delivery.get() else {
            return;
        };
        let to: Vec<String> = ids
            .iter()
            .filter(|id| Some(id.as_str()) != except)
            .cloned()
            .collect();
        if !to.is_empty() {
            delivery.deliver(&to, message.clone()).await;
        }
    }

    /// Says `message` in `room` as `from`, to everyone in it but `from`.
    async fn announce(&self, room: &str, from: &str, message: Value) -> Result<(), RoomError> {
        let audience = self.store.audience(room).await?;
        self.announce_to(&audience, room, from, message).await;
        Ok(())
    }

    /// As `announce`, to an audience already read.
    async fn announce_to(&self, audience: &Audience, room: &str, from: &str, message: Value) {
        self.deliver_to(
            &audience.ids(),
            Some(from),
            &say_message(room, from, message),
        )
        .await;
    }

    /// Creates `room`, or changes its pattern: members that no longer match are removed
    /// (told with a `say` from the server, and their leaving announced).
    ///
    /// # Errors
    ///
    /// `RoomRequired` for an empty name, or a store failure.
    pub async fn create(&self, room: &str, auth: AuthPattern) -> Result<(), RoomError> {
        if room.is_empty() {
            return Err(RoomError::RoomRequired);
        }
        let Some(old) = self.store.upsert(room, auth.clone()).await? else {
            return Ok(());
        };
        if old == auth {
            return Ok(());
        }
        self.recheck(room).await?;
        if let Some(delivery) = self.delivery.get() {
            // Members owned by other nodes are checked there.
            delivery.room_changed(room).await;
        }
        Ok(())
    }

    /// Brings this node's connections in line with `room` as the store has it now: if
    /// the room is gone, they forget it; else members owned here whose attributes no
    /// longer match its pattern are removed (told, and their leaving announced).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn recheck(&self, room: &str) -> Result<(), RoomError> {
        let auth = match self.store.auth(room).await {
            Ok(auth) => auth,
            Err(RoomError::NoSuchRoom) => {
                for c in self.connections.all() {
                    c.remove_room(room);
                    c.remove_listening(room);
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for member in self.store.members(room).await? {
            let allowed = match self.connections.get(&member.id) {
                Some(c) => authorized(&auth, &c.attributes()),
                // Another node's member: that node checks it. One of ours that is gone
                // is a leftover: out it goes.
                None => member.node != self.node,
            };
            if !allowed {
                let removed = self.leave_as(&member.id, room, true).await;
                if removed.is_ok() {
                    let note = say_message(
                        room,
                        SERVER_SENDER,
                        json!("you are no longer authorized to be in this room"),
                    );
                    self.deliver_to(std::slice::from_ref(&member.id), None, &note)
                        .await;
                }
            }
        }
        Ok(())
    }

    /// Removes every member that node `node` owned (it died), each leaving announced
    /// as a normal leave; returns how many.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub async fn remove_node_members(&self, node: &str) -> Result<usize, RoomError> {
        let mut removed = 0;
        for room in self.store.counts().await?.into_keys() {
            let members = match self.store.members(&room).await {
                Ok(m) => m,
                Err(RoomError::NoSuchRoom) => continue,
                Err(e) => return Err(e),
            };
            for member in members.iter().filter(|m| m.node == node) {
                if self.store.leave(&room, &member.id).await.is_ok() {
                    removed += 1;
                    self.announce(&room, &member.id, json!(LEFT)).await?;
                }
            }
        }
        Ok(removed)
    }

    /// Deletes `room`: its members and listeners are told, then removed.
    ///
    /// # Errors
    ///
    /// `NoSuchRoom`, or a store failure.
    pub async fn delete(&self, room: &str) -> Result<(), RoomError> {
        let audience = self.store.audience(room).await?.ids();
        self.deliver_to(
            &audience,
            None,
            &say_message(room, SERVER_SENDER, json!(DELETED)),
        )
        .await;
        for id in self.store.delete(room).await? {
            if let Some(c) = self.connections.get(&id) {
                c.remove_room(room);
                c.remove_listening(room);
            }
        }
        if let Some(delivery) = self.delivery.get() {
            delivery.room_changed(room).await;
        }
        Ok(())
    }

    fn connection(&self, id: &str) -> Result<Arc<crate::connections::Connection>, RoomError> {
        self.connections.get(id).ok_or(RoomError::NoSuchConnection)
    }

    /// Adds connection `id` to `room` if its attributes match, and announces it.
    ///
    /// # Errors
    ///
    /// `RoomRequired`, `NoSuchRoom`, `NotAuthorized`, `AlreadyMember`, `NoSuchConnection`.
    pub async fn join(&self, id: &str, room: &str) -> Result<(), RoomError> {
        if room.is_empty() {
            return Err(RoomError::RoomRequired);
        }
        let connection = self.connection(id)?;
        let auth = self.store.auth(room).await?;
        if !authorized(&auth, &connection.attributes()) {
            return Err(RoomError::NotAuthorized);
        }
        if self.has_chat_hooks() {
            if connection.rooms().iter().any(|r| r == room) {
                return Err(RoomError::AlreadyMember);
            }
            self.hooks(ChatHook::Join, id, room, None).await?;
        }
        self.store
            .join(
                room,
                Member {
                    id: id.to_owned(),
                    joined_at: now_ms(),
                    node: self.node.clone(),
                },
            )
            .await?;
        connection.add_room(room);
        self.announce(room, id, json!(ENTERED)).await
    }

    /// Removes connection `id` from `room` and announces it.
    ///
    /// # Errors
    ///
    /// `RoomRequired`, `NoSuchRoom`, `NotMember`.
    pub async fn leave(&self, id: &str, room: &str) -> Result<(), RoomError> {
        self.leave_as(id, room, false).await
    }

    /// `leave`; `forced` (the connection goes away, or lost its authorization): the
    /// chat middleware hears of it but cannot refuse it.
    async fn leave_as(&self, id: &str, room: &str, forced: bool) -> Result<(), RoomError> {
        if room.is_empty() {
            return Err(RoomError::RoomRequired);
        }
        if self.has_chat_hooks() {
            // The hooks hear only of leaves that can happen; the errors keep their order.
            self.store.auth(room).await?;
            if let Some(c) = self.connections.get(id)
                && !c.rooms().iter().any(|r| r == room)
            {
                return Err(RoomError::NotMember);
            }
            match self.hooks(ChatHook::Leave, id, room, None).await {
                Err(err) if !forced => return Err(err),
                Err(err) => tracing::debug!(room, connection = id, %err,
                    "a chat middleware would keep a leaving connection in"),
                Ok(_) => {}
            }
        }
        self.store.leave(room, id).await?;
        if let Some(c) = self.connections.get(id) {
            c.remove_room(room);
        }
        self.announce(room, id, json!(LEFT)).await
    }

    /// Leaves every room and stops listening everywhere (a connection going away).
    pub async fn leave_all(&self, connection: &crate::connections::Connection) {
        for room in connection.rooms() {
            if let Err(err) = self.leave_as(&connection.id, &room, true).await {
                tracing::debug!(room, %err, "leaving a room at disconnect");
            }
        }
        for room in connection.listening() {
            let _ = self.store.listen(&room, &connection.id, false).await;
            connection.remove_listening(&room);
        }
    }

    /// Starts (`on`) or stops hearing `room` without being a member (`listenToRoom`,
    /// `silenceRoom`). Listening is subject to the room's pattern.
    ///
    /// # Errors
    ///
    /// `RoomRequired`, `NoSuchRoom`, `NotAuthorized`, `NoSuchConnection`; `NotMember`
    /// when silencing a room one does not listen to.
    pub async fn listen(&self, id: &str, room: &str, on: bool) -> Result<(), RoomError> {
        if room.is_empty() {
            return Err(RoomError::RoomRequired);
        }
        let connection = self.connection(id)?;
        if on && !authorized(&self.store.auth(room).await?, &connection.attributes()) {
            return Err(RoomError::NotAuthorized);
        }
        let changed = self.store.listen(room, id, on).await?;
        match (on, changed) {
            (true, _) => connection.add_listening(room),
            (false, true) => connection.remove_listening(room),
            (false, false) => return Err(RoomError::NotMember),
        }
        Ok(())
    }

    /// `say` from a member: delivered to everyone in the room but the sender.
    ///
    /// # Errors
    ///
    /// `MessageRequired`, `NoSuchRoom`, `NotMember`.
    pub async fn say(&self, id: &str, room: &str, message: Value) -> Result<(), RoomError> {
        if room.is_empty() || message.is_null() || message.as_str() == Some("") {
            return Err(RoomError::MessageRequired);
        }
        // One read of the room: membership and audience together.
        let audience = self.store.audience(room).await?;
        if !audience.has_member(id) {
            return Err(RoomError::NotMember);
        }
        let message = self
            .hooks(ChatHook::Say, id, room, Some(message))
            .await?
            .unwrap_or(Value::Null);
        self.announce_to(&audience, room, id, message).await;
        Ok(())
    }

    /// A message to everyone in `room` from `from` (a connection id, excluded from the
    /// audience, or a label such as `server`): the host service behind
    /// `ctx.rooms().broadcast`.
    ///
    /// # Errors
    ///
    /// `NoSuchRoom`.
    pub async fn broadcast(&self, room: &str, from: &str, message: Value) -> Result<(), RoomError> {
        self.announce(room, from, message).await
    }

    /// `roomView`: members (with join times) and their count; members only.
    ///
    /// # Errors
    ///
    /// `RoomRequired`, `NoSuchRoom`, `NotMemberOf`.
    pub async fn view(&self, id: &str, room: &str) -> Result<Value, RoomError> {
        if room.is_empty() {
            return Err(RoomError::RoomRequired);
        }
        let members = self.store.members(room).await?;
        if !members.iter().any(|m| m.id == id) {
            return Err(RoomError::NotMemberOf(room.to_owned()));
        }
        Ok(view_json(room, &members))
    }

    /// The pattern of `room`.
    ///
    /// # Errors
    ///
    /// `NoSuchRoom`, or a store failure.
    pub async fn auth(&self, room: &str) -> Result<AuthPattern, RoomError> {
        self.store.auth(room).await
    }

    /// Connection ids in `room`.
    ///
    /// # Errors
    ///
    /// `NoSuchRoom`.
    pub async fn member_ids(&self, room: &str) -> Result<Vec<String>, RoomError> {
        Ok(self
            .store
            .members(room)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect())
    }

    /// How many rooms exist (`None` when the store cannot say).
    pub async fn count(&self) -> Option<usize> {
        self.store.counts().await.ok().map(|counts| counts.len())
    }

    /// Member counts by room, for `status`.
    pub async fn status(&self) -> Value {
        match self.store.counts().await {
            Ok(counts) => json!(counts),
            Err(err) => json!({ "error": err.to_string() }),
        }
    }
}

/// The `roomView` data: `{room, members: {id: {id, joinedAt}}, membersCount}`.
pub fn view_json(room: &str, members: &[Member]) -> Value {
    let list: Map<String, Value> = members
        .iter()
        .map(|m| (m.id.clone(), json!({ "id": m.id, "joinedAt": m.joined_at })))
        .collect();
    json!({ "room": room, "members": list, "membersCount": members.len() })
}

#[cfg(test)]
pub(crate) mod conformance {
    //! One suite every room store passes.
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::{AuthPattern, Member, RoomError, RoomStore};

    fn member(id: &str, joined_at: u64) -> Member {
        Member {
            id: id.to_owned(),
            joined_at,
            node: "n1".to_owned(),
        }
    }

    /// Runs every case on an empty store.
    pub(crate) async fn run_all(store: &dyn RoomStore) {
        let open = AuthPattern::new();
        let vip = json!({"role": "vip"}).as_object().cloned().unwrap();
        assert_eq!(store.upsert("r", open.clone()).await.unwrap(), None, "new");
        assert_eq!(
            store.upsert("r", vip.clone()).await.unwrap(),
            Some(open.clone()),
            "existing: the old pattern"
        );
        assert_eq!(store.auth("r").await.unwrap(), vip);
        assert_eq!(store.auth("nope").await, Err(RoomError::NoSuchRoom));

        store.join("r", member("a", 10)).await.unwrap();
        store.join("r", member("b", 20)).await.unwrap();
        assert_eq!(
            store.join("r", member("a", 30)).await,
            Err(RoomError::AlreadyMember)
        );
        assert_eq!(
            store.join("nope", member("a", 1)).await,
            Err(RoomError::NoSuchRoom)
        );
        let members = store.members("r").await.unwrap();
        assert_eq!(
            members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"],
            "join order"
        );
        assert_eq!(members[0].joined_at, 10);
        assert_eq!(members[0].node, "n1");

        assert!(store.listen("r", "c", true).await.unwrap());
        assert!(!store.listen("r", "c", true).await.unwrap(), "no change");
        let mut audience = store.audience("r").await.unwrap().ids();
        audience.sort();
        assert_eq!(audience, ["a", "b", "c"]);
        let read = store.audience("r").await.unwrap();
        assert!(
            read.has_member("a") && !read.has_member("c"),
            "a listener is no member"
        );
        assert!(store.listen("r", "c", false).await.unwrap());
        assert!(!store.listen("r", "c", false).await.unwrap());
        assert_eq!(
            store.listen("nope", "c", true).await,
            Err(RoomError::NoSuchRoom)
        );

        store.upsert("s", open.clone()).await.unwrap();
        let counts = store.counts().await.unwrap();
        assert_eq!(counts.get("r"), Some(&2));
        assert_eq!(counts.get("s"), Some(&0));

        store.leave("r", "b").await.unwrap();
        assert_eq!(store.leave("r", "b").await, Err(RoomError::NotMember));
        assert_eq!(store.leave("nope", "b").await, Err(RoomError::NoSuchRoom));
        store.listen("r", "d", true).await.unwrap();
        let mut removed = store.delete("r").await.unwrap();
        removed.sort();
        assert_eq!(removed, ["a", "d"], "members and listeners");
        assert_eq!(store.delete("r").await, Err(RoomError::NoSuchRoom));
        assert_eq!(store.members("r").await, Err(RoomError::NoSuchRoom));
        assert!(!store.counts().await.unwrap().contains_key("r"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    #[derive(Default)]
    struct Recorder(StdMutex<Vec<(String, Value)>>);

    impl RoomDelivery for Recorder {
        fn deliver<'a>(&'a self, ids: &'a [String], message: Value) -> BoxFuture<'a, ()> {
            let mut got = self.0.lock().unwrap();
            got.extend(ids.iter().map(|id| (id.clone(), message.clone())));
            Box::pin(std::future::ready(()))
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<(String, Value)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn setup() -> (Rooms, Arc<Connections>, Arc<Recorder>) {
        let connections = Arc::new(Connections::default());
        let rooms = Rooms::new(
            Arc::new(MemoryRoomStore::default()),
            Arc::clone(&connections),
            "local",
        );
        let recorder = Arc::new(Recorder::default());
        rooms.set_delivery(recorder.clone());
        (rooms, connections, recorder)
    }

    fn pattern(v: Value) -> AuthPattern {
        v.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn memory_store_conformance() {
        super::conformance::run_all(&MemoryRoomStore::default()).await;
    }

    #[tokio::test]
    async fn join_announces_to_others_and_say_skips_the_sender() {
        let (rooms, conns, rec) = setup();
        rooms.create("r", AuthPattern::new()).await.unwrap();
        let a = conns.create("x", "127.0.0.1".into(), 1);
        let b = conns.create("y", "127.0.0.1".into(), 2);
        let c = conns.create("z", "127.0.0.1".into(), 3);
        rooms.join(&a.id, "r").await.unwrap();
        assert!(rec.take().is_empty(), "nobody else to tell");
        rooms.join(&b.id, "r").await.unwrap();
        let got = rec.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, a.id);
        assert_eq!(got[0].1["message"], ENTERED);
        assert_eq!(got[0].1["from"], json!(b.id));
        assert_eq!(rooms.join(&b.id, "r").await, Err(RoomError::AlreadyMember));

        rooms.say(&a.id, "r", json!("hi")).await.unwrap();
        let got = rec.take();
        assert_eq!(
            got.iter().map(|g| g.0.clone()).collect::<Vec<_>>(),
            vec![b.id.clone()]
        );
        assert_eq!(got[0].1["context"], "user");
        assert_eq!(
            rooms.say(&c.id, "r", json!("x")).await,
            Err(RoomError::NotMember)
        );
        assert_eq!(
            rooms.say(&a.id, "r", json!("")).await,
            Err(RoomError::MessageRequired)
        );

        rooms.listen(&c.id, "r", true).await.unwrap();
        rooms.say(&a.id, "r", json!("hey")).await.unwrap();
        let mut to: Vec<_> = rec.take().into_iter().map(|g| g.0).collect();
        to.sort();
        let mut want = vec![b.id.clone(), c.id.clone()];
        want.sort();
        assert_eq!(to, want);
        rooms.listen(&c.id, "r", false).await.unwrap();
        assert_eq!(
            rooms.listen(&c.id, "r", false).await,
            Err(RoomError::NotMember)
        );
    }

    #[tokio::test]
    async fn view_requires_membership_and_counts() {
        let (rooms, conns, rec) = setup();
        rooms.create("r", AuthPattern::new()).await.unwrap();
        let a = conns.create("x", "127.0.0.1".into(), 1);
        let b = conns.create("y", "127.0.0.1".into(), 2);
        assert_eq!(
            rooms.view(&a.id, "r").await,
            Err(RoomError::NotMemberOf("r".into()))
        );
        rooms.join(&a.id, "r").await.unwrap();
        rooms.join(&b.id, "r").await.unwrap();
        let v = rooms.view(&a.id, "r").await.unwrap();
        assert_eq!(v["membersCount"], 2);
        assert!(v["members"][&b.id]["joinedAt"].is_u64());
        rec.take();
        rooms.leave(&b.id, "r").await.unwrap();
        assert_eq!(rec.take()[0].1["message"], LEFT);
        assert_eq!(rooms.view(&a.id, "r").await.unwrap()["membersCount"], 1);
        assert_eq!(rooms.leave(&b.id, "r").await, Err(RoomError::NotMember));
        assert_eq!(rooms.join(&a.id, "nope").await, Err(RoomError::NoSuchRoom));
        assert_eq!(rooms.join(&a.id, "").await, Err(RoomError::RoomRequired));
        assert!(b.rooms().is_empty());
        assert_eq!(a.rooms(), vec!["r".to_owned()]);
    }

    #[tokio::test]
    async fn patterns_gate_joins_and_changes_recheck_members() {
        let (rooms, conns, rec) = setup();
        rooms
            .create("secure", pattern(json!({"role": "admin"})))
            .await
            .unwrap();
        let a = conns.create("x", "127.0.0.1".into(), 1);
        let b = conns.create("y", "127.0.0.1".into(), 2);
        assert_eq!(
            rooms.join(&a.id, "secure").await,
            Err(RoomError::NotAuthorized)
        );
        a.set_attribute("role", json!("admin"));
        b.set_attribute("role", json!("admin"));
        b.set_attribute("team", json!("blue"));
        rooms.join(&a.id, "secure").await.unwrap();
        rooms.join(&b.id, "secure").await.unwrap();
        rec.take();
        // Same pattern again: nothing happens.
        rooms
            .create("secure", pattern(json!({"role": "admin"})))
            .await
            .unwrap();
        assert!(rec.take().is_empty());
        rooms
            .create("secure", pattern(json!({"role": "admin", "team": "blue"})))
            .await
            .unwrap();
        assert_eq!(
            rooms.member_ids("secure").await.unwrap(),
            vec![b.id.clone()]
        );
        assert!(a.rooms().is_empty());
        let got = rec.take();
        assert!(
            got.iter()
                .any(|(to, m)| to == &b.id && m["message"] == LEFT && m["from"] == json!(a.id))
        );
        assert!(
            got.iter()
                .any(|(to, m)| to == &a.id && m["from"] == SERVER_SENDER)
        );
    }

    #[tokio::test]
    async fn delete_tells_and_removes_members() {
        let (rooms, conns, rec) = setup();
        rooms.create("r", AuthPattern::new()).await.unwrap();
        let a = conns.create("x", "127.0.0.1".into(), 1);
        rooms.join(&a.id, "r").await.unwrap();
        rooms.delete("r").await.unwrap();
        let got = rec.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1["message"], DELETED);
        assert!(a.rooms().is_empty());
        assert_eq!(rooms.delete("r").await, Err(RoomError::NoSuchRoom));
        assert_eq!(rooms.member_ids("r").await, Err(RoomError::NoSuchRoom));
    }

    #[tokio::test]
    async fn leave_all_announces_each_room() {
        let (rooms, conns, rec) = setup();
        rooms.create("r1", AuthPattern::new()).await.unwrap();
        rooms.create("r2", AuthPattern::new()).await.unwrap();
        let a = conns.create("x", "127.0.0.1".into(), 1);
        let b = conns.create("y", "127.0.0.1".into(), 2);
        for r in ["r1", "r2"] {
            rooms.join(&a.id, r).await.unwrap();
            rooms.join(&b.id, r).await.unwrap();
        }
        rec.take();
        rooms.leave_all(&a).await;
        let got = rec.take();
        assert_eq!(got.len(), 2);
        assert!(
            got.iter()
                .all(|(to, m)| to == &b.id && m["message"] == LEFT)
        );
        assert_eq!(rooms.status().await, json!({"r1": 1, "r2": 1}));
    }
}
