//! Password hashing (bcrypt) and the password policy.
//!
//! bcrypt only reads the first 72 bytes of a password and silently ignores the rest. Rather than
//! let two different long passwords be the same password, LeadGen refuses passwords longer than
//! 72 bytes with a clear message; this also keeps imported Supabase hashes (plain bcrypt)
//! verifiable. There are no composition rules: length, a list of common passwords and zxcvbn's
//! estimate decide.

use std::collections::HashSet;
use std::sync::LazyLock;

/// Lowest bcrypt cost LeadGen accepts; the default is 12.
pub const MIN_COST: u32 = 10;
pub const MIN_LENGTH: usize = 8;
/// bcrypt's input limit, in bytes.
pub const MAX_BYTES: usize = 72;

/// Why a password was refused, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    #[error("password must be at least {MIN_LENGTH} characters")]
    TooShort,
    #[error(
        "password must be at most {MAX_BYTES} bytes (72 plain letters; fewer with accents or emoji)"
    )]
    TooLong,
    #[error("this password is one of the most common passwords; choose another")]
    Common,
    #[error("this password is too easy to guess{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    Guessable(String),
}

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Checks a new password. `context` holds words the password should not lean on (email, name).
pub fn check_policy(password: &str, context: &[&str]) -> Result<(), WeakPassword> {
    if password.chars().count() < MIN_LENGTH {
        return Err(WeakPassword::TooShort);
    }
    if password.len() > MAX_BYTES {
        return Err(WeakPassword::TooLong);
    }
    if COMMON.contains(password.to_lowercase().as_str()) {
        return Err(WeakPassword::Common);
    }
    let estimate = zxcvbn::zxcvbn(password, context);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string())
            .unwrap_or_default();
        return Err(WeakPassword::Guessable(hint));
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("bcrypt cost {0} is below the minimum of {MIN_COST}")]
    CostTooLow(u32),
    #[error("password hashing failed: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

/// Hashes with bcrypt at `cost`. CPU-heavy (≈0.25 s at cost 12): call it off the async runtime.
pub fn hash(password: &str, cost: u32) -> Result<String, HashError> {
    if cost < MIN_COST {
        return Err(HashError::CostTooLow(cost));
    }
    Ok(bcrypt::hash(password, cost)?)
}

/// Verifies against any `$2a$`, `$2b$` or `$2y$` hash. A malformed hash never verifies.
#[must_use]
pub fn verify(password: &str, hash: &str) -> bool {
    password.len() <= MAX_BYTES && bcrypt::verify(password, hash).unwrap_or(false)
}

/// The cost a stored hash was made with, to rehash on login when the configured cost changed.
#[must_use]
pub fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2)?.parse().ok()
}

/// A hash of a fixed random password at `cost`, verified against when the account does not exist
/// so that an unknown email takes as long as a wrong password.
pub fn decoy_hash(cost: u32) -> String {
    static DECOYS: LazyLock<std::sync::Mutex<std::collections::HashMap<u32, String>>> =
        LazyLock::new(Default::default);
    let Ok(mut map) = DECOYS.lock() else {
        return String::new();
    };
    map.entry(cost)
        .or_insert_with(|| {
            bcrypt::hash("decoy password that nobody has", cost.max(MIN_COST)).unwrap_or_default()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refuses_short_long_common_and_guessable() {
        assert_eq!(check_policy("abc", &[]), Err(WeakPassword::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(73), &[]),
            Err(WeakPassword::TooLong)
        );
        assert_eq!(
            check_policy(&"é".repeat(37), &[]),
            Err(WeakPassword::TooLong),
            "74 bytes"
        );
        assert_eq!(check_policy("Password1", &[]), Err(WeakPassword::Common));
        let me = ["jane.doe@acme.io", "jane", "doe"];
        for guessable in [
            "janedoe1",
            "qwertyuiop12",
            "aaaaaaaaaaaa",
            "iloveyou2024",
            "abcd1234efgh",
        ] {
            assert!(
                matches!(
                    check_policy(guessable, &me),
                    Err(WeakPassword::Guessable(_))
                ),
                "{guessable}"
            );
        }
        assert_eq!(check_policy("correct horse battery staple 42", &[]), Ok(()));
        assert_eq!(
            check_policy(&"Zq8#mVt2!pLw9&rX".repeat(4), &[]),
            Ok(()),
            "64 bytes is fine"
        );
    }

    #[test]
    fn hashes_verify_and_imported_variants_work() {
        let h = hash("correct horse battery staple", MIN_COST).unwrap();
        assert!(h.starts_with("$2b$10$"));
        assert_eq!(cost_of(&h), Some(10));
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        // The same hash under the $2a$ and $2y$ prefixes other systems write.
        for prefix in ["$2a$", "$2y$"] {
            let imported = format!("{prefix}{}", &h[4..]);
            assert!(
                verify("correct horse battery staple", &imported),
                "{prefix}"
            );
        }
        assert!(!verify("anything", "not a hash"));
        assert!(matches!(hash("x", 4), Err(HashError::CostTooLow(4))));
    }
}
