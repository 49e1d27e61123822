//! Time-based one-time passwords (RFC 6238): HMAC-SHA1, 30-second steps, 6 digits, the form
//! every authenticator app reads from an `otpauth://` URI.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;

/// A new 160-bit secret (RFC 4226's recommended length).
#[must_use]
pub fn new_secret() -> Vec<u8> {
    let mut s = vec![0u8; 20];
    rand::rng().fill_bytes(&mut s);
    s
}

/// The secret as authenticator apps type it: base32 without padding.
#[must_use]
pub fn secret_base32(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// Reads a base32 secret as authenticator apps show it (spaces and case ignored).
#[must_use]
pub fn parse_base32(text: &str) -> Option<Vec<u8>> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    BASE32_NOPAD
        .decode(clean.trim_end_matches('=').as_bytes())
        .ok()
}

/// The time step a Unix time falls in.
#[must_use]
pub fn step_at(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// The code for one time step (RFC 4226 dynamic truncation).
#[must_use]
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let Ok(mut mac) = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The step whose code `code` is, within ±1 step of `now`, if any. Compared in constant time.
#[must_use]
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    use subtle::ConstantTimeEq;
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    [current - 1, current, current + 1]
        .into_iter()
        .find(|s| bool::from(code_at_step(secret, *s).as_bytes().ct_eq(code.as_bytes())))
}

/// The `otpauth://` URI an authenticator app enrolls from.
#[must_use]
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        enc(issuer),
        enc(account),
        secret_base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8-digit codes there; the last 6 digits are ours).
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at_step(secret, step_at(t)), &eight[2..], "t={t}");
        }
    }

    #[test]
    fn window_is_one_step_each_side() {
        let s = new_secret();
        let now = 1_800_000_015;
        let code = code_at_step(&s, step_at(now));
        assert_eq!(matching_step(&s, &code, now), Some(step_at(now)));
        assert_eq!(matching_step(&s, &code, now + 30), Some(step_at(now)));
        assert_eq!(matching_step(&s, &code, now - 30), Some(step_at(now)));
        assert_eq!(matching_step(&s, &code, now + 60), None);
        assert_eq!(matching_step(&s, "12345", now), None);
        assert_eq!(matching_step(&s, "abcdef", now), None);
        let uri = otpauth_uri(&s, "LeadGen", "jane@acme.io");
        assert!(
            uri.starts_with("otpauth://totp/LeadGen:jane@acme.io?secret="),
            "{uri}"
        );
        assert!(uri.contains(&secret_base32(&s)));
        let b32 = secret_base32(&s).to_lowercase();
        assert_eq!(
            parse_base32(&format!("{} {}", &b32[..4], &b32[4..])),
            Some(s)
        );
    }
}
