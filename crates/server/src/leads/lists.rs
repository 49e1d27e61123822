//! Lists: `/api/v1/lists`. Leads gathered by hand under a name, private to their owner or shared
//! with the organization; `GET /api/v1/leads?list=<id>` searches one (with every other filter).
//!
//! An entry follows its lead: whoever cannot read a lead never sees it in a list, shared or not,
//! and adding a lead one cannot read is counted as skipped, like an id that does not exist, so
//! the answer tells nothing about leads outside the caller's ACL.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{ErrorBody, Missing, Refusals};
use crate::leads::LeadsState;
use crate::orgs::{Member, Require, perm};
use crate::state::Core;

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(index, create))
        .routes(routes!(remove))
        .routes(routes!(add, take_out))
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// Most leads one request adds or removes.
const MAX_LEADS: usize = 1000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    pub name: String,
    /// Visible to the whole organization (default: only to you).
    #[serde(default)]
    pub shared: bool,
}

/// A list as its readers see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct List {
    pub id: Uuid,
    pub name: String,
    pub shared: bool,
    pub owner_id: Uuid,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub created_at: time::OffsetDateTime,
    /// How many of its leads the reader can read (in listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leads: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Leads {
    /// Lead ids, at most 1,000.
    leads: Vec<Uuid>,
}

impl Leads {
    fn checked(mut self) -> Result<Vec<Uuid>, AppError> {
        if self.leads.is_empty() || self.leads.len() > MAX_LEADS {
            return Err(AppError::BadRequest(format!(
                "leads: from 1 to {MAX_LEADS} lead ids"
            )));
        }
        self.leads.sort_unstable();
        self.leads.dedup();
        Ok(self.leads)
    }
}

async fn audit_list(
    tx: &mut TenantTx,
    meta: &Meta,
    action: &'static str,
    list: Uuid,
    after: serde_json::Value,
    now: time::OffsetDateTime,
) -> Result<(), AppError> {
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action,
            target: Some(format!("list:{list}")),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/lists", tag = "lists", request_body = NewList,
    responses((status = 201, description = "The list", body = List), (status = 409, description = "You have a list with this name", body = ErrorBody), Refusals))]
async fn create(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiJson(body): ApiJson<NewList>,
) -> Result<Response, AppError> {
    let list = new_list(&state, &member, &meta, body).await?;
    Ok((StatusCode::CREATED, axum::Json(list)).into_response())
}

/// Creates a list owned by `member`; audited.
pub async fn new_list(
    state: &LeadsState,
    member: &Member,
    meta: &Meta,
    body: NewList,
) -> Result<List, AppError> {
    let name = crate::leads::model::text("name", Some(body.name), 200)?
        .ok_or_else(|| AppError::BadRequest("name: from 1 to 200 characters".into()))?;
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let owner = tx.context().user_id;
    sqlx::query!(
        "INSERT INTO app.lead_lists (id, org_id, owner_id, name, shared, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        id,
        member.org_id,
        owner,
        name,
        body.shared,
        now
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            AppError::Conflict("name: you have a list with this name".into())
        }
        e => e.into(),
    })?;
    audit_list(
        &mut tx,
        meta,
        "list.create",
        id,
        json!({ "shared": body.shared }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(List {
        id,
        name,
        shared: body.shared,
        owner_id: owner,
        created_at: now,
        leads: None,
    })
}

#[utoipa::path(get, path = "/api/v1/lists", tag = "lists",
    responses((status = 200, description = "Your lists and the shared ones, by name, each with `leads`: how many of its leads you can read", body = Object), Refusals))]
async fn index(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
) -> Result<Response, AppError> {
    let items = all(&state, &member).await?;
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// `member`'s lists and the shared ones, by name (at most 500). It needs only the pool, so the
/// campaigns slice offers the lists as audiences too.
pub async fn all(state: &Core, member: &Member) -> Result<Vec<List>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        r#"SELECT l.id, l.name, l.shared, l.owner_id, l.created_at,
                  (SELECT count(*) FROM app.lead_list_entries e
                    WHERE e.org_id = l.org_id AND e.list_id = l.id) AS "leads!"
           FROM app.lead_lists l WHERE l.org_id = $1 ORDER BY lower(l.name), l.id LIMIT 500"#,
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| List {
            id: r.id,
            name: r.name,
            shared: r.shared,
            owner_id: r.owner_id,
            created_at: r.created_at,
            leads: Some(r.leads),
        })
        .collect())
}

