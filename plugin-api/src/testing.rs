//! An in-memory host for running actions in a plain `cargo test` (actionhero's
//! `specHelper`). Enabled by the `testing` feature, off by default:
//!
//! ```toml
//! [dev-dependencies]
//! plugin-api = { path = "...", features = ["testing"] }
//! tokio = { version = "1", features = ["macros", "rt"] }
//! ```
//!
//! Design: a [`TestHost`] owns in-memory [`HostServices`] (a cache whose TTLs run on a
//! clock the test may [advance](TestHost::advance), chat rooms with authorization
//! patterns, connection attributes) and one calling connection. [`TestHost::run`]
//! applies the host's params pipeline with the very functions the host calls —
//! [`ActionDefinition::scrub`], the resolved `apiVersion`,
//! [`ActionDefinition::check_connection_type`], [`ActionDefinition::prepare_params`] —
//! so a missing or invalid param gives the [`ActionError`] a client would get, and a
//! panic becomes [`ActionError::internal`]. Rooms follow the host's rules and messages:
//! a join checks the room's pattern against the connection's attributes, a new pattern
//! removes members that no longer match. There is no transport and no cluster: what
//! an action broadcasts is recorded ([`TestHost::broadcasts`]) rather than delivered,
//! and join or leave announcements are not recorded. State lives behind a mutex that is
//! never held across an `await`, so any async runtime (`#[tokio::test]`) drives it.
//!
//! ```
//! use plugin_api::testing::TestHost;
//! use plugin_api::{Action, ActionDefinition, ActionResult, Context, Input, json};
//!
//! struct Hello;
//!
//! impl Action for Hello {
//!     fn definition(&self) -> ActionDefinition {
//!         ActionDefinition::new("hello").input(Input::optional("name").default("world"))
//!     }
//!     async fn run(&self, ctx: Context) -> ActionResult {
//!         let name = ctx.param_str("name").unwrap_or("world");
//!         Ok(json!({ "greeting": format!("Hello, {name}!") }))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let host = TestHost::new();
//! let reply = host.run(&Hello, json!({ "name": "you" })).await;
//! assert_eq!(reply, Ok(json!({ "greeting": "Hello, you!" })));
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    Action, ActionDefinition, ActionError, ActionResult, BoxFuture, ConnectionInfo, Context,
    HostServices, Params, ServiceError, ServiceResult, registered_actions, requested_version,
};

/// The id of the calling connection of [`TestHost::new`].
pub const CONNECTION_ID: &str = "test-connection";

/// The room every new [`TestHost`] has, open to all, as the host's default config does.
pub const DEFAULT_ROOM: &str = "defaultRoom";

// The host's room error texts (hero's `RoomError`), which clients read.
const ROOM_REQUIRED: &str = "a room is required";
const NOT_AUTHORIZED: &str = "not authorized to join room";
const ALREADY_MEMBER: &str = "connection already in this room";
const NOT_MEMBER: &str = "connection not in this room";

/// One message an action sent with `ctx.rooms().broadcast(room, from, message)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    /// The room it was sent to.
    pub room: String,
    /// Who it is from (a connection id or a label).
    pub from: String,
    /// The message.
    pub message: Value,
}

/// An in-memory host: services, one calling connection, and the params pipeline.
#[derive(Debug, Clone)]
pub struct TestHost {
    services: Arc<Services>,
    connection: ConnectionInfo,
}

impl Default for TestHost {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHost {
    /// A host with an empty cache, the open room [`DEFAULT_ROOM`], and a websocket
    /// connection [`CONNECTION_ID`] from `127.0.0.1` calling the actions.
    pub fn new() -> Self {
        let services = Arc::new(Services::default());
        services
            .lock()
            .rooms
            .insert(DEFAULT_ROOM.to_owned(), Room::default());
        let host = Self {
            services,
            connection: ConnectionInfo::default(),
        };
        host.with_connection(ConnectionInfo {
            id: CONNECTION_ID.to_owned(),
            kind: "webSocket".to_owned(),
            remote_ip: "127.0.0.1".to_owned(),
            remote_port: 0,
            rooms: Vec::new(),
            attributes: Params::new(),
        })
    }

