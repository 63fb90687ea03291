//! Reading Redis replies (`redis::Value`) of scripts and stream commands without a
//! type per reply: text, integers, lists, and field names compared without allocating.

use redis::Value;

/// A string or integer reply as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether a string reply equals `name` (no allocation).
pub(crate) fn is(v: &Value, name: &str) -> bool {
    match v {
        Value::BulkString(b) => b.as_slice() == name.as_bytes(),
        Value::SimpleString(s) => s == name,
        _ => false,
    }
}

/// An array (or set) reply's elements; empty for anything else.
pub(crate) fn list(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// An integer reply (or a string holding one).
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}
