//! Organizations and access control: membership and roles, the permission matrix enforced by
//! extractors and by row-level security, invitations, ACL groups and API keys.

pub mod api;
pub mod api_keys;
pub mod groups;
pub mod invitations;
pub mod pages;
pub mod permissions;

pub use permissions::{Member, Permission, Require, perm};

/// Tells an organization's admins something they must act on: a mail to each, and a notice on
/// their pages (`kind` names it there). API keys near expiry, data-subject requests near their
/// deadline and an organization about to be deleted all go this way.
pub async fn tell_admins(
    state: &crate::state::Core,
    org: uuid::Uuid,
    kind: &str,
    subject: &str,
    message: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    let admins = sqlx::query_scalar!(r#"SELECT e AS "e!" FROM app.org_admin_emails($1) e"#, org)
        .fetch_all(&state.pool)
        .await?;
    for to in admins {
        state
            .mailer
            .send(
                &crate::mail::Mail {
                    to,
                    subject: subject.to_string(),
                    text: format!("{message}\n"),
                },
                now,
            )
            .await?;
    }
    sqlx::query!(
        "SELECT app.notify($1, 'admins', $2, $3, $4)",
        org,
        kind,
        message,
        now
    )
    .execute(&state.pool)
    .await?;
    Ok(())
}
