//! `/api/v1` for organizations: create, list and switch; settings; members and their roles; the
//! audit trail. Every route that needs a permission takes [`Require`]; every query runs in a
//! [`TenantTx`] built from the member, never from an id in the request.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::permissions::{Member, Require, perm};
use crate::audit::{self, Entry, Meta};
use crate::auth::AuthState;
use crate::auth::AuthUser;
use crate::auth::shell::{Membership, memberships};
use crate::db::{Aal, Role, TenantContext, TenantTx, UserTx};
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::state::Core;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(switch_org))
        .routes(routes!(current_org, rename_org, delete_org))
        .routes(routes!(cancel_deletion))
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(audit_log))
}

fn org_name(raw: &str) -> Result<String, AppError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "name: 1 to 200 characters, no control characters".into(),
        ));
    }
    Ok(name.to_string())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrg {
    pub(crate) name: String,
}

/// Any signed-in user may create an organization; they become its first Admin.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations", request_body = NewOrg,
    responses((status = 201, description = "The organization; the caller is its first admin", body = OrgCreated), Refusals))]
pub(crate) async fn create_org(
    State(state): State<AuthState>,
    user: AuthUser,
    meta: Meta,
    ApiJson(body): ApiJson<NewOrg>,
) -> Result<Response, AppError> {
    let org = new_org(&state, &user, &meta, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(org)).into_response())
}

/// A new organization, and the role its creator has in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrgCreated {
    pub id: Uuid,
    pub name: String,
    pub role: &'static str,
}

/// Creates an organization whose first admin is `user`; audited as its chain's first entry.
pub async fn new_org(
    state: &AuthState,
    user: &AuthUser,
    meta: &Meta,
    name: &str,
) -> Result<OrgCreated, AppError> {
    let name = org_name(name)?;
    let id = Uuid::now_v7();
    let mut tx = UserTx::begin(&state.pool, user.user_id).await?;
    sqlx::query!("SELECT app.org_create($1, $2)", id, name)
        .execute(&mut *tx)
        .await?;
    // The creation is the first entry of the new organization's chain, in the same transaction.
    let mut tx = tx
        .into_tenant(TenantContext {
            org_id: id,
            user_id: user.user_id,
            role: Role::Admin,
            aal: Aal::parse(&user.aal),
        })
        .await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "org.create",
            target: Some(format!("org:{id}")),
            before: None,
            after: Some(json!({ "name": name })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(OrgCreated {
        id,
        name,
        role: "admin",
    })
}

#[utoipa::path(get, path = "/api/v1/orgs", tag = "organizations",
    responses((status = 200, description = "The organizations the user belongs to, with the role in each", body = Vec<Membership>), Refusals))]
pub(crate) async fn list_orgs(
    State(state): State<AuthState>,
    user: AuthUser,
) -> Result<axum::Json<Vec<Membership>>, AppError> {
    Ok(axum::Json(memberships(&state, &user).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Switch {
    pub(crate) org_id: Uuid,
}

/// Moves the session to another organization of the user's and returns a fresh access token
/// carrying it. Not a member: 404, whether or not the organization exists.
#[utoipa::path(post, path = "/api/v1/session/org", tag = "organizations", request_body = Switch,
    responses((status = 200, description = "New tokens for the session, scoped to the chosen organization", body = Object), Missing, Refusals))]
pub(crate) async fn switch_org(
    State(state): State<AuthState>,
    user: AuthUser,
    ApiJson(body): ApiJson<Switch>,
) -> Result<axum::Json<Value>, AppError> {
    let session = crate::auth::service::switch_org(&state, &user, body.org_id)
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e)))?
        .ok_or(AppError::NotFound)?;
    Ok(axum::Json(json!({
        "access_token": session.access_token,
        "token_type": "bearer",
        "expires_in": session.expires_in,
        "expires_at": session.expires_at,
        "org_id": body.org_id,
    })))
}

#[utoipa::path(get, path = "/api/v1/org", tag = "organizations",
    responses((status = 200, description = "The session's organization and the caller's role in it", body = CurrentOrg), Refusals))]
pub(crate) async fn current_org(
    State(state): State<AuthState>,
    member: Member,
) -> Result<axum::Json<CurrentOrg>, AppError> {
    Ok(axum::Json(current(&state, &member).await?))
}

/// The organization a member works in, and their role there.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CurrentOrg {
    pub id: Uuid,
    pub name: String,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub created_at: time::OffsetDateTime,
    pub role: &'static str,
    /// When the organization will be deleted, if an admin asked for it (any admin may cancel).
    pub deletion_due_at: Option<String>,
}

