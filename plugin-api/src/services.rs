//! The host services an action may call: cache, chat rooms, connection attributes.
//!
//! The host implements [`HostServices`]; a dynamic plugin gets an implementation that
//! forwards each call over the C boundary as JSON. Actions use the typed wrappers on
//! [`Context`](crate::Context) rather than this trait directly.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use crate::ServiceError;

/// A boxed, sendable future, as object-safe traits must return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A result of a host service call.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// What the host offers to actions. Every method is safe to call from any task.
pub trait HostServices: Send + Sync + 'static {
    /// Reads a cache entry; `None` when missing or expired.
    fn cache_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<Option<Value>>>;

    /// Writes a cache entry, optionally expiring after `ttl`.
    fn cache_set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ServiceResult<()>>;

    /// Deletes a cache entry; `true` if it existed.
    fn cache_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<bool>>;

    /// Sends `message` to every member and listener of `room`, as if said by `from`.
    fn room_broadcast<'a>(
        &'a self,
        room: &'a str,
        from: &'a str,
        message: Value,
    ) -> BoxFuture<'a, ServiceResult<()>>;

    /// Lists the connection ids in `room`.
    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<Vec<String>>>;

    /// Creates `room` (a no-op if it exists) with an authorization pattern
    /// (`{attribute: value}`; empty means open to all).
    fn room_create<'a>(
        &'a self,
        room: &'a str,
        auth: serde_json::Map<String, Value>,
    ) -> BoxFuture<'a, ServiceResult<()>>;

    /// Deletes `room`, telling and removing its members.
    fn room_delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<()>>;

    /// Adds a connection to `room`, subject to the room's authorization pattern.
    fn room_add<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>>;

    /// Removes a connection from `room`.
    fn room_remove<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>>;

    /// Sets an attribute on a connection (used by room authorization patterns).
    fn set_attribute<'a>(
        &'a self,
        connection: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, ServiceResult<()>>;

    /// The host's status: uptime, connection counts, per-action counters (for `status`).
    fn host_status(&self) -> BoxFuture<'_, ServiceResult<Value>>;
}

impl std::fmt::Debug for dyn HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostServices")
    }
}
