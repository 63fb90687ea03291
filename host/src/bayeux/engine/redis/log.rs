//! The shared log: what a Redis stream entry says, and how one is read back.
//!
//! Every change that nodes must see in order is one entry of one stream: publishes,
//! subscription changes, claims (a connect taking a session over) and destroys. Fields
//! have one-letter names to keep entries small; `k` says which kind an entry is.

use std::sync::Arc;

use redis::Value;

use super::super::{Envelope, LogId, PublishOptions};
use crate::bayeux::message::Message;
use crate::cluster::value::{is, list, text};

/// Why a session was destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Why {
    /// Disconnect (or a server-side destroy): the destroying node reports it itself.
    Explicit,
    /// Not pinged within its TTL, collected by whichever node runs collection.
    Expired,
    /// Its backlog overflowed `max_queue` (slow consumer), or fell off the trimmed log.
    Evicted,
}

impl Why {
    pub(super) fn code(self) -> &'static str {
        match self {
            Why::Explicit => "x",
            Why::Expired => "e",
            Why::Evicted => "o",
        }
    }

    fn parse(code: &str) -> Self {
        match code {
            "x" => Why::Explicit,
            "e" => Why::Expired,
            _ => Why::Evicted,
        }
    }
}

/// What one entry says.
#[derive(Debug)]
pub(super) enum Entry {
    /// A message published on `channel`.
    Publish {
        channel: String,
        envelope: Arc<Envelope>,
        opts: PublishOptions,
    },
    /// One message published on each of `channels` (a server-side fan-out).
    PublishEach {
        channels: Vec<String>,
        message: Arc<Message>,
        opts: PublishOptions,
    },
    /// `client` subscribed to `pattern` (effective for later entries).
    Subscribe { client: String, pattern: String },
    /// `client` unsubscribed from `pattern`.
    Unsubscribe { client: String, pattern: String },
    /// A connect on `node` claimed `client` with claim number `token`.
    Claim { client: String, token: u64 },
    /// `client` was destroyed by `node`.
    Destroy {
        client: String,
        node: String,
        why: Why,
    },
    /// An entry this version does not know (a newer node's): skipped.
    Other,
}

/// An entry and its position.
#[derive(Debug)]
pub(super) struct LogEntry {
    pub(super) id: LogId,
    pub(super) entry: Entry,
}

/// The publish flags as stored in the `f` field.
pub(super) fn flags(opts: &PublishOptions) -> &'static str {
    match (opts.local_only, opts.exact_only) {
        (true, true) => "lx",
        (true, false) => "l",
        (false, true) => "x",
        (false, false) => "",
    }
}

fn items(v: &Value) -> Option<&[Value]> {
    matches!(v, Value::Array(_) | Value::Set(_)).then(|| list(v))
}

/// Parses one `[id, [field, value, ...]]` element of an XRANGE/XREAD reply; `None` if
/// it is not of that shape.
pub(super) fn parse_entry(v: &Value) -> Option<LogEntry> {
    let pair = items(v)?;
    let id: LogId = text(pair.first()?)?.parse().ok()?;
    let fields = items(pair.get(1)?)?;
    // Field names are compared as bytes: no allocation but for the values taken.
    let get = |name: &str| {
        fields
            .chunks(2)
            .find(|kv| is(&kv[0], name))
            .and_then(|kv| kv.get(1))
            .and_then(text)
    };
    let entry = match get("k").as_deref() {
        Some("p") => {
            let channel = get("c")?;
            let flags = get("f").unwrap_or_default();
            let envelope = Envelope::from_log(channel.clone(), get("j")?, get("u"), id);
            Entry::Publish {
                channel,
                envelope: Arc::new(envelope),
                opts: PublishOptions {
                    local_only: flags.contains('l'),
                    exact_only: flags.contains('x'),
                },
            }
        }
        Some("m") => {
            let flags = get("f").unwrap_or_default();
            let channels: Vec<String> = serde_json::from_str(&get("cs")?).ok()?;
            match serde_json::from_str::<Message>(&get("j")?) {
                Ok(message) => Entry::PublishEach {
                    channels,
                    message: Arc::new(message),
                    opts: PublishOptions {
                        local_only: flags.contains('l'),
                        exact_only: flags.contains('x'),
                    },
                },
                Err(e) => {
                    tracing::warn!(%id, error = %e, "bayeux: unreadable publish in the log, skipped");
                    Entry::Other
                }
            }
        }
        Some("s") => Entry::Subscribe {
            client: get("i")?,
            pattern: get("c")?,
        },
        Some("u") => Entry::Unsubscribe {
            client: get("i")?,
            pattern: get("c")?,
        },
        Some("c") => Entry::Claim {
            client: get("i")?,
            token: get("t")?.parse().ok()?,
        },
        Some("d") => Entry::Destroy {
            client: get("i")?,
            node: get("n").unwrap_or_default(),
            why: Why::parse(&get("w").unwrap_or_default()),
        },
        _ => Entry::Other,
    };
    Some(LogEntry { id, entry })
}

