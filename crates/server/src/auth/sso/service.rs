//! What a verified provider identity means for LeadGen accounts.
//!
//! - An identity already linked signs its user in (by the provider's `sub`, whatever the email).
//! - A new identity whose verified email has no account creates one, confirmed by the provider.
//! - A new identity whose verified email belongs to an existing, confirmed account is linked only
//!   after the account's owner confirms with the account's password ([`link`]): a provider saying
//!   "this is ann@acme.io" is not enough to take over Ann's existing LeadGen account.
//! - An unverified email never creates or links anything.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{ProviderKind, SsoError};
use crate::auth::AuthState;
use crate::auth::service::{self, Origin, Session};
use crate::auth::{AuthError, EmailAddress};
use crate::db::UserTx;
use leadgen_crypto::oidc::IdClaims;

/// An identity waiting for its account owner's confirmation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingLink {
    pub provider: String,
    pub subject: String,
    pub email: String,
    pub user_id: Uuid,
    /// Unix time the provider vouched for the identity.
    pub at: i64,
}

pub enum Outcome {
    SignedIn(Box<Session>),
    NeedsLink(PendingLink),
}

/// Signs in, or creates an account, or asks for a link confirmation.
pub async fn sign_in(
    state: &AuthState,
    kind: ProviderKind,
    claims: IdClaims,
    origin: &Origin,
) -> Result<Outcome, SsoError> {
    let provider = kind.slug();
    let now = state.clock.now();
    let linked = sqlx::query_scalar!(
        "SELECT app.auth_find_identity($1, $2) AS \"user_id\"",
        provider,
        claims.subject
    )
    .fetch_one(&state.pool)
    .await
    .map_err(AuthError::from)?;
    if let Some(user_id) = linked {
        let mut tx = UserTx::begin(&state.pool, user_id)
            .await
            .map_err(AuthError::from)?;
        sqlx::query!(
            "UPDATE app.identities SET last_sign_in_at = $3, email = coalesce($4, email)
             WHERE provider = $1 AND subject = $2",
            provider,
            claims.subject,
            now,
            claims.email.as_deref().filter(|_| claims.email_verified)
        )
        .execute(&mut *tx)
        .await
        .map_err(AuthError::from)?;
        let session = service::start_session(state, &mut tx, user_id, "oauth", origin).await?;
        tx.commit().await.map_err(AuthError::from)?;
        tracing::info!(target: "leadgen::audit", action = "sso_login", provider, user_id = %user_id, "signed in with single sign-on");
        return Ok(Outcome::SignedIn(Box::new(session)));
    }

    let email = match (&claims.email, claims.email_verified) {
        (Some(e), true) => EmailAddress::parse(e)?,
        _ => return Err(SsoError::EmailNotVerified(kind.label())),
    };
    let existing = sqlx::query!(
        "SELECT user_id AS \"user_id!\", email_confirmed_at FROM app.auth_find_account($1)",
        email.as_str()
    )
    .fetch_optional(&state.pool)
    .await
    .map_err(AuthError::from)?;
    if let Some(account) = existing {
        // An unconfirmed account may have been registered by someone else to squat the address:
        // neither link to it nor let it block the real owner silently.
        if account.email_confirmed_at.is_none() {
            return Err(SsoError::AccountUnconfirmed);
        }
        return Ok(Outcome::NeedsLink(PendingLink {
            provider: provider.into(),
            subject: claims.subject,
            email: email.as_str().into(),
            user_id: account.user_id,
            at: now.unix_timestamp(),
        }));
    }

    let user_id = Uuid::now_v7();
    let metadata = match &claims.name {
        Some(n) => serde_json::json!({ "full_name": n.chars().take(200).collect::<String>() }),
        None => serde_json::json!({}),
    };
    let mut tx = UserTx::begin(&state.pool, user_id)
        .await
        .map_err(AuthError::from)?;
    let inserted = sqlx::query!(
        "INSERT INTO app.users (id, email, email_confirmed_at, created_at, updated_at, user_metadata)
         VALUES ($1, $2, $3, $3, $3, $4) ON CONFLICT (email) DO NOTHING",
        user_id,
        email.as_str(),
        now,
        metadata
    )
    .execute(&mut *tx)
    .await
    .map_err(AuthError::from)?
    .rows_affected()
        == 1;
    if !inserted {
        // Someone signed up with this address a moment ago; the next attempt links.
        return Err(AuthError::UserAlreadyExists.into());
    }
    insert_identity(
        &mut tx,
        provider,
        &claims.subject,
        user_id,
        email.as_str(),
        now,
    )
    .await?;
    let session = service::start_session(state, &mut tx, user_id, "oauth", origin).await?;
    tx.commit().await.map_err(AuthError::from)?;
    tracing::info!(target: "leadgen::audit", action = "sso_signup", provider, user_id = %user_id, "account created with single sign-on");
    Ok(Outcome::SignedIn(Box::new(session)))
}

async fn insert_identity(
    tx: &mut UserTx,
    provider: &str,
    subject: &str,
    user_id: Uuid,
    email: &str,
    now: OffsetDateTime,
) -> Result<(), SsoError> {
    sqlx::query!(
        "INSERT INTO app.identities (provider, subject, user_id, email, created_at, last_sign_in_at)
         VALUES ($1, $2, $3, $4, $5, $5)",
        provider,
        subject,
        user_id,
        email,
        now
    )
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => AuthError::BadRequest(
            "this LeadGen account is already linked to another account at the same provider".into(),
        ),
        _ => AuthError::from(e),
    })?;
    Ok(())
}

/// The account owner confirms a pending link with the account's password (throttled like any
/// sign-in). On success the identity is linked and a session starts.
pub async fn link(
    state: &AuthState,
    pending: &PendingLink,
    password: String,
    origin: &Origin,
) -> Result<Session, SsoError> {
    let session = service::password_grant(state, &pending.email, password, origin).await?;
    if session.user.id != pending.user_id {
        // The address changed hands between the provider's answer and this confirmation.
        return Err(AuthError::InvalidCredentials.into());
    }
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, pending.user_id)
        .await
        .map_err(AuthError::from)?;
    insert_identity(
        &mut tx,
        &pending.provider,
        &pending.subject,
        pending.user_id,
        &pending.email,
        now,
    )
    .await?;
    tx.commit().await.map_err(AuthError::from)?;
    tracing::info!(target: "leadgen::audit", action = "sso_linked", provider = %pending.provider, user_id = %pending.user_id, "single sign-on identity linked after password confirmation");
    Ok(session)
}
