//! The JSON messages inside the buffers: action calls, replies, host service calls.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ActionError, ConnectionInfo, HostServices, Params, ServiceError};

/// The request of one `call`: which version, with what params, from which connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    /// Action version (the name travels separately).
    pub version: u32,
    /// Scrubbed params; the plugin applies defaults, formatters and validators.
    pub params: Params,
    /// The calling connection.
    pub connection: ConnectionInfo,
}

/// A reply: `{"ok": value}` or `{"error": error}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply<T, E> {
    /// Success.
    Ok(T),
    /// Failure.
    Error(E),
}

impl<T, E> From<Result<T, E>> for Reply<T, E> {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(e),
        }
    }
}

impl<T, E> From<Reply<T, E>> for Result<T, E> {
    fn from(reply: Reply<T, E>) -> Self {
        match reply {
            Reply::Ok(v) => Ok(v),
            Reply::Error(e) => Err(e),
        }
    }
}

/// The reply of an action call.
pub type CallReply = Reply<Value, ActionError>;

/// One host service call, tagged by `method` (the [`HostServices`] method name).
/// New methods may be added in a minor version; a host that does not know one answers
/// with an `Unavailable` error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServiceCall {
    /// [`HostServices::cache_get`].
    CacheGet {
        /// Key.
        key: String,
    },
    /// [`HostServices::cache_set`].
    CacheSet {
        /// Key.
        key: String,
        /// Value.
        value: Value,
        /// Expiry in milliseconds.
        #[serde(default)]
        ttl_ms: Option<u64>,
    },
    /// [`HostServices::cache_delete`].
    CacheDelete {
        /// Key.
        key: String,
    },
    /// [`HostServices::room_broadcast`].
    RoomBroadcast {
        /// Room.
        room: String,
        /// Sender.
        from: String,
        /// Message.
        message: Value,
    },
    /// [`HostServices::room_members`].
    RoomMembers {
        /// Room.
        room: String,
    },
    /// [`HostServices::room_create`].
    RoomCreate {
        /// Room.
        room: String,
        /// Authorization pattern.
        #[serde(default)]
        auth: Params,
    },
    /// [`HostServices::room_delete`].
    RoomDelete {
        /// Room.
        room: String,
    },
    /// [`HostServices::room_add`].
    RoomAdd {
        /// Connection id.
        connection: String,
        /// Room.
        room: String,
    },
    /// [`HostServices::room_remove`].
    RoomRemove {
        /// Connection id.
        connection: String,
        /// Room.
        room: String,
    },
    /// [`HostServices::set_attribute`].
    SetAttribute {
        /// Connection id.
        connection: String,
        /// Attribute name.
        key: String,
        /// Value.
        value: Value,
    },
    /// [`HostServices::host_status`].
    HostStatus,
}

fn encode<T: Serialize>(result: Result<T, ServiceError>) -> Vec<u8> {
    serde_json::to_vec(&Reply::from(result)).unwrap_or_else(|e| {
        let err: Reply<(), _> = Reply::Error(ServiceError::Unavailable(e.to_string()));
        serde_json::to_vec(&err).unwrap_or_default()
    })
}

/// Runs a JSON service request against `services`; returns the JSON reply. Malformed
/// requests get an `Unavailable` error naming the problem (never a panic).
pub async fn dispatch(services: &dyn HostServices, request: &[u8]) -> Vec<u8> {
    let call: ServiceCall = match serde_json::from_slice(request) {
        Ok(call) => call,
        Err(e) => {
            return encode::<()>(Err(ServiceError::Unavailable(format!(
                "malformed host service request: {e}"
            ))));
        }
    };
    match call {
        ServiceCall::CacheGet { key } => encode(services.cache_get(&key).await),
        ServiceCall::CacheSet { key, value, ttl_ms } => encode(
            services
                .cache_set(&key, value, ttl_ms.map(Duration::from_millis))
                .await,
        ),
        ServiceCall::CacheDelete { key } => encode(services.cache_delete(&key).await),
        ServiceCall::RoomBroadcast {
            room,
            from,
            message,
        } => encode(services.room_broadcast(&room, &from, message).await),
        ServiceCall::RoomMembers { room } => encode(services.room_members(&room).await),
        ServiceCall::RoomCreate { room, auth } => encode(services.room_create(&room, auth).await),
        ServiceCall::RoomDelete { room } => encode(services.room_delete(&room).await),
        ServiceCall::RoomAdd { connection, room } => {
            encode(services.room_add(&connection, &room).await)
        }
        ServiceCall::RoomRemove { connection, room } => {
            encode(services.room_remove(&connection, &room).await)
        }
        ServiceCall::SetAttribute {
            connection,
            key,
            value,
        } => encode(services.set_attribute(&connection, &key, value).await),
        ServiceCall::HostStatus => encode(services.host_status().await),
    }
}
