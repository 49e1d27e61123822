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
    /// The derived key (signs until the first rotation), then the ring loaded from
    /// `app.jwt_keys`; swapped whole when keys are reloaded.
    ring: std::sync::RwLock<std::sync::Arc<KeyRing>>,
    derived: Vec<u8>,
    /// When an unknown `kid` last caused a reload.
    last_reload: std::sync::Mutex<Option<std::time::Instant>>,
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
        let derived = derive(key, "leadgen jwt signing key v1");
        let signing = Key::new(&derived)?;
        let issuer = format!("{}/auth/v1", config.site_url());
        Ok(Self {
            ring: std::sync::RwLock::new(std::sync::Arc::new(KeyRing::new(vec![signing])?)),
            derived,
            last_reload: std::sync::Mutex::new(None),
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

    /// The current key ring.
    #[must_use]
    pub fn ring(&self) -> std::sync::Arc<KeyRing> {
        self.ring
            .read()
            .map(|r| std::sync::Arc::clone(&r))
            .unwrap_or_else(|p| std::sync::Arc::clone(&p.into_inner()))
    }

    /// Reloads the ring from `app.jwt_keys`: the newest key signs, keys it replaced verify for
    /// as long as tokens they signed can live, and the derived key verifies for that long after
    /// the first rotation too.
    pub async fn reload(
        &self,
        pool: &sqlx::PgPool,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<()> {
        let keep = i32::try_from(self.validation.max_lifetime_secs).unwrap_or(i32::MAX);
        let rows = sqlx::query!(
            "SELECT kid AS \"kid!\", secret_sealed AS \"secret_sealed!\", created_at AS \"created_at!\"
             FROM app.auth_jwt_keys($1, $2)",
            now,
            keep
        )
        .fetch_all(pool)
        .await?;
        let mut keys = Vec::with_capacity(rows.len() + 1);
        for r in &rows {
            let secret =
                leadgen_crypto::seal::open(&self.seal, &r.secret_sealed, &jwt_key_aad(&r.kid))
                    .map_err(|e| anyhow::anyhow!("JWT key {}: {e}", r.kid))?;
            keys.push(Key::new(&secret)?);
        }
        // Revoked keys are not among `rows`, but they still date the end of the derived key.
        let oldest: Option<time::OffsetDateTime> =
            sqlx::query_scalar!("SELECT app.auth_jwt_first_key()")
                .fetch_one(pool)
                .await?;
        let derived_still_valid =
            oldest.is_none_or(|t| (now - t).whole_seconds() <= self.validation.max_lifetime_secs);
        if derived_still_valid {
            keys.push(Key::new(&self.derived)?);
        }
        let ring = std::sync::Arc::new(KeyRing::new(keys)?);
        if let Ok(mut r) = self.ring.write() {
            *r = ring;
        }
        Ok(())
    }

    /// Reloads for a token with an unknown `kid` (it may come from an instance that has just
    /// rotated), at most once a second so a flood of forged tokens cannot hammer the database.
    pub async fn reload_if_stale(
        &self,
        pool: &sqlx::PgPool,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<bool> {
        {
            let Ok(mut last) = self.last_reload.lock() else {
                return Ok(false);
            };
            if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                return Ok(false);
            }
            *last = Some(std::time::Instant::now());
        }
        self.reload(pool, now).await?;
        Ok(true)
    }

    /// Adds a new signing key (`leadgen keys rotate-jwt`); returns its `kid`.
    pub async fn rotate(
        &self,
        pool: &sqlx::PgPool,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<String> {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let key = Key::new(&secret)?;
        let kid = key.kid().to_string();
        let sealed = leadgen_crypto::seal::seal(&self.seal, &secret, &jwt_key_aad(&kid))?;
        sqlx::query!("SELECT app.auth_jwt_key_add($1, $2, $3)", kid, sealed, now)
            .fetch_one(pool)
            .await?;
        self.reload(pool, now).await?;
        Ok(kid)
    }

    /// Rotation after a suspected leak: a new signing key, and every earlier one (and the key
    /// derived from the application key) revoked, so that no token they signed verifies any
    /// more, on any instance once it reloads. Sessions live on: clients refresh their tokens.
    ///
    /// # Errors
    /// The database's.
    pub async fn rotate_revoking(
        &self,
        pool: &sqlx::PgPool,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<String> {
        let kid = self.rotate(pool, now).await?;
        sqlx::query!(
            "UPDATE app.jwt_keys SET revoked_at = $2 WHERE kid <> $1 AND revoked_at IS NULL",
            kid,
            now
        )
        .execute(pool)
        .await?;
        // Stored keys so far may all be younger than a token lifetime: date the derived key's
        // end from a revoked placeholder dated 2000, so it is dropped too.
        sqlx::query!(
            "INSERT INTO app.jwt_keys (kid, secret_sealed, created_at, retired_at, revoked_at)
             VALUES ('0000000000000000', '\\x00', '2000-01-01T00:00:00Z', '2000-01-01T00:00:00Z', $1)
             ON CONFLICT (kid) DO NOTHING",
            now
        )
        .execute(pool)
        .await?;
        self.reload(pool, now).await?;
        Ok(kid)
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

fn jwt_key_aad(kid: &str) -> Vec<u8> {
    format!("app.jwt_keys.secret_sealed:{kid}").into_bytes()
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
    /// The user's role in `org_id` when the token was issued; informational, since every request
    /// reads the current role from the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    pub is_anonymous: bool,
}

/// What an access token is issued for.
pub struct TokenRequest<'a> {
    pub user_id: Uuid,
    pub email: &'a str,
    pub session_id: Uuid,
    pub aal: &'a str,
    pub amr: Vec<Amr>,
    pub org: Option<(Uuid, String)>,
}

impl AuthKeys {
    /// Signs an access token for a session; returns it with the claims it carries.
    pub fn access_token(
        &self,
        t: TokenRequest<'_>,
        now: i64,
    ) -> Result<(String, AccessClaims), jwt::JwtError> {
        let TokenRequest {
            user_id,
            email,
            session_id,
            aal,
            amr,
            org,
        } = t;
        let (org_id, org_role) = org.unzip();
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
            org_id,
            org_role,
            is_anonymous: false,
        };
        Ok((jwt::sign(&self.ring(), &claims)?, claims))
    }

    /// Checks an access token's signature and claims. Counted
    /// (`access_token_verifications_total`): the identity layer verifies each request's token
    /// once, and nothing behind it verifies again.
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, jwt::JwtError> {
        metrics::counter!("access_token_verifications_total").increment(1);
        jwt::verify(&self.ring(), token, &self.validation, now)
    }
}
