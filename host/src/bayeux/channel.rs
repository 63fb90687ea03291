//! Channel grammar and matching (PROTOCOL 1.4).
//!
//! ```text
//! segment = [A-Za-z0-9-_!~()$@]+
//! name    = /segment(/segment)*
//! pattern = name | prefix/* | prefix/**     (prefix may be empty: /* and /**)
//! ```

/// Whether `b` may appear in a channel segment.
fn segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'!' | b'~' | b'(' | b')' | b'$' | b'@')
}

/// Whether `name` is a concrete channel name (`/a/b`).
pub fn is_valid_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('/') else {
        return false;
    };
    rest.split('/')
        .all(|seg| !seg.is_empty() && seg.bytes().all(segment_byte))
}

/// Whether `pattern` is a name or a wildcard pattern (`/a/*`, `/a/**`, `/*`, `/**`).
pub fn is_valid_pattern(pattern: &str) -> bool {
    if is_valid_name(pattern) {
        return true;
    }
    let prefix = pattern
        .strip_suffix("/**")
        .or_else(|| pattern.strip_suffix("/*"));
    match prefix {
        Some("") => true,
        Some(p) => is_valid_name(p),
        None => false,
    }
}

/// Whether `pattern` is a wildcard pattern.
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.ends_with("/*") || pattern.ends_with("/**")
}

/// Whether the channel (or pattern) is under `/meta/`.
pub fn is_meta(channel: &str) -> bool {
    channel == "/meta" || channel.starts_with("/meta/")
}

/// Whether the channel (or pattern) is under `/service/`.
pub fn is_service(channel: &str) -> bool {
    channel == "/service" || channel.starts_with("/service/")
}

/// Whether `channel` lies under `prefix` (a name like `/hero`), wildcards included.
pub fn is_under(channel: &str, prefix: &str) -> bool {
    !prefix.is_empty()
        && channel
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `pattern` matches the channel `name`.
pub fn matches(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/**") {
        // one or more segments after the prefix
        return name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'));
    }
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|seg| !seg.is_empty() && !seg.contains('/'));
    }
    pattern == name
}

/// Every pattern that matches the channel `name`: the name itself, `<parent>/*`, and
/// `<ancestor>/**` for each ancestor (including the root). Publishing looks these up
/// in the subscription index, so its cost follows the channel depth, not the number
/// of subscriptions.
pub fn matching_patterns(name: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(8);
    for_each_matching_pattern(name, |p| out.push(p.to_owned()));
    out
}

/// Calls `f` with each pattern [`matching_patterns`] lists, in the same order, without
/// allocating a string per pattern (publish runs this for every message).
pub fn for_each_matching_pattern(name: &str, mut f: impl FnMut(&str)) {
    f(name);
    let mut scratch = String::with_capacity(name.len() + 3);
    let mut idx = name.len();
    let mut first = true;
    while let Some(pos) = name[..idx].rfind('/') {
        let prefix = &name[..pos];
        if first {
            scratch.clear();
            scratch.push_str(prefix);
            scratch.push_str("/*");
            f(&scratch);
            first = false;
        }
        scratch.clear();
        scratch.push_str(prefix);
        scratch.push_str("/**");
        f(&scratch);
        if pos == 0 {
            break;
        }
        idx = pos;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in ["/a", "/a/b", "/a-_!~()$@Z9/b", "/meta/connect"] {
            assert!(is_valid_name(ok), "{ok}");
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in [
            "", "/", "a", "/a/", "//a", "/a.b", "/a b", "/a/*", "/*", "/a/**/b", "/é",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        for ok in ["/*", "/**", "/a/*", "/a/b/**"] {
            assert!(is_valid_pattern(ok), "{ok}");
        }
        for bad in [
            "/a/*/b", "/a/**/b", "*", "/a*", "/a/***", "/**/*", "/a/b*", "//*",
        ] {
            assert!(!is_valid_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn matching_table() {
        let yes = [
            ("/**", "/a/b/c"),
            ("/a/b/c", "/a/b/c"),
            ("/a/b/*", "/a/b/c"),
            ("/a/**", "/a/b/c"),
            ("/a/b/**", "/a/b/c"),
            ("/*", "/a"),
            ("/**", "/a"),
            ("/a/*", "/a/b"),
        ];
        let no = [
            ("/a/**", "/a"),
            ("/a/*", "/a"),
            ("/a/*", "/a/b/c"),
            ("/*", "/a/b"),
            ("/a/b", "/a/b/c"),
            ("/a/b/c", "/a/b"),
            ("/ab/**", "/a/b"),
            ("/a/**", "/ab/c"),
            ("/a/*", "/ab"),
        ];
        for (p, n) in yes {
            assert!(matches(p, n), "{p} should match {n}");
            assert!(
                matching_patterns(n).contains(&p.to_owned()),
                "{p} in index of {n}"
            );
        }
        for (p, n) in no {
            assert!(!matches(p, n), "{p} should not match {n}");
            assert!(
                !matching_patterns(n).contains(&p.to_owned()),
                "{p} not in index of {n}"
            );
        }
        assert_eq!(
            matching_patterns("/a/b/c"),
            ["/a/b/c", "/a/b/*", "/a/b/**", "/a/**", "/**"]
        );
        assert_eq!(matching_patterns("/a"), ["/a", "/*", "/**"]);
    }

    #[test]
    fn classes() {
        assert!(is_meta("/meta/connect") && is_meta("/meta/**") && !is_meta("/metadata"));
        assert!(is_service("/service/x") && !is_service("/services"));
        assert!(is_under("/hero/x", "/hero") && is_under("/hero/**", "/hero"));
        assert!(is_under("/hero", "/hero") && !is_under("/heroes", "/hero"));
        assert!(is_wildcard("/a/*") && is_wildcard("/**") && !is_wildcard("/a"));
    }
}