/// The entries of an XRANGE reply.
pub(super) fn parse_range(v: &Value) -> Vec<LogEntry> {
    items(v)
        .map(|list| list.iter().filter_map(parse_entry).collect())
        .unwrap_or_default()
}

/// The entries of an XREAD reply for one stream (nil: none within the block time).
pub(super) fn parse_read(v: &Value) -> Vec<LogEntry> {
    let Some(streams) = items(v) else {
        return Vec::new();
    };
    streams
        .iter()
        .filter_map(|s| items(s).and_then(|kv| kv.get(1)))
        .flat_map(parse_range)
        .collect()
}

/// `max-deleted-entry-id` from an `XINFO STREAM` reply (RESP2: a flat list of pairs).
pub(super) fn max_deleted(v: &Value) -> Option<LogId> {
    let fields = items(v)?;
    fields
        .chunks(2)
        .find(|kv| is(&kv[0], "max-deleted-entry-id"))
        .and_then(|kv| kv.get(1))
        .and_then(text)
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn entries_of_every_kind_parse() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("ns:log"),
            Value::Array(vec![
                entry(
                    "5-1",
                    &[
                        "k",
                        "p",
                        "c",
                        "/a",
                        "j",
                        r#"{"channel":"/a","data":1}"#,
                        "f",
                        "x",
                    ],
                ),
                entry("5-2", &["k", "s", "i", "abc", "c", "/a/*"]),
                entry("5-3", &["k", "u", "i", "abc", "c", "/a/*"]),
                entry("5-4", &["k", "c", "i", "abc", "t", "7"]),
                entry("5-5", &["k", "d", "i", "abc", "n", "node1", "w", "e"]),
                entry("5-6", &["k", "zz"]),
                entry(
                    "5-7",
                    &[
                        "k",
                        "m",
                        "cs",
                        r#"["/c/1","/c/2"]"#,
                        "j",
                        r#"{"channel":"/c/1","data":2}"#,
                        "f",
                        "x",
                    ],
                ),
            ]),
        ])]);
        let got = parse_read(&reply);
        assert_eq!(got.len(), 7);
        assert!(
            matches!(&got[0].entry, Entry::Publish { channel, opts, envelope }
            if channel == "/a" && opts.exact_only && !opts.local_only
                && envelope.position() == Some("5-1".parse().unwrap()))
        );
        assert!(matches!(&got[1].entry, Entry::Subscribe { pattern, .. } if pattern == "/a/*"));
        assert!(matches!(&got[2].entry, Entry::Unsubscribe { .. }));
        assert!(matches!(&got[3].entry, Entry::Claim { token: 7, .. }));
        assert!(
            matches!(&got[4].entry, Entry::Destroy { why: Why::Expired, node, .. } if node == "node1")
        );
        assert!(matches!(&got[5].entry, Entry::Other));
        assert!(
            matches!(&got[6].entry, Entry::PublishEach { channels, opts, .. }
            if channels == &["/c/1", "/c/2"] && opts.exact_only)
        );
        assert!(parse_read(&Value::Nil).is_empty());
    }
}
