//! Errors an action returns, and errors of the host services it calls.

use serde::{Deserialize, Serialize};

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
    /// The action panicked or the host failed (HTTP 500); details are only logged.
    Internal,
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
            ErrorKind::Internal => 500,
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
    /// panic or a host failure.
    pub fn internal() -> Self {
        Self::with_kind(
            ErrorKind::Internal,
            "The server experienced an internal error",
        )
    }

    /// The text the client sees: `Error: <message>`.
    pub fn client_message(&self) -> String {
        self.to_string()
    }
}

impl From<ServiceError> for ActionError {
    fn from(err: ServiceError) -> Self {
        // A failing host service is the host's fault, not the client's.
        let _ = err;
        ActionError::internal()
    }
}

/// A host service (cache, rooms, connection attributes) could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
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
}
