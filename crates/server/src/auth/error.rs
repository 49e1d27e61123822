//! Authentication errors in Supabase Auth's wire shape: `{"code": 400, "error_code": "...",
//! "msg": "..."}`, so Supabase clients show them as they would against Supabase.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Invalid login credentials")]
    InvalidCredentials,
    #[error("Email not confirmed")]
    EmailNotConfirmed,
    #[error("{0}")]
    WeakPassword(String, &'static str),
    #[error("Unable to validate email address: invalid format")]
    InvalidEmail,
    #[error("User already registered")]
    UserAlreadyExists,
    #[error("Invalid Refresh Token: Refresh Token Not Found")]
    RefreshTokenNotFound,
    #[error("Invalid Refresh Token: Already Used")]
    RefreshTokenReused,
    #[error("Session expired")]
    SessionExpired,
    #[error("Email link is invalid or has expired")]
    OtpExpired,
    #[error("{0}")]
    BadRequest(String),
    #[error("This endpoint requires a valid Bearer token")]
    NoAuthorization,
    #[error("invalid JWT: unable to parse or verify signature, {0}")]
    BadJwt(String),
    #[error("Session from session_id claim in JWT does not exist")]
    SessionNotFound,
    #[error("Password update requires the current password or a fresh reset link")]
    ReauthenticationNeeded,
    #[error("Sign-in by phone is not available; use an email address")]
    PhoneUnsupported,
    #[error("Reauthentication nonce is invalid, used or expired")]
    ReauthenticationNotValid,
    #[error("invalid flow state, no valid flow state found")]
    FlowStateNotFound,
    #[error("code challenge does not match previously saved code verifier")]
    BadCodeVerifier,
    #[error("Factor not found")]
    FactorNotFound,
    #[error("MFA challenge is unknown, used or expired")]
    ChallengeExpired,
    #[error("Invalid TOTP code entered")]
    MfaVerificationFailed,
    #[error("AAL2 session is required to perform this action")]
    InsufficientAal,
    #[error("Recovery codes cannot be the only second factor; set up an authenticator app first")]
    RecoverySoleFactor,
    #[error("Recovery codes already exist; regenerate them to get a new set")]
    RecoveryCodesExist,
    #[error("Too many wrong recovery codes; try again in {0} seconds")]
    RecoveryLocked(u64),
    #[error("Too many attempts; try again in {0} seconds")]
    TooManyAttempts(u64),
    /// Deleting the account would leave an organization without an admin.
    #[error("{0}")]
    AccountDeletionBlocked(String),
    /// An operator froze authentication during a security incident.
    #[error("Signing in is suspended during a security incident; try again later")]
    AuthFrozen,
    #[error("unexpected failure")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl AuthError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::InvalidCredentials => (S::BAD_REQUEST, "invalid_credentials"),
            Self::AuthFrozen => (S::SERVICE_UNAVAILABLE, "auth_frozen"),
            Self::EmailNotConfirmed => (S::BAD_REQUEST, "email_not_confirmed"),
            Self::WeakPassword(..) => (S::UNPROCESSABLE_ENTITY, "weak_password"),
            Self::InvalidEmail => (S::BAD_REQUEST, "validation_failed"),
            Self::UserAlreadyExists => (S::UNPROCESSABLE_ENTITY, "user_already_exists"),
            Self::RefreshTokenNotFound => (S::BAD_REQUEST, "refresh_token_not_found"),
            Self::RefreshTokenReused => (S::BAD_REQUEST, "refresh_token_already_used"),
            Self::SessionExpired => (S::BAD_REQUEST, "session_expired"),
            Self::OtpExpired => (S::FORBIDDEN, "otp_expired"),
            Self::BadRequest(_) => (S::BAD_REQUEST, "validation_failed"),
            Self::NoAuthorization => (S::UNAUTHORIZED, "no_authorization"),
            Self::BadJwt(_) => (S::UNAUTHORIZED, "bad_jwt"),
            Self::SessionNotFound => (S::UNAUTHORIZED, "session_not_found"),
            Self::ReauthenticationNeeded => (S::UNAUTHORIZED, "reauthentication_needed"),
            Self::PhoneUnsupported => (S::BAD_REQUEST, "phone_provider_disabled"),
            Self::ReauthenticationNotValid => (S::BAD_REQUEST, "reauthentication_not_valid"),
            Self::FlowStateNotFound => (S::NOT_FOUND, "flow_state_not_found"),
            Self::BadCodeVerifier => (S::BAD_REQUEST, "bad_code_verifier"),
            Self::FactorNotFound => (S::NOT_FOUND, "mfa_factor_not_found"),
            Self::ChallengeExpired => (S::UNPROCESSABLE_ENTITY, "mfa_challenge_expired"),
            Self::MfaVerificationFailed => (S::UNPROCESSABLE_ENTITY, "mfa_verification_failed"),
            Self::InsufficientAal => (S::FORBIDDEN, "insufficient_aal"),
            Self::RecoverySoleFactor => (S::UNPROCESSABLE_ENTITY, "mfa_recovery_codes_sole_factor"),
            Self::RecoveryCodesExist => (S::UNPROCESSABLE_ENTITY, "mfa_verified_factor_exists"),
            Self::RecoveryLocked(_) => (S::TOO_MANY_REQUESTS, "mfa_recovery_codes_locked"),
            Self::TooManyAttempts(_) => (S::TOO_MANY_REQUESTS, "over_request_rate_limit"),
            Self::AccountDeletionBlocked(_) => (S::CONFLICT, "account_deletion_blocked"),
            Self::Internal(e) if unavailable(e) => (S::SERVICE_UNAVAILABLE, "service_unavailable"),
            Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "unexpected_failure"),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(e) = &self {
            tracing::error!(error = ?e, "authentication request failed");
        }
        let msg = if status == StatusCode::SERVICE_UNAVAILABLE {
            "the database is unavailable; try again shortly".to_string()
        } else {
            self.to_string()
        };
        let mut body =
            serde_json::json!({ "code": status.as_u16(), "error_code": code, "msg": msg });
        if let Self::WeakPassword(_, reason) = &self {
            body["weak_password"] = serde_json::json!({ "reasons": [reason] });
        }
        let mut res = (status, axum::Json(body)).into_response();
        if let Self::TooManyAttempts(secs) | Self::RecoveryLocked(secs) = &self
            && let Ok(v) = http::HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"leadgen\""),
            );
        }
        res
    }
}

use crate::http::error::API_VERSION_2024;

/// Speaks the error shape of the API version the client asked for, and says which it used.
pub async fn api_version(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let modern = crate::http::error::modern_api_version(req.headers());
    let res = next.run(req).await;
    if !modern {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    parts.headers.insert(
        "x-supabase-api-version",
        http::HeaderValue::from_static(API_VERSION_2024),
    );
    if parts.status.is_success() {
        return Response::from_parts(parts, body);
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let rewritten = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| {
        let mut out = serde_json::json!({ "code": v.get("error_code")?.clone(), "message": v.get("msg")?.clone() });
        if let Some(w) = v.get("weak_password") {
            out["weak_password"] = w.clone();
        }
        serde_json::to_vec(&out).ok()
    });
    let body = rewritten.unwrap_or_else(|| bytes.to_vec());
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The database is down or unreachable: the client should come back, not report a bug.
fn unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref()
            .is_some_and(crate::http::database_unavailable)
    })
}
