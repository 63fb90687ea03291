//! What an action sees of the request: params, connection, host services.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{HostServices, Params, ServiceResult};

/// A read-only view of the connection that made the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// Connection id (a fingerprint-based id for HTTP, a random one for websockets).
    pub id: String,
    /// Connection type: `web` or `webSocket`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The peer's IP address.
    pub remote_ip: String,
    /// The peer's port.
    pub remote_port: u16,
    /// Rooms the connection is a member of.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Attributes set by earlier actions (matched by room authorization patterns).
    #[serde(default)]
    pub attributes: Params,
}

/// The context of one action call.
#[derive(Clone)]
pub struct Context {
    params: Params,
    connection: ConnectionInfo,
    services: Arc<dyn HostServices>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("params", &self.params)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Builds a context; the host (or the dynamic shim) calls this, not actions.
    pub fn new(
        params: Params,
        connection: ConnectionInfo,
        services: Arc<dyn HostServices>,
    ) -> Self {
        Self {
            params,
            connection,
            services,
        }
    }

    /// All params, after scrubbing, defaults, formatters and validators.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// One param.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }

    /// One param as a string, if it is one.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// The calling connection.
    pub fn connection(&self) -> &ConnectionInfo {
        &self.connection
    }

    /// Sets an attribute on the calling connection.
    ///
    /// # Errors
    ///
    /// When the connection is gone or the host cannot store it.
    pub async fn set(&self, key: &str, value: impl Into<Value>) -> ServiceResult<()> {
        self.services
            .set_attribute(&self.connection.id, key, value.into())
            .await
    }

    /// The shared key/value cache.
    pub fn cache(&self) -> Cache<'_> {
        Cache(self.services.as_ref())
    }

    /// Chat rooms.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms(self.services.as_ref())
    }

    /// The raw host services, for what the wrappers do not cover.
    pub fn services(&self) -> &Arc<dyn HostServices> {
        &self.services
    }

    /// Replaces the params (the processor does this after preparing them).
    pub fn with_params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    /// Moves the params out (to prepare them without a copy); `with_params` puts them back.
    pub(crate) fn take_params(mut self) -> (Self, Params) {
        let params = std::mem::take(&mut self.params);
        (self, params)
    }
}

/// The cache service: JSON values with optional expiry, shared by every node.
#[derive(Clone, Copy)]
pub struct Cache<'a>(pub(crate) &'a dyn HostServices);

impl std::fmt::Debug for Cache<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

impl Cache<'_> {
    /// Loads a value; `None` when missing or expired.
    ///
    /// # Errors
    ///
    /// When the cache backend is unavailable.
    pub async fn get(&self, key: &str) -> ServiceResult<Option<Value>> {
        self.0.cache_get(key).await
    }

    /// Saves a value, expiring after `ttl` if given.
    ///
    /// # Errors
    ///
    /// When the cache backend is unavailable.
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Value>,
        ttl: Option<Duration>,
    ) -> ServiceResult<()> {
        self.0.cache_set(key, value.into(), ttl).await
    }

    /// Deletes a value; `true` if it existed.
    ///
    /// # Errors
    ///
    /// When the cache backend is unavailable.
    pub async fn delete(&self, key: &str) -> ServiceResult<bool> {
        self.0.cache_delete(key).await
    }
}

/// The chat room service.
#[derive(Clone, Copy)]
pub struct Rooms<'a>(pub(crate) &'a dyn HostServices);

impl std::fmt::Debug for Rooms<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rooms")
    }
}

impl Rooms<'_> {
    /// Sends a message to everyone in `room`, from `from` (a connection id or a label).
    ///
    /// # Errors
    ///
    /// [`ServiceError::NoSuchRoom`](crate::ServiceError::NoSuchRoom) or a backend failure.
    pub async fn broadcast(
        &self,
        room: &str,
        from: &str,
        message: impl Into<Value>,
    ) -> ServiceResult<()> {
        self.0.room_broadcast(room, from, message.into()).await
    }

    /// Connection ids in `room`.
    ///
    /// # Errors
    ///
    /// [`ServiceError::NoSuchRoom`](crate::ServiceError::NoSuchRoom) or a backend failure.
    pub async fn members(&self, room: &str) -> ServiceResult<Vec<String>> {
        self.0.room_members(room).await
    }

    /// Creates a room with an authorization pattern (empty: open to all).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    pub async fn create(&self, room: &str, auth: Params) -> ServiceResult<()> {
        self.0.room_create(room, auth).await
    }

    /// Deletes a room, removing its members.
    ///
    /// # Errors
    ///
    /// [`ServiceError::NoSuchRoom`](crate::ServiceError::NoSuchRoom) or a backend failure.
    pub async fn delete(&self, room: &str) -> ServiceResult<()> {
        self.0.room_delete(room).await
    }

    /// Adds a connection to a room.
    ///
    /// # Errors
    ///
    /// When the room is missing, the connection is not authorized, or already a member.
    pub async fn add(&self, connection: &str, room: &str) -> ServiceResult<()> {
        self.0.room_add(connection, room).await
    }

    /// Removes a connection from a room.
    ///
    /// # Errors
    ///
    /// When the room is missing or the connection is not a member.
    pub async fn remove(&self, connection: &str, room: &str) -> ServiceResult<()> {
        self.0.room_remove(connection, room).await
    }
}