/// 404 unless the caller sees list `id`.
async fn visible(tx: &mut TenantTx, id: Uuid) -> Result<(), AppError> {
    let org = tx.context().org_id;
    let seen = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM app.lead_lists WHERE org_id = $1 AND id = $2) AS "seen!""#,
        org,
        id
    )
    .fetch_one(&mut **tx)
    .await?;
    if seen {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

#[utoipa::path(delete, path = "/api/v1/lists/{id}", tag = "lists", params(("id" = Uuid, Path, description = "The list")),
    responses((status = 204, description = "Deleted (its owner; an admin for a shared list); the leads stay"), Missing, Refusals))]
async fn remove(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    delete(&state, &member, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes list `id` (its owner; an admin for a shared list); the leads stay. Audited.
pub async fn delete(
    state: &LeadsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    visible(&mut tx, id).await?;
    let done = sqlx::query!(
        "DELETE FROM app.lead_lists WHERE org_id = $1 AND id = $2",
        member.org_id,
        id
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "not_owner",
            message: "only a list's owner (or an admin, for a shared list) deletes it".into(),
        });
    }
    audit_list(&mut tx, meta, "list.delete", id, json!({}), now).await?;
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/lists/{id}/leads", tag = "lists", params(("id" = Uuid, Path, description = "The list")), request_body = Leads,
    responses((status = 200, description = "`added`, and `skipped`: already there, or no lead you can read", body = Object), Missing, Refusals))]
async fn add(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<Leads>,
) -> Result<Response, AppError> {
    let leads = body.checked()?;
    let added = add_leads(&state, &member, &meta, id, &leads).await?;
    Ok(
        axum::Json(json!({ "added": added, "skipped": leads.len() as i64 - added }))
            .into_response(),
    )
}

/// Adds `leads` (sorted, without repeats) to list `id`; returns how many were added: a lead
/// already there or one the member cannot read is skipped. Audited.
pub async fn add_leads(
    state: &LeadsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
    leads: &[Uuid],
) -> Result<i64, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    visible(&mut tx, id).await?;
    let by = tx.context().user_id;
    // Only leads the caller can read are inserted (the join reads them under RLS; the policy
    // checks again).
    let added = sqlx::query_scalar!(
        r#"WITH ins AS (
             INSERT INTO app.lead_list_entries (org_id, list_id, lead_id, added_by, added_at)
             SELECT $1, $2, d.id, $3, $4 FROM app.leads d
             WHERE d.org_id = $1 AND d.id = ANY($5)
             ON CONFLICT DO NOTHING
             RETURNING 1)
           SELECT count(*) AS "n!" FROM ins"#,
        member.org_id,
        id,
        by,
        now,
        leads
    )
    .fetch_one(&mut *tx)
    .await?;
    audit_list(
        &mut tx,
        meta,
        "list.add",
        id,
        json!({ "added": added }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(added)
}

#[utoipa::path(delete, path = "/api/v1/lists/{id}/leads", tag = "lists", params(("id" = Uuid, Path, description = "The list")), request_body = Leads,
    responses((status = 200, description = "`removed`: how many of these leads were in the list (those you can read)", body = Object), Missing, Refusals))]
async fn take_out(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<Leads>,
) -> Result<Response, AppError> {
    let leads = body.checked()?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    visible(&mut tx, id).await?;
    let removed = sqlx::query!(
        "DELETE FROM app.lead_list_entries WHERE org_id = $1 AND list_id = $2 AND lead_id = ANY($3)",
        member.org_id,
        id,
        &leads
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    audit_list(
        &mut tx,
        &meta,
        "list.remove",
        id,
        json!({ "removed": removed }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({ "removed": removed })).into_response())
}
