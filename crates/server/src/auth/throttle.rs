//! Progressive sign-in throttling (see migration `20261125000003_login_throttle.sql`).
//!
//! Keys are digests of the normalised email and the client IP, taken the same way whether or not
//! the account exists, so throttling reveals nothing about who has an account.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;

/// (scope, free failures, cap in seconds).
const PAIR: (&str, i32, i32) = ("pair", 5, 900);
/// Short cap: an attacker elsewhere can delay the owner by at most a minute.
const ACCOUNT: (&str, i32, i32) = ("account", 20, 60);
const IP: (&str, i32, i32) = ("ip", 30, 3600);

pub struct Keys {
    pair: Vec<u8>,
    account: Vec<u8>,
    ip: Vec<u8>,
}

fn digest(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0u8]);
    }
    h.finalize().to_vec()
}

impl Keys {
    #[must_use]
    pub fn new(email: &str, ip: Option<IpAddr>) -> Self {
        let email = email.trim().to_lowercase();
        let ip = ip.map_or_else(|| "unknown".to_string(), |i| i.to_string());
        Self {
            pair: digest(&[b"pair", email.as_bytes(), ip.as_bytes()]),
            account: digest(&[b"account", email.as_bytes()]),
            ip: digest(&[b"ip", ip.as_bytes()]),
        }
    }
}

/// Seconds to wait before another attempt is considered, or 0.
pub async fn wait_secs(
    pool: &PgPool,
    keys: &Keys,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let scopes = vec![PAIR.0.to_string(), ACCOUNT.0.to_string(), IP.0.to_string()];
    let digests = vec![keys.pair.clone(), keys.account.clone(), keys.ip.clone()];
    let secs = sqlx::query_scalar!(
        "SELECT app.auth_throttle_wait($1::text[], $2::bytea[], $3) AS \"secs!\"",
        &scopes,
        &digests,
        now
    )
    .fetch_one(pool)
    .await?;
    // Round up, so a client that waits exactly Retry-After is let in.
    Ok(secs.max(0.0).ceil() as u64)
}

pub async fn record_failure(
    pool: &PgPool,
    keys: &Keys,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    for ((scope, free, cap), key) in [(PAIR, &keys.pair), (ACCOUNT, &keys.account), (IP, &keys.ip)]
    {
        sqlx::query!(
            "SELECT app.auth_throttle_fail($1, $2, $3, $4, $5)",
            scope,
            key,
            now,
            free,
            cap
        )
        .fetch_one(pool)
        .await?;
    }
    Ok(())
}

pub async fn clear(pool: &PgPool, keys: &Keys) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT app.auth_throttle_clear($1, $2)",
        keys.pair,
        keys.account
    )
    .fetch_one(pool)
    .await?;
    Ok(())
}
