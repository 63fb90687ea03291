//! Param scrubbing: what a client sent, reduced to what the action declares.
//!
//! The first step of the processor's pipeline: undeclared params are dropped (the
//! reserved ones the transports use are kept), versions are read from strings or
//! numbers. Defaults, formatters and validators run next, in the action definition.

use plugin_api::{ActionDefinition, Params, Value};

/// Params every action receives whether declared or not.
pub const RESERVED_PARAMS: [&str; 4] = ["action", "apiVersion", "callback", "file"];

/// Drops every param the action does not declare, except the reserved ones.
///
/// In place: no new map, no copied keys or values (this runs on every call).
pub fn scrub(definition: &ActionDefinition, mut params: Params) -> Params {
    params.retain(|name, _| RESERVED_PARAMS.contains(&name.as_str()) || definition.declares(name));
    params
}

/// `apiVersion` is present but not a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("apiVersion must be a positive integer")]
pub struct BadVersion;

/// The `apiVersion` a client asked for: a positive integer, as number or string.
///
/// `Err(BadVersion)` when it is present but not a version, which no action can match.
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
    use plugin_api::{Input, json};

    #[test]
    fn undeclared_params_are_dropped_reserved_kept() {
        let def = ActionDefinition::new("a").input(Input::required("key"));
        let Value::Object(sent) = json!({"key": 1, "evil": 2, "action": "a", "apiVersion": "1",
            "callback": "cb", "file": "f"})
        else {
            unreachable!()
        };
        let kept = scrub(&def, sent);
        assert!(kept.contains_key("key") && !kept.contains_key("evil"));
        for name in RESERVED_PARAMS {
            assert!(kept.contains_key(name), "{name}");
        }
    }

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
