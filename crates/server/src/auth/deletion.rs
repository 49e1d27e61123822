//! Deleting one's own account: asked for with the password (and the second factor, when the
//! account has one), carried out after `auth.account_deletion_grace_days` by `leadgen accounts
//! purge`, cancelled by signing in before then.
//!
//! Asking ends every session, so the only way back in is a sign-in, which is also how a person
//! who changed their mind (or whose session was stolen) stops it. An organization the person is
//! the last admin of, with other members, must get another admin first; an organization they
//! are alone in goes with the account.

use serde::Serialize;
use time::OffsetDateTime;

use super::service::{self, Origin};
use super::{AuthError, AuthState, AuthUser, mfa};
use crate::db::UserTx;
use crate::mail::Mail;

/// What asking for deletion scheduled.
#[derive(Debug, Clone, Serialize)]
pub struct Scheduled {
    #[serde(with = "time::serde::rfc3339")]
    pub deletion_due_at: OffsetDateTime,
    /// Organizations the person is alone in, deleted with the account.
    pub organizations_deleted_with_it: Vec<String>,
}

/// Schedules the deletion of `who`'s account after checking the password and, when the
/// account has an authenticator app, a current code from it.
pub async fn request(
    state: &AuthState,
    who: &AuthUser,
    password: String,
    code: Option<&str>,
    origin: &Origin,
) -> Result<Scheduled, AuthError> {
    let now = state.clock.now();
    let email = who.claims.email.clone();
    service::reconfirm_password(
        state,
        &email,
        password,
        origin,
        AuthError::InvalidCredentials,
    )
    .await?;
    let user = service::current_user(&state.pool, who.user_id).await?;
    if let Some(factor) = user
        .factors
        .iter()
        .find(|f| f.status == "verified" && f.factor_type == "totp")
    {
        let code = code.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
            AuthError::BadRequest(
                "code: this account has an authenticator app; give its current code".into(),
            )
        })?;
        let (challenge, _) = mfa::create_challenge(state, who, factor.id).await?;
        mfa::verify_code(state, who, factor.id, challenge, code.trim()).await?;
    }
    let mut tx = UserTx::begin(&state.pool, who.user_id).await?;
    let orgs = sqlx::query!(
        r#"SELECT org_id AS "org_id!", name AS "name!", members AS "members!",
                  other_admins AS "other_admins!", is_admin AS "is_admin!"
           FROM app.account_deletion_blockers()"#
    )
    .fetch_all(&mut *tx)
    .await?;
    if let Some(o) = orgs
        .iter()
        .find(|o| o.is_admin && o.other_admins == 0 && o.members > 1)
    {
        return Err(AuthError::AccountDeletionBlocked(format!(
            "you are the last admin of \"{}\", which has other members: make one of them an admin \
             (or remove them) before deleting your account",
            o.name
        )));
    }
    let due = now + time::Duration::days(state.config.auth.account_deletion_grace_days);
    // As stored (microseconds), so the answer, the mail and the account agree.
    let due = sqlx::query_scalar!(
        r#"UPDATE app.users SET deletion_requested_at = $2, deletion_due_at = $3, updated_at = $2
         WHERE id = $1 RETURNING deletion_due_at AS "due!""#,
        who.user_id,
        now,
        due
    )
    .fetch_one(&mut *tx)
    .await?;
    let ended = sqlx::query!(
        "UPDATE app.sessions SET revoked_at = $2, revoked_reason = 'account_deletion'
         WHERE user_id = $1 AND revoked_at IS NULL",
        who.user_id,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    let alone: Vec<String> = orgs
        .iter()
        .filter(|o| o.members == 1)
        .map(|o| o.name.clone())
        .collect();
    let when = crate::http::ts(due);
    let mut text = format!(
        "You asked to delete your LeadGen account ({email}). It will be deleted on {when}, with \
         everything that is yours alone"
    );
    if alone.is_empty() {
        text.push_str(".\n");
    } else {
        text.push_str(&format!(
            ", including the organizations only you belong to: {}.\n",
            alone.join(", ")
        ));
    }
    text.push_str(&format!(
        "\nEvery session was signed out. If you did not ask for this, or changed your mind, sign \
         in before then: that cancels the deletion.\n{}/login\n",
        state.config.site_url()
    ));
    service::send_mail(
        state,
        &Mail {
            to: email,
            subject: "Your LeadGen account will be deleted".into(),
            text,
        },
        now,
    )
    .await?;
    tracing::info!(target: "leadgen::audit", action = "account_deletion_requested", user_id = %who.user_id, sessions_ended = ended, due = %when, "account deletion scheduled");
    metrics::counter!("account_deletions_requested_total").increment(1);
    Ok(Scheduled {
        deletion_due_at: due,
        organizations_deleted_with_it: alone,
    })
}

/// Called by every sign-in, inside its transaction: a pending deletion is cancelled, and the
/// person told by mail. Whether one was.
pub(crate) async fn cancel_on_sign_in(
    state: &AuthState,
    tx: &mut UserTx,
    user_id: uuid::Uuid,
) -> Result<bool, AuthError> {
    let cancelled = sqlx::query_scalar!(
        "UPDATE app.users SET deletion_requested_at = NULL, deletion_due_at = NULL
         WHERE id = $1 AND deletion_due_at IS NOT NULL
         RETURNING email",
        user_id
    )
    .fetch_optional(&mut **tx)
    .await?;
    let Some(email) = cancelled else {
        return Ok(false);
    };
    let now = state.clock.now();
    service::send_mail(
        state,
        &Mail {
            to: email,
            subject: "Your LeadGen account will not be deleted".into(),
            text: "You signed in, so the deletion of your account you asked for is cancelled. \
                   If that sign-in was not you, change your password now.\n"
                .into(),
        },
        now,
    )
    .await?;
    tracing::info!(target: "leadgen::audit", action = "account_deletion_cancelled", user_id = %user_id, "account deletion cancelled by a sign-in");
    Ok(true)
}
