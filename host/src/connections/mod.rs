//! Websocket connections: who is connected, with what params, rooms and counters.
//!
//! A connection (type `webSocket`) is created when a Bayeux client subscribes to a setup
//! channel (PROTOCOL 2.1) and belongs to that Bayeux client, its **owner**: only the owner
//! may talk on the connection's channel. It lives until the owner disconnects or expires,
//! the client sends `quit`, or the server destroys it.
//!
//! The registry is in memory on the node where the connection was made (its owner
//! node); [`directory`] tells every node of a cluster who owns which connection. Rooms
//! ([`crate::rooms`]) refer to connections by id.

pub mod directory;

pub use directory::{ConnectionDirectory, MemoryDirectory, Owner, RedisDirectory};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use plugin_api::{ConnectionInfo, Params, Value};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::actions::PendingActions;
use crate::clock::now_ms;

/// The `type` of every connection made over the websocket protocol.
pub const WEBSOCKET_TYPE: &str = "webSocket";

/// Caps on a connection's sticky params (`0`: no cap). They are copied into every
/// action the connection runs, so their size is the cost of each call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StickyLimits {
    /// Params kept at most.
    pub max_count: usize,
    /// Their approximate size at most (names plus JSON values), in bytes.
    pub max_bytes: usize,
}

/// An action's params would pass a [`StickyLimits`] cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StickyLimit {
    /// `max_sticky_params`.
    #[error("too many params kept on this connection (at most {0} - max_sticky_params)")]
    Count(usize),
    /// `max_sticky_param_bytes`.
    #[error(
        "the params kept on this connection are too large (at most {0} bytes - max_sticky_param_bytes)"
    )]
    Bytes(usize),
}

/// The approximate size of one param: its name and its JSON value, without quoting
/// or escapes (cheap: no serialisation).
fn param_size(name: &str, value: &Value) -> usize {
    fn size(value: &Value) -> usize {
        match value {
            Value::Null | Value::Bool(_) => 4,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => 2 + items.iter().map(size).sum::<usize>() + items.len(),
            Value::Object(fields) => {
                2 + fields
                    .iter()
                    .map(|(k, v)| k.len() + 4 + size(v))
                    .sum::<usize>()
            }
        }
    }
    name.len() + size(value)
}

/// Mutable per-connection state, behind one short-held lock.
#[derive(Debug, Default)]
struct State {
    params: Params,
    /// Approximate size of `params` (names and JSON values), kept as they change.
    params_bytes: usize,
    rooms: Vec<String>,
    listening: Vec<String>,
    attributes: Params,
}

/// One websocket connection.
#[derive(Debug)]
pub struct Connection {
    /// Unguessable id (128 random bits, base 36).
    pub id: String,
    /// The Bayeux client id that created it and alone may use its channel.
    pub owner: String,
    /// Peer IP of the transport (or the trusted `X-Forwarded-For` address).
    pub remote_ip: String,
    /// Peer port of the transport.
    pub remote_port: u16,
    /// Creation time, milliseconds since the epoch.
    pub connected_at: u64,
    state: Mutex<State>,
    message_count: AtomicU64,
    total_actions: AtomicU64,
    /// Actions in flight, bounded by `simultaneousActions`.
    pub pending: PendingActions,
    /// Cancelled when the connection is destroyed: its pending work stops.
    pub closed: CancellationToken,
    welcomed: AtomicBool,
}

impl Connection {
    fn new(owner: &str, remote_ip: String, remote_port: u16) -> Self {
        Self {
            id: crate::ids::random_id(),
            owner: owner.to_owned(),
            remote_ip,
            remote_port,
            connected_at: now_ms(),
            state: Mutex::default(),
            message_count: AtomicU64::new(0),
            total_actions: AtomicU64::new(0),
            pending: PendingActions::default(),
            closed: CancellationToken::new(),
            welcomed: AtomicBool::new(false),
        }
    }

