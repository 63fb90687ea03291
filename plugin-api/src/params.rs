//! The params rules the host applies to every call before the action's own inputs,
//! kept here so the host and [`testing`](crate::testing) (when enabled) share one copy.

use serde_json::Value;

use crate::Params;

/// Params every action receives whether declared or not (the transports use them).
pub const RESERVED_PARAMS: [&str; 4] = ["action", "apiVersion", "callback", "file"];

/// `apiVersion` is present but not a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("apiVersion must be a positive integer")]
pub struct BadVersion;

/// The `apiVersion` a client asked for: a positive integer, as number or string.
///
/// # Errors
///
/// [`BadVersion`] when it is present but not a version, which no action can match.
pub fn requested_version(params: &Params) -> Result<Option<u32>, BadVersion> {
    match params.get("apiVersion") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| BadVersion),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or(BadVersion),
        Some(_) => Err(BadVersion),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_parse_from_strings_and_numbers() {
        let p = |v: Value| {
            let mut m = Params::new();
            m.insert("apiVersion".into(), v);
            requested_version(&m)
        };
        assert_eq!(p(json!("2")), Ok(Some(2)));
        assert_eq!(p(json!(3)), Ok(Some(3)));
        assert_eq!(p(json!("")), Ok(None));
        assert_eq!(p(json!("x")), Err(BadVersion));
        assert_eq!(p(json!(-1)), Err(BadVersion));
    }
}
