//! Unguessable identifiers for Bayeux clients and connections.
//!
//! 128 bits from the thread-local CSPRNG, written in lower-case base 36.

/// 128 bits from the thread-local CSPRNG, in lower-case base 36 (`^[a-z0-9]+$`).
pub fn random_id() -> String {
    let mut n: u128 = rand::random();
    let mut digits = Vec::with_capacity(25);
    loop {
        // `n % 36` < 36, so the cast is lossless.
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::random_id;

    #[test]
    fn ids_are_base36_and_distinct() {
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        // 36^24 < 2^128 <= 36^25: a 128-bit number takes up to 25 digits.
        assert!(a.len() <= 25);
    }
}
