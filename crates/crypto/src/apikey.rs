//! API key format: `lg_live_<32 base62 characters>_<CRC-32 as 8 hex digits>`.
//!
//! The prefix lets secret scanners recognise a leaked key; the checksum lets the server refuse a
//! mistyped or made-up key without touching the database. 32 base62 characters carry 190 bits of
//! randomness, so the stored SHA-256 of the key needs no salt or slow hash to resist guessing.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "lg_live_";
const BODY_LEN: usize = 32;
const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not a LeadGen API key (expected lg_live_…)")]
    Prefix,
    #[error("malformed API key")]
    Shape,
    #[error("API key checksum mismatch (mistyped or truncated key)")]
    Checksum,
}

fn checksum(text: &str) -> String {
    format!("{:08x}", CRC.checksum(text.as_bytes()))
}

/// A new random key.
#[must_use]
pub fn generate() -> String {
    let mut body = String::with_capacity(BODY_LEN);
    let mut buf = [0u8; 1];
    while body.len() < BODY_LEN {
        rand::fill(&mut buf[..]);
        // Rejection sampling keeps the characters uniform (248 = 4 × 62).
        if buf[0] < 248 {
            body.push(char::from(ALPHABET[usize::from(buf[0] % 62)]));
        }
    }
    let head = format!("{PREFIX}{body}");
    let sum = checksum(&head);
    format!("{head}_{sum}")
}

/// Checks the format and checksum of a presented key, without any lookup.
///
/// # Errors
/// Which part is wrong.
pub fn check(key: &str) -> Result<(), KeyFormatError> {
    let rest = key.strip_prefix(PREFIX).ok_or(KeyFormatError::Prefix)?;
    let (body, sum) = rest.split_once('_').ok_or(KeyFormatError::Shape)?;
    if body.len() != BODY_LEN
        || !body.bytes().all(|b| b.is_ascii_alphanumeric())
        || sum.len() != 8
        || !sum.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(KeyFormatError::Shape);
    }
    if checksum(&key[..PREFIX.len() + BODY_LEN]) != sum.to_ascii_lowercase() {
        return Err(KeyFormatError::Checksum);
    }
    Ok(())
}

/// What is stored: SHA-256 of the whole key.
#[must_use]
pub fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The part shown in lists to recognise a key: prefix and the first 6 characters.
#[must_use]
pub fn display_prefix(key: &str) -> String {
    key.chars().take(PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_check_and_differ() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with("lg_live_"));
        assert_eq!(a.len(), 8 + 32 + 1 + 8);
        check(&a).unwrap();
        assert_eq!(display_prefix(&a).len(), 14);
        assert_eq!(hash(&a).len(), 32);
    }

    #[test]
    fn typos_and_fakes_fail_the_checksum() {
        let k = generate();
        // Change one character of the body.
        let mut chars: Vec<char> = k.chars().collect();
        chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(check(&typo), Err(KeyFormatError::Checksum));
        assert_eq!(check(&k[..k.len() - 1]), Err(KeyFormatError::Shape));
        assert_eq!(check("sk_live_abc"), Err(KeyFormatError::Prefix));
        assert_eq!(
            check("lg_live_00000000000000000000000000000000_00000000"), // secret-scan: allow (malformed key: its checksum is wrong)
            Err(KeyFormatError::Checksum)
        );
        // The redactor recognises the format.
        let line = format!("key={k}");
        assert!(!crate::redact::redact(&line).contains(&k[10..30]));
    }
}
