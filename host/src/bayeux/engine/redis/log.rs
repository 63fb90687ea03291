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
//!
//! Entries come back two ways, read by one parser of fields ([`parse_fields`]): the log
//! reader's `XREAD` replies straight from their bytes ([`read_stream`]), and the rarer
//! `XRANGE` replies (catching a session up) as `redis::Value`s ([`parse_range`]). A
//! packed publish stays packed until a node delivers it ([`Publish`]).

use std::sync::Arc;

use redis::Value;

use super::super::{Envelope, LogId, PublishOptions};
use crate::bayeux::message::Message;
use crate::cluster::resp::{Reply, RespError};
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
    /// A message published on one channel.
    Publish(Publish),
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

/// A publish as read from the log: its envelope, or (the usual case) its packed field,
/// made into an envelope only where it is delivered. Every node reads every publish and
/// most nodes deliver it to nobody, so those keep one copy of the field and no more
/// (no channel, publisher, envelope or UTF-8 check of the JSON).
#[derive(Debug)]
pub(super) enum Publish {
    /// An envelope already built (entries of kind `p`).
    Built {
        envelope: Arc<Envelope>,
        opts: PublishOptions,
    },
    /// The `P` field, as [`packed_publish`] wrote it.
    Packed(Box<[u8]>),
}

impl Publish {
    /// The channel it was published on and its options; `None` if it is not readable.
    pub(super) fn head(&self) -> Option<(&str, PublishOptions)> {
        match self {
            Publish::Built { envelope, opts } => Some((envelope.channel(), opts.clone())),
            Publish::Packed(packed) => {
                let mut parts = packed.splitn(3, |&b| b == b'\n');
                let flags = std::str::from_utf8(parts.next()?).ok()?;
                Some((std::str::from_utf8(parts.next()?).ok()?, options(flags)))
            }
        }
    }

    /// Its envelope (built now if it is packed), at log position `id`; `None` if it is
    /// not readable.
    pub(super) fn envelope(&self, id: LogId) -> Option<Arc<Envelope>> {
        match self {
            Publish::Built { envelope, .. } => Some(Arc::clone(envelope)),
            Publish::Packed(packed) => {
                let unpacked = std::str::from_utf8(packed).ok().and_then(|p| unpack(p, id));
                if unpacked.is_none() {
                    tracing::warn!(%id, "bayeux: unreadable publish in the log, skipped");
                }
                unpacked
            }
        }
    }
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

/// The publish options stored as `flags`.
fn options(flags: &str) -> PublishOptions {
    PublishOptions {
        local_only: flags.contains('l'),
        exact_only: flags.contains('x'),
    }
}

/// The envelope of a packed publish field; `None` if it is not of that shape.
fn unpack(packed: &str, id: LogId) -> Option<Arc<Envelope>> {
    let mut parts = packed.splitn(4, '\n');
    let (_flags, channel, publisher) = (parts.next()?, parts.next()?, parts.next()?);
    let json = parts.next()?;
    let publisher = (!publisher.is_empty()).then(|| publisher.to_owned());
    let envelope = Envelope::from_log(channel.to_owned(), json.to_owned(), publisher, id);
    Some(Arc::new(envelope))
}

/// The `(field, value)` pairs of one entry, as the reply holds them.
struct Fields<'a, 'b>(&'b [(&'a [u8], &'a [u8])]);

impl<'a> Fields<'a, '_> {
    /// The bytes of field `name` (compared, not copied).
    fn raw(&self, name: &str) -> Option<&'a [u8]> {
        let (_, value) = self.0.iter().find(|(k, _)| *k == name.as_bytes())?;
        Some(value)
    }

    /// The text of field `name`.
    fn get(&self, name: &str) -> Option<&'a str> {
        std::str::from_utf8(self.raw(name)?).ok()
    }

    /// The text of field `name`, copied out.
    fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }
}

/// What the entry at `id` with `fields` says. An entry of no kind this version knows,
/// or of a known kind without the fields it needs, is [`Entry::Other`]: skipped, but
/// its position is still passed (else the reader would read it again and again).
fn parse_fields(id: LogId, fields: &Fields<'_, '_>) -> Entry {
    let entry = if let Some(packed) = fields.raw("P") {
        Some(Entry::Publish(Publish::Packed(packed.into())))
    } else {
        match fields.get("k") {
            Some("p") => fields.get("c").zip(fields.get("j")).map(|(channel, json)| {
                let envelope =
                    Envelope::from_log(channel.to_owned(), json.to_owned(), fields.owned("u"), id);
                Entry::Publish(Publish::Built {
                    envelope: Arc::new(envelope),
                    opts: options(fields.get("f").unwrap_or_default()),
                })
            }),
            Some("m") => publish_each(id, fields),
            Some("s") => fields
                .owned("i")
                .zip(fields.owned("c"))
                .map(|(client, pattern)| Entry::Subscribe { client, pattern }),
            Some("u") => fields
                .owned("i")
                .zip(fields.owned("c"))
                .map(|(client, pattern)| Entry::Unsubscribe { client, pattern }),
            Some("c") => fields
                .owned("i")
                .zip(fields.get("t").and_then(|t| t.parse().ok()))
                .map(|(client, token)| Entry::Claim { client, token }),
            Some("d") => fields.owned("i").map(|client| Entry::Destroy {
                client,
                node: fields.owned("n").unwrap_or_default(),
                why: Why::parse(fields.get("w").unwrap_or_default()),
            }),
            _ => return Entry::Other,
        }
    };
    entry.unwrap_or_else(|| {
        tracing::warn!(%id, "bayeux: unreadable entry in the log, skipped");
        Entry::Other
    })
}

