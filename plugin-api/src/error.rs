//! Errors an action returns, and errors of the host services it calls.
//!
//! Both cross the dynamic boundary as JSON, between builds of different plugin-api
//! versions, so each reads values a newer build may add: [`ErrorKind`] falls back to
//! [`ErrorKind::Other`], [`ServiceError`] to [`ServiceError::Other`] carrying the
//! unknown variant as text.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// What went wrong in an action, as the client will see it.
///
/// The kind decides the HTTP status when `returnErrorCodes` is on; the message is
/// what the client reads, rendered as `Error: <message>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("Error: {message}")]
pub struct ActionError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Human-readable text, without the `Error: ` prefix.
    pub message: String,
}

/// The class of an [`ActionError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No action by that name and version (HTTP 404).
    UnknownAction,
    /// A required input is missing (HTTP 422).
    MissingParam,
    /// An input failed its validator (HTTP 400).
    InvalidParam,
    /// The action refused the request (HTTP 400).
    Failed,
    /// The connection has too many actions in flight (HTTP 429).
    TooManyRequests,
    /// The action is not available to this connection type (HTTP 400).
    Forbidden,
    /// The action panicked (HTTP 500; the panic's details are only logged), or it passed
    /// on a host service error with `?` (HTTP 500; the client reads the service error's
    /// message, and the host logs it with the action's name).
    Internal,
    /// The action did not answer within its deadline, or the plugin had no free call
    /// slot before it (HTTP 504).
    Timeout,
    /// A kind this build does not know (sent by a newer host or plugin): read as an
    /// internal error (HTTP 500) rather than making the reply unreadable.
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The HTTP status this kind maps to when `returnErrorCodes` is on.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::UnknownAction => 404,
            ErrorKind::MissingParam => 422,
            // PROTOCOL 3.1: every other action error is a 400, as actionhero answers.
            ErrorKind::InvalidParam | ErrorKind::Failed | ErrorKind::Forbidden => 400,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Internal | ErrorKind::Other => 500,
            ErrorKind::Timeout => 504,
        }
    }
}

impl ActionError {
    /// An action-level failure with the given message (HTTP 400).
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_kind(ErrorKind::Failed, message)
    }

    /// An error of a given kind.
    pub fn with_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// `<param> is a required parameter for this action`.
    pub fn missing_param(param: &str) -> Self {
        Self::with_kind(
            ErrorKind::MissingParam,
            format!("{param} is a required parameter for this action"),
        )
    }

    /// `<name> is not a known action or that is not a valid apiVersion.`
    pub fn unknown_action(name: &str) -> Self {
        Self::with_kind(
            ErrorKind::UnknownAction,
            format!("{name} is not a known action or that is not a valid apiVersion."),
        )
    }

    /// `you have too many pending requests`.
    pub fn too_many_requests() -> Self {
        Self::with_kind(
            ErrorKind::TooManyRequests,
            "you have too many pending requests",
        )
    }

    /// `The server experienced an internal error`: the only thing a client learns of a
    /// panic.
    pub fn internal() -> Self {
        Self::with_kind(
            ErrorKind::Internal,
            "The server experienced an internal error",
        )
    }

    /// `the action <name> did not answer within <ms> ms`.
    pub fn timed_out(name: &str, limit: std::time::Duration) -> Self {
        Self::with_kind(
            ErrorKind::Timeout,
            format!(
                "the action {name} did not answer within {} ms",
                limit.as_millis()
            ),
        )
    }

    /// The text the client sees: `Error: <message>`.
    pub fn client_message(&self) -> String {
        self.to_string()
    }
}

/// What `?` on a host service call returns from an action: an [`ErrorKind::Internal`]
/// error whose message is the service error's (`Error: room does not exist`), so the
/// client reads what went wrong and the host logs it as a failure of the action. An
/// action that wants another answer maps the error itself
/// (`.map_err(|e| ActionError::new(e.to_string()))` for an HTTP 400).
impl From<ServiceError> for ActionError {
    fn from(err: ServiceError) -> Self {
        ActionError::with_kind(ErrorKind::Internal, err.to_string())
    }
}