pub async fn current(state: &Core, member: &Member) -> Result<CurrentOrg, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let org = sqlx::query!(
        "SELECT id, name, created_at, deletion_due_at FROM app.organizations WHERE id = $1",
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(CurrentOrg {
        id: org.id,
        name: org.name,
        created_at: org.created_at,
        role: member.role.as_str(),
        deletion_due_at: org.deletion_due_at.map(crate::http::ts),
    })
}

#[utoipa::path(patch, path = "/api/v1/org", tag = "organizations", request_body = NewOrg,
    responses((status = 200, description = "Renamed (admins); audited", body = Object), Refusals))]
pub(crate) async fn rename_org(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    meta: Meta,
    ApiJson(body): ApiJson<NewOrg>,
) -> Result<axum::Json<Value>, AppError> {
    let name = rename(&state, &admin, &meta, &body.name).await?;
    Ok(axum::Json(json!({ "id": admin.0.org_id, "name": name })))
}

/// Renames the organization (admins); audited. Returns the new name.
pub async fn rename(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    name: &str,
) -> Result<String, AppError> {
    let name = org_name(name)?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let before = sqlx::query_scalar!(
        "SELECT name FROM app.organizations WHERE id = $1 FOR NO KEY UPDATE",
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE app.organizations SET name = $2 WHERE id = $1",
        member.org_id,
        name
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "org.rename",
            target: Some(format!("org:{}", member.org_id)),
            before: Some(json!({ "name": before })),
            after: Some(json!({ "name": name })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(name)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteOrg {
    /// The organization's name, exactly: deleting is not a click to make by accident.
    pub confirm: String,
}

#[utoipa::path(delete, path = "/api/v1/org", tag = "organizations", request_body = DeleteOrg,
    responses((status = 202, description = "The organization will be deleted with all its data after `auth.account_deletion_grace_days` (admins at aal2); every admin is mailed, any admin may cancel; audited", body = Object), Refusals))]
pub(crate) async fn delete_org(
    State(state): State<AuthState>,
    Require(member, _): Require<perm::ManageOrganization>,
    meta: Meta,
    ApiJson(body): ApiJson<DeleteOrg>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let due = now + time::Duration::days(state.config.auth.account_deletion_grace_days);
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let name = sqlx::query_scalar!(
        "SELECT name FROM app.organizations WHERE id = $1 FOR NO KEY UPDATE",
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if body.confirm != name {
        return Err(AppError::BadRequest(
            "confirm: type the organization's name exactly to delete it".into(),
        ));
    }
    // As stored (microseconds), so every answer shows the same time.
    let due = sqlx::query_scalar!(
        r#"UPDATE app.organizations SET deletion_requested_at = $2, deletion_due_at = $3,
            deletion_requested_by = $4
         WHERE id = $1 RETURNING deletion_due_at AS "due!""#,
        member.org_id,
        now,
        due,
        member.principal_id
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "org.deletion_requested",
            target: Some(format!("org:{}", member.org_id)),
            before: None,
            after: Some(json!({ "due_at": crate::http::ts(due) })),
        },
    )
    .await?;
    let message = format!(
        "An admin asked to delete the organization \"{name}\" with all its leads, imports, \
         campaigns and audit trail. It will be deleted on {}. Any admin can cancel this before \
         then (DELETE is undone by POST /api/v1/org/deletion/cancel).",
        crate::http::ts(due)
    );
    tx.commit().await?;
    super::tell_admins(
        &state,
        member.org_id,
        "org_deletion",
        &format!("LeadGen: \"{name}\" will be deleted"),
        &message,
        now,
    )
    .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(json!({ "id": member.org_id, "deletion_due_at": crate::http::ts(due) })),
    )
        .into_response())
}

#[utoipa::path(post, path = "/api/v1/org/deletion/cancel", tag = "organizations",
    responses((status = 200, description = "The pending deletion is cancelled (admins at aal2); audited", body = Object),
        (status = 409, description = "The organization is not being deleted", body = crate::http::openapi::ErrorBody), Refusals))]
