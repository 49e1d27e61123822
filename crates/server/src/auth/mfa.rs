//! TOTP second factor with Supabase's `/auth/v1/factors` API: enroll (secret, `otpauth://` URI
//! and QR code), challenge, verify (the session moves to `aal2`), unenroll (needs `aal2`).
//!
//! Each code works once: the accepted time step is stored and older or equal steps are refused.
//! A wrong code locks the factor until its time step has passed, which caps guessing at one try
//! per 30 seconds. Repeated failures escalate: past [`FREE_FAILURES`] wrong codes within an hour,
//! the factor and the user are each locked for 2, 4, 8… seconds up to [`MAX_LOCK_SECS`] (the
//! throttle table sign-in uses), each failure is counted (`auth_mfa_failures_total{factor}`),
//! written to the audit log and feeds the `mfa_failure` alert event.

use axum::Json;
use axum::extract::{Path, State};
use leadgen_crypto::{seal, totp};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::AuthJson;
use super::service::{self, Session};
use super::tokens::Amr;
use super::{AuthError, AuthUser};
use crate::auth::AuthState;
use crate::db::UserTx;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Challenges expire after five minutes.
const CHALLENGE_TTL_SECS: i64 = 300;
/// Wrong codes within an hour before the escalating locks start.
pub(crate) const FREE_FAILURES: i32 = 3;
/// The longest lock after repeated wrong codes.
pub(crate) const MAX_LOCK_SECS: i32 = 3600;

/// Throttle keys of a factor and of its user, in the sign-in throttle table's `account` scope.
fn throttle_keys(factor: Uuid, user: Uuid) -> [Vec<u8>; 2] {
    use sha2::Digest as _;
    [
        sha2::Sha256::digest(format!("totp-factor\0{factor}").as_bytes()).to_vec(),
        sha2::Sha256::digest(format!("totp-user\0{user}").as_bytes()).to_vec(),
    ]
}

/// What every wrong second-factor code does besides its own lock (the caller writes the audit
/// line): counted, and the alert event raised.
pub(crate) fn failure_seen(state: &AuthState, factor: &'static str) {
    metrics::counter!("auth_mfa_failures_total", "factor" => factor).increment(1);
    crate::perimeter::record_event(
        &state.perimeter,
        crate::perimeter::alerts::Event::MfaFailure,
    );
}

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(enroll))
        .routes(routes!(unenroll))
        .merge(super::recovery::routes())
        .routes(routes!(challenge))
        .routes(routes!(verify))
}

fn aad(factor: Uuid, user: Uuid) -> Vec<u8> {
    format!("app.mfa_factors.secret_sealed:{factor}:{user}").into_bytes()
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EnrollBody {
    factor_type: String,
    friendly_name: Option<String>,
    issuer: Option<String>,
}

/// A factor just enrolled: what an authenticator app needs.
pub struct Enrolled {
    pub id: Uuid,
    pub secret_base32: String,
    pub uri: String,
    /// QR code of `uri`, as SVG.
    pub qr_svg: String,
}

/// Creates an unverified TOTP factor.
pub async fn enroll_factor(
    state: &AuthState,
    who: &AuthUser,
    friendly_name: Option<String>,
    issuer: Option<String>,
) -> Result<Enrolled, AuthError> {
    if friendly_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 100)
    {
        return Err(AuthError::BadRequest(
            "friendly_name is at most 100 characters".into(),
        ));
    }
    let id = Uuid::now_v7();
    let secret = totp::new_secret();
    let sealed = seal::seal(state.auth.seal_key(), &secret, &aad(id, who.user_id))
        .map_err(|e| AuthError::Internal(e.into()))?;
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let inserted = sqlx::query!(
        "INSERT INTO app.mfa_factors (id, user_id, factor_type, friendly_name, status, secret_sealed, created_at, updated_at)
         VALUES ($1, $2, 'totp', $3, 'unverified', $4, $5, $5) ON CONFLICT (user_id, friendly_name) DO NOTHING",
        id,
        who.user_id,
        friendly_name,
        sealed,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AuthError::BadRequest(
            "a factor with this friendly_name already exists".into(),
        ));
    }
    tx.commit().await?;
    let issuer = issuer
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "LeadGen".into());
    let uri = totp::otpauth_uri(&secret, &issuer, &who.claims.email);
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| AuthError::Internal(anyhow::anyhow!("qr code: {e}")))?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    tracing::info!(target: "leadgen::audit", action = "mfa_enroll", user_id = %who.user_id, factor_id = %id, "TOTP factor enrolled");
    Ok(Enrolled {
        id,
        secret_base32: totp::secret_base32(&secret),
        uri,
        qr_svg,
    })
}

