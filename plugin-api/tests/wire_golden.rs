//! Golden tests of the JSON that crosses the dynamic boundary: each message's exact
//! wire form is pinned here, byte for byte.
//!
//! A plugin and a host built against different plugin-api versions only agree if these
//! shapes never change within an ABI version (see the `ffi` module docs): a failure
//! here means a change that breaks every build on the other side, not a test to update.
//! Each case checks both directions: the value encodes to the pinned text, and the text
//! decodes to a value that encodes to it again.

#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the test failing

use plugin_api::ffi::{CallReply, CallRequest, Reply, ServiceCall};
use plugin_api::{ActionError, ConnectionInfo, ErrorKind, Params, ServiceError, json};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` encodes to `wire`, and `wire` decodes back to something encoding to `wire`.
fn pinned<T: Serialize + DeserializeOwned>(value: &T, wire: &str) {
    assert_eq!(serde_json::to_string(value).unwrap(), wire);
    let decoded: T = serde_json::from_str(wire).unwrap();
    assert_eq!(serde_json::to_string(&decoded).unwrap(), wire);
}

fn params(value: serde_json::Value) -> Params {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn service_errors() {
    for (error, wire) in [
        (ServiceError::NoSuchRoom, r#""NoSuchRoom""#),
        (ServiceError::NoSuchConnection, r#""NoSuchConnection""#),
        (
            ServiceError::Refused("not authorized to join".into()),
            r#"{"Refused":"not authorized to join"}"#,
        ),
        (
            ServiceError::Unavailable("redis timed out".into()),
            r#"{"Unavailable":"redis timed out"}"#,
        ),
        (
            ServiceError::Other("QuotaExceeded".into()),
            r#"{"Other":"QuotaExceeded"}"#,
        ),
    ] {
        pinned(&error, wire);
        let decoded: ServiceError = serde_json::from_str(wire).unwrap();
        assert_eq!(decoded, error);
    }
}

#[test]
fn service_errors_of_a_newer_host_read_as_other_with_their_text() {
    for (wire, read) in [
        (r#""QuotaExceeded""#, "QuotaExceeded"),
        (r#"{"RateLimited":"slow down"}"#, "RateLimited: slow down"),
        (
            r#"{"QuotaExceeded":{"limit":5,"used":7}}"#,
            r#"QuotaExceeded: {"limit":5,"used":7}"#,
        ),
        // A known variant whose data changed shape is not lost either.
        (r#"{"Refused":{"code":3}}"#, r#"Refused: {"code":3}"#),
        (r#"{"NoSuchRoom":"lobby"}"#, "NoSuchRoom: lobby"),
    ] {
        let decoded: ServiceError = serde_json::from_str(wire).unwrap();
        assert_eq!(decoded, ServiceError::Other(read.into()), "{wire}");
    }
    // The unit form also reads from its map form, as serde writes it for other formats.
    let unit: ServiceError = serde_json::from_str(r#"{"NoSuchRoom":null}"#).unwrap();
    assert_eq!(unit, ServiceError::NoSuchRoom);
    // What the action's client reads when it passes such an error on with `?`.
    let passed_on = ActionError::from(ServiceError::Other("QuotaExceeded: 5".into()));
    assert_eq!(
        passed_on.client_message(),
        "Error: host service error: QuotaExceeded: 5"
    );
    // Not a service error at all: still refused.
    for wire in ["5", "[]", r#"{"Refused":"a","Unavailable":"b"}"#, "{}"] {
        assert!(
            serde_json::from_str::<ServiceError>(wire).is_err(),
            "{wire}"
        );
    }
    // Inside a service reply, as the plugin reads it.
    let reply: Reply<serde_json::Value, ServiceError> =
        serde_json::from_str(r#"{"error":{"Throttled":"later"}}"#).unwrap();
    assert!(matches!(reply, Reply::Error(ServiceError::Other(t)) if t == "Throttled: later"));
}

#[test]
fn action_errors() {
    for (error, wire) in [
        (
            ActionError::unknown_action("nope"),
            r#"{"kind":"unknown_action","message":"nope is not a known action or that is not a valid apiVersion."}"#,
        ),
        (
            ActionError::missing_param("name"),
            r#"{"kind":"missing_param","message":"name is a required parameter for this action"}"#,
        ),
        (
            ActionError::new("name must be a string"),
            r#"{"kind":"failed","message":"name must be a string"}"#,
        ),
        (
            ActionError::internal(),
            r#"{"kind":"internal","message":"The server experienced an internal error"}"#,
        ),
        (
            ActionError::with_kind(ErrorKind::Forbidden, "web only"),
            r#"{"kind":"forbidden","message":"web only"}"#,
        ),
    ] {
        pinned(&error, wire);
    }
}

#[test]
fn call_requests() {
    let connection = ConnectionInfo {
        id: "c1".into(),
        kind: "web".into(),
        remote_ip: "127.0.0.1".into(),
        remote_port: 50123,
        rooms: vec!["lobby".into()],
        attributes: params(json!({"role": "admin"})),
    };
    pinned(
        &CallRequest {
            version: 2,
            params: params(json!({"name": "Ada", "count": 3, "tags": ["a"]})),
            connection,
        },
        r#"{"version":2,"params":{"name":"Ada","count":3,"tags":["a"]},"connection":{"id":"c1","type":"web","remoteIp":"127.0.0.1","remotePort":50123,"rooms":["lobby"],"attributes":{"role":"admin"}}}"#,
    );
    pinned(
        &CallRequest {
            version: 1,
            params: Params::new(),
            connection: ConnectionInfo::default(),
        },
        r#"{"version":1,"params":{},"connection":{"id":"","type":"","remoteIp":"","remotePort":0,"rooms":[],"attributes":{}}}"#,
    );
    // The optional fields of a connection may be left out by an older peer.
    let older: CallRequest = serde_json::from_str(
        r#"{"version":1,"params":{},"connection":{"id":"c","type":"webSocket","remoteIp":"::1","remotePort":1}}"#,
    )
    .unwrap();
    assert!(older.connection.rooms.is_empty() && older.connection.attributes.is_empty());
}

#[test]
fn call_replies() {
    pinned(
        &CallReply::Ok(json!({"greeting": "Hello, Ada!", "count": 2})),
        r#"{"ok":{"greeting":"Hello, Ada!","count":2}}"#,
    );
    pinned(&CallReply::Ok(json!(null)), r#"{"ok":null}"#);
    pinned(
        &CallReply::Error(ActionError::new("no")),
        r#"{"error":{"kind":"failed","message":"no"}}"#,
    );
    // A kind from a newer build reads as `other`, the rest of the reply intact.
    let newer: CallReply =
        serde_json::from_str(r#"{"error":{"kind":"quota_exceeded","message":"m"}}"#).unwrap();
    assert!(matches!(newer, Reply::Error(e) if e.kind == ErrorKind::Other && e.message == "m"));
}

#[test]
fn service_calls() {
    for (call, wire) in [
        (
            ServiceCall::CacheGet { key: "k".into() },
            r#"{"method":"cache_get","key":"k"}"#,
        ),
        (
            ServiceCall::CacheSet {
                key: "k".into(),
                value: json!({"n": 1}),
                ttl_ms: Some(1500),
            },
            r#"{"method":"cache_set","key":"k","value":{"n":1},"ttl_ms":1500}"#,
        ),
        (
            ServiceCall::CacheSet {
                key: "k".into(),
                value: json!(2),
                ttl_ms: None,
            },
            r#"{"method":"cache_set","key":"k","value":2,"ttl_ms":null}"#,
        ),
        (
            ServiceCall::RoomBroadcast {
                room: "lobby".into(),
                from: "c1".into(),
                message: json!("hi"),
            },
            r#"{"method":"room_broadcast","room":"lobby","from":"c1","message":"hi"}"#,
        ),
        (
            ServiceCall::RoomCreate {
                room: "vip".into(),
                auth: params(json!({"role": "admin"})),
            },
            r#"{"method":"room_create","room":"vip","auth":{"role":"admin"}}"#,
        ),
        (
            ServiceCall::RoomAdd {
                connection: "c1".into(),
                room: "lobby".into(),
            },
            r#"{"method":"room_add","connection":"c1","room":"lobby"}"#,
        ),
        (
            ServiceCall::SetAttribute {
                connection: "c1".into(),
                key: "role".into(),
                value: json!("admin"),
            },
            r#"{"method":"set_attribute","connection":"c1","key":"role","value":"admin"}"#,
        ),
        (ServiceCall::HostStatus, r#"{"method":"host_status"}"#),
    ] {
        pinned(&call, wire);
    }
    // Optional fields an older plugin leaves out.
    let older: ServiceCall =
        serde_json::from_str(r#"{"method":"room_create","room":"vip"}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&older).unwrap(),
        r#"{"method":"room_create","room":"vip","auth":{}}"#
    );
}
