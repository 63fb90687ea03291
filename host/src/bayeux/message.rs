//! The Bayeux message, as it travels on the wire.
//!
//! One struct for every channel (faye's JSON has no tagged variants), with the fields
//! Bayeux defines; `ext` is carried through untouched, other fields are dropped. Frames
//! are parsed straight into messages; the processor decides what is an error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Channel of the handshake.
pub const HANDSHAKE: &str = "/meta/handshake";
/// Channel of the connect (poll / heartbeat).
pub const CONNECT: &str = "/meta/connect";
/// Channel of the subscribe.
pub const SUBSCRIBE: &str = "/meta/subscribe";
/// Channel of the unsubscribe.
pub const UNSUBSCRIBE: &str = "/meta/unsubscribe";
/// Channel of the disconnect.
pub const DISCONNECT: &str = "/meta/disconnect";

/// Bayeux protocol version the server speaks.
pub const BAYEUX_VERSION: &str = "1.0";

/// One Bayeux message. Fields the server does not know are dropped.
///
/// `id` and `subscription` are kept as raw JSON so they are echoed exactly as sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Message {
    /// Client-chosen message id, echoed in the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The client id (absent on a handshake and on deliveries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Published payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// Extension data; forwarded to subscribers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Value>,
    /// Replies: whether the request succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successful: Option<bool>,
    /// Replies: the Bayeux error string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Handshake: protocol version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Handshake: the client's or server's connection types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_connection_types: Option<Vec<String>>,
    /// Connect: the transport in use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_type: Option<String>,
    /// Subscribe/unsubscribe: a channel pattern or an array of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Value>,
    /// Advice (client hints on a connect; server advice on handshake/connect replies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<Value>,
}

impl Message {
    /// A message for `channel` carrying `data` (a publish).
    pub fn publish(channel: impl Into<String>, data: Value) -> Self {
        Self {
            channel: Some(channel.into()),
            data: Some(data),
            ..Self::default()
        }
    }

    /// The channel, or "" when absent.
    pub fn channel_str(&self) -> &str {
        self.channel.as_deref().unwrap_or("")
    }

    /// The reply skeleton for this message: `id`, `clientId`, `channel`.
    pub(crate) fn reply(&self) -> Self {
        Self {
            id: self.id.clone(),
            channel: self.channel.clone(),
            client_id: self.client_id.clone(),
            ..Self::default()
        }
    }

    /// Sets the reply outcome from an optional error.
    pub(crate) fn set_outcome(&mut self, error: Option<String>) {
        self.successful = Some(error.is_none());
        self.error = error;
    }

    /// What subscribers receive of this message: `id`, `channel`, `data`, `ext`.
    pub(crate) fn into_delivery(self) -> Self {
        Self {
            id: self.id,
            channel: self.channel,
            data: self.data,
            ext: self.ext,
            ..Self::default()
        }
    }

    /// The copy subscribers receive: `id`, `channel`, `data`, `ext`.
    pub(crate) fn for_delivery(&self) -> Self {
        Self {
            id: self.id.clone(),
            channel: self.channel.clone(),
            data: self.data.clone(),
            ext: self.ext.clone(),
            ..Self::default()
        }
    }

    /// The client's hold-time hint (`advice.timeout`, ms), if it sent one.
    pub(crate) fn advice_timeout_ms(&self) -> Option<u64> {
        let t = self.advice.as_ref()?.get("timeout")?.as_f64()?;
        (t.is_finite() && t >= 0.0).then_some(t as u64)
    }

    /// The subscription field as a list of channel strings; `None` when absent or not
    /// strings.
    pub(crate) fn subscriptions(&self) -> Option<Vec<&str>> {
        match self.subscription.as_ref()? {
            Value::String(s) => Some(vec![s.as_str()]),
            Value::Array(items) => items.iter().map(Value::as_str).collect(),
            _ => None,
        }
    }
}

/// Why a request body is not a list of Bayeux messages.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParseError {
    /// Not JSON, or a message of the wrong shape.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON that is neither an object nor an array of objects.
    #[error("JSON messages must be an object or an array of objects")]
    NotAnObject,
}

/// Parses one message or an array of messages.
pub(crate) fn parse_messages(text: &[u8]) -> Result<Vec<Message>, ParseError> {
    // Fast path: straight into messages, without building a `Value` tree first. Anything
    // it refuses goes through the general path below, which decides the error.
    let fast = match text.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<Message>>(text).ok(),
        Some(b'{') => serde_json::from_slice::<Message>(text)
            .ok()
            .map(|m| vec![m]),
        _ => None,
    };
    if let Some(messages) = fast {
        return Ok(messages);
    }
    let value: Value = serde_json::from_slice(text)?;
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| {
                if v.is_object() {
                    Ok(serde_json::from_value(v)?)
                } else {
                    Err(ParseError::NotAnObject)
                }
            })
            .collect(),
        v @ Value::Object(_) => Ok(vec![serde_json::from_value(v)?]),
        _ => Err(ParseError::NotAnObject),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_shapes() {
        assert_eq!(parse_messages(b"[]").unwrap().len(), 0);
        assert_eq!(parse_messages(b"{}").unwrap().len(), 1);
        let m =
            parse_messages(br#"[{"channel":"/a","id":7,"clientId":"x","data":{"k":1},"foo":1}]"#)
                .unwrap();
        assert_eq!(m[0].id, Some(Value::from(7)));
        assert_eq!(m[0].client_id.as_deref(), Some("x"));
        assert!(parse_messages(b"1").is_err());
        assert!(parse_messages(b"\"x\"").is_err());
        assert!(parse_messages(b"null").is_err());
        assert!(parse_messages(b"[1]").is_err());
        assert!(parse_messages(b"{").is_err());
        // What the direct parse refuses, the general one decides, as before.
        let dup = parse_messages(br#" {"channel":"/a","channel":"/b"}"#).unwrap();
        assert_eq!(dup[0].channel.as_deref(), Some("/b"));
        assert!(parse_messages(br#"[{"channel":"/a"},2]"#).is_err());
    }

    #[test]
    fn advice_timeout() {
        let m: Message = serde_json::from_str(r#"{"advice":{"timeout":0}}"#).unwrap();
        assert_eq!(m.advice_timeout_ms(), Some(0));
        let m: Message = serde_json::from_str(r#"{"advice":{"timeout":1500.5}}"#).unwrap();
        assert_eq!(m.advice_timeout_ms(), Some(1500));
        assert_eq!(Message::default().advice_timeout_ms(), None);
    }
}