/// A host service (cache, rooms, connection attributes) could not do what was asked.
///
/// On the wire it is externally tagged (`"NoSuchRoom"`, `{"Refused": "text"}`); a
/// variant this build does not know reads as [`ServiceError::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The room does not exist.
    #[error("room does not exist")]
    NoSuchRoom,
    /// The connection does not exist (it may have disconnected).
    #[error("connection not found")]
    NoSuchConnection,
    /// The request was refused, with the reason the client should see.
    #[error("{0}")]
    Refused(String),
    /// The backend (Redis, the plugin boundary) failed.
    #[error("host service unavailable: {0}")]
    Unavailable(String),
    /// An error this build does not know (sent by a newer host): its variant name, and
    /// its data if it has any (`QuotaExceeded: {"limit":5}`).
    #[error("host service error: {0}")]
    Other(String),
}

/// Reads the externally tagged form by hand, so that a variant added by a newer host
/// (or a known one whose data changed shape) becomes a readable [`ServiceError::Other`]
/// instead of failing the whole reply.
impl<'de> Deserialize<'de> for ServiceError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The two forms of an externally tagged variant: a unit variant's name, or a
        /// one-entry map from the name to the data.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Unit(String),
            Tagged(serde_json::Map<String, Value>),
        }
        let (variant, data) = match Wire::deserialize(deserializer)? {
            Wire::Unit(name) => (name, Value::Null),
            Wire::Tagged(map) => {
                let entries = map.len();
                match map.into_iter().next() {
                    Some(entry) if entries == 1 => entry,
                    _ => {
                        return Err(serde::de::Error::custom(format!(
                            "a service error is a map of one variant, not of {entries}"
                        )));
                    }
                }
            }
        };
        Ok(match (variant.as_str(), data) {
            ("NoSuchRoom", Value::Null) => ServiceError::NoSuchRoom,
            ("NoSuchConnection", Value::Null) => ServiceError::NoSuchConnection,
            ("Refused", Value::String(text)) => ServiceError::Refused(text),
            ("Unavailable", Value::String(text)) => ServiceError::Unavailable(text),
            ("Other", Value::String(text)) => ServiceError::Other(text),
            (_, Value::Null) => ServiceError::Other(variant),
            (_, Value::String(text)) => ServiceError::Other(format!("{variant}: {text}")),
            (_, data) => ServiceError::Other(format!("{variant}: {data}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_error_passed_on_with_question_mark_keeps_its_message() {
        fn broadcast() -> Result<(), ActionError> {
            Err(ServiceError::NoSuchRoom)?;
            Ok(())
        }
        let err = broadcast().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert_eq!(err.client_message(), "Error: room does not exist");
        let err = ActionError::from(ServiceError::Unavailable("redis timed out".into()));
        assert_eq!(
            err.client_message(),
            "Error: host service unavailable: redis timed out"
        );
    }

    #[test]
    fn kinds_have_a_pinned_wire_form_and_unknown_ones_read_as_other() {
        let err = ActionError::timed_out("sleepy", std::time::Duration::from_millis(250));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"kind":"timeout","message":"the action sleepy did not answer within 250 ms"}"#
        );
        assert_eq!(err.kind.http_status(), 504);
        let newer: ActionError =
            serde_json::from_str(r#"{"kind":"quota_exceeded","message":"m"}"#).unwrap();
        assert_eq!(newer.kind, ErrorKind::Other);
        assert_eq!(newer.kind.http_status(), 500);
        for (kind, wire) in [
            (ErrorKind::UnknownAction, "unknown_action"),
            (ErrorKind::MissingParam, "missing_param"),
            (ErrorKind::InvalidParam, "invalid_param"),
            (ErrorKind::Failed, "failed"),
            (ErrorKind::TooManyRequests, "too_many_requests"),
            (ErrorKind::Forbidden, "forbidden"),
            (ErrorKind::Internal, "internal"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), wire);
        }
    }
}