/// A server-side fan-out entry (kind `m`).
fn publish_each(id: LogId, fields: &Fields<'_, '_>) -> Option<Entry> {
    let channels: Vec<String> = serde_json::from_str(fields.get("cs")?).ok()?;
    match serde_json::from_str::<Message>(fields.get("j")?) {
        Ok(message) => Some(Entry::PublishEach {
            channels,
            message: Arc::new(message),
            opts: options(fields.get("f").unwrap_or_default()),
        }),
        Err(e) => {
            tracing::warn!(%id, error = %e, "bayeux: unreadable publish in the log");
            None
        }
    }
}

/// The bytes of a string reply; empty for anything else.
fn bytes(v: &Value) -> &[u8] {
    match v {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.as_bytes(),
        _ => &[],
    }
}

/// The entries of an XRANGE (or XREVRANGE) reply; elements not of the shape
/// `[id, [field, value, ...]]` are left out.
pub(super) fn parse_range(v: &Value) -> Vec<LogEntry> {
    let mut pairs = Vec::new();
    list(v)
        .iter()
        .filter_map(|element| {
            let [id, fields] = list(element) else {
                return None;
            };
            let id: LogId = text(id)?.parse().ok()?;
            pairs.clear();
            pairs.extend(
                list(fields)
                    .chunks_exact(2)
                    .map(|kv| (bytes(&kv[0]), bytes(&kv[1]))),
            );
            let entry = parse_fields(id, &Fields(&pairs));
            Some(LogEntry { id, entry })
        })
        .collect()
}

/// The entries of an XREAD reply (nil: none within the block time), read straight from
/// its bytes: every node reads every entry, and a publish's fields go from the reply
/// into its envelope with no tree of values built and taken apart on the way.
///
/// # Errors
/// A reply not of XREAD's shape (no entry of it is used then).
pub(super) fn read_stream(r: &mut Reply<'_>) -> Result<Vec<LogEntry>, RespError> {
    let mut entries = Vec::new();
    // One list of field slices, refilled for every entry (no allocation per entry).
    let mut pairs = Vec::new();
    for _ in 0..r.array()?.unwrap_or(0) {
        if r.array()? != Some(2) {
            return Err(RespError::Malformed("a stream is not [key, entries]"));
        }
        r.skip()?; // the stream's key: the reader reads one
        let count = r.array()?.unwrap_or(0);
        entries.reserve(count);
        for _ in 0..count {
            if r.array()? != Some(2) {
                return Err(RespError::Malformed("an entry is not [id, fields]"));
            }
            let id: LogId = r
                .bulk()?
                .and_then(|id| std::str::from_utf8(id).ok())
                .and_then(|id| id.parse().ok())
                .ok_or(RespError::Malformed("an entry id is not one"))?;
            let fields = r.array()?.unwrap_or(0);
            pairs.clear();
            for _ in 0..fields / 2 {
                let name = r.bulk()?.unwrap_or_default();
                pairs.push((name, r.bulk()?.unwrap_or_default()));
            }
            if fields % 2 == 1 {
                r.skip()?;
            }
            let entry = parse_fields(id, &Fields(&pairs));
            entries.push(LogEntry { id, entry });
        }
    }
    Ok(entries)
}

