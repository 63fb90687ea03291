//! The JSON messages inside the buffers: action calls, replies, host service calls,
//! and middleware hooks (under reserved `call` names).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::middleware::{ChatHook, MiddlewareDefinition};
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

impl CallRequest {
    /// The JSON of a `CallRequest` with these fields, encoded from borrows: the host
    /// sends a call without copying its params first.
    ///
    /// # Errors
    ///
    /// A param cannot be encoded (a map with non-string keys cannot occur in a `Value`,
    /// so in practice never).
    pub fn encode(
        version: u32,
        params: &Params,
        connection: &ConnectionInfo,
    ) -> Result<Vec<u8>, serde_json::Error> {
        /// The same fields as [`CallRequest`], borrowed.
        #[derive(Serialize)]
        struct Borrowed<'a> {
            version: u32,
            params: &'a Params,
            connection: &'a ConnectionInfo,
        }
        serde_json::to_vec(&Borrowed {
            version,
            params,
            connection,
        })
    }
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

/// Prefix of the `call` names reserved for the host's own requests. No action can be
/// called by such a name: `/` never survives in an action name of `/api/<name>`, and
/// the plugin side answers these names before it looks for an action.
pub const RESERVED_CALL_PREFIX: &str = "$hero/";

/// `call` name of the request for a plugin's middleware definitions. Its request is a
/// [`CallRequest`] (so a plugin built before middleware existed answers it with an
/// `unknown action` error, which the host reads as "no middleware"); the reply is
/// `{"ok": MiddlewareList}`.
pub const DESCRIBE_MIDDLEWARE: &str = "$hero/middleware/describe";

/// `call` name of one middleware hook: the request is a [`MiddlewareCall`], the reply
/// a [`MiddlewareReply`].
pub const CALL_MIDDLEWARE: &str = "$hero/middleware/call";

/// A plugin's middleware definitions, by kind (the reply of [`DESCRIBE_MIDDLEWARE`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MiddlewareList {
    /// Action middleware.
    #[serde(default)]
    pub action: Vec<MiddlewareDefinition>,
    /// Connection middleware.
    #[serde(default)]
    pub connection: Vec<MiddlewareDefinition>,
    /// Chat middleware.
    #[serde(default)]
    pub chat: Vec<MiddlewareDefinition>,
    /// Whether the plugin runs [`CALL_CHAIN`] (a plugin built before it did not).
    #[serde(default)]
    pub chain: bool,
}

/// `call` name of an action run inside its middleware chain, all of one library, in one
/// call: the request is a [`ChainCall`], the reply a [`ChainReply`].
pub const CALL_CHAIN: &str = "$hero/chain/call";

/// An action and its chain of action middleware (every one in this library), to run as
/// the host would run them one by one: each pre-processor in order (the first refusal
/// ends the call), the action with the [prepared](crate::ActionDefinition::prepare)
/// params, then each post-processor in order on its result. For a web request, the
/// connection middleware's `create` hooks run first and their `destroy` hooks last
/// (their failures are logged, as the host logs them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainCall {
    /// The action.
    pub action: String,
    /// Its version.
    pub version: u32,
    /// The action middleware names, in run order.
    pub middleware: Vec<String>,
    /// The connection middleware names, in run order (a web request's: its connection
    /// lives for this one call).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_middleware: Vec<String>,
    /// The params before the pre-processors (and before scrubbing).
    pub params: Params,
    /// The calling connection.
    pub connection: ConnectionInfo,
}

impl ChainCall {
    /// The JSON of a `ChainCall` with these fields, encoded from borrows.
    ///
    /// # Errors
    ///
    /// A param cannot be encoded (in practice never, as for [`CallRequest::encode`]).
    pub fn encode(
        action: &str,
        version: u32,
        middleware: &[&str],
        connection_middleware: &[&str],
        params: &Params,
        connection: &ConnectionInfo,
    ) -> Result<Vec<u8>, serde_json::Error> {
        /// The same fields as [`ChainCall`], borrowed.
        #[derive(Serialize)]
        struct Borrowed<'a> {
            action: &'a str,
            version: u32,
            middleware: &'a [&'a str],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            connection_middleware: &'a [&'a str],
            params: &'a Params,
            connection: &'a ConnectionInfo,
        }
        serde_json::to_vec(&Borrowed {
            action,
            version,
            middleware,
            connection_middleware,
            params,
            connection,
        })
    }
}