#[utoipa::path(post, path = "/auth/v1/factors", tag = "mfa", request_body = EnrollBody,
    responses((status = 200, description = "A TOTP factor, unverified: its secret and QR code", body = Object), crate::http::openapi::AuthRefusals))]
async fn enroll(
    State(state): State<AuthState>,
    who: AuthUser,
    AuthJson(body): AuthJson<EnrollBody>,
) -> Result<Json<Value>, AuthError> {
    if body.factor_type != "totp" {
        return Err(AuthError::BadRequest("factor_type must be \"totp\"".into()));
    }
    let e = enroll_factor(&state, &who, body.friendly_name.clone(), body.issuer).await?;
    // Supabase clients prefix `qr_code` with the data-URI header themselves.
    Ok(Json(json!({
        "id": e.id,
        "type": "totp",
        "friendly_name": body.friendly_name,
        "totp": { "qr_code": e.qr_svg, "secret": e.secret_base32, "uri": e.uri },
    })))
}

/// Opens a challenge for one of the user's factors; returns its id and expiry (Unix seconds).
pub async fn create_challenge(
    state: &AuthState,
    who: &AuthUser,
    factor: Uuid,
) -> Result<(Uuid, i64), AuthError> {
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let exists = sqlx::query_scalar!(
        "SELECT 1 AS \"one!\" FROM app.mfa_factors WHERE id = $1 AND factor_type = 'totp'",
        factor
    )
    .fetch_optional(&mut *tx)
    .await?;
    if exists.is_none() {
        return Err(AuthError::FactorNotFound);
    }
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO app.mfa_challenges (id, factor_id, user_id, created_at) VALUES ($1, $2, $3, $4)",
        id,
        factor,
        who.user_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, now.unix_timestamp() + CHALLENGE_TTL_SECS))
}

#[utoipa::path(post, path = "/auth/v1/factors/{id}/challenge", tag = "mfa", params(("id" = Uuid, Path, description = "The factor")),
    responses((status = 200, description = "A challenge id and its expiry", body = Object), crate::http::openapi::AuthRefusals))]