    /// Calls the next actions from `connection`, on the same services. Its `attributes`
    /// and `rooms` are its starting state (missing rooms are created open). A `web`
    /// connection lives for one request, as on the host: its attributes cannot be set
    /// and it joins no room. Connections used before stay connected.
    pub fn with_connection(mut self, connection: ConnectionInfo) -> Self {
        if connection.kind != "web" {
            let mut state = self.services.lock();
            for room in &connection.rooms {
                let room = state.rooms.entry(room.clone()).or_default();
                if !room.members.contains(&connection.id) {
                    room.members.push(connection.id.clone());
                }
            }
            state.connections.insert(
                connection.id.clone(),
                Connection {
                    attributes: connection.attributes.clone(),
                    rooms: connection.rooms.clone(),
                },
            );
        }
        self.connection = connection;
        self
    }

    /// The calling connection as the next action will see it (current rooms, attributes).
    pub fn connection(&self) -> ConnectionInfo {
        let mut info = self.connection.clone();
        if let Some(live) = self.services.lock().connections.get(&info.id) {
            info.rooms.clone_from(&live.rooms);
            info.attributes.clone_from(&live.attributes);
        }
        info
    }

    /// Runs `action` with `params` (a JSON object, or `null` for none) after the host's
    /// params pipeline; the result is what the host would reply.
    ///
    /// # Panics
    ///
    /// When `params` is neither an object nor `null` (a mistake in the test).
    pub async fn run<A: Action>(&self, action: &A, params: Value) -> ActionResult {
        let definition = action.definition();
        let params = request(&definition.name, params);
        match requested_version(&params) {
            Ok(None) => {}
            Ok(Some(version)) if version == definition.version => {}
            _ => return Err(ActionError::unknown_action(&definition.name)),
        }
        let (ctx, params) = self.context(&definition, params)?.take_params();
        let params = definition.prepare_params(params)?;
        caught(action.run(ctx.with_params(params))).await
    }

    /// Runs the action registered (with `register_action!` or `export_plugin!`) under
    /// `name`, as the host would: the `apiVersion` param picks a version, else the newest.
    ///
    /// # Panics
    ///
    /// When `params` is neither an object nor `null` (a mistake in the test).
    pub async fn run_named(&self, name: &str, params: Value) -> ActionResult {
        let params = request(name, params);
        let unknown = || ActionError::unknown_action(name);
        let version = requested_version(&params).map_err(|_| unknown())?;
        let handler = registered_actions()
            .filter(|h| {
                let d = h.definition();
                d.name == name && version.is_none_or(|v| d.version == v)
            })
            .max_by_key(|h| h.definition().version)
            .ok_or_else(unknown)?;
        let ctx = self.context(handler.definition(), params)?;
        caught(handler.invoke(ctx)).await
    }

    /// What actions broadcast so far, oldest first.
    pub fn broadcasts(&self) -> Vec<Broadcast> {
        self.services.lock().broadcasts.clone()
    }

    /// A cache entry, `None` when missing or expired.
    pub fn cache_value(&self, key: &str) -> Option<Value> {
        let now = self.services.now();
        self.services.lock().cache_get(key, now)
    }

    /// Stores a cache entry before a run, expiring after `ttl` if given.
    pub fn set_cache_value(&self, key: &str, value: impl Into<Value>, ttl: Option<Duration>) {
        let expires = ttl.map(|ttl| self.services.now() + ttl);
        self.services
            .lock()
            .cache
            .insert(key.to_owned(), (value.into(), expires));
    }

    /// Moves the host's clock forward (cache entries expire without sleeping).
    pub fn advance(&self, by: Duration) {
        self.services.lock().offset += by;
    }

    /// The calling connection's attributes (set by `ctx.set`).
    pub fn attributes(&self) -> Params {
        self.connection().attributes
    }

    /// Creates a room (or changes its pattern) before a run, as `ctx.rooms().create` does.
    pub fn create_room(&self, room: &str, auth: Params) {
        // Only an empty name fails, and a test names its rooms.
        let _ = self.services.lock().room_create(room, auth);
    }

