//! Bayeux error codes as data, and the one place they become `error` strings.
//!
//! `code:args:message`, with faye's exact texts, so clients that match on them work.

use std::borrow::Cow;
use std::fmt;

/// The Bayeux error codes (PROTOCOL 1.3), each with its fixed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 300 Version mismatch.
    VersionMismatch,
    /// 301 Connection types not supported.
    ConntypeMismatch,
    /// 302 Extension mismatch.
    ExtMismatch,
    /// 400 Bad request.
    BadRequest,
    /// 401 Unknown client.
    ClientUnknown,
    /// 402 Missing required parameter.
    ParameterMissing,
    /// 403 Forbidden channel.
    ChannelForbidden,
    /// 404 Unknown channel.
    ChannelUnknown,
    /// 405 Invalid channel.
    ChannelInvalid,
    /// 406 Unknown extension.
    ExtUnknown,
    /// 407 Failed to publish.
    PublishFailed,
    /// 500 Internal server error.
    ServerError,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Self::VersionMismatch => 300,
            Self::ConntypeMismatch => 301,
            Self::ExtMismatch => 302,
            Self::BadRequest => 400,
            Self::ClientUnknown => 401,
            Self::ParameterMissing => 402,
            Self::ChannelForbidden => 403,
            Self::ChannelUnknown => 404,
            Self::ChannelInvalid => 405,
            Self::ExtUnknown => 406,
            Self::PublishFailed => 407,
            Self::ServerError => 500,
        }
    }

    /// The standard message text.
    pub fn message(self) -> &'static str {
        match self {
            Self::VersionMismatch => "Version mismatch",
            Self::ConntypeMismatch => "Connection types not supported",
            Self::ExtMismatch => "Extension mismatch",
            Self::BadRequest => "Bad request",
            Self::ClientUnknown => "Unknown client",
            Self::ParameterMissing => "Missing required parameter",
            Self::ChannelForbidden => "Forbidden channel",
            Self::ChannelUnknown => "Unknown channel",
            Self::ChannelInvalid => "Invalid channel",
            Self::ExtUnknown => "Unknown extension",
            Self::PublishFailed => "Failed to publish",
            Self::ServerError => "Internal server error",
        }
    }
}

/// A Bayeux protocol error: rendered as `code:args,comma,joined:Message`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct BayeuxError {
    code: u16,
    args: Vec<String>,
    message: Cow<'static, str>,
}

impl fmt::Display for BayeuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.code, self.args.join(","), self.message)
    }
}

impl BayeuxError {
    /// An error with a standard code and its standard message.
    pub fn new(code: ErrorCode, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            code: code.code(),
            args: args.into_iter().map(Into::into).collect(),
            message: Cow::Borrowed(code.message()),
        }
    }

    /// An error with any code and message, e.g. `BayeuxError::custom(403, [], "Password required")`
    /// renders as `403::Password required`.
    pub fn custom(
        code: u16,
        args: impl IntoIterator<Item = impl Into<String>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code,
            args: args.into_iter().map(Into::into).collect(),
            message: message.into(),
        }
    }

    /// Parses an error string (`code:args:message`); anything else becomes a `500`.
    pub fn parse(text: &str) -> Self {
        let mut parts = text.splitn(3, ':');
        let code = parts.next().and_then(|c| c.parse().ok());
        match (code, parts.next(), parts.next()) {
            (Some(code), Some(args), Some(message)) => Self {
                code,
                args: if args.is_empty() {
                    Vec::new()
                } else {
                    args.split(',').map(str::to_owned).collect()
                },
                message: Cow::Owned(message.to_owned()),
            },
            _ => Self::server_error(),
        }
    }

    /// The numeric code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// `301:<types>:Connection types not supported`.
    pub fn conntype_mismatch(types: &[String]) -> Self {
        Self::new(ErrorCode::ConntypeMismatch, [types.join(",")])
    }

    /// `401:<clientId>:Unknown client`.
    pub fn client_unknown(client_id: &str) -> Self {
        Self::new(ErrorCode::ClientUnknown, [client_id])
    }

    /// `402:<name>:Missing required parameter`.
    pub fn parameter_missing(name: &str) -> Self {
        Self::new(ErrorCode::ParameterMissing, [name])
    }

    /// `403:<channel>:Forbidden channel`.
    pub fn channel_forbidden(channel: &str) -> Self {
        Self::new(ErrorCode::ChannelForbidden, [channel])
    }

    /// `405:<channel>:Invalid channel`.
    pub fn channel_invalid(channel: &str) -> Self {
        Self::new(ErrorCode::ChannelInvalid, [channel])
    }

    /// `407:<channel>:Failed to publish`.
    pub fn publish_failed(channel: &str) -> Self {
        Self::new(ErrorCode::PublishFailed, [channel])
    }

    /// `500::Internal server error`.
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, [] as [String; 0])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            BayeuxError::parameter_missing("data").to_string(),
            "402:data:Missing required parameter"
        );
        assert_eq!(
            BayeuxError::conntype_mismatch(&["a".into(), "b".into()]).to_string(),
            "301:a,b:Connection types not supported"
        );
        assert_eq!(
            BayeuxError::custom(403, [] as [&str; 0], "Password required").to_string(),
            "403::Password required"
        );
        assert_eq!(
            BayeuxError::server_error().to_string(),
            "500::Internal server error"
        );
        assert_eq!(
            BayeuxError::client_unknown("abc").to_string(),
            "401:abc:Unknown client"
        );
        assert_eq!(
            BayeuxError::channel_forbidden("/meta/x").to_string(),
            "403:/meta/x:Forbidden channel"
        );
        assert_eq!(
            BayeuxError::channel_invalid("x").to_string(),
            "405:x:Invalid channel"
        );
        let e = BayeuxError::parse("403:/a,/b:Forbidden channel");
        assert_eq!(e.code(), 403);
        assert_eq!(e.to_string(), "403:/a,/b:Forbidden channel");
        assert_eq!(BayeuxError::parse("junk").code(), 500);
        let all = [
            (ErrorCode::VersionMismatch, 300),
            (ErrorCode::ConntypeMismatch, 301),
            (ErrorCode::ExtMismatch, 302),
            (ErrorCode::BadRequest, 400),
            (ErrorCode::ClientUnknown, 401),
            (ErrorCode::ParameterMissing, 402),
            (ErrorCode::ChannelForbidden, 403),
            (ErrorCode::ChannelUnknown, 404),
            (ErrorCode::ChannelInvalid, 405),
            (ErrorCode::ExtUnknown, 406),
            (ErrorCode::PublishFailed, 407),
            (ErrorCode::ServerError, 500),
        ];
        for (c, n) in all {
            assert_eq!(c.code(), n);
            assert_eq!(
                BayeuxError::new(c, ["x"]).to_string(),
                format!("{n}:x:{}", c.message())
            );
        }
    }
}
