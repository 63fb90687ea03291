//! "Did you mean": `HERO_*` variables and keys that look like misspelt settings.
//!
//! `HERO_*` variables that are not settings are ignored (a test harness's `HERO_BIN`
//! shares the namespace), but one that is close to a setting's name is most likely a
//! typo: it gets a warning naming the setting. Under a section (`HERO_CLUSTER__<KEY>`)
//! every variable is meant as a setting, so an unknown key there is an error.

/// The names settings have: top-level keys and each section's keys, lowercase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Top-level keys (sections included), and `config` (`HERO_CONFIG`).
    pub(crate) top: Vec<String>,
    /// Each section (`bayeux`, `cluster`) with its keys.
    pub(crate) sections: Vec<(String, Vec<String>)>,
}

/// What the `HERO_*` variables say beside the settings they set.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Review {
    /// Variables that look like misspelt settings; ignored.
    pub(crate) warnings: Vec<String>,
    /// Unknown keys of a section (`HERO_CLUSTER__HEARTBEAT`): start-up stops.
    pub(crate) errors: Vec<String>,
}

/// Edit distance with adjacent transpositions counted as one edit ("optimal string
/// alignment"): `prot` is one edit from `port`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let width = b.len() + 1;
    // Three rows of the table: two back (transpositions), one back, this one.
    let mut rows = vec![vec![0usize; width]; 3];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (i % 3, (i + 2) % 3, (i + 1) % 3);
        rows[cur][0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[prev][j] + 1)
                .min(rows[cur][j - 1] + 1)
                .min(rows[prev][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[prev2][j - 2] + 1);
            }
            rows[cur][j] = best;
        }
    }
    rows[a.len() % 3][b.len()]
}

/// How far `name` is from `key` if it is close enough to be a typo of it.
///
/// A few edits, more for longer keys; for keys of four letters or fewer only letters
/// swapped or replaced, not dropped or added (`bin` is a word of its own, not `bind`
/// misspelt; `prot` is `port`). Or one is the other with a `_word` more or less:
/// `heartbeat` for `heartbeat_ms`, `redis_url` for `redis`.
fn closeness(name: &str, key: &str) -> Option<usize> {
    let d = distance(name, key);
    let allowed = match key.len() {
        0..=4 if name.len() == key.len() => 1,
        0..=4 => 0,
        5..=8 => 1,
        9..=12 => 2,
        _ => 3,
    };
    if d <= allowed {
        return Some(d);
    }
    let (short, long) = if name.len() < key.len() {
        (name, key)
    } else {
        (key, name)
    };
    (short.len() >= 3 && long.starts_with(short) && long[short.len()..].starts_with('_'))
        .then_some(d)
}

/// The key of `keys` that `name` most likely misspells (nearest first, then first
/// listed); `None` if `name` is a key or close to none.
pub(crate) fn closest<'a>(name: &str, keys: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for key in keys {
        if key == name {
            return None;
        }
        if let Some(d) = closeness(&name, key)
            && best.is_none_or(|(b, _)| d < b)
        {
            best = Some((d, key));
        }
    }
    best.map(|(_, key)| key)
}

fn env_name(parts: &[&str]) -> String {
    format!("HERO_{}", parts.join("__").to_ascii_uppercase())
}

