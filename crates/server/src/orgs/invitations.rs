//! Invitations: admins invite an address with a role; the mailed token is single-use, expires
//! after seven days, and only the account with that confirmed address can accept it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::permissions::{Require, perm};
use crate::audit::{self, Entry, Meta};
use crate::auth::AuthState;
use crate::auth::tokens::{random_token, token_hash};
use crate::auth::{AuthUser, EmailAddress};
use crate::db::{Aal, Role, TenantContext, TenantTx, UserTx};
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::mail::Mail;
use crate::state::Core;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How long an invitation stays valid.
const INVITATION_TTL_DAYS: i64 = 7;

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(list, invite))
        .routes(routes!(revoke))
        .routes(routes!(accept))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    pub email: String,
    pub role: String,
}

#[utoipa::path(post, path = "/api/v1/org/invitations", tag = "organizations", request_body = Invite,
    responses((status = 201, description = "The invitation, mailed with a single-use link (admins)", body = Invitation), Refusals))]
pub(crate) async fn invite(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    meta: Meta,
    ApiJson(body): ApiJson<Invite>,
) -> Result<Response, AppError> {
    let sent = send(&state, &admin, &meta, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(sent)).into_response())
}

/// An invitation as the organization's admins see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "time::serde::rfc3339::option::serialize"
    )]
    pub created_at: Option<time::OffsetDateTime>,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub expires_at: time::OffsetDateTime,
    /// `pending`, `accepted`, `revoked` or `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// Invites `body.email` with `body.role` (admins): stored, audited and mailed with a single-use
/// token.
pub async fn send(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    body: &Invite,
) -> Result<Invitation, AppError> {
    let email = EmailAddress::parse(&body.email)
        .map_err(|_| AppError::BadRequest("email: not a valid email address".into()))?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        AppError::BadRequest("role: one of \"admin\", \"manager\", \"user\", \"api\"".into())
    })?;
    let now = state.clock.now();
    let expires_at = now + time::Duration::days(INVITATION_TTL_DAYS);
    let token = random_token();
    let id = Uuid::now_v7();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let org_name = sqlx::query_scalar!(
        "SELECT name FROM app.organizations WHERE id = $1",
        member.org_id
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO app.invitations (id, org_id, email, role, token_hash, invited_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        member.org_id,
        email.as_str(),
        role.as_str(),
        token_hash(&token),
        member.principal_id,
        now,
        expires_at
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "invitation.create",
            target: Some(format!("invitation:{id}")),
            before: None,
            after: Some(json!({ "email": email.as_str(), "role": role.as_str() })),
        },
    )
    .await?;
    // Mail first, then commit: an invitation nobody was told about is not left behind.
    state
        .mailer
        .send(
            &Mail {
                to: email.as_str().into(),
                subject: format!("You are invited to {org_name} on LeadGen"),
                text: format!(
                    "You are invited to join {org_name} on LeadGen as {}.\n\n\
                     Sign in (or create your account with this address), then accept with this code \
                     (API: POST /api/v1/invitations/accept {{\"token\": \"…\"}}):\n\n\
                     invitation_token={token}\n\nThe invitation works once and expires in {INVITATION_TTL_DAYS} days.\n",
                    role.as_str()
                ),
            },
            now,
        )
        .await
        .map_err(|e| AppError::Internal(anyhow::Error::new(e)))?;
    tx.commit().await?;
    Ok(Invitation {
        id,
        email: email.as_str().into(),
        role: role.as_str().into(),
        created_at: None,
        expires_at,
        status: None,
    })
}

#[utoipa::path(get, path = "/api/v1/org/invitations", tag = "organizations",
    responses((status = 200, description = "The organization's invitations, newest first", body = Vec<Invitation>), Refusals))]
pub(crate) async fn list(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
) -> Result<axum::Json<Vec<Invitation>>, AppError> {
    Ok(axum::Json(all(&state, &admin).await?))
}

/// The organization's invitations, newest first (admins).
pub async fn all(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
) -> Result<Vec<Invitation>, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT id, email, role, created_at, expires_at, accepted_at, revoked_at
         FROM app.invitations WHERE org_id = $1 ORDER BY created_at DESC, id",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let status = if r.accepted_at.is_some() {
                "accepted"
            } else if r.revoked_at.is_some() {
                "revoked"
            } else if r.expires_at <= now {
                "expired"
            } else {
                "pending"
            };
            Invitation {
                id: r.id,
                email: r.email,
                role: r.role,
                created_at: Some(r.created_at),
                expires_at: r.expires_at,
                status: Some(status),
            }
        })
        .collect())
}

#[utoipa::path(delete, path = "/api/v1/org/invitations/{id}", tag = "organizations", params(("id" = Uuid, Path, description = "The invitation")),
    responses((status = 204, description = "Revoked"), Missing, Refusals))]
pub(crate) async fn revoke(
    State(state): State<AuthState>,
    admin: Require<perm::ManageOrganization>,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    withdraw(&state, &admin, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes pending invitation `id` (admins); audited.
pub async fn withdraw(
    state: &Core,
    Require(member, _): &Require<perm::ManageOrganization>,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let email = sqlx::query_scalar!(
        "UPDATE app.invitations SET revoked_at = $2 WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
         RETURNING email",
        id,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "invitation.revoke",
            target: Some(format!("invitation:{id}")),
            before: Some(json!({ "email": email, "status": "pending" })),
            after: Some(json!({ "status": "revoked" })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Accept {
    pub(crate) token: String,
}

/// The signed-in user accepts an invitation addressed to them; they become a member with the
/// invited role (their session stays where it is: switch to work in the new organization).
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "organizations", request_body = Accept,
    responses((status = 200, description = "Membership with the invited role, for the signed-in user the invitation was sent to", body = Object), Refusals))]
pub(crate) async fn accept(
    State(state): State<AuthState>,
    user: AuthUser,
    meta: Meta,
    ApiJson(body): ApiJson<Accept>,
) -> Result<axum::Json<Value>, AppError> {
    let now = state.clock.now();
    let mut tx = UserTx::begin(&state.pool, user.user_id).await?;
    let accepted = sqlx::query!(
        r#"SELECT org_id AS "org_id!", role AS "role!" FROM app.invitation_accept($1, $2)"#,
        token_hash(body.token.trim()),
        now
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        let msg = match &e {
            sqlx::Error::Database(d) => d.message().to_string(),
            _ => String::new(),
        };
        match msg.as_str() {
            "invitation: invalid" => {
                AppError::BadRequest("the invitation is unknown, used, revoked or expired".into())
            }
            "invitation: other address" => AppError::Denied {
                code: "invitation_for_another_address",
                message: "this invitation was sent to another (or an unconfirmed) email address"
                    .into(),
            },
            "invitation: already member" => {
                AppError::Conflict("you are already a member of this organization".into())
            }
            _ => AppError::Database(e),
        }
    })?;
    let role = Role::parse(&accepted.role).unwrap_or(Role::User);
    let mut tx = tx
        .into_tenant(TenantContext {
            org_id: accepted.org_id,
            user_id: user.user_id,
            role,
            aal: Aal::parse(&user.aal),
        })
        .await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "invitation.accept",
            target: Some(format!("user:{}", user.user_id)),
            before: None,
            after: Some(json!({ "role": accepted.role })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(
        json!({ "org_id": accepted.org_id, "role": accepted.role }),
    ))
}
