//! JSONP callback names, checked one way for `/api` and Bayeux callback-polling: a
//! dotted path of JavaScript identifiers (`a.b_c$`), at most 128 bytes, so that the
//! name written before `(` can only ever be a function reference.

/// Longest callback name accepted.
const MAX_CALLBACK_BYTES: usize = 128;

/// Whether `name` is a safe JSONP callback.
pub fn is_valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CALLBACK_BYTES
        && name.split('.').all(|part| {
            let mut bytes = part.bytes();
            bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_pass_and_anything_else_fails() {
        for ok in [
            "cb",
            "jsonpcallback",
            "_a$",
            "A.b.C",
            "$",
            "x1.y2",
            "jQuery123_456",
        ] {
            assert!(is_valid_callback(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "", "1a", "a..b", "a.", ".a", "a-b", "alert(1)", "a b", "a.1", "é", &long,
        ] {
            assert!(!is_valid_callback(bad), "{bad}");
        }
    }
}
