//! Token material: the keys derived from the application key, access tokens, and refresh tokens.
//!
//! Refresh tokens form a chain: a session starts with 256 random bits, and each rotation's
//! successor is the HMAC of its predecessor under a server key. Only SHA-256 hashes are stored, yet
//! when two tabs refresh with the same token at once, the server can recompute the successor the
//! first tab received and hand the second one the same current token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use leadgen_crypto::jwt::{self, Key, KeyRing, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Config;

/// Keys derived from the application key, one per purpose.
pub struct AuthKeys {
    pub ring: KeyRing,
    refresh: Vec<u8>,
    seal: Vec<u8>,
    pub validation: Validation,
    pub issuer: String,
    pub access_ttl: i64,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthKeys { .. }")
    }
}

fn derive(app_key: &str, label: &str) -> Vec<u8> {
    let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(app_key.as_bytes()) else {
        return Vec::new();
    };
    m.update(label.as_bytes());
    m.finalize().into_bytes().to_vec()
}

impl AuthKeys {
    pub fn new(app_key: &SecretString, config: &Config) -> anyhow::Result<Self> {
        let key = app_key.expose_secret();
        let signing = Key::new(&derive(key, "leadgen jwt signing key v1"))?;
        let issuer = format!("{}/auth/v1", config.site_url());
        Ok(Self {
            ring: KeyRing::new(vec![signing])?,
            refresh: derive(key, "leadgen refresh token chain v1"),
            seal: derive(key, "leadgen mfa secret seal v1"),
            validation: Validation {
                algorithms: config.auth.jwt_algorithms.clone(),
                issuer: issuer.clone(),
                audience: config.auth.audience.clone(),
                max_lifetime_secs: config.auth.max_access_token_ttl_secs,
                leeway_secs: 5,
            },
            issuer,
            access_ttl: config.auth.access_token_ttl_secs,
        })
    }

    /// The 32-byte key that seals TOTP secrets at rest.
    #[must_use]
    pub fn seal_key(&self) -> &[u8] {
        &self.seal
    }

    /// The token that replaces `token` when it is rotated.
    #[must_use]
    pub fn next_refresh_token(&self, token: &str) -> String {
        let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(&self.refresh) else {
            return random_token();
        };
        m.update(token.as_bytes());
        B64.encode(m.finalize().into_bytes())
    }
}

/// 256 random bits, URL-safe.
#[must_use]
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    B64.encode(raw)
}

/// What is stored for a token: its SHA-256.
#[must_use]
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// One `amr` entry: how and when the session was authenticated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Amr {
    pub method: String,
    pub timestamp: i64,
}

/// Access token claims (Supabase's set, plus `org_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: Uuid,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub email: String,
    pub role: String,
    pub aal: String,
    pub amr: Vec<Amr>,
    pub session_id: Uuid,
    pub org_id: Option<Uuid>,
    pub is_anonymous: bool,
}

impl AuthKeys {
    /// Signs an access token for a session; returns it with its expiry (epoch seconds).
    pub fn access_token(
        &self,
        user_id: Uuid,
        email: &str,
        session_id: Uuid,
        aal: &str,
        amr: Vec<Amr>,
        now: i64,
    ) -> Result<(String, i64), jwt::JwtError> {
        let exp = now + self.access_ttl;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user_id,
            aud: self.validation.audience.clone(),
            exp,
            iat: now,
            email: email.to_string(),
            role: "authenticated".into(),
            aal: aal.to_string(),
            amr,
            session_id,
            org_id: None,
            is_anonymous: false,
        };
        Ok((jwt::sign(&self.ring, &claims)?, exp))
    }

    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, jwt::JwtError> {
        jwt::verify(&self.ring, token, &self.validation, now)
    }
}