/// How a chain call ended: the params of the reply (those the action ran with, or
/// those a refusing pre-processor left, prepared alike), and the result after the
/// post-processors (or the refusal).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainOutcome {
    /// The params, prepared.
    pub params: Params,
    /// The result.
    pub result: Reply<Value, ActionError>,
}

/// The reply of a chain call: `{"ok": ChainOutcome}`, or `{"error": ActionError}` when
/// the call could not run (an action or middleware the library does not have).
pub type ChainReply = Reply<ChainOutcome, ActionError>;

/// One middleware hook to run, tagged by `hook`, naming the middleware.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "hook", rename_all = "snake_case")]
pub enum MiddlewareCall {
    /// An action pre-processor.
    Pre {
        /// Middleware name.
        middleware: String,
        /// The action about to run.
        action: String,
        /// Params before scrubbing.
        params: Params,
        /// The calling connection.
        connection: ConnectionInfo,
    },
    /// An action post-processor.
    Post {
        /// Middleware name.
        middleware: String,
        /// The action that ran.
        action: String,
        /// The params it was given.
        params: Params,
        /// The calling connection.
        connection: ConnectionInfo,
        /// What it returned.
        result: Reply<Value, ActionError>,
    },
    /// A connection's `create` hook.
    Create {
        /// Middleware name.
        middleware: String,
        /// The connection.
        connection: ConnectionInfo,
    },
    /// A connection's `destroy` hook.
    Destroy {
        /// Middleware name.
        middleware: String,
        /// The connection.
        connection: ConnectionInfo,
    },
    /// A chat hook.
    Chat {
        /// Middleware name.
        middleware: String,
        /// Which one.
        chat: ChatHook,
        /// The room.
        room: String,
        /// The connection.
        connection: ConnectionInfo,
        /// The message (`say`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<Value>,
    },
}

/// What a hook changed, in the `ok` of a [`MiddlewareReply`]: only the fields of its
/// kind are set (`params` and `connection` for `pre`, `result` for `post`, `connection`
/// for `create`/`destroy`, `message` for chat).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MiddlewareOutcome {
    /// The params after a pre-processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Params>,
    /// The connection (its attributes) after a hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionInfo>,
    /// The result after a post-processor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Reply<Value, ActionError>>,
    /// The message after a `say` hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Value>,
}

/// The reply of a hook: `{"ok": MiddlewareOutcome}`, or `{"error": ActionError}` when
/// it refused (the outcome of a refusing hook is lost, as the chain stops there).
pub type MiddlewareReply = Reply<MiddlewareOutcome, ActionError>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_chain_call_is_the_json_of_the_owned_one() {
        let mut params = Params::new();
        params.insert("word".into(), serde_json::json!("hi"));
        let connection = ConnectionInfo {
            id: "c1".into(),
            ..ConnectionInfo::default()
        };
        let owned = ChainCall {
            action: "echo".into(),
            version: 2,
            middleware: vec!["a".into(), "b".into()],
            connection_middleware: Vec::new(),
            params: params.clone(),
            connection: connection.clone(),
        };
        assert_eq!(
            ChainCall::encode("echo", 2, &["a", "b"], &[], &params, &connection).unwrap(),
            serde_json::to_vec(&owned).unwrap()
        );
        let owned = ChainCall {
            connection_middleware: vec!["c".into()],
            ..owned
        };
        assert_eq!(
            ChainCall::encode("echo", 2, &["a", "b"], &["c"], &params, &connection).unwrap(),
            serde_json::to_vec(&owned).unwrap()
        );
    }

    #[test]
    fn an_encoded_request_is_the_json_of_the_owned_one() {
        let mut params = Params::new();
        params.insert("name".into(), serde_json::json!("ada"));
        params.insert("n".into(), serde_json::json!([1, {"x": null}]));
        let connection = ConnectionInfo {
            id: "c1".into(),
            kind: "web".into(),
            remote_ip: "127.0.0.1".into(),
            remote_port: 4000,
            ..ConnectionInfo::default()
        };
        let owned = CallRequest {
            version: 2,
            params: params.clone(),
            connection: connection.clone(),
        };
        assert_eq!(
            CallRequest::encode(2, &params, &connection).unwrap(),
            serde_json::to_vec(&owned).unwrap()
        );
    }
}
