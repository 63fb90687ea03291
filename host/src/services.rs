//! The host side of [`HostServices`]: what actions reach through their context.
//!
//! Static and dynamic actions call the same object (a dynamic plugin's calls arrive
//! through the FFI host table and land here). Each service forwards to the backend the
//! composition root chose (cache, rooms, connections), so a plugin sees one cluster
//! whichever node runs it; failures become [`ServiceError`]s the action can read.

use std::sync::Weak;
use std::time::Duration;

use plugin_api::{BoxFuture, HostServices, ServiceError, ServiceResult, Value};

use crate::app::App;
use crate::rooms::RoomError;

/// Host services backed by the running [`App`].
///
/// Holds a weak reference: the app owns the processor that owns these services.
#[derive(Debug)]
pub struct Services {
    app: Weak<App>,
}

impl Services {
    /// Services for `app`.
    pub fn new(app: Weak<App>) -> Self {
        Self { app }
    }

    fn app(&self) -> ServiceResult<std::sync::Arc<App>> {
        self.app
            .upgrade()
            .ok_or_else(|| ServiceError::Unavailable("the host is shutting down".into()))
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

/// Maps a cache failure to what a host service reports (logged: the action sees only
/// that the cache is unavailable).
fn cache_error(err: crate::cache::CacheError) -> ServiceError {
    tracing::warn!(%err, "cache service failed");
    ServiceError::Unavailable(err.to_string())
}

/// Maps a room failure to what a host service reports.
fn room_error(err: RoomError) -> ServiceError {
    match err {
        RoomError::NoSuchRoom => ServiceError::NoSuchRoom,
        RoomError::NoSuchConnection => ServiceError::NoSuchConnection,
        RoomError::Backend(why) => ServiceError::Unavailable(why),
        other => ServiceError::Refused(other.to_string()),
    }
}

impl HostServices for Services {
    fn cache_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<Option<Value>>> {
        Box::pin(async move { self.app()?.cache.get(key).await.map_err(cache_error) })
    }

    fn cache_set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        Box::pin(async move {
            self.app()?
                .cache
                .set(key, value, ttl)
                .await
                .map_err(cache_error)
        })
    }

    fn cache_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<bool>> {
        Box::pin(async move { self.app()?.cache.delete(key).await.map_err(cache_error) })
    }

    fn room_broadcast<'a>(
        &'a self,
        room: &'a str,
        from: &'a str,
        message: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        Box::pin(async move {
            let app = self.app()?;
            app.rooms
                .broadcast(room, from, message)
                .await
                .map_err(room_error)
        })
    }

    fn room_members<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<Vec<String>>> {
        Box::pin(async move {
            let app = self.app()?;
            app.rooms.member_ids(room).await.map_err(room_error)
        })
    }

    fn room_create<'a>(
        &'a self,
        room: &'a str,
        auth: serde_json::Map<String, Value>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        // Creating an existing room with another pattern changes its pattern and
        // re-checks its members.
        Box::pin(async move {
            let app = self.app()?;
            app.rooms.create(room, auth).await.map_err(room_error)
        })
    }

    fn room_delete<'a>(&'a self, room: &'a str) -> BoxFuture<'a, ServiceResult<()>> {
        Box::pin(async move {
            let app = self.app()?;
            app.rooms.delete(room).await.map_err(room_error)
        })
    }

    fn room_add<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        Box::pin(async move {
            let app = self.app()?;
            app.rooms.join(connection, room).await.map_err(room_error)
        })
    }

    fn room_remove<'a>(
        &'a self,
        connection: &'a str,
        room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        Box::pin(async move {
            let app = self.app()?;
            app.rooms.leave(connection, room).await.map_err(room_error)
        })
    }

    fn set_attribute<'a>(
        &'a self,
        connection: &'a str,
        key: &'a str,
        value: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        // Only websocket connections outlive a request; an HTTP id is not found here.
        ready(self.app().and_then(|app| {
            let conn = app
                .connections
                .get(connection)
                .ok_or(ServiceError::NoSuchConnection)?;
            conn.set_attribute(key, value);
            Ok(())
        }))
    }

    fn host_status(&self) -> BoxFuture<'_, ServiceResult<Value>> {
        Box::pin(async move {
            let app = self.app()?;
            Ok(app.status().await)
        })
    }
}
