//! ACL groups: named sets of an organization's members that resources (leads first) name as
//! their read and write groups. Members list them; only admins at `aal2` change them, which the
//! database enforces as well (restrictive policies on `app.acl_groups` and its members).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::permissions::{Member, Require, perm};
use crate::audit::{self, Entry, Meta};
use crate::auth::AuthState;
use crate::db::TenantTx;
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::state::Core;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(remove))
        .routes(routes!(add_member, remove_member))
}

#[utoipa::path(get, path = "/api/v1/org/groups", tag = "organizations",
    responses((status = 200, description = "ACL groups and their members", body = Vec<Group>), Refusals))]
pub(crate) async fn list(
    State(state): State<AuthState>,
    member: Member,
) -> Result<axum::Json<Vec<Group>>, AppError> {
    Ok(axum::Json(all(&state, &member).await?))
}

/// An ACL group and its members' user ids.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub id: Uuid,
    pub name: String,
    pub members: Vec<Uuid>,
}

/// The organization's groups, by name.
pub async fn all(state: &Core, member: &Member) -> Result<Vec<Group>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        r#"SELECT g.id, g.name,
                  coalesce(array_agg(m.user_id) FILTER (WHERE m.user_id IS NOT NULL), '{}') AS "members!"
           FROM app.acl_groups g LEFT JOIN app.acl_group_members m ON m.group_id = g.id
           WHERE g.org_id = $1 GROUP BY g.id, g.name ORDER BY g.name"#,
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| Group {
            id: r.id,
            name: r.name,
            members: r.members,
        })
        .collect())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewGroup {
    pub(crate) name: String,
}

#[utoipa::path(post, path = "/api/v1/org/groups", tag = "organizations", request_body = NewGroup,
    responses((status = 201, description = "The group (admins at aal2); audited", body = Object), (status = 409, description = "A group of that name exists", body = crate::http::openapi::ErrorBody), Refusals))]
pub(crate) async fn create(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    meta: Meta,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<Response, AppError> {
    let group = new_group(&state, &admin, &meta, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(group)).into_response())
}

/// Creates group `name` (admins at aal2); audited.
pub async fn new_group(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    name: &str,
) -> Result<Group, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "name: 1 to 100 characters, no control characters".into(),
        ));
    }
    let id = Uuid::now_v7();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let inserted = sqlx::query!(
        "INSERT INTO app.acl_groups (id, org_id, name) VALUES ($1, $2, $3) ON CONFLICT (org_id, name) DO NOTHING",
        id,
        member.org_id,
        name
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AppError::Conflict(format!(
            "name: a group named {name:?} already exists"
        )));
    }
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "group.create",
            target: Some(format!("group:{id}")),
            before: None,
            after: Some(json!({ "name": name })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Group {
        id,
        name: name.to_string(),
        members: Vec::new(),
    })
}

/// A group still named by an ACL cannot go: the leads it guards would fall back to admins only
/// without anyone deciding it. Change those ACLs first.
#[utoipa::path(delete, path = "/api/v1/org/groups/{id}", tag = "organizations", params(("id" = Uuid, Path, description = "The group")),
    responses((status = 204, description = "Removed (admins at aal2); audited"), Missing, Refusals))]
pub(crate) async fn remove(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    delete(&state, &admin, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes group `id` (admins at aal2) unless an ACL still names it; audited.
pub async fn delete(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let name = sqlx::query_scalar!(
        "SELECT name FROM app.acl_groups WHERE id = $1 AND org_id = $2 FOR UPDATE",
        id,
        member.org_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    // Admins read every lead of their organization, so this count is complete.
    let used = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM app.leads WHERE org_id = $1 AND (read_groups @> ARRAY[$2::uuid] OR write_groups @> ARRAY[$2::uuid])"#,
        member.org_id,
        id
    )
    .fetch_one(&mut *tx)
    .await?;
    if used > 0 {
        return Err(AppError::Conflict(format!(
            "group {name:?} is named by the ACL of {used} lead(s); change those ACLs first"
        )));
    }
    sqlx::query!("DELETE FROM app.acl_groups WHERE id = $1", id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "group.delete",
            target: Some(format!("group:{id}")),
            before: Some(json!({ "name": name })),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Adds member `user` to `group`, or removes them (admins at aal2); audited when it changes.
pub async fn member_change(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    group: Uuid,
    user: Uuid,
    add: bool,
) -> Result<(), AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let exists = sqlx::query_scalar!(
        r#"SELECT (EXISTS (SELECT 1 FROM app.acl_groups WHERE id = $1 AND org_id = $3)
                   AND EXISTS (SELECT 1 FROM app.memberships WHERE user_id = $2 AND org_id = $3)) AS "ok!""#,
        group,
        user,
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        return Err(AppError::NotFound);
    }
    let changed = if add {
        sqlx::query!(
            "INSERT INTO app.acl_group_members (org_id, group_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            member.org_id,
            group,
            user
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query!(
            "DELETE FROM app.acl_group_members WHERE group_id = $1 AND user_id = $2",
            group,
            user
        )
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    if changed > 0 {
        audit::record(
            &mut tx,
            state.clock.now(),
            meta,
            Entry {
                action: if add {
                    "group.member.add"
                } else {
                    "group.member.remove"
                },
                target: Some(format!("group:{group}")),
                before: None,
                after: Some(json!({ "user_id": user })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(put, path = "/api/v1/org/groups/{id}/members/{user_id}", tag = "organizations", params(("id" = Uuid, Path, description = "The group"), ("user_id" = Uuid, Path, description = "The member")),
    responses((status = 204, description = "Added (admins at aal2); audited"), Missing, Refusals))]
pub(crate) async fn add_member(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    Path((group, user)): Path<(Uuid, Uuid)>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    member_change(&state, &admin, &meta, group, user, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/org/groups/{id}/members/{user_id}", tag = "organizations", params(("id" = Uuid, Path, description = "The group"), ("user_id" = Uuid, Path, description = "The member")),
    responses((status = 204, description = "Removed (admins at aal2); audited"), Missing, Refusals))]
pub(crate) async fn remove_member(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    Path((group, user)): Path<(Uuid, Uuid)>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    member_change(&state, &admin, &meta, group, user, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
