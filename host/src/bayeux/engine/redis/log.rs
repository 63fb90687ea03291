//! The shared log: what a Redis stream entry says, and how one is read back.
//!
//! Every change that nodes must see in order is one entry of one stream: publishes,
//! subscription changes, claims (a connect taking a session over) and destroys. Fields
//! have one-letter names to keep entries small; `k` says which kind an entry is.
//!
//! A publish, by far the most frequent entry and read by every node, is one field `P`
//! holding `flags \n channel \n publisher \n json` ([`packed_publish`]): parsing a
//! Redis reply costs per element, and this makes a publish 4 elements instead of 10,
//! which was a fifth of a node's CPU under cross-node load. Entries of kind `p` (the
//! same publish as separate fields, written by earlier nodes) are still read; earlier
//! nodes do not know `P` and skip it, so a cluster moves to this version all at once
//! (or into a new `namespace`), not node by node.

use std::sync::Arc;

use redis::Value;

use super::super::{Envelope, LogId, PublishOptions};
use crate::bayeux::message::Message;
use crate::cluster::value::{into_text, is, list, text};

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

/// The publish flags as stored in the `f` field (and first in a packed publish).
pub(super) fn flags(opts: &PublishOptions) -> &'static str {
    match (opts.local_only, opts.exact_only) {
        (true, true) => "lx",
        (true, false) => "l",
        (false, true) => "x",
        (false, false) => "",
    }
}

/// `XADD` to the log at `key`, trimmed to about `maxlen` entries, with a new id; the
/// fields follow.
pub(super) fn xadd(key: &str, maxlen: usize) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("MAXLEN").arg("~").arg(maxlen).arg("*");
    cmd
}

/// The one field of a publish entry: `flags \n channel \n publisher \n json` (an
/// absent publisher is empty). Channel names, client ids and flags hold no newline, and
/// the JSON comes last, so it is split off whatever it holds.
pub(super) fn packed_publish(
    channel: &str,
    json: &str,
    publisher: Option<&str>,
    opts: &PublishOptions,
) -> String {
    let flags = flags(opts);
    let publisher = publisher.unwrap_or_default();
    let mut packed =
        String::with_capacity(flags.len() + channel.len() + publisher.len() + json.len() + 3);
    for part in [flags, channel, publisher] {
        packed.push_str(part);
        packed.push('\n');
    }
    packed.push_str(json);
    packed
}

/// A publish entry from its packed field; `None` if it is not of that shape.
fn unpack_publish(mut packed: String, id: LogId) -> Option<Entry> {
    let mut parts = packed.splitn(4, '\n');
    let (flags, channel, publisher) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next()?;
    let opts = PublishOptions {
        local_only: flags.contains('l'),
        exact_only: flags.contains('x'),
    };
    let head = flags.len() + channel.len() + publisher.len() + 3;
    let channel = channel.to_owned();
    let publisher = (!publisher.is_empty()).then(|| publisher.to_owned());
    // The JSON is what is left: shifted in place, not copied into a new string.
    packed.replace_range(..head, "");
    let envelope = Envelope::from_log(channel.clone(), packed, publisher, id);
    Some(Entry::Publish {
        channel,
        envelope: Arc::new(envelope),
        opts,
    })
}

fn items(v: &Value) -> Option<&[Value]> {
    matches!(v, Value::Array(_) | Value::Set(_)).then(|| list(v))
}

