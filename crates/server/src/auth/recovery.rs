//! MFA recovery codes with Supabase's `/factors/recovery-codes` API: ten single-use codes that
//! stand in for the authenticator app once, never the only second factor.
//!
//! Codes have 80 random bits (16 characters of a 32-letter alphabet), are shown once, and are
//! stored as SHA-256 hashes. Wrong codes are throttled per user (five free, then doubling waits).

use axum::Json;
use axum::extract::State;
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::api::AuthJson;
use super::tokens::Amr;
use super::{AuthError, AuthUser, service};
use crate::auth::AuthState;
use crate::db::UserTx;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const CODES: usize = 10;
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const CODE_LEN: usize = 16;
/// Wrong codes allowed before waits start, and the longest wait.
const FREE_FAILURES: i32 = 5;
const MAX_WAIT_SECS: i32 = 900;

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(status, generate, remove))
        .routes(routes!(regenerate))
        .routes(routes!(verify))
}

/// Lower case, no spaces or dashes: how codes are stored and compared.
fn canonical(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn hash(code: &str) -> Vec<u8> {
    Sha256::digest(canonical(code).as_bytes()).to_vec()
}

fn new_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..CODES)
        .map(|_| {
            (0..CODE_LEN)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect()
}

async fn factor_id(tx: &mut UserTx) -> Result<Option<Uuid>, AuthError> {
    Ok(
        sqlx::query_scalar!("SELECT id FROM app.mfa_factors WHERE factor_type = 'recovery_code'")
            .fetch_optional(&mut **tx)
            .await?,
    )
}

#[utoipa::path(get, path = "/auth/v1/factors/recovery-codes", tag = "mfa",
    responses((status = 200, description = "How many recovery codes are left", body = Object), crate::http::openapi::AuthRefusals))]
async fn status(State(state): State<AuthState>, who: AuthUser) -> Result<Json<Value>, AuthError> {
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let id = factor_id(&mut tx).await?.ok_or(AuthError::FactorNotFound)?;
    let counts = sqlx::query!(
        "SELECT count(*) AS \"total!\", count(*) FILTER (WHERE used_at IS NULL) AS \"remaining!\"
         FROM app.recovery_codes WHERE factor_id = $1",
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": id, "type": "recovery_code", "total": counts.total, "remaining": counts.remaining }),
    ))
}

#[derive(Deserialize, Default)]
struct GenerateBody {
    friendly_name: Option<String>,
}

async fn store(tx: &mut UserTx, who: &AuthUser, factor: Uuid) -> Result<Vec<String>, AuthError> {
    let codes = new_codes();
    sqlx::query!(
        "DELETE FROM app.recovery_codes WHERE factor_id = $1",
        factor
    )
    .execute(&mut **tx)
    .await?;
    for c in &codes {
        sqlx::query!(
            "INSERT INTO app.recovery_codes (factor_id, user_id, code_hash) VALUES ($1, $2, $3)",
            factor,
            who.user_id,
            hash(c)
        )
        .execute(&mut **tx)
        .await?;
    }
    tracing::info!(target: "leadgen::audit", action = "mfa_recovery_codes_issued", user_id = %who.user_id, "recovery codes issued");
    Ok(codes)
}

/// Both generation paths need an `aal2` session and a verified authenticator.
async fn require_totp(tx: &mut UserTx, who: &AuthUser) -> Result<(), AuthError> {
    if who.aal != "aal2" {
        return Err(AuthError::InsufficientAal);
    }
    let has_totp = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM app.mfa_factors WHERE factor_type = 'totp' AND status = 'verified') AS \"e!\""
    )
    .fetch_one(&mut **tx)
    .await?;
    if has_totp {
        Ok(())
    } else {
        Err(AuthError::RecoverySoleFactor)
    }
}

#[utoipa::path(post, path = "/auth/v1/factors/recovery-codes", tag = "mfa",
    responses((status = 200, description = "Ten single-use codes, shown this once (needs a verified TOTP factor and aal2)", body = Object), (status = 422, description = "No verified TOTP factor, or codes exist already (`mfa_verified_factor_exists`: regenerate them instead)", body = crate::http::openapi::AuthErrorBody), crate::http::openapi::AuthRefusals))]
async fn generate(
    State(state): State<AuthState>,
    who: AuthUser,
    raw: axum::body::Bytes,
) -> Result<Json<Value>, AuthError> {
    // The body is optional (`{"friendly_name": …}`).
    let body: GenerateBody = if raw.iter().all(u8::is_ascii_whitespace) {
        GenerateBody::default()
    } else {
        serde_json::from_slice(&raw).map_err(|e| AuthError::BadRequest(format!("body: {e}")))?
    };
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    require_totp(&mut tx, &who).await?;
    if factor_id(&mut tx).await?.is_some() {
        return Err(AuthError::RecoveryCodesExist);
    }
    let id = Uuid::now_v7();
    let now = state.clock.now();
    sqlx::query!(
        "INSERT INTO app.mfa_factors (id, user_id, factor_type, friendly_name, status, created_at, updated_at)
         VALUES ($1, $2, 'recovery_code', $3, 'verified', $4, $4)",
        id,
        who.user_id,
        body.friendly_name,
        now
    )
    .execute(&mut *tx)
    .await?;
    let codes = store(&mut tx, &who, id).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": id, "type": "recovery_code", "friendly_name": body.friendly_name, "total": codes.len(), "codes": codes }),
    ))
}