/// `max-deleted-entry-id` from an `XINFO STREAM` reply (RESP2: a flat list of pairs).
pub(super) fn max_deleted(v: &Value) -> Option<LogId> {
    list(v)
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

    /// `v` as Redis sends it (RESP2).
    fn resp(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Nil => out.extend_from_slice(b"*-1\r\n"),
            Value::BulkString(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                items.iter().for_each(|i| resp(i, out));
            }
            other => panic!("not in stream replies: {other:?}"),
        }
    }

    /// The entries of an XREAD reply, read from its bytes.
    fn read(reply: &Value) -> Result<Vec<LogEntry>, RespError> {
        let mut bytes = Vec::new();
        resp(reply, &mut bytes);
        read_stream(&mut Reply::new(&bytes))
    }

    /// The envelope and options of a publish entry, as a node delivering it builds them
    /// (the channel and options read without building it agree).
    fn publish(e: &LogEntry) -> (Arc<Envelope>, PublishOptions) {
        let Entry::Publish(p) = &e.entry else {
            panic!("not a publish: {e:?}");
        };
        let (channel, opts) = p.head().unwrap();
        let envelope = p.envelope(e.id).unwrap();
        assert_eq!(channel, envelope.channel());
        (envelope, opts)
    }

    /// An XREAD reply holding `entries`.
    fn xread(entries: Vec<Value>) -> Value {
        Value::Array(vec![Value::Array(vec![
            bulk("ns:log"),
            Value::Array(entries),
        ])])
    }

    #[test]
    fn entries_of_every_kind_parse() {
        let entries = vec![
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
        ];
        // Read from a live XREAD's bytes, and from an XRANGE's values: the same entries.
        let from_range = parse_range(&Value::Array(entries.clone()));
        let got = read(&xread(entries)).unwrap();
        assert_eq!(format!("{from_range:?}"), format!("{got:?}"));
        assert_eq!(got.len(), 9);
        let (envelope, opts) = publish(&got[0]);
        assert!(envelope.channel() == "/a" && opts.exact_only && !opts.local_only);
        assert_eq!(envelope.position(), Some("5-1".parse().unwrap()));
        assert!(matches!(&got[1].entry, Entry::Subscribe { pattern, .. } if pattern == "/a/*"));
        // Packed publishes: the JSON whole (newlines in it included), the publisher and
        // flags back as written, an absent publisher absent.
        let (envelope, opts) = publish(&got[2]);
        assert!(envelope.channel() == "/b" && opts.local_only && !opts.exact_only);
        assert_eq!(
            envelope.json(),
            "{\"channel\":\"/b\",\"data\":\"two\\nlines\"}"
        );
        assert_eq!(envelope.publisher(), Some("pub1"));
        assert_eq!(envelope.position(), Some("5-8".parse().unwrap()));
        let (envelope, opts) = publish(&got[3]);
        assert!(envelope.channel() == "/c" && !opts.local_only && !opts.exact_only);
        assert_eq!((envelope.json(), envelope.publisher()), ("{}", None));
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
    }

    #[test]
    fn a_reply_cut_short_anywhere_is_incomplete_not_wrong() {
        let reply = xread(vec![
            entry(
                "5-1",
                &[
                    "P",
                    &packed_publish("/a", "{}", Some("p"), &PublishOptions::default()),
                ],
            ),
            entry("5-2", &["k", "s", "i", "abc", "c", "/a/*"]),
        ]);
        let mut bytes = Vec::new();
        resp(&reply, &mut bytes);
        for cut in 0..bytes.len() {
            let got = read_stream(&mut Reply::new(&bytes[..cut]));
            assert!(
                matches!(got, Err(RespError::Incomplete)),
                "cut at {cut}: {got:?}"
            );
        }
        let mut whole = Reply::new(&bytes);
        assert_eq!(read_stream(&mut whole).unwrap().len(), 2);
        assert_eq!(whole.used(), bytes.len());
    }

    #[test]
    fn no_entries_within_the_block_time_is_a_nil_reply() {
        assert!(read(&Value::Nil).unwrap().is_empty());
        assert!(read(&xread(Vec::new())).unwrap().is_empty());
    }

    #[test]
    fn an_unreadable_entry_is_skipped_but_keeps_its_place() {
        let got = read(&xread(vec![
            entry("7-1", &["k", "s", "i", "abc"]), // no pattern
            entry("7-2", &["P", "x\n/a"]),         // no JSON
            entry("7-3", &["k", "c", "i", "abc", "t", "seven"]),
            entry("7-4", &["k", "m", "cs", "[\"/a\"]", "j", "not json"]),
            entry("7-5", &["k", "s", "i", "abc", "c", "/a", "z"]), // odd: last one ignored
        ]))
        .unwrap();
        let ids: Vec<String> = got.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, ["7-1", "7-2", "7-3", "7-4", "7-5"]);
        for i in [0, 2, 3] {
            assert!(matches!(got[i].entry, Entry::Other), "{:?}", got[i]);
        }
        // A packed publish is only unpacked where it is delivered: it is found
        // unreadable there, and delivered to nobody.
        let Entry::Publish(p) = &got[1].entry else {
            panic!("{:?}", got[1]);
        };
        assert!(p.envelope(got[1].id).is_none());
        assert!(matches!(&got[4].entry, Entry::Subscribe { pattern, .. } if pattern == "/a"));
    }

    #[test]
    fn a_reply_not_shaped_as_xread_is_refused() {
        // A stream of three parts, an entry that is a string, an id that is not one.
        let bad = [
            Value::Array(vec![Value::Array(vec![bulk("k"), bulk("x"), bulk("y")])]),
            xread(vec![bulk("5-1")]),
            xread(vec![entry("five", &["k", "zz"])]),
        ];
        for reply in bad {
            assert!(
                matches!(read(&reply), Err(RespError::Malformed(_))),
                "{reply:?}"
            );
        }
    }
}
