//! A one-pass reader of RESP2 replies in one buffer ([`super::BlockingConn`]): into the
//! `redis` crate's [`Value`], or straight into whatever the caller builds from a
//! [`Reply`].
//!
//! The crate's own parser is a resumable combinator parser: general, and about 1 µs per
//! stream entry, which made it the largest single cost of a node reading the shared
//! log (13-16% of its CPU under cross-node load). A log read's reply is one RESP2 value,
//! and nearly always arrives in one read, so it is read in one go as soon as it might
//! be whole; the log reader takes its entries' fields as slices of the buffer
//! ([`Reply::bulk`]) instead of building a tree of owned values only to take it apart.
//! A reply found to end early ([`RespError::Incomplete`]) is then only walked as more
//! arrives ([`complete`]: skips bulk strings by their length, builds nothing) until it
//! is whole, so a reply of many megabytes arriving in many reads is read twice at most,
//! not once per read.

use redis::Value;

/// Nesting deeper than this is refused (a stream read's reply is five deep).
const MAX_DEPTH: usize = 16;

/// A reply that cannot be used (yet).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RespError {
    /// Redis answered with an error.
    #[error("{0}")]
    Server(String),
    /// The bytes are not RESP2, or not of the shape the command's reply has.
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
    /// The buffer ends before the reply does.
    #[error("reply ends early")]
    Incomplete,
}

/// The bytes the reply at the start of `buf` takes, or `None` when more are needed.
///
/// # Errors
/// An error reply (anywhere in the value), or bytes that are not RESP2.
pub(super) fn complete(buf: &[u8]) -> Result<Option<usize>, RespError> {
    let mut at = 0;
    Ok(value(buf, &mut at, 0, false)?.map(|_| at))
}

/// Parses the reply at the start of `buf`: the value and the bytes it took, or `None`
/// when more bytes are needed.
#[cfg(test)]
fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    if complete(buf)?.is_none() {
        return Ok(None);
    }
    let mut reply = Reply::new(buf);
    Ok(Some((reply.value()?, reply.used())))
}

/// A reader of the reply at the start of a buffer, value by value in order; any value
/// the buffer does not hold all of is [`RespError::Incomplete`].
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reply<'a> {
    /// Reads the reply at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// The bytes read so far.
    pub(crate) fn used(&self) -> usize {
        self.at
    }

    /// The next value, whatever it is, built as a [`Value`].
    ///
    /// # Errors
    /// Bytes that are not RESP2 (or an error reply), or not all here.
    pub(crate) fn value(&mut self) -> Result<Value, RespError> {
        value(self.buf, &mut self.at, 0, true)?.ok_or(RespError::Incomplete)
    }

    /// Skips the next value, whatever it is.
    ///
    /// # Errors
    /// Bytes that are not RESP2 (or an error reply), or not all here.
    pub(crate) fn skip(&mut self) -> Result<(), RespError> {
        value(self.buf, &mut self.at, 0, false)?.ok_or(RespError::Incomplete)?;
        Ok(())
    }

    /// The next value's type byte and header line, moving past them.
    fn head(&mut self) -> Result<(u8, &'a [u8]), RespError> {
        let kind = *self.buf.get(self.at).ok_or(RespError::Incomplete)?;
        self.at += 1;
        let head = line(self.buf, &mut self.at)?.ok_or(RespError::Incomplete)?;
        if kind == b'-' {
            return Err(RespError::Server(
                String::from_utf8_lossy(head).into_owned(),
            ));
        }
        Ok((kind, head))
    }

    /// The length of the next value, an array; `None` for a nil one.
    ///
    /// # Errors
    /// The next value is not an array (or not all here).
    pub(crate) fn array(&mut self) -> Result<Option<usize>, RespError> {
        match self.head()? {
            (b'*', head) => Ok(usize::try_from(number(head)?).ok()),
            _ => Err(RespError::Malformed("expected an array")),
        }
    }

    /// The bytes of the next value, a string (bulk or simple); `None` for a nil one.
    ///
    /// # Errors
    /// The next value is not a string (or not all here).
    pub(crate) fn bulk(&mut self) -> Result<Option<&'a [u8]>, RespError> {
        match self.head()? {
            (b'+', text) => Ok(Some(text)),
            (b'$', head) => {
                let Ok(len) = usize::try_from(number(head)?) else {
                    return Ok(None); // $-1
                };
                let end = self.at.checked_add(len).ok_or(RespError::Incomplete)?;
                let (Some(bytes), Some(crlf)) =
                    (self.buf.get(self.at..end), self.buf.get(end..end + 2))
                else {
                    return Err(RespError::Incomplete);
                };
                if crlf != b"\r\n" {
                    return Err(RespError::Malformed("bulk string without CRLF"));
                }
                self.at = end + 2;
                Ok(Some(bytes))
            }
            _ => Err(RespError::Malformed("expected a string")),
        }
    }
}

