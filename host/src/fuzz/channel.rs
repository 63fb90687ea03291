//! Channel grammar and matching (`bayeux::channel`).
//!
//! On generated valid names and patterns: `matches(p, n)` holds exactly when `p` is
//! among `n`'s expansions (`matching_patterns`, which the subscription index relies on),
//! `for_each_matching_pattern` lists the same, every expansion is a valid pattern, and
//! there are depth + 2 of them. On arbitrary strings: nothing panics, and the
//! validators agree with each other.

use super::{Gen, run};
use crate::bayeux::channel::{
    for_each_matching_pattern, is_meta, is_service, is_under, is_valid_name, is_valid_pattern,
    is_wildcard, matches, matching_patterns,
};

/// Few segments, so that generated patterns often match generated names.
const SEGMENTS: &[&str] = &[
    "a", "b", "ab", "meta", "service", "hero", "x-y", "Z9", "@", "(~)",
];

#[derive(Debug)]
struct Case {
    name: String,
    pattern: String,
    any_a: String,
    any_b: String,
}

fn name(g: &mut Gen) -> String {
    let max = if g.chance(0.05) { 40 } else { 5 };
    let depth = g.between(1, max);
    let mut s = String::new();
    for _ in 0..depth {
        s.push('/');
        let segment: &&str = g.pick(SEGMENTS);
        s.push_str(segment);
    }
    s
}

fn pattern(g: &mut Gen) -> String {
    match g.below(3) {
        0 => name(g),
        k => {
            let mut p = if g.chance(0.2) {
                String::new()
            } else {
                name(g)
            };
            p.push_str(if k == 1 { "/*" } else { "/**" });
            p
        }
    }
}

/// An arbitrary string, biased towards channel-like ones.
fn any(g: &mut Gen) -> String {
    match g.below(4) {
        0 => g.text(24),
        1 => {
            let mut s = name(g);
            let at = g.below(s.len() + 1);
            let junk = g
                .pick(&["/", "*", "**", "//", "", ".", "/*/", "é", "\0"])
                .to_owned();
            if s.is_char_boundary(at) {
                s.insert_str(at, junk);
            }
            s
        }
        2 => {
            let n = g.between(0, 8);
            (0..n)
                .map(|_| *g.pick(&["/", "*", "a", "b", "**", "é"]))
                .collect()
        }
        _ => pattern(g),
    }
}

fn check_name_expansions(n: &str) {
    let list = matching_patterns(n);
    let mut seen = Vec::new();
    for_each_matching_pattern(n, |p| seen.push(p.to_owned()));
    assert_eq!(
        list, seen,
        "for_each_matching_pattern differs from matching_patterns"
    );
    let depth = n.bytes().filter(|&b| b == b'/').count();
    assert_eq!(list.len(), depth + 2, "expansions of {n}: {list:?}");
    for p in &list {
        assert!(
            is_valid_pattern(p),
            "expansion {p} of {n} is not a valid pattern"
        );
        assert!(matches(p, n), "expansion {p} does not match {n}");
    }
}

fn check(case: Case) -> u64 {
    let Case {
        name,
        pattern,
        any_a,
        any_b,
    } = case;
    assert!(is_valid_name(&name), "{name}");
    assert!(is_valid_pattern(&pattern), "{pattern}");
    check_name_expansions(&name);
    let listed = matching_patterns(&name).contains(&pattern);
    assert_eq!(
        matches(&pattern, &name),
        listed,
        "matches({pattern}, {name}) disagrees with the expansions"
    );

    // Arbitrary strings: no panic anywhere, and the grammar is consistent.
    let (a, b) = (any_a.as_str(), any_b.as_str());
    for s in [a, b] {
        let name_ok = is_valid_name(s);
        let pattern_ok = is_valid_pattern(s);
        assert!(!name_ok || pattern_ok, "{s:?} is a name but not a pattern");
        if pattern_ok && !name_ok {
            assert!(
                is_wildcard(s),
                "{s:?}: a pattern that is no name must be a wildcard"
            );
        }
        if name_ok {
            assert!(!is_wildcard(s), "{s:?}");
            check_name_expansions(s);
        }
        let _ = (is_meta(s), is_service(s), matching_patterns(s));
        for_each_matching_pattern(s, |_| {});
    }
    let m = matches(a, b);
    let _ = (is_under(a, b), matches(b, a));
    if is_valid_pattern(a) && is_valid_name(b) {
        assert_eq!(
            m,
            matching_patterns(b).iter().any(|p| p == a),
            "{a:?} vs {b:?}"
        );
    }
    if m && is_valid_name(b) {
        assert!(
            is_valid_pattern(a),
            "{a:?} matched the name {b:?} but is no pattern"
        );
    }
    1
}

#[test]
fn fuzz_channel_matching() {
    run(
        "channel",
        20_000,
        |g| Case {
            name: name(g),
            pattern: pattern(g),
            any_a: any(g),
            any_b: if g.chance(0.5) { name(g) } else { any(g) },
        },
        check,
    );
}
