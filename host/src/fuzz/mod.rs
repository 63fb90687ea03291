//! Fuzz targets, run as ordinary tests (`cargo test -p hero --lib fuzz`).
//!
//! cargo-fuzz/libFuzzer needs a nightly toolchain (its instrumentation and sanitizer
//! flags are `-Z` options) and only stable exists here, so the targets are driven by
//! this small harness instead: a seeded fast RNG ([`Gen`], over `rand`'s `SmallRng`, no
//! new dependency) produces structured inputs (JSON shaped like Bayeux messages,
//! definitions and params, request paths) and raw byte mutations of valid seeds; every
//! case runs under `catch_unwind`, so a panic is counted and reported with the input
//! that caused it rather than ending the run.
//!
//! - `HERO_FUZZ_CASES`: inputs per target (default: a few thousand, so that `cargo test`
//!   in debug stays quick); `bench/fuzz.sh` runs the same tests in release with 10 M.
//! - `HERO_FUZZ_SEED`: the base seed (default fixed, so `cargo test` is deterministic).
//!   Case `i` uses its own seed derived from it, so any case replays alone:
//! - `HERO_FUZZ_REPLAY=i`: run only case `i` (with the same seed) and print its input.
//!
//! Every target prints `fuzz <target>: <inputs> inputs, <s> s, <n> crashes`, then fails
//! if anything crashed. Two targets are child modules of the code they test, to reach
//! its private parts: `fuzz/bayeux.rs` of `bayeux` and `fuzz/public.rs` of
//! `servers::public`.

#![allow(clippy::unwrap_used)]

mod channel;
mod params;
mod verbs;

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Number, Value};

/// Reported crashes per target before it stops (the first ones say it all).
const MAX_CRASHES: u64 = 10;

fn env_u64(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let raw = raw.trim().replace('_', "");
    match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    }
}

/// SplitMix64: spreads (seed, case) into independent case seeds.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs one target until it has fed `default_inputs` inputs to the code under test
/// (`HERO_FUZZ_CASES` overrides it): each case's input comes from `generate` with the
/// case's own RNG, then `check` runs on it and returns how many inputs it fed (1 for
/// most targets; a Bayeux episode counts its batches). Panics at the end if any case
/// panicked.
///
/// Returns the number of inputs run.
pub(crate) fn run<I: Debug>(
    target: &str,
    default_inputs: u64,
    mut generate: impl FnMut(&mut Gen) -> I,
    mut check: impl FnMut(I) -> u64,
) -> u64 {
    let seed = env_u64("HERO_FUZZ_SEED").unwrap_or(0x4845_524f);
    let wanted = env_u64("HERO_FUZZ_CASES").unwrap_or(default_inputs);
    let replay = env_u64("HERO_FUZZ_REPLAY");
    let started = Instant::now();
    let mut inputs = 0u64;
    let mut crashes = 0u64;
    let mut case = replay.unwrap_or(0);
    while inputs < wanted {
        let case_seed = mix(seed ^ mix(case));
        let input = generate(&mut Gen::new(case_seed));
        if replay.is_some() {
            println!("fuzz {target}: case {case} input {input:?}");
        }
        match catch_unwind(AssertUnwindSafe(|| check(input))) {
            Ok(n) => inputs += n.max(1),
            Err(panic) => {
                inputs += 1;
                crashes += 1;
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(non-string panic)");
                // Same seed, same input: regenerate it for the report.
                let input = format!("{:?}", generate(&mut Gen::new(case_seed)));
                let mut shown: String = input.chars().take(4_000).collect();
                if shown.len() < input.len() {
                    shown.push_str("...");
                }
                eprintln!(
                    "fuzz {target}: CRASH at case {case} (HERO_FUZZ_SEED={seed:#x} \
                     HERO_FUZZ_REPLAY={case}): {what}\n  input: {shown}"
                );
                if crashes >= MAX_CRASHES {
                    eprintln!("fuzz {target}: stopping after {crashes} crashes");
                    break;
                }
            }
        }
        if replay.is_some() {
            break;
        }
        case += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fuzz {target}: {inputs} inputs, {secs:.1} s ({:.0}/s), {crashes} crashes, seed {seed:#x}",
        inputs as f64 / secs.max(1e-9)
    );
    assert_eq!(
        crashes, 0,
        "fuzz {target}: {crashes} crashing inputs (see above)"
    );
    inputs
}

/// A seeded generator of fuzz inputs.
#[derive(Debug)]
pub(crate) struct Gen {
    rng: SmallRng,
}

/// Byte sequences that make JSON (and paths) interesting when spliced in.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"null",
    b"true",
    b"1e999",
    b"-",
    b"0.",
    b"-0",
    b"18446744073709551616",
    b"\"\\u0000\"",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xf0\x9f\x98\x80",
    b"\x00",
    b"/",
    b"..",
    b"%",
    b"%2e",
    b"%2F",
    b"%00",
    b"/**",
    b"/*",
    b"\"channel\":",
    b"\"clientId\":",
    b"\"/meta/connect\"",
    b"\"subscription\":",
    b"[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":",
];