pub(crate) async fn cancel_deletion(
    State(state): State<AuthState>,
    Require(member, _): Require<perm::ManageOrganization>,
    meta: Meta,
) -> Result<axum::Json<Value>, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let cancelled = sqlx::query!(
        "UPDATE app.organizations SET deletion_requested_at = NULL, deletion_due_at = NULL,
            deletion_requested_by = NULL
         WHERE id = $1 AND deletion_due_at IS NOT NULL",
        member.org_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if cancelled == 0 {
        return Err(AppError::Conflict(
            "deletion: this organization is not being deleted".into(),
        ));
    }
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "org.deletion_cancelled",
            target: Some(format!("org:{}", member.org_id)),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({ "id": member.org_id, "deletion_due_at": null }),
    ))
}

/// The longest an organization may keep a lead without activity (the seeds' 24 months), and the
/// default; the retention job (`privacy::retention`) enforces it.
pub const MAX_RETENTION_MONTHS: u8 = 24;

/// Organization-wide security settings.
#[derive(Debug, Deserialize, serde::Serialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// Every member must sign in with a second factor to work in this organization.
    #[serde(default)]
    pub(crate) require_mfa: bool,
    /// Campaigns asked for by Users and API keys wait for a Manager's or an Admin's approval
    /// before they send. Absent: the server's default (`campaigns.approval_default`, on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) campaign_approval: Option<bool>,
    /// Months without a change, note or activity after which a lead is anonymised by the
    /// retention job (1 to 24). Absent: 24, the longest LeadGen keeps lead data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 24)]
    pub(crate) retention_months: Option<u8>,
}

#[utoipa::path(get, path = "/api/v1/org/settings", tag = "organizations",
    responses((status = 200, description = "The organization's settings", body = Settings), Refusals))]
pub(crate) async fn get_settings(
    State(state): State<AuthState>,
    Require(member, _): Require<perm::SystemSettings>,
) -> Result<axum::Json<Value>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let settings = sqlx::query_scalar!(
        "SELECT settings FROM app.organizations WHERE id = $1",
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let parsed: Settings = serde_json::from_value(settings).unwrap_or_default();
    Ok(axum::Json(json!(parsed)))
}

#[utoipa::path(put, path = "/api/v1/org/settings", tag = "organizations", request_body = Settings,
    responses((status = 200, description = "The settings after the change (admins at aal2); audited", body = Settings), Refusals))]
pub(crate) async fn put_settings(
    State(state): State<AuthState>,
    Require(member, _): Require<perm::SystemSettings>,
    meta: Meta,
    ApiJson(body): ApiJson<Settings>,
) -> Result<axum::Json<Value>, AppError> {
    if let Some(m) = body.retention_months
        && !(1..=MAX_RETENTION_MONTHS).contains(&m)
    {
        return Err(AppError::BadRequest(format!(
            "retention_months: must be between 1 and {} (months), not {m}",
            MAX_RETENTION_MONTHS
        )));
    }
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let before = sqlx::query_scalar!(
        "SELECT settings FROM app.organizations WHERE id = $1 FOR NO KEY UPDATE",
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let after = json!(body);
    sqlx::query!(
        "UPDATE app.organizations SET settings = $2 WHERE id = $1",
        member.org_id,
        after
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        &meta,
        Entry {
            action: "org.settings",
            target: Some(format!("org:{}", member.org_id)),
            before: Some(before),
            after: Some(after.clone()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(after))
}

#[utoipa::path(get, path = "/api/v1/org/members", tag = "organizations",
    responses((status = 200, description = "Members and their roles", body = Vec<MemberRow>), Refusals))]
pub(crate) async fn list_members(
    State(state): State<AuthState>,
    member: Member,
) -> Result<axum::Json<Vec<MemberRow>>, AppError> {
    Ok(axum::Json(members(&state, &member).await?))
}

/// A member of the organization.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub since: time::OffsetDateTime,
}

/// The organization's members, oldest first.
pub async fn members(state: &Core, member: &Member) -> Result<Vec<MemberRow>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT m.user_id, u.email, m.role, m.created_at FROM app.memberships m
         JOIN app.users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| MemberRow {
            user_id: r.user_id,
            email: r.email,
            role: r.role,
            since: r.created_at,
        })
        .collect())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    pub(crate) role: String,
}

/// Locks the organization's admins and fails when `user_id` is its last one.
pub(crate) async fn ensure_not_last_admin(
    tx: &mut TenantTx,
    org: Uuid,
    user_id: Uuid,
) -> Result<(), AppError> {
    let admins: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT user_id FROM app.memberships WHERE org_id = $1 AND role = 'admin' FOR UPDATE",
        org
    )
    .fetch_all(&mut **tx)
    .await?;
    if admins == [user_id] {
        return Err(AppError::Conflict(
            "the organization's last admin cannot be demoted or removed; make another member admin first"
                .into(),
        ));
    }
    Ok(())
}