    /// The connection ids in `room`, in join order; empty when there is no such room.
    pub fn members(&self, room: &str) -> Vec<String> {
        self.services
            .lock()
            .rooms
            .get(room)
            .map(|r| r.members.clone())
            .unwrap_or_default()
    }

    /// The services, to build a [`Context`] by hand.
    pub fn services(&self) -> Arc<dyn HostServices> {
        Arc::clone(&self.services) as Arc<dyn HostServices>
    }

    /// The host's steps between lookup and the action's own inputs: scrub, resolved
    /// `apiVersion`, connection type check; a context on this host's services.
    fn context(
        &self,
        definition: &ActionDefinition,
        params: Params,
    ) -> Result<Context, ActionError> {
        let mut params = definition.scrub(params);
        params.insert("apiVersion".into(), Value::from(definition.version));
        let connection = self.connection();
        definition.check_connection_type(&connection.kind)?;
        Ok(Context::new(params, connection, self.services()))
    }
}

/// A call's params as a transport hands them over: the object, with `action` named.
fn request(name: &str, params: Value) -> Params {
    let mut params = match params {
        Value::Object(params) => params,
        Value::Null => Params::new(),
        other => panic!("TestHost: params must be a JSON object, not {other}"),
    };
    params.insert("action".into(), Value::from(name));
    params
}

/// Runs an action's future, turning a panic into the host's internal error.
async fn caught(run: impl Future<Output = ActionResult>) -> ActionResult {
    CatchUnwind(Box::pin(run))
        .await
        .unwrap_or_else(|_panic| Err(ActionError::internal()))
}

/// A future whose panics are caught (as the host's processor does).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The in-memory [`HostServices`].
#[derive(Debug)]
struct Services {
    started: Instant,
    state: Mutex<State>,
}

impl Default for Services {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// How far [`TestHost::advance`] moved the clock.
    offset: Duration,
    cache: HashMap<String, (Value, Option<Instant>)>,
    rooms: BTreeMap<String, Room>,
    /// Live (non-`web`) connections by id.
    connections: HashMap<String, Connection>,
    broadcasts: Vec<Broadcast>,
}

#[derive(Debug, Default)]
struct Room {
    auth: Params,
    members: Vec<String>,
}

#[derive(Debug, Default)]
struct Connection {
    attributes: Params,
    rooms: Vec<String>,
}

/// Whether `attributes` satisfy `pattern` (every key present with an equal value).
fn authorized(pattern: &Params, attributes: &Params) -> bool {
    pattern.iter().all(|(k, v)| attributes.get(k) == Some(v))
}

impl Services {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Instant {
        Instant::now() + self.lock().offset
    }
}

impl State {
    fn cache_get(&mut self, key: &str, now: Instant) -> Option<Value> {
        match self.cache.get(key) {
            Some((_, Some(expires))) if *expires <= now => {
                self.cache.remove(key);
                None
            }
            Some((value, _)) => Some(value.clone()),
            None => None,
        }
    }

    fn room_create(&mut self, name: &str, auth: Params) -> ServiceResult<()> {
        if name.is_empty() {
            return Err(ServiceError::Refused(ROOM_REQUIRED.into()));
        }
        let room = self.rooms.entry(name.to_owned()).or_default();
        if room.auth == auth {
            return Ok(());
        }
        room.auth = auth;
        // Members that no longer match leave, as on the host.
        let connections = &mut self.connections;
        room.members.retain(|id| {
            let keep = connections
                .get(id)
                .is_some_and(|c| authorized(&room.auth, &c.attributes));
            if !keep && let Some(c) = connections.get_mut(id) {
                c.rooms.retain(|r| r != name);
            }
            keep
        });
        Ok(())
    }

    fn room(&mut self, name: &str) -> ServiceResult<&mut Room> {
        if name.is_empty() {
            return Err(ServiceError::Refused(ROOM_REQUIRED.into()));
        }
        self.rooms.get_mut(name).ok_or(ServiceError::NoSuchRoom)
    }

