//! `/api/v1/segments`: saved searches. A segment stores the filters of a lead search as a query
//! string (checked when saved, exactly as a search would check it); running it is that search,
//! under the runner's own ACL, with the page and cursor of the request.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::search::SearchParams;
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::http::ts;
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, remove))
        .routes(routes!(run))
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// The filters of a query string; paging and export options are the run's, not the segment's.
pub fn filters(query: &str) -> Result<SearchParams, AppError> {
    let query = query.trim_start_matches('?');
    let uri: axum::http::Uri = format!("/?{query}")
        .parse()
        .map_err(|_| AppError::BadRequest("query: not a query string".into()))?;
    let params = axum::extract::Query::<SearchParams>::try_from_uri(&uri)
        .map_err(|e| AppError::BadRequest(format!("query: {}", e.body_text())))?
        .0;
    for (name, set) in [
        ("cursor", params.cursor.is_some()),
        ("limit", params.limit.is_some()),
        ("format", params.format.is_some()),
        (
            "include_do_not_contact",
            params.include_do_not_contact.is_some(),
        ),
        ("include_do_not_sell", params.include_do_not_sell.is_some()),
        ("exact", params.exact.is_some()),
    ] {
        if set {
            return Err(AppError::BadRequest(format!(
                "query: {name} belongs to a run, not to a segment"
            )));
        }
    }
    // Checked as a search checks it (enumerations, ranges, full-text syntax).
    params.parse(|_| None)?;
    Ok(params)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewSegment {
    name: String,
    query: String,
    #[serde(default)]
    shared: bool,
}

fn view(r: &Row) -> Value {
    json!({ "id": r.id, "name": r.name, "query": r.query, "shared": r.shared,
            "owner_id": r.owner_id, "created_at": ts(r.created_at) })
}

pub(crate) struct Row {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub query: String,
    pub shared: bool,
    pub created_at: time::OffsetDateTime,
}

#[utoipa::path(post, path = "/api/v1/segments", tag = "segments", request_body = NewSegment,
    responses((status = 201, description = "The saved search; its query is checked as a search would check it", body = Object), (status = 409, description = "You already have a segment with this name", body = crate::http::openapi::ErrorBody), Refusals))]
async fn create(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiJson(body): ApiJson<NewSegment>,
) -> Result<Response, AppError> {
    let row = save(&state, &member, &meta, &body.name, &body.query, body.shared).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&row))).into_response())
}

/// Saves a search under `name` (checked as a search checks it); audited.
pub(crate) async fn save(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    name: &str,
    query: &str,
    shared: bool,
) -> Result<Row, AppError> {
    let body = NewSegment {
        name: name.to_string(),
        query: query.to_string(),
        shared,
    };
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "name: 1 to 200 characters, no control characters".into(),
        ));
    }
    if body.query.len() > 4000 {
        return Err(AppError::BadRequest("query: at most 4000 bytes".into()));
    }
    filters(&body.query)?;
    let query = body.query.trim_start_matches('?').to_string();
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let inserted = sqlx::query!(
        "INSERT INTO app.segments (id, org_id, owner_id, name, query, shared, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (org_id, owner_id, name) DO NOTHING",
        id,
        member.org_id,
        member.principal_id,
        name,
        query,
        body.shared,
        now
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AppError::Conflict(format!(
            "name: you already have a segment named {name:?}"
        )));
    }
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "segment.create",
            target: Some(format!("segment:{id}")),
            before: None,
            after: Some(json!({ "name": name, "shared": body.shared })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Row {
        id,
        owner_id: member.principal_id,
        name,
        query,
        shared: body.shared,
        created_at: now,
    })
}

/// The caller's segments and the organization's shared ones, by name.
pub(crate) async fn visible(tx: &mut TenantTx) -> Result<Vec<Row>, AppError> {
    let org = tx.context().org_id;
    Ok(sqlx::query_as!(
        Row,
        "SELECT id, owner_id, name, query, shared, created_at FROM app.segments
         WHERE org_id = $1 ORDER BY name, id",
        org
    )
    .fetch_all(&mut **tx)
    .await?)
}

async fn fetch(tx: &mut TenantTx, id: Uuid) -> Result<Row, AppError> {
    sqlx::query_as!(
        Row,
        "SELECT id, owner_id, name, query, shared, created_at FROM app.segments
         WHERE id = $1 AND org_id = $2",
        id,
        tx.context().org_id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/segments", tag = "segments",
    responses((status = 200, description = "Your segments and the organization's shared ones", body = Vec<Object>), Refusals))]
async fn list(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = visible(&mut tx).await?;
    tx.commit().await?;
    Ok(axum::Json(Value::Array(rows.iter().map(view).collect())).into_response())
}

#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path, description = "The segment")),
    responses((status = 200, description = "The segment", body = Object), Missing, Refusals))]
async fn read(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = fetch(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(view(&row)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "segments", params(("id" = Uuid, Path, description = "The segment")),
    responses((status = 204, description = "Deleted (its owner; an admin for a shared one)"), Missing, Refusals))]
async fn remove(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    delete(&state, &member, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a segment (its owner; an admin for a shared one); audited.
pub(crate) async fn delete(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = fetch(&mut tx, id).await?;
    let gone = sqlx::query!(
        "DELETE FROM app.segments WHERE id = $1 AND org_id = $2",
        id,
        member.org_id
    )
    .execute(&mut *tx)
    .await?;
    if gone.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "forbidden",
            message: "only its owner (or an admin, for a shared one) may delete a segment".into(),
        });
    }
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "segment.delete",
            target: Some(format!("segment:{id}")),
            before: Some(json!({ "name": row.name, "shared": row.shared })),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunPage {
    /// Leads per page.
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/segments/{id}/leads", tag = "segments", params(("id" = Uuid, Path, description = "The segment"), RunPage),
    responses((status = 200, description = "One page of the segment's leads, under the runner's own ACL", body = Object), Missing, Refusals))]
async fn run(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: crate::audit::Meta,
    Path(id): Path<Uuid>,
    ApiQuery(page): ApiQuery<RunPage>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = fetch(&mut tx, id).await?;
    tx.commit().await?;
    let mut params = filters(&row.query)?;
    params.limit = page.limit;
    params.cursor = page.cursor;
    let mut page =
        serde_json::to_value(super::api::page_of(&state, &member, &meta, &params).await?)
            .map_err(|e| AppError::Internal(e.into()))?;
    page["segment"] = json!({ "id": row.id, "name": row.name });
    Ok(axum::Json(page).into_response())
}