#[utoipa::path(patch, path = "/api/v1/org/members/{user_id}", tag = "organizations", params(("user_id" = Uuid, Path, description = "The member's user id")), request_body = RoleChange,
    responses((status = 200, description = "The new role (admins at aal2; never the last admin); audited", body = Object), (status = 409, description = "It would leave the organization without an admin", body = crate::http::openapi::ErrorBody), Missing, Refusals))]
pub(crate) async fn change_role(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    meta: Meta,
    Path(user_id): Path<Uuid>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<axum::Json<Value>, AppError> {
    let role = set_role(&state, &admin, &meta, user_id, &body.role).await?;
    Ok(axum::Json(
        json!({ "user_id": user_id, "role": role.as_str() }),
    ))
}

/// Gives member `user_id` a new role (admins; never the last admin); audited.
pub async fn set_role(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    user_id: Uuid,
    role: &str,
) -> Result<Role, AppError> {
    let role = Role::parse(role).ok_or_else(|| {
        AppError::BadRequest("role: one of \"admin\", \"manager\", \"user\", \"api\"".into())
    })?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let before = sqlx::query_scalar!(
        "SELECT role FROM app.memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE",
        member.org_id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if before == "admin" && role != Role::Admin {
        ensure_not_last_admin(&mut tx, member.org_id, user_id).await?;
    }
    sqlx::query!(
        "UPDATE app.memberships SET role = $3 WHERE org_id = $1 AND user_id = $2",
        member.org_id,
        user_id,
        role.as_str()
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "member.role",
            target: Some(format!("user:{user_id}")),
            before: Some(json!({ "role": before })),
            after: Some(json!({ "role": role.as_str() })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(role)
}

#[utoipa::path(delete, path = "/api/v1/org/members/{user_id}", tag = "organizations", params(("user_id" = Uuid, Path, description = "The member's user id")),
    responses((status = 204, description = "Removed (admins at aal2; never the last admin); audited"), (status = 409, description = "It would leave the organization without an admin", body = crate::http::openapi::ErrorBody), Missing, Refusals))]
pub(crate) async fn remove_member(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    meta: Meta,
    Path(user_id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    remove(&state, &admin, &meta, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes member `user_id` (admins; never the last admin); audited.
pub async fn remove(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    user_id: Uuid,
) -> Result<(), AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let before = sqlx::query_scalar!(
        "SELECT role FROM app.memberships WHERE org_id = $1 AND user_id = $2 FOR UPDATE",
        member.org_id,
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if before == "admin" {
        ensure_not_last_admin(&mut tx, member.org_id, user_id).await?;
    }
    sqlx::query!(
        "DELETE FROM app.memberships WHERE org_id = $1 AND user_id = $2",
        member.org_id,
        user_id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "member.remove",
            target: Some(format!("user:{user_id}")),
            before: Some(json!({ "role": before })),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub action: Option<String>,
    /// Only entries before this sequence number (paging backwards).
    pub before_seq: Option<i64>,
    pub limit: Option<i64>,
}

/// The trail, newest first, for admins (the database adds the same rule).
#[utoipa::path(get, path = "/api/v1/org/audit", tag = "organizations", params(AuditQuery),
    responses((status = 200, description = "The audit trail, newest first (admins)", body = Vec<AuditRow>), Refusals))]
pub(crate) async fn audit_log(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<Vec<AuditRow>>, AppError> {
    Ok(axum::Json(audit_entries(&state, &admin, &q).await?))
}

/// One entry of the audit trail.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub seq: i64,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub at: time::OffsetDateTime,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// The trail, newest first (admins; the database adds the same rule).
pub async fn audit_entries(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    q: &AuditQuery,
) -> Result<Vec<AuditRow>, AppError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        r#"SELECT seq, at, actor_id, action, target, before, after, host(ip) AS ip, request_id
           FROM app.audit_log
           WHERE org_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::bigint IS NULL OR seq < $3)
           ORDER BY seq DESC LIMIT $4"#,
        member.org_id,
        q.action.as_deref(),
        q.before_seq,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| AuditRow {
            seq: r.seq,
            at: r.at,
            actor_id: r.actor_id,
            action: r.action,
            target: r.target,
            before: r.before,
            after: r.after,
            ip: r.ip,
            request_id: r.request_id,
        })
        .collect())
}