async fn challenge(
    State(state): State<AuthState>,
    who: AuthUser,
    Path(factor): Path<Uuid>,
) -> Result<Json<Value>, AuthError> {
    let (id, expires_at) = create_challenge(&state, &who, factor).await?;
    Ok(Json(
        json!({ "id": id, "type": "totp", "expires_at": expires_at }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TotpVerify)]
struct VerifyBody {
    challenge_id: Uuid,
    code: String,
}

/// Checks a code against a challenge; on success the session moves to `aal2`.
pub async fn verify_code(
    state: &AuthState,
    who: &AuthUser,
    factor: Uuid,
    challenge_id: Uuid,
    code: &str,
) -> Result<Session, AuthError> {
    let now = state.clock.now();
    let unix = now.unix_timestamp();
    let step = totp::step_at(unix);
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let f = sqlx::query!(
        "SELECT secret_sealed AS \"secret_sealed!\", status, last_used_step, failed_step
         FROM app.mfa_factors WHERE id = $1 AND factor_type = 'totp' FOR UPDATE",
        factor
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AuthError::FactorNotFound)?;
    let c = sqlx::query!(
        "SELECT created_at, verified_at FROM app.mfa_challenges WHERE id = $1 AND factor_id = $2 FOR UPDATE",
        challenge_id,
        factor
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AuthError::ChallengeExpired)?;
    if c.verified_at.is_some() || (now - c.created_at).whole_seconds() > CHALLENGE_TTL_SECS {
        return Err(AuthError::ChallengeExpired);
    }
    let [factor_key, user_key] = throttle_keys(factor, who.user_id);
    let locked = sqlx::query_scalar!(
        "SELECT app.auth_throttle_wait(ARRAY['account', 'account'], ARRAY[$1::bytea, $2::bytea], $3) AS \"secs!\"",
        factor_key,
        user_key,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    if locked > 0.0 {
        return Err(AuthError::TooManyAttempts(locked.ceil() as u64));
    }
    if f.failed_step.is_some_and(|s| s >= step) {
        let wait = (step + 1) * totp::STEP_SECS - unix;
        return Err(AuthError::TooManyAttempts(
            u64::try_from(wait.max(1)).unwrap_or(1),
        ));
    }
    let secret = seal::open(
        state.auth.seal_key(),
        &f.secret_sealed,
        &aad(factor, who.user_id),
    )
    .map_err(|e| AuthError::Internal(e.into()))?;
    let accepted = totp::matching_step(&secret, code.trim(), unix)
        .filter(|s| f.last_used_step.is_none_or(|last| *s > last));
    let Some(used) = accepted else {
        sqlx::query!(
            "UPDATE app.mfa_factors SET failed_step = $2 WHERE id = $1",
            factor,
            step
        )
        .execute(&mut *tx)
        .await?;
        for key in [&factor_key, &user_key] {
            sqlx::query!(
                "SELECT app.auth_throttle_fail('account', $1, $2, $3, $4)",
                key,
                now,
                FREE_FAILURES,
                MAX_LOCK_SECS
            )
            .fetch_one(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        tracing::info!(target: "leadgen::audit", action = "mfa_verify_failed", user_id = %who.user_id, factor_id = %factor, "wrong or reused TOTP code");
        failure_seen(state, "totp");
        return Err(AuthError::MfaVerificationFailed);
    };
    sqlx::query!(
        "UPDATE app.mfa_factors SET status = 'verified', last_used_step = $2, failed_step = NULL, updated_at = $3 WHERE id = $1",
        factor,
        used,
        now
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE app.mfa_challenges SET verified_at = $2 WHERE id = $1",
        challenge_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    // A right code ends the escalation for the factor and the user.
    for key in [&factor_key, &user_key] {
        sqlx::query!("SELECT app.auth_throttle_clear(''::bytea, $1)", key)
            .fetch_one(&mut *tx)
            .await?;
    }
    // Keep how the session began (password, reset link…) after the second factor.
    let mut amr = vec![Amr {
        method: "totp".into(),
        timestamp: unix,
    }];
    amr.extend(
        who.claims
            .amr
            .iter()
            .filter(|a| a.method != "totp")
            .cloned(),
    );
    let session: Session =
        service::raise_to_aal2(state, &mut tx, who.user_id, who.session_id, amr).await?;
    tx.commit().await?;
    if f.status == "unverified" {
        tracing::info!(target: "leadgen::audit", action = "mfa_factor_verified", user_id = %who.user_id, factor_id = %factor, "TOTP factor verified");
    }
    Ok(session)
}

#[utoipa::path(post, path = "/auth/v1/factors/{id}/verify", tag = "mfa", params(("id" = Uuid, Path, description = "The factor")), request_body = VerifyBody,
    responses((status = 200, description = "A session at aal2", body = Object), crate::http::openapi::AuthRefusals))]
async fn verify(
    State(state): State<AuthState>,
    who: AuthUser,
    Path(factor): Path<Uuid>,
    AuthJson(body): AuthJson<VerifyBody>,
) -> Result<Json<Value>, AuthError> {
    let session = verify_code(&state, &who, factor, body.challenge_id, &body.code).await?;
    Ok(Json(super::api::session_json(&session)))
}

#[utoipa::path(delete, path = "/auth/v1/factors/{id}", tag = "mfa", params(("id" = Uuid, Path, description = "The factor")),
    responses((status = 200, description = "The factor removed (needs aal2 when verified)", body = Object), crate::http::openapi::AuthRefusals))]
async fn unenroll(
    State(state): State<AuthState>,
    who: AuthUser,
    Path(factor): Path<Uuid>,
) -> Result<Json<Value>, AuthError> {
    if who.aal != "aal2" {
        return Err(AuthError::InsufficientAal);
    }
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let removed = sqlx::query!("DELETE FROM app.mfa_factors WHERE id = $1", factor)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    if removed == 0 {
        return Err(AuthError::FactorNotFound);
    }
    tracing::info!(target: "leadgen::audit", action = "mfa_unenroll", user_id = %who.user_id, factor_id = %factor, "factor removed");
    Ok(Json(json!({ "id": factor })))
}
