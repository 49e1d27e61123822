//! Sealing small secrets at rest (TOTP secrets today): AES-256-GCM with a random 96-bit nonce and
//! associated data that binds each value to where it is stored, so a sealed value copied to
//! another row or column fails to open. The lead-field encryption key ring builds on this format.
//!
//! Format: `0x01 || nonce(12) || ciphertext+tag`. The leading version byte leaves room for key
//! rotation.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealing keys are 32 bytes")]
    KeyLength,
    #[error("sealed value cannot be opened (wrong key, place or tampering)")]
    Open,
}

/// Seals `plain` under `key` (32 bytes) for the place named by `aad`.
pub fn seal(key: &[u8], plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError::KeyLength)?;
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| SealError::Open)?;
    let mut out = Vec::with_capacity(1 + 12 + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a value sealed by [`seal`] for the same place.
pub fn open(key: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError::KeyLength)?;
    if sealed.len() < 1 + 12 + 16 || sealed[0] != VERSION {
        return Err(SealError::Open);
    }
    cipher
        .decrypt(
            Nonce::from_slice(&sealed[1..13]),
            Payload {
                msg: &sealed[13..],
                aad,
            },
        )
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_with_their_key() {
        let key = [9u8; 32];
        let sealed = seal(&key, b"JBSWY3DPEHPK3PXP", b"mfa_factors.secret:factor-1").unwrap();
        assert_eq!(
            open(&key, &sealed, b"mfa_factors.secret:factor-1").unwrap(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert_eq!(
            open(&key, &sealed, b"mfa_factors.secret:factor-2"),
            Err(SealError::Open),
            "moved to another row"
        );
        assert_eq!(
            open(&[8u8; 32], &sealed, b"mfa_factors.secret:factor-1"),
            Err(SealError::Open)
        );
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(
            open(&key, &tampered, b"mfa_factors.secret:factor-1"),
            Err(SealError::Open)
        );
        assert_ne!(
            seal(&key, b"x", b"a").unwrap(),
            seal(&key, b"x", b"a").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(seal(&[1u8; 16], b"x", b"a"), Err(SealError::KeyLength));
    }
}