/// Reviews the names of the environment variables against `settings`.
pub(crate) fn review(vars: impl IntoIterator<Item = String>, settings: &Settings) -> Review {
    let mut review = Review::default();
    let section = |name: &str| {
        settings
            .sections
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, keys)| keys)
    };
    let mut names: Vec<String> = vars.into_iter().collect();
    names.sort();
    for var in names {
        let Some(rest) = var.get(5..).filter(|_| var.starts_with("HERO_")) else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let (top, sub) = match lower.split_once("__") {
            Some((top, sub)) => (top, Some(sub)),
            None => (lower.as_str(), None),
        };
        if settings.top.iter().any(|k| k == top) {
            // A setting, or a key of a section: a key that is not one stops start-up
            // (what deserialising would do, said with the variable's name).
            if let (Some(keys), Some(sub)) = (section(top), sub)
                && !sub.is_empty()
                && !keys.iter().any(|k| k == sub)
            {
                let hint = match closest(sub, keys.iter().map(String::as_str)) {
                    Some(key) => format!(
                        "did you mean {} (`{key}` of [{top}])?",
                        env_name(&[top, key])
                    ),
                    None => format!("its keys are {}", keys.join(", ")),
                };
                review.errors.push(format!(
                    "{var} is not a setting: [{top}] has no key `{sub}`; {hint}"
                ));
            }
            continue;
        }
        let Some(key) = closest(top, settings.top.iter().map(String::as_str)) else {
            continue; // not a setting, nor like one: another tool's variable
        };
        let suggestion = match (section(key), sub) {
            (Some(keys), Some(sub)) => {
                let sub = if keys.iter().any(|k| k == sub) {
                    sub
                } else {
                    closest(sub, keys.iter().map(String::as_str)).unwrap_or(sub)
                };
                format!("{} (`{sub}` of [{key}])", env_name(&[key, sub]))
            }
            _ => format!("{} (`{key}`)", env_name(&[key])),
        };
        review.warnings.push(format!(
            "{var} is not a setting and is ignored; did you mean {suggestion}?"
        ));
    }
    review
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Settings {
            top: strings(&[
                "bind",
                "port",
                "public",
                "plugins",
                "plugin_reload_ms",
                "server_name",
                "max_body_bytes",
                "tls_cert",
                "redis",
                "bayeux",
                "cluster",
                "config",
            ]),
            sections: vec![
                ("bayeux".into(), strings(&["timeout_ms", "mount_path"])),
                (
                    "cluster".into(),
                    strings(&["namespace", "heartbeat_ms", "node_timeout_ms"]),
                ),
            ],
        }
    }

    fn review_of(vars: &[&str]) -> Review {
        review(vars.iter().map(|v| (*v).to_owned()), &settings())
    }

    #[test]
    fn distance_counts_a_swap_as_one_edit() {
        assert_eq!(distance("prot", "port"), 1);
        assert_eq!(distance("port", "port"), 0);
        assert_eq!(distance("bin", "bind"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("heartbeat", "heartbeat_ms"), 3);
    }

    #[test]
    fn misspelt_settings_are_found_and_words_of_their_own_are_not() {
        let keys = settings().top;
        let closest = |name| closest(name, keys.iter().map(String::as_str));
        assert_eq!(closest("prot"), Some("port"));
        assert_eq!(closest("PROT"), Some("port"));
        assert_eq!(closest("plugin_reload"), Some("plugin_reload_ms"));
        assert_eq!(closest("plugin"), Some("plugins"));
        assert_eq!(closest("redsi"), Some("redis"));
        assert_eq!(closest("redis_url"), Some("redis"));
        assert_eq!(closest("max_body"), Some("max_body_bytes"));
        assert_eq!(closest("sever_name"), Some("server_name"));
        assert_eq!(closest("port"), None, "a setting is not a misspelling");
        assert_eq!(closest("bin"), None, "HERO_BIN names a binary");
        assert_eq!(closest("testbed_bin"), None);
        assert_eq!(closest("client"), None);
        assert_eq!(closest("home"), None);
        assert_eq!(closest("rustc_version"), None);
    }

    #[test]
    fn variables_get_a_warning_naming_the_likely_setting() {
        let r = review_of(&[
            "HERO_PROT",
            "HERO_PLUGIN_RELOAD",
            "HERO_CLUSTR__NAMESPACE",
            "HERO_BIN",
            "HERO_TESTBED_BIN",
            "HERO_PORT",
            "HERO_CONFIG",
            "HERO_CLUSTER__NAMESPACE",
            "PATH",
        ]);
        assert_eq!(
            r.warnings,
            [
                "HERO_CLUSTR__NAMESPACE is not a setting and is ignored; did you mean \
                 HERO_CLUSTER__NAMESPACE (`namespace` of [cluster])?",
                "HERO_PLUGIN_RELOAD is not a setting and is ignored; did you mean \
                 HERO_PLUGIN_RELOAD_MS (`plugin_reload_ms`)?",
                "HERO_PROT is not a setting and is ignored; did you mean HERO_PORT (`port`)?",
            ]
        );
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    #[test]
    fn an_unknown_key_of_a_section_is_an_error_naming_the_likely_one() {
        let r = review_of(&["HERO_CLUSTER__HEARTBEAT", "HERO_BAYEUX__NOPE"]);
        assert_eq!(
            r.errors,
            [
                "HERO_BAYEUX__NOPE is not a setting: [bayeux] has no key `nope`; its keys are \
                 timeout_ms, mount_path",
                "HERO_CLUSTER__HEARTBEAT is not a setting: [cluster] has no key `heartbeat`; \
                 did you mean HERO_CLUSTER__HEARTBEAT_MS (`heartbeat_ms` of [cluster])?",
            ]
        );
        assert!(r.warnings.is_empty());
    }
}
