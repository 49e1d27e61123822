//! The authenticated user behind a request: a valid access token whose session is still live.
//!
//! The session is checked in the database on every request, so a revoked session (logout,
//! password change, refresh-token reuse, an operator's command) stops working at once on every
//! server instance that shares the database, without waiting for the token to expire.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use super::AuthError;
use super::tokens::AccessClaims;
use crate::http::middleware::PrincipalSlot;
use crate::startup::AppState;

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// The session's assurance level as the database has it now (not as the token claims).
    pub aal: String,
    /// The organization the session works in and the user's role there, read from the database on
    /// this request (a role change or removal takes effect at once), with the organization's
    /// `require_mfa` setting.
    pub org: Option<OrgRole>,
    pub claims: AccessClaims,
}

#[derive(Debug, Clone, Copy)]
pub struct OrgRole {
    pub org_id: Uuid,
    pub role: crate::db::Role,
    pub require_mfa: bool,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = match parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(header) => header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .ok_or(AuthError::NoAuthorization)?
                .trim(),
            // The browser session's cookie (HttpOnly, `__Host-`, SameSite=Lax), for the pages'
            // own scripts: the edge refuses a cookie-authenticated change from another origin
            // (`attack_protection.csrf`), as it does for the pages' forms.
            None => crate::web::csrf::cookie_value(&parts.headers, super::pages::ACCESS_COOKIE)
                .filter(|t| !t.is_empty())
                .ok_or(AuthError::NoAuthorization)?,
        };
        let user = AuthUser::from_token(state, token).await?;
        if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
            slot.set(user.user_id.to_string());
        }
        Ok(user)
    }
}

impl AuthUser {
    /// Verifies an access token and checks that its session is live.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, AuthError> {
        let now = state.clock.now().unix_timestamp();
        let claims = match state.auth.verify_access(token, now) {
            // Another instance may have rotated the signing key: reload once and retry.
            Err(leadgen_crypto::jwt::JwtError::UnknownKey)
                if state
                    .auth
                    .reload_if_stale(&state.pool, state.clock.now())
                    .await
                    .unwrap_or(false) =>
            {
                state.auth.verify_access(token, now)
            }
            other => other,
        }
        .map_err(|e| AuthError::BadJwt(e.to_string()))?;
        // One call, no transaction: the definer function answers for this verified token's
        // session and user only.
        let session = sqlx::query!(
            r#"SELECT aal AS "aal!", org_id, role, require_mfa
               FROM app.auth_session($1, $2, $3)"#,
            claims.session_id,
            claims.sub,
            state.clock.now()
        )
        .fetch_optional(&state.pool)
        .await?;
        let Some(session) = session else {
            return Err(AuthError::SessionNotFound);
        };
        let org = match (
            session.org_id,
            session.role.as_deref().and_then(crate::db::Role::parse),
        ) {
            (Some(org_id), Some(role)) => Some(OrgRole {
                org_id,
                role,
                require_mfa: session.require_mfa.unwrap_or(false),
            }),
            _ => None,
        };
        Ok(Self {
            user_id: claims.sub,
            session_id: claims.session_id,
            aal: session.aal,
            org,
            claims,
        })
    }
}