/// Strings that mean something somewhere in the code under test.
const WORDS: &[&str] = &[
    "",
    "a",
    "b",
    "x",
    "1",
    "0",
    "-1",
    "1.0",
    "true",
    "null",
    "action",
    "apiVersion",
    "callback",
    "file",
    "room",
    "params",
    "event",
    "message",
    "defaultRoom",
    "/meta/handshake",
    "/meta/connect",
    "/meta/subscribe",
    "/meta/unsubscribe",
    "/meta/disconnect",
    "/a",
    "/a/*",
    "/**",
    "long-polling",
    "websocket",
    "..",
    "%2e%2e",
    " ",
    "\u{0}",
    "\\",
    "é",
    "日本",
    "😀",
    "\u{202e}",
    "\u{feff}",
    "a:b:c",
    "401::x",
];

impl Gen {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n)
    }

    /// A number in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..=hi)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A random `u64`.
    pub(crate) fn u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// One of `items`.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A character: mostly ASCII, sometimes control, multi-byte or special.
    pub(crate) fn char(&mut self) -> char {
        match self.below(10) {
            0..=5 => (b' ' + self.below(95) as u8) as char,
            6 => self
                .pick(&['/', '*', '.', '%', '\\', '"', ':', ','])
                .to_owned(),
            7 => char::from_u32(self.below(0x20) as u32).unwrap_or('\0'),
            8 => self
                .pick(&[
                    'é',
                    'ß',
                    '日',
                    '😀',
                    '\u{202e}',
                    '\u{feff}',
                    '\u{7f}',
                    '\u{10ffff}',
                ])
                .to_owned(),
            _ => char::from_u32(self.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
        }
    }

    /// A string of up to `max` characters.
    pub(crate) fn text(&mut self, max: usize) -> String {
        let n = self.between(0, max);
        (0..n).map(|_| self.char()).collect()
    }

    /// A string: a meaningful word, short random text, or (rarely) a long one.
    pub(crate) fn string(&mut self) -> String {
        match self.below(20) {
            0..=8 => (*self.pick(WORDS)).to_owned(),
            9..=17 => self.text(12),
            18 => self.text(200),
            _ => {
                let c = self.char();
                std::iter::repeat_n(c, self.between(1000, 5000)).collect()
            }
        }
    }

    /// A JSON number: small, boundary, or float.
    pub(crate) fn number(&mut self) -> Value {
        match self.below(8) {
            0 => Value::from(self.below(10)),
            1 => Value::from(-(self.below(1000) as i64)),
            2 => Value::from(*self.pick(&[i64::MIN, i64::MAX, 0, -1, 1 << 53])),
            3 => Value::from(u64::MAX - self.below(2) as u64),
            4 => Number::from_f64(*self.pick(&[0.5, -0.0, 1e308, -1e308, 5e-324, 1.5e9]))
                .map_or(Value::Null, Value::Number),
            5 => Number::from_f64(f64::from_bits(self.u64())).map_or(Value::from(0), Value::Number),
            6 => Value::from(self.u64() as i64),
            _ => Value::from(self.below(100_000)),
        }
    }

    /// Any JSON value, nested at most `depth` levels.
    pub(crate) fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth == 0 { 4 } else { 7 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(0.5)),
            2 => self.number(),
            3 => Value::String(self.string()),
            4 | 5 => {
                let n = self.between(0, 4);
                Value::Array((0..n).map(|_| self.value(depth - 1)).collect())
            }
            _ => {
                let n = self.between(0, 4);
                let mut map = Map::new();
                for _ in 0..n {
                    let key = self.string();
                    let value = self.value(depth - 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        }
    }

    /// A value nested `levels` deep (arrays and objects), for the recursion limits.
    pub(crate) fn deep(&mut self, levels: usize) -> Value {
        let mut v = self.value(0);
        for _ in 0..levels {
            v = if self.chance(0.5) {
                Value::Array(vec![v])
            } else {
                let mut m = Map::new();
                m.insert("a".into(), v);
                Value::Object(m)
            };
        }
        v
    }

    /// Random bytes, up to `max`.
    pub(crate) fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.between(0, max);
        (0..n).map(|_| self.rng.random()).collect()
    }

    /// `seed` with 1 to 8 random edits: bit flips, byte changes, token insertions,
    /// deletions, duplications, truncation.
    pub(crate) fn mutate(&mut self, mut data: Vec<u8>) -> Vec<u8> {
        for _ in 0..self.between(1, 8) {
            let len = data.len();
            let at = if len == 0 { 0 } else { self.below(len + 1) };
            match self.below(7) {
                0 if len > 0 => {
                    let i = self.below(len);
                    data[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    data[i] = self.rng.random();
                }
                2 => {
                    let token = *self.pick(TOKENS);
                    data.splice(at..at, token.iter().copied());
                }
                3 if at < len => {
                    let end = (at + self.between(1, 16)).min(len);
                    data.drain(at..end);
                }
                4 if at < len => {
                    let end = (at + self.between(1, 64)).min(len);
                    let chunk = data[at..end].to_vec();
                    data.splice(at..at, chunk);
                }
                5 if len > 0 => data.truncate(self.below(len)),
                _ => {
                    let b = self.rng.random();
                    data.insert(at, b);
                }
            }
        }
        data
    }
}

/// Bytes shown as text when they are UTF-8 (readable crash reports).
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

#[test]
fn generator_is_deterministic() {
    let mut a = Gen::new(7);
    let mut b = Gen::new(7);
    assert_eq!(a.value(4), b.value(4));
    assert_eq!(
        a.mutate(b"{\"a\":1}".to_vec()),
        b.mutate(b"{\"a\":1}".to_vec())
    );
    assert_eq!(mix(1), mix(1));
    assert_ne!(mix(1), mix(2));
}