    /// `true` the first time only: the welcome is sent once per connection.
    pub fn mark_welcomed(&self) -> bool {
        !self.welcomed.swap(true, Ordering::AcqRel)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Counts one received message and returns its number (the first is 1).
    pub fn count_message(&self) -> u64 {
        self.message_count.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Messages received so far.
    pub fn message_count(&self) -> u64 {
        self.message_count.load(Ordering::Acquire)
    }

    /// Counts one action started.
    pub fn count_action(&self) {
        self.total_actions.fetch_add(1, Ordering::AcqRel);
    }

    /// Merges `params` into the sticky params and returns the merged set, unless the
    /// result would pass `limits` (then nothing changes).
    ///
    /// # Errors
    ///
    /// [`StickyLimit`] naming the limit the merge would pass.
    pub fn merge_params(
        &self,
        params: Params,
        limits: StickyLimits,
    ) -> Result<Params, StickyLimit> {
        let mut state = self.state();
        let mut count = state.params.len();
        let mut bytes = state.params_bytes;
        for (name, value) in &params {
            match state.params.get(name) {
                Some(old) => bytes = bytes.saturating_sub(param_size(name, old)),
                None => count += 1,
            }
            bytes += param_size(name, value);
        }
        if limits.max_count > 0 && count > limits.max_count {
            return Err(StickyLimit::Count(limits.max_count));
        }
        if limits.max_bytes > 0 && bytes > limits.max_bytes {
            return Err(StickyLimit::Bytes(limits.max_bytes));
        }
        state.params.extend(params);
        state.params_bytes = bytes;
        Ok(state.params.clone())
    }

    /// Sets an attribute (matched by room authorization patterns).
    pub fn set_attribute(&self, key: &str, value: Value) {
        self.state().attributes.insert(key.to_owned(), value);
    }

    /// The attributes set so far.
    pub fn attributes(&self) -> Params {
        self.state().attributes.clone()
    }

    /// Rooms it is a member of, in join order.
    pub fn rooms(&self) -> Vec<String> {
        self.state().rooms.clone()
    }

    /// Rooms it listens to without being a member.
    pub fn listening(&self) -> Vec<String> {
        self.state().listening.clone()
    }

    /// Records membership of `room` (idempotent).
    pub fn add_room(&self, room: &str) {
        let mut state = self.state();
        if !state.rooms.iter().any(|r| r == room) {
            state.rooms.push(room.to_owned());
        }
    }

    /// Forgets membership of `room`.
    pub fn remove_room(&self, room: &str) {
        self.state().rooms.retain(|r| r != room);
    }

    /// Records listening to `room` (idempotent).
    pub fn add_listening(&self, room: &str) {
        let mut state = self.state();
        if !state.listening.iter().any(|r| r == room) {
            state.listening.push(room.to_owned());
        }
    }

    /// Forgets listening to `room`.
    pub fn remove_listening(&self, room: &str) {
        self.state().listening.retain(|r| r != room);
    }

    /// What an action sees of this connection.
    pub fn info(&self) -> ConnectionInfo {
        let state = self.state();
        ConnectionInfo {
            id: self.id.clone(),
            kind: WEBSOCKET_TYPE.into(),
            remote_ip: self.remote_ip.clone(),
            remote_port: self.remote_port,
            rooms: state.rooms.clone(),
            attributes: state.attributes.clone(),
        }
    }

    /// The `detailsView` answer.
    pub fn details(&self) -> Value {
        let state = self.state();
        json!({
            "id": self.id,
            "type": WEBSOCKET_TYPE,
            "remoteIP": self.remote_ip,
            "remotePort": self.remote_port,
            "params": state.params,
            "connectedAt": self.connected_at,
            "rooms": state.rooms,
            "totalActions": self.total_actions.load(Ordering::Acquire),
            "pendingActions": self.pending.count(),
        })
    }
}

/// Every live websocket connection of this node, by id and by owning Bayeux client.
#[derive(Debug, Default)]
pub struct Connections {
    inner: RwLock<Index>,
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<Connection>>,
    by_owner: HashMap<String, HashSet<String>>,
    /// Owners of recently closed connections, so that their last messages (the `quit`
    /// answer, `ClientDisconnect`) still reach the owner alone; kept per owner, at most
    /// [`CLOSED_KEPT`], until the owner's session ends.
    closed: HashMap<String, String>,
    closed_by_owner: HashMap<String, VecDeque<String>>,
}

/// Closed connections remembered per Bayeux client.
const CLOSED_KEPT: usize = 16;

impl Index {
    fn remember_closed(&mut self, id: &str, owner: &str) {
        let ids = self.closed_by_owner.entry(owner.to_owned()).or_default();
        ids.push_back(id.to_owned());
        if ids.len() > CLOSED_KEPT
            && let Some(old) = ids.pop_front()
        {
            self.closed.remove(&old);
        }
        self.closed.insert(id.to_owned(), owner.to_owned());
    }
}

impl Connections {
    fn read(&self) -> RwLockReadGuard<'_, Index> {
        crate::sync::read(&self.inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        crate::sync::write(&self.inner)
    }

    /// Creates a connection owned by the Bayeux client `owner`.
    pub fn create(&self, owner: &str, remote_ip: String, remote_port: u16) -> Arc<Connection> {
        let connection = Arc::new(Connection::new(owner, remote_ip, remote_port));
        let mut index = self.write();
        index
            .by_owner
            .entry(owner.to_owned())
            .or_default()
            .insert(connection.id.clone());
        index
            .by_id
            .insert(connection.id.clone(), Arc::clone(&connection));
        connection
    }

    /// The connection `id`, if live.
    pub fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.read().by_id.get(id).cloned()
    }

    /// Removes the connection `id`; returns it if it was live.
    pub fn remove(&self, id: &str) -> Option<Arc<Connection>> {
        let mut index = self.write();
        let connection = index.by_id.remove(id)?;
        if let Some(ids) = index.by_owner.get_mut(&connection.owner) {
            ids.remove(id);
            if ids.is_empty() {
                index.by_owner.remove(&connection.owner);
            }
        }
        index.remember_closed(id, &connection.owner);
        Some(connection)
    }

    /// Removes every connection owned by the Bayeux client `owner`.
    pub fn remove_owned_by(&self, owner: &str) -> Vec<Arc<Connection>> {
        let mut index = self.write();
        for id in index.closed_by_owner.remove(owner).unwrap_or_default() {
            index.closed.remove(&id);
        }
        let ids = index.by_owner.remove(owner).unwrap_or_default();
        ids.iter().filter_map(|id| index.by_id.remove(id)).collect()
    }

    /// Live connections owned by the Bayeux client `owner`.
    pub fn count_owned_by(&self, owner: &str) -> usize {
        self.read().by_owner.get(owner).map_or(0, HashSet::len)
    }

    /// The Bayeux client that owns (or owned, if recently closed) connection `id`.
    pub fn owner_of(&self, id: &str) -> Option<String> {
        let index = self.read();
        index
            .by_id
            .get(id)
            .map(|c| c.owner.clone())
            .or_else(|| index.closed.get(id).cloned())
    }

    /// Every live connection.
    pub fn all(&self) -> Vec<Arc<Connection>> {
        self.read().by_id.values().cloned().collect()
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts for `status`: total and by type.
    pub fn status(&self) -> Value {
        let n = self.len();
        json!({ "total": n, "byType": { WEBSOCKET_TYPE: n } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_index_follows_creation_and_removal() {
        let c = Connections::default();
        let a = c.create("bay1", "127.0.0.1".into(), 1);
        let b = c.create("bay1", "127.0.0.1".into(), 2);
        let other = c.create("bay2", "127.0.0.1".into(), 3);
        assert_eq!(c.len(), 3);
        assert_eq!(c.count_owned_by("bay1"), 2);
        assert!(c.remove(&a.id).is_some());
        assert!(c.remove(&a.id).is_none());
        assert_eq!(
            c.owner_of(&a.id).as_deref(),
            Some("bay1"),
            "remembered after closing"
        );
        let gone = c.remove_owned_by("bay1");
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, b.id);
        assert_eq!(c.len(), 1);
        assert!(c.get(&other.id).is_some());
        assert_eq!(c.owner_of(&a.id), None, "forgotten with the session");
        assert_eq!(c.owner_of(&other.id).as_deref(), Some("bay2"));
    }

    #[test]
    fn params_stick_and_counts_advance() {
        let c = Connections::default().create("o", "127.0.0.1".into(), 1);
        let mut p = Params::new();
        p.insert("a".into(), json!(1));
        let none = StickyLimits::default();
        c.merge_params(p, none).unwrap();
        let mut q = Params::new();
        q.insert("b".into(), json!(2));
        let merged = c.merge_params(q, none).unwrap();
        assert_eq!(merged.get("a"), Some(&json!(1)));
        assert_eq!(c.count_message(), 1);
        assert_eq!(c.count_message(), 2);
        assert_eq!(c.details()["params"]["b"], json!(2));
    }

    #[test]
    fn sticky_params_past_a_cap_are_refused_and_change_nothing() {
        let c = Connections::default().create("o", "127.0.0.1".into(), 1);
        let limits = StickyLimits {
            max_count: 2,
            max_bytes: 100,
        };
        let one = |k: &str, v: Value| Params::from_iter([(k.to_owned(), v)]);
        c.merge_params(one("a", json!("x")), limits).unwrap();
        c.merge_params(one("b", json!("y")), limits).unwrap();
        assert_eq!(
            c.merge_params(one("c", json!(1)), limits),
            Err(StickyLimit::Count(2))
        );
        // Replacing a kept param does not count twice.
        c.merge_params(one("a", json!("z")), limits).unwrap();
        assert_eq!(
            c.merge_params(one("b", json!("w".repeat(200))), limits),
            Err(StickyLimit::Bytes(100))
        );
        assert_eq!(c.details()["params"]["b"], json!("y"), "nothing changed");
    }
}