/// An array (or set) reply's elements, taken out of it.
fn into_items(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

/// The `[field, value, ...]` list of one entry, whose values are taken out by name.
struct Fields(Vec<Value>);

impl Fields {
    /// The value of field `name`, moved out (bytes compared, nothing copied).
    fn take(&mut self, name: &str) -> Option<String> {
        let at = self.0.chunks(2).position(|kv| is(&kv[0], name))?;
        into_text(std::mem::replace(self.0.get_mut(at * 2 + 1)?, Value::Nil))
    }
}

/// Parses one `[id, [field, value, ...]]` element of an XRANGE/XREAD reply; `None` if
/// it is not of that shape. The reply is consumed: every node reads every entry, so
/// the values (a publish's JSON above all) are moved into the entry, not copied.
pub(super) fn parse_entry(v: Value) -> Option<LogEntry> {
    let mut pair = into_items(v)?.into_iter();
    let id: LogId = text(&pair.next()?)?.parse().ok()?;
    let mut fields = Fields(into_items(pair.next()?)?);
    if let Some(packed) = fields.take("P") {
        return Some(LogEntry {
            id,
            entry: unpack_publish(packed, id)?,
        });
    }
    let entry = match fields.take("k").as_deref() {
        Some("p") => {
            let channel = fields.take("c")?;
            let flags = fields.take("f").unwrap_or_default();
            let json = fields.take("j")?;
            let envelope = Envelope::from_log(channel.clone(), json, fields.take("u"), id);
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
            let flags = fields.take("f").unwrap_or_default();
            let channels: Vec<String> = serde_json::from_str(&fields.take("cs")?).ok()?;
            match serde_json::from_str::<Message>(&fields.take("j")?) {
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
            client: fields.take("i")?,
            pattern: fields.take("c")?,
        },
        Some("u") => Entry::Unsubscribe {
            client: fields.take("i")?,
            pattern: fields.take("c")?,
        },
        Some("c") => Entry::Claim {
            client: fields.take("i")?,
            token: fields.take("t")?.parse().ok()?,
        },
        Some("d") => Entry::Destroy {
            client: fields.take("i")?,
            node: fields.take("n").unwrap_or_default(),
            why: Why::parse(&fields.take("w").unwrap_or_default()),
        },
        _ => Entry::Other,
    };
    Some(LogEntry { id, entry })
}

/// The entries of an XRANGE reply.
pub(super) fn parse_range(v: Value) -> Vec<LogEntry> {
    into_items(v)
        .map(|list| list.into_iter().filter_map(parse_entry).collect())
        .unwrap_or_default()
}

/// The entries of an XREAD reply for one stream (nil: none within the block time).
pub(super) fn parse_read(v: Value) -> Vec<LogEntry> {
    let Some(streams) = into_items(v) else {
        return Vec::new();
    };
    streams
        .into_iter()
        .filter_map(|s| into_items(s).and_then(|kv| kv.into_iter().nth(1)))
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
                entry(
                    "5-8",
                    &[
                        "P",
                        &packed_publish(
                            "/b",
                            "{\"channel\":\"/b\",\"data\":\"two\\nlines\"}",
                            Some("pub1"),
                            &PublishOptions {
                                local_only: true,
                                exact_only: false,
                            },
                        ),
                    ],
                ),
                entry(
                    "5-9",
                    &[
                        "P",
                        &packed_publish("/c", "{}", None, &PublishOptions::default()),
                    ],
                ),
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
        let got = parse_read(reply);
        assert_eq!(got.len(), 9);
        assert!(
            matches!(&got[0].entry, Entry::Publish { channel, opts, envelope }
            if channel == "/a" && opts.exact_only && !opts.local_only
                && envelope.position() == Some("5-1".parse().unwrap()))
        );
        assert!(matches!(&got[1].entry, Entry::Subscribe { pattern, .. } if pattern == "/a/*"));
        // Packed publishes: the JSON whole (newlines in it included), the publisher and
        // flags back as written, an absent publisher absent.
        assert!(
            matches!(&got[2].entry, Entry::Publish { channel, opts, envelope }
            if channel == "/b" && opts.local_only && !opts.exact_only
                && envelope.json() == "{\"channel\":\"/b\",\"data\":\"two\\nlines\"}"
                && envelope.publisher() == Some("pub1")
                && envelope.position() == Some("5-8".parse().unwrap()))
        );
        assert!(
            matches!(&got[3].entry, Entry::Publish { channel, opts, envelope }
            if channel == "/c" && !opts.local_only && !opts.exact_only
                && envelope.json() == "{}" && envelope.publisher().is_none())
        );
        assert!(matches!(&got[4].entry, Entry::Unsubscribe { .. }));
        assert!(matches!(&got[5].entry, Entry::Claim { token: 7, .. }));
        assert!(
            matches!(&got[6].entry, Entry::Destroy { why: Why::Expired, node, .. } if node == "node1")
        );
        assert!(matches!(&got[7].entry, Entry::Other));
        assert!(
            matches!(&got[8].entry, Entry::PublishEach { channels, opts, .. }
            if channels == &["/c/1", "/c/2"] && opts.exact_only)
        );
        assert!(parse_read(Value::Nil).is_empty());
    }
}
