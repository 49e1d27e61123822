//! Who is behind a request: the identity layer at the edge, and the [`AuthUser`] extractor.
//!
//! [`authenticate`] runs in front of the perimeter for every request. It reads the credential
//! with the one parser ([`Presented`]), verifies an access token's signature and claims once,
//! and leaves its verdict in the request's extensions: a [`Credential`] for the layers behind it
//! (WAF, rate limits, logs) and, for a valid token, its [`Verified`] claims for the extractors.
//! Nothing behind it reads or verifies the credential again.
//!
//! [`AuthUser`] then checks the session in the database on every request that needs a user, so
//! a revoked session (logout, password change, refresh-token reuse, an operator's command) stops
//! working at once on every server instance that shares the database, without waiting for the
//! token to expire.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::tokens::AccessClaims;
use super::{AuthError, AuthState};
use crate::http::credentials::{Credential, Presented};
use crate::http::middleware::PrincipalSlot;
use crate::state::Core;

/// The claims of the request's access token, verified once by [`authenticate`].
#[derive(Debug, Clone)]
pub struct Verified(pub Arc<AccessClaims>);

/// The identity layer: reads and checks the request's credential once, for everything behind it.
pub async fn authenticate(
    State(state): State<AuthState>,
    mut req: Request,
    next: Next,
) -> Response {
    let (credential, verified) = examine(&state, Presented::from_headers(req.headers())).await;
    let ext = req.extensions_mut();
    ext.insert(credential);
    if let Some(v) = verified {
        ext.insert(v);
    }
    next.run(req).await
}

/// What `presented` is worth: an API key's format (looked up later, by the extractor that needs
/// it), a token's signature and claims.
async fn examine(state: &AuthState, presented: Presented<'_>) -> (Credential, Option<Verified>) {
    match presented {
        Presented::ApiKey(k) => (
            Credential::ApiKey {
                key: Arc::new(SecretString::from(k.to_string())),
                digest: hex::encode(&Sha256::digest(k.as_bytes())[..12]),
                well_formed: leadgen_crypto::apikey::check(k).is_ok(),
            },
            None,
        ),
        // Frozen during an incident: no access token is worth anything, valid or not.
        Presented::Token(_) if state.perimeter.controls.auth_frozen() => (
            Credential::Rejected {
                reason: AuthError::AuthFrozen.to_string(),
            },
            None,
        ),
        Presented::Token(t) => match verify(state, t).await {
            Ok(claims) => (
                Credential::Token {
                    user_id: claims.sub,
                    session_id: claims.session_id,
                    lifetime_secs: claims.exp - claims.iat,
                },
                Some(Verified(Arc::new(claims))),
            ),
            Err(e) => (
                Credential::Rejected {
                    reason: e.to_string(),
                },
                None,
            ),
        },
        Presented::None => (Credential::None, None),
    }
}

/// Verifies an access token's signature and claims.
pub async fn verify(
    state: &AuthState,
    token: &str,
) -> Result<AccessClaims, leadgen_crypto::jwt::JwtError> {
    let now = state.clock.now();
    match state.auth.verify_access(token, now.unix_timestamp()) {
        // Another instance may have rotated the signing key: reload once (at most once a second
        // for the whole server) and try again.
        Err(leadgen_crypto::jwt::JwtError::UnknownKey)
            if state
                .auth
                .reload_if_stale(&state.pool, now)
                .await
                .unwrap_or(false) =>
        {
            state.auth.verify_access(token, now.unix_timestamp())
        }
        other => other,
    }
}

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
    pub claims: Arc<AccessClaims>,
}

#[derive(Debug, Clone, Copy)]
pub struct OrgRole {
    pub org_id: Uuid,
    pub role: crate::db::Role,
    pub require_mfa: bool,
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Core: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let claims = match parts.extensions.get::<Credential>() {
            Some(Credential::Token { .. }) => parts
                .extensions
                .get::<Verified>()
                .map(|v| v.0.clone())
                .ok_or(AuthError::NoAuthorization)?,
            Some(Credential::Rejected { reason }) => {
                return Err(AuthError::BadJwt(reason.clone()));
            }
            Some(Credential::ApiKey { .. }) => {
                return Err(AuthError::BadJwt(
                    "an API key is not a user's access token; this endpoint needs a signed-in user"
                        .into(),
                ));
            }
            // No identity layer in front (a route outside the assembled stack) fails closed.
            Some(Credential::None) | None => return Err(AuthError::NoAuthorization),
        };
        let user = AuthUser::from_claims(&Core::from_ref(state), claims).await?;
        if let Some(slot) = parts.extensions.get::<PrincipalSlot>() {
            slot.set(user.user_id.to_string());
        }
        Ok(user)
    }
}

impl AuthUser {
    /// The user of verified `claims`, once the database confirms the session is live.
    pub async fn from_claims(core: &Core, claims: Arc<AccessClaims>) -> Result<Self, AuthError> {
        // One call, no transaction: the definer function answers for this verified token's
        // session and user only.
        let session = sqlx::query!(
            r#"SELECT aal AS "aal!", org_id, role, require_mfa
               FROM app.auth_session($1, $2, $3)"#,
            claims.session_id,
            claims.sub,
            core.clock.now()
        )
        .fetch_optional(&core.pool)
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