    fn room_add(&mut self, id: &str, name: &str) -> ServiceResult<()> {
        if name.is_empty() {
            return Err(ServiceError::Refused(ROOM_REQUIRED.into()));
        }
        let connection = self
            .connections
            .get_mut(id)
            .ok_or(ServiceError::NoSuchConnection)?;
        let room = self.rooms.get_mut(name).ok_or(ServiceError::NoSuchRoom)?;
        if !authorized(&room.auth, &connection.attributes) {
            return Err(ServiceError::Refused(NOT_AUTHORIZED.into()));
        }
        if room.members.iter().any(|m| m == id) {
            return Err(ServiceError::Refused(ALREADY_MEMBER.into()));
        }
        room.members.push(id.to_owned());
        connection.rooms.push(name.to_owned());
        Ok(())
    }

    fn room_remove(&mut self, id: &str, name: &str) -> ServiceResult<()> {
        let room = self.room(name)?;
        let before = room.members.len();
        room.members.retain(|m| m != id);
        if room.members.len() == before {
            return Err(ServiceError::Refused(NOT_MEMBER.into()));
        }
        if let Some(c) = self.connections.get_mut(id) {
            c.rooms.retain(|r| r != name);
        }
        Ok(())
    }

    fn room_delete(&mut self, name: &str) -> ServiceResult<()> {
        let room = self.rooms.remove(name).ok_or(ServiceError::NoSuchRoom)?;
        for id in room.members {
            if let Some(c) = self.connections.get_mut(&id) {
                c.rooms.retain(|r| r != name);
            }
        }
        Ok(())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl HostServices for Services {
    fn cache_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<Option<Value>>> {
        let now = self.now();
        ready(Ok(self.lock().cache_get(key, now)))
    }

    fn cache_set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        let expires = ttl.map(|ttl| self.now() + ttl);
        self.lock().cache.insert(key.to_owned(), (value, expires));
        ready(Ok(()))
    }

    fn cache_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<bool>> {
        let now = self.now();
        let mut state = self.lock();
        let existed = state.cache_get(key, now).is_some();
        state.cache.remove(key);
        ready(Ok(existed))
    }

    fn room_broadcast<'a>(
        &'a self,
        room: &'a str,
        from: &'a str,
        message: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        let mut state = self.lock();
        let result = state.room(room).map(|_| ());
        if result.is_ok() {
            state.broadcasts.push(Broadcast {
                room: room.to_owned(),
                from: from.to_owned(),
                message,
            });
        }
        ready(result)
    }

    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<Vec<String>>> {
        ready(self.lock().room(room).map(|r| r.members.clone()))
    }

    fn room_create<'a>(&'a self, room: &'a str, auth: Params) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.lock().room_create(room, auth))
    }

