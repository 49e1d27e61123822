//! The signed-in user as the app shell shows them: their email, the organizations they belong
//! to (the one the session works in marked) and their role there.

use serde::Serialize;
use uuid::Uuid;

use super::AuthUser;
use crate::db::UserTx;
use crate::state::Core;
use crate::web::shell::{OrgChoice, Section, Shell, Viewer};

/// One organization a user belongs to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    /// The organization the session works in.
    pub current: bool,
}

/// The organizations `user` belongs to, oldest membership first.
pub async fn memberships(core: &Core, user: &AuthUser) -> Result<Vec<Membership>, sqlx::Error> {
    let mut tx = UserTx::begin(&core.pool, user.user_id).await?;
    let rows = sqlx::query!(
        "SELECT o.id, o.name, m.role FROM app.memberships m JOIN app.organizations o ON o.id = m.org_id
         WHERE m.user_id = $1 ORDER BY m.created_at, o.id",
        user.user_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let current = user.org.map(|o| o.org_id);
    Ok(rows
        .into_iter()
        .map(|r| Membership {
            current: Some(r.id) == current,
            id: r.id,
            name: r.name,
            role: r.role,
        })
        .collect())
}

/// A page of an organization's data asked for by a user whose session works in none: the
/// organization page, which says why, is where to go.
#[must_use]
pub fn without_organization(who: &AuthUser) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    who.org
        .is_none()
        .then(|| axum::response::Redirect::to("/org?need=organization").into_response())
}

/// The shell of a signed-in page in `section`; `csrf` protects its forms.
pub async fn shell(
    core: &Core,
    who: &AuthUser,
    section: Section,
    csrf: &str,
) -> Result<Shell, sqlx::Error> {
    let orgs = memberships(core, who).await?;
    let org = orgs
        .iter()
        .find(|o| o.current)
        .map(|o| (o.name.clone(), o.role.clone()));
    let viewer = Viewer {
        email: who.claims.email.clone(),
        org,
        orgs: orgs
            .into_iter()
            .map(|o| OrgChoice {
                id: o.id,
                name: o.name,
                role: o.role,
                current: o.current,
            })
            .collect(),
    };
    Ok(Shell::new(section, viewer, csrf, core.clock.now()))
}