/// The line starting at `*at` (without its CRLF), `None` if it is not all here yet;
/// moves `*at` past it.
fn line<'a>(buf: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, RespError> {
    let Some(rest) = buf.get(*at..) else {
        return Ok(None);
    };
    // Header lines are a few bytes: a plain scan beats a search's setup.
    let Some(end) = rest.iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    match rest.get(end + 1) {
        None => Ok(None),
        Some(b'\n') => {
            *at += end + 2;
            Ok(Some(&rest[..end]))
        }
        Some(_) => Err(RespError::Malformed("CR without LF")),
    }
}

/// A header's integer (lengths, counts, integer replies): at most 18 digits, so it
/// cannot overflow; RESP has no use for more.
fn number(digits: &[u8]) -> Result<i64, RespError> {
    let (negative, digits) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(RespError::Malformed("bad number"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(RespError::Malformed("bad number"));
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Ok(if negative { -n } else { n })
}

/// The value at `*at` (`None`: incomplete), moving `*at` past it; without `build`, only
/// checks it (what it returns is then `Nil`, with nothing allocated).
fn value(
    buf: &[u8],
    at: &mut usize,
    depth: usize,
    build: bool,
) -> Result<Option<Value>, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::Malformed("nested too deep"));
    }
    let Some(&kind) = buf.get(*at) else {
        return Ok(None);
    };
    *at += 1;
    let Some(head) = line(buf, at)? else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(head).into_owned();
    Ok(Some(match kind {
        b'-' => return Err(RespError::Server(text())),
        b':' => Value::Int(number(head)?),
        _ if !build && kind == b'+' => Value::Nil,
        b'+' if head == b"OK" => Value::Okay,
        b'+' => Value::SimpleString(text()),
        b'$' => {
            let Ok(len) = usize::try_from(number(head)?) else {
                return Ok(Some(Value::Nil)); // $-1
            };
            let end = at
                .checked_add(len)
                .ok_or(RespError::Malformed("bad length"))?;
            let (Some(bytes), Some(crlf)) = (buf.get(*at..end), buf.get(end..end + 2)) else {
                return Ok(None);
            };
            if crlf != b"\r\n" {
                return Err(RespError::Malformed("bulk string without CRLF"));
            }
            *at = end + 2;
            if build {
                Value::BulkString(bytes.to_vec())
            } else {
                Value::Nil
            }
        }
        b'*' => {
            let Ok(len) = usize::try_from(number(head)?) else {
                return Ok(Some(Value::Nil)); // *-1
            };
            // Each element takes at least 3 bytes: never reserve more than could follow.
            let mut items = Vec::with_capacity(if build { len.min(buf.len() / 3) } else { 0 });
            for _ in 0..len {
                match value(buf, at, depth + 1, build)? {
                    Some(v) if build => items.push(v),
                    Some(_) => {}
                    None => return Ok(None),
                }
            }
            if build {
                Value::Array(items)
            } else {
                Value::Nil
            }
        }
        _ => return Err(RespError::Malformed("unknown reply type")),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_stream_read_reply_parses_whole_and_only_whole() {
        let reply = b"*1\r\n*2\r\n$6\r\nns:log\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nP\r\n$9\r\nx\r\n/a\r\n{}\r\n";
        let want = Value::Array(vec![Value::Array(vec![
            bulk("ns:log"),
            Value::Array(vec![Value::Array(vec![
                bulk("5-1"),
                Value::Array(vec![bulk("P"), bulk("x\r\n/a\r\n{}")]),
            ])]),
        ])]);
        assert_eq!(parse(reply).unwrap(), Some((want, reply.len())));
        // Every cut short of the end asks for more; bytes after the reply are left.
        for cut in 0..reply.len() {
            assert_eq!(parse(&reply[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut two = reply.to_vec();
        two.extend_from_slice(b"+OK\r\n");
        assert_eq!(parse(&two).unwrap().unwrap().1, reply.len());
    }

    #[test]
    fn a_large_reply_arriving_in_small_pieces_waits_then_parses_whole() {
        let big = "x".repeat(100_000);
        let mut reply = b"*300\r\n".to_vec();
        for _ in 0..300 {
            reply.extend_from_slice(format!("${}\r\n{big}\r\n", big.len()).as_bytes());
        }
        for end in (0..reply.len()).step_by(4096) {
            assert_eq!(parse(&reply[..end]).unwrap(), None);
        }
        let (v, used) = parse(&reply).unwrap().unwrap();
        assert_eq!(used, reply.len());
        assert!(matches!(v, Value::Array(items) if items.len() == 300
            && items.iter().all(|i| matches!(i, Value::BulkString(b) if b.len() == 100_000))));
    }

    #[test]
    fn scalars_nils_and_errors() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Value::Okay, 5)));
        assert_eq!(
            parse(b"+PONG\r\n").unwrap(),
            Some((Value::SimpleString("PONG".into()), 7))
        );
        assert_eq!(parse(b":-42\r\n").unwrap(), Some((Value::Int(-42), 6)));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Value::Nil, 5)));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Some((Value::Nil, 5)));
        assert_eq!(parse(b"$0\r\n\r\n").unwrap(), Some((bulk(""), 6)));
        assert_eq!(
            parse(b"-ERR no such key\r\n"),
            Err(RespError::Server("ERR no such key".into()))
        );
        assert_eq!(
            parse(b"*2\r\n:1\r\n-WRONGTYPE x\r\n"),
            Err(RespError::Server("WRONGTYPE x".into()))
        );
    }

    #[test]
    fn malformed_replies_are_refused_not_trusted() {
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(b":12a\r\n").is_err());
        assert!(parse(b"$3\r\nabcd\r\n").is_err());
        // A huge announced length is no allocation: it waits for bytes that never come.
        assert_eq!(parse(b"*4000000000\r\n:1\r\n").unwrap(), None);
        assert_eq!(parse(b"$4000000000\r\nab").unwrap(), None);
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn a_reply_is_read_value_by_value_as_slices_of_it() {
        let reply = b"*3\r\n$3\r\nabc\r\n+OK\r\n*2\r\n$-1\r\n*-1\r\n";
        assert_eq!(complete(reply).unwrap(), Some(reply.len()));
        let mut r = Reply::new(reply);
        assert_eq!(r.array().unwrap(), Some(3));
        assert_eq!(r.bulk().unwrap(), Some(&b"abc"[..]));
        assert_eq!(r.bulk().unwrap(), Some(&b"OK"[..]));
        assert_eq!(r.array().unwrap(), Some(2));
        assert_eq!(r.bulk().unwrap(), None);
        assert_eq!(r.array().unwrap(), None);
        // Past the end, or the wrong type, is refused.
        assert!(r.skip().is_err());
        let mut r = Reply::new(b":1\r\n$1\r\nx\r\n");
        assert_eq!(r.array(), Err(RespError::Malformed("expected an array")));
        assert_eq!(r.array(), Err(RespError::Malformed("expected an array")));
        let mut r = Reply::new(b"*1\r\n:1\r\n");
        assert!(r.bulk().is_err());
        let mut r = Reply::new(b"-ERR gone\r\n");
        assert_eq!(r.bulk(), Err(RespError::Server("ERR gone".into())));
    }
}