#[utoipa::path(post, path = "/auth/v1/factors/recovery-codes/regenerate", tag = "mfa",
    responses((status = 200, description = "New codes; the old ones stop working (aal2)", body = Object), crate::http::openapi::AuthRefusals))]
async fn regenerate(
    State(state): State<AuthState>,
    who: AuthUser,
) -> Result<Json<Value>, AuthError> {
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    require_totp(&mut tx, &who).await?;
    let id = factor_id(&mut tx).await?.ok_or(AuthError::FactorNotFound)?;
    let codes = store(&mut tx, &who, id).await?;
    tx.commit().await?;
    Ok(Json(
        json!({ "id": id, "type": "recovery_code", "total": codes.len(), "codes": codes }),
    ))
}

#[utoipa::path(delete, path = "/auth/v1/factors/recovery-codes", tag = "mfa",
    responses((status = 200, description = "The codes removed (aal2)", body = Object), (status = 404, description = "There are no recovery codes (`mfa_factor_not_found`)", body = crate::http::openapi::AuthErrorBody), crate::http::openapi::AuthRefusals))]
async fn remove(State(state): State<AuthState>, who: AuthUser) -> Result<Json<Value>, AuthError> {
    if who.aal != "aal2" {
        return Err(AuthError::InsufficientAal);
    }
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let id = factor_id(&mut tx).await?.ok_or(AuthError::FactorNotFound)?;
    sqlx::query!("DELETE FROM app.mfa_factors WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(json!({ "id": id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RecoveryCodeVerify)]
struct VerifyBody {
    code: String,
}

fn throttle_key(user: Uuid) -> Vec<u8> {
    Sha256::digest(format!("recovery-code\0{user}").as_bytes()).to_vec()
}

/// Uses one code: the session moves to `aal2` and the user's other `aal1` sessions end.
#[utoipa::path(post, path = "/auth/v1/factors/recovery-codes/verify", tag = "mfa", request_body = VerifyBody,
    responses((status = 200, description = "A session at aal2, the code used up", body = Object), crate::http::openapi::AuthRefusals))]
async fn verify(
    State(state): State<AuthState>,
    who: AuthUser,
    AuthJson(body): AuthJson<VerifyBody>,
) -> Result<Json<Value>, AuthError> {
    let now = state.clock.now();
    let key = throttle_key(who.user_id);
    let wait = sqlx::query_scalar!(
        "SELECT app.auth_throttle_wait(ARRAY['account'], ARRAY[$1::bytea], $2) AS \"secs!\"",
        key,
        now
    )
    .fetch_one(&state.pool)
    .await?;
    if wait > 0.0 {
        return Err(AuthError::RecoveryLocked(wait.ceil() as u64));
    }
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let used = sqlx::query!(
        "UPDATE app.recovery_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL",
        hash(&body.code),
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if used != 1 {
        drop(tx);
        sqlx::query!(
            "SELECT app.auth_throttle_fail('account', $1, $2, $3, $4)",
            key,
            now,
            FREE_FAILURES,
            MAX_WAIT_SECS
        )
        .fetch_one(&state.pool)
        .await?;
        tracing::info!(target: "leadgen::audit", action = "mfa_recovery_code_failed", user_id = %who.user_id, "wrong or used recovery code");
        super::mfa::failure_seen(&state, "recovery_code");
        return Err(AuthError::MfaVerificationFailed);
    }
    sqlx::query!(
        "UPDATE app.sessions SET revoked_at = $3, revoked_reason = 'recovery_code_used'
         WHERE user_id = $1 AND id <> $2 AND aal = 'aal1' AND revoked_at IS NULL",
        who.user_id,
        who.session_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    let amr = vec![Amr {
        method: "mfa/recovery_code".into(),
        timestamp: now.unix_timestamp(),
    }];
    let session = service::raise_to_aal2(&state, &mut tx, who.user_id, who.session_id, amr).await?;
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "mfa_recovery_code_used", user_id = %who.user_id, "recovery code used");
    Ok(Json(super::api::session_json(&session)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_canonical_and_compare_as_typed() {
        let codes = new_codes();
        assert_eq!(codes.len(), 10);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), CODE_LEN);
            assert_eq!(canonical(c), *c);
        }
        let c = &codes[0];
        let typed = format!("{}-{} {}", &c[..4].to_uppercase(), &c[4..8], &c[8..]);
        assert_eq!(hash(&typed), hash(c));
    }
}