    fn room_delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.lock().room_delete(room))
    }

    fn room_add<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.lock().room_add(connection, room))
    }

    fn room_remove<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.lock().room_remove(connection, room))
    }

    fn set_attribute<'a>(
        &'a self,
        connection: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        // As on the host, only connections that outlive a request (not `web`) keep them.
        let result = match self.lock().connections.get_mut(connection) {
            Some(c) => {
                c.attributes.insert(key.to_owned(), value);
                Ok(())
            }
            None => Err(ServiceError::NoSuchConnection),
        };
        ready(result)
    }

    fn host_status(&self) -> BoxFuture<'_, ServiceResult<Value>> {
        let uptime = self.now().duration_since(self.started).as_millis();
        ready(Ok(json!({ "id": "test-host", "uptime": uptime })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Input};

    fn params(v: Value) -> Params {
        match v {
            Value::Object(m) => m,
            _ => Params::new(),
        }
    }

    /// Echoes its params, so a test sees what the pipeline left.
    struct Echo;

    impl Action for Echo {
        fn definition(&self) -> ActionDefinition {
            ActionDefinition::new("echo")
                .version(2)
                .input(Input::required("key"))
                .input(
                    Input::optional("n")
                        .default("3")
                        .formatter(to_number)
                        .validator(small),
                )
                .block_connection_type("web")
        }

        async fn run(&self, ctx: Context) -> ActionResult {
            Ok(Value::Object(ctx.params().clone()))
        }
    }

    fn to_number(v: Value) -> Value {
        v.as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .map_or(v, Value::from)
    }

    fn small(v: &Value) -> Result<(), String> {
        match v.as_i64() {
            Some(n) if n < 10 => Ok(()),
            _ => Err("n must be a number below 10".into()),
        }
    }

    crate::register_action!(Echo);

    #[tokio::test]
    async fn params_pipeline_is_the_hosts() {
        let host = TestHost::new();
        let out = host
            .run(&Echo, json!({"key": "k", "evil": 1, "callback": "cb"}))
            .await
            .unwrap();
        assert_eq!(
            out,
            json!({"key": "k", "callback": "cb", "action": "echo", "apiVersion": 2, "n": 3})
        );

        let err = host.run(&Echo, json!({"n": "4"})).await.unwrap_err();
        assert_eq!(err, ActionError::missing_param("key"));
        assert_eq!(err.kind.http_status(), 422);

        let err = host
            .run(&Echo, json!({"key": "k", "n": "12"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParam);
        assert_eq!(err.to_string(), "Error: n must be a number below 10");

        let err = host
            .run(&Echo, json!({"key": "k", "apiVersion": 1}))
            .await
            .unwrap_err();
        assert_eq!(err, ActionError::unknown_action("echo"));
    }

    #[tokio::test]
    async fn actions_run_by_registered_name() {
        let host = TestHost::new();
        let out = host.run_named("echo", json!({"key": "k"})).await.unwrap();
        assert_eq!(out["n"], json!(3));
        assert_eq!(
            host.run_named("echo", json!({})).await,
            Err(ActionError::missing_param("key"))
        );
        assert_eq!(
            host.run_named("nope", Value::Null).await,
            Err(ActionError::unknown_action("nope"))
        );
        assert_eq!(
            host.run_named("echo", json!({"key": "k", "apiVersion": "x"}))
                .await,
            Err(ActionError::unknown_action("echo"))
        );
    }

    #[tokio::test]
    async fn blocked_connection_types_and_panics_answer_as_the_host() {
        let web = ConnectionInfo {
            id: "http-1".into(),
            kind: "web".into(),
            ..ConnectionInfo::default()
        };
        let host = TestHost::new().with_connection(web);
        let err = host.run(&Echo, json!({"key": "k"})).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Forbidden);

        struct Boom;
        impl Action for Boom {
            fn definition(&self) -> ActionDefinition {
                ActionDefinition::new("boom")
            }
            async fn run(&self, _ctx: Context) -> ActionResult {
                panic!("boom")
            }
        }
        assert_eq!(
            host.run(&Boom, Value::Null).await,
            Err(ActionError::internal())
        );
    }

    /// Caches `value` under `key` for `ttl_ms`, or reads `key` when no value is given.
    struct Remember;

    impl Action for Remember {
        fn definition(&self) -> ActionDefinition {
            ActionDefinition::new("remember")
                .input(Input::required("key"))
                .input(Input::optional("value"))
                .input(Input::optional("ttl_ms"))
        }

        async fn run(&self, ctx: Context) -> ActionResult {
            let key = ctx.param_str("key").unwrap_or_default();
            let cache = ctx.cache();
            match ctx.param("value") {
                Some(value) => {
                    let ttl = ctx
                        .param("ttl_ms")
                        .and_then(Value::as_u64)
                        .map(Duration::from_millis);
                    cache.set(key, value.clone(), ttl).await?;
                    Ok(json!({ "stored": true }))
                }
                None => Ok(json!({ "value": cache.get(key).await? })),
            }
        }
    }

    #[tokio::test]
    async fn cache_entries_expire_after_their_ttl() {
        let host = TestHost::new();
        host.run(&Remember, json!({"key": "k", "value": "v", "ttl_ms": 1000}))
            .await
            .unwrap();
        host.run(&Remember, json!({"key": "forever", "value": 1}))
            .await
            .unwrap();
        assert_eq!(host.cache_value("k"), Some(json!("v")));
        let read = host.run(&Remember, json!({"key": "k"})).await.unwrap();
        assert_eq!(read["value"], json!("v"));

        host.advance(Duration::from_millis(1001));
        assert_eq!(host.cache_value("k"), None);
        let read = host.run(&Remember, json!({"key": "k"})).await.unwrap();
        assert_eq!(read["value"], Value::Null);
        assert_eq!(host.cache_value("forever"), Some(json!(1)));

        host.set_cache_value("seeded", "s", Some(Duration::from_secs(5)));
        let services = host.services();
        assert_eq!(services.cache_delete("seeded").await, Ok(true));
        assert_eq!(services.cache_delete("seeded").await, Ok(false));
    }

    /// Sets `role`, joins `room`, and says hello there.
    struct Join;

    impl Action for Join {
        fn definition(&self) -> ActionDefinition {
            ActionDefinition::new("join")
                .input(Input::required("room"))
                .input(Input::optional("role"))
        }

        async fn run(&self, ctx: Context) -> ActionResult {
            let room = ctx.param_str("room").unwrap_or_default();
            if let Some(role) = ctx.param("role") {
                ctx.set("role", role.clone()).await?;
            }
            let me = ctx.connection().id.clone();
            if let Err(err) = ctx.rooms().add(&me, room).await {
                return Err(ActionError::new(err.to_string()));
            }
            ctx.rooms().broadcast(room, &me, json!("hello")).await?;
            Ok(json!({ "members": ctx.rooms().members(room).await? }))
        }
    }

    #[tokio::test]
    async fn room_patterns_are_checked_against_connection_attributes() {
        let host = TestHost::new();
        host.create_room("vip", params(json!({"role": "admin"})));

        let err = host.run(&Join, json!({"room": "vip"})).await.unwrap_err();
        assert_eq!(err.to_string(), "Error: not authorized to join room");
        let err = host
            .run(&Join, json!({"room": "vip", "role": "guest"}))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Error: not authorized to join room");
        assert_eq!(host.attributes(), params(json!({"role": "guest"})));
        assert!(host.broadcasts().is_empty());

        let out = host
            .run(&Join, json!({"room": "vip", "role": "admin"}))
            .await
            .unwrap();
        assert_eq!(out["members"], json!([CONNECTION_ID]));
        assert_eq!(host.connection().rooms, ["vip"]);
        let err = host.run(&Join, json!({"room": "vip"})).await.unwrap_err();
        assert_eq!(err.to_string(), "Error: connection already in this room");

        // A stricter pattern removes the members that no longer match.
        host.create_room("vip", params(json!({"role": "owner"})));
        assert!(host.members("vip").is_empty());
        assert!(host.connection().rooms.is_empty());

        let err = host.run(&Join, json!({"room": "nope"})).await.unwrap_err();
        assert_eq!(err.to_string(), "Error: room does not exist");
    }

    #[tokio::test]
    async fn broadcasts_are_recorded() {
        let host = TestHost::new();
        host.run(&Join, json!({"room": DEFAULT_ROOM}))
            .await
            .unwrap();
        let other = ConnectionInfo {
            id: "other".into(),
            kind: "webSocket".into(),
            ..ConnectionInfo::default()
        };
        let host = host.with_connection(other);
        let out = host
            .run(&Join, json!({"room": DEFAULT_ROOM}))
            .await
            .unwrap();
        assert_eq!(out["members"], json!([CONNECTION_ID, "other"]));
        let said = |from: &str| Broadcast {
            room: DEFAULT_ROOM.into(),
            from: from.into(),
            message: json!("hello"),
        };
        assert_eq!(host.broadcasts(), [said(CONNECTION_ID), said("other")]);

        let services = host.services();
        assert_eq!(
            services.room_broadcast("nope", "x", json!(1)).await,
            Err(ServiceError::NoSuchRoom)
        );
        assert_eq!(host.broadcasts().len(), 2);
    }

    #[tokio::test]
    async fn web_connections_keep_no_attributes() {
        let web = ConnectionInfo {
            id: "http-1".into(),
            kind: "web".into(),
            ..ConnectionInfo::default()
        };
        let host = TestHost::new().with_connection(web);
        let err = host
            .run(&Join, json!({"room": DEFAULT_ROOM, "role": "x"}))
            .await
            .unwrap_err();
        // `ctx.set(..).await?` passes the service error on, as on the host.
        assert_eq!(err, ServiceError::NoSuchConnection.into());
        assert!(host.attributes().is_empty());
    }
}
