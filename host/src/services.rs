//! The host side of [`HostServices`]: what actions reach through their context.

use std::sync::Weak;
use std::time::Duration;

use plugin_api::{BoxFuture, HostServices, ServiceError, ServiceResult, Value};

use crate::app::App;

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

fn rooms_unavailable<'a, T: Send + 'a>() -> BoxFuture<'a, ServiceResult<T>> {
    ready(Err(ServiceError::Unavailable(
        "chat rooms are not available in this host".into(),
    )))
}

impl HostServices for Services {
    fn cache_get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<Option<Value>>> {
        ready(self.app().map(|app| app.cache.get(key)))
    }

    fn cache_set<'a>(
        &'a self,
        key: &'a str,
        value: Value,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        ready(self.app().map(|app| app.cache.set(key, value, ttl)))
    }

    fn cache_delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ServiceResult<bool>> {
        ready(self.app().map(|app| app.cache.delete(key)))
    }

    fn room_broadcast<'a>(
        &'a self,
        _room: &'a str,
        _from: &'a str,
        _message: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        rooms_unavailable()
    }

    fn room_members<'a>(&'a self, _room: &'a str) -> BoxFuture<'a, ServiceResult<Vec<String>>> {
        rooms_unavailable()
    }

    fn room_create<'a>(
        &'a self,
        _room: &'a str,
        _auth: serde_json::Map<String, Value>,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        rooms_unavailable()
    }

    fn room_delete<'a>(&'a self, _room: &'a str) -> BoxFuture<'a, ServiceResult<()>> {
        rooms_unavailable()
    }

    fn room_add<'a>(
        &'a self,
        _connection: &'a str,
        _room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        rooms_unavailable()
    }

    fn room_remove<'a>(
        &'a self,
        _connection: &'a str,
        _room: &'a str,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        rooms_unavailable()
    }

    fn set_attribute<'a>(
        &'a self,
        _connection: &'a str,
        _key: &'a str,
        _value: Value,
    ) -> BoxFuture<'a, ServiceResult<()>> {
        // HTTP connections live for one request: there is nothing to keep the attribute on.
        ready(Err(ServiceError::NoSuchConnection))
    }

    fn host_status(&self) -> BoxFuture<'_, ServiceResult<Value>> {
        ready(self.app().map(|app| app.status()))
    }
}
