//! `application/x-www-form-urlencoded` text (form bodies and query strings), decoded
//! one way for every server: `+` is a space, percent escapes are UTF-8 (invalid
//! sequences become U+FFFD rather than an error, as browsers send what they send).

use percent_encoding::percent_decode_str;

/// The decoded `(name, value)` pairs of `text`, in order (a pair without `=` has an
/// empty value; empty pairs are skipped).
pub fn pairs(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

/// The decoded value of the first pair named `key`.
pub fn value(text: &str, key: &str) -> Option<String> {
    pairs(text).find_map(|(k, v)| (k == key).then_some(v))
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_plus_and_escapes() {
        let got: Vec<_> = pairs("a=1&&message=%5B%7B%7D%5D&x&b=c+d%2B").collect();
        let want = [("a", "1"), ("message", "[{}]"), ("x", ""), ("b", "c d+")];
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((k.as_str(), v.as_str()), (wk, wv));
        }
    }

    #[test]
    fn value_is_the_first_of_its_name() {
        assert_eq!(value("m=1&m=2", "m").as_deref(), Some("1"));
        assert_eq!(value("a%20b=x", "a b").as_deref(), Some("x"));
        assert_eq!(value("x=1", "message"), None);
        assert_eq!(value("bad=%FF", "bad").as_deref(), Some("\u{fffd}"));
    }
}
