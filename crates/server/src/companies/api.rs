//! `/api/v1/companies`: list, create, read, update and delete the organization's companies.
//!
//! Every member reads and writes them (Lead Search & Management); deleting one is for admins
//! and managers (403 otherwise) and unlinks its leads, which keep their copy of its fields. An
//! update pushes the company's name, domain, industry and size to its leads before it answers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{CompanyInput, CompanyValues, CompanyView};
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::http::openapi::{ErrorBody, Missing, Refusals};
use crate::http::wire::from_value;
use crate::leads::LeadsState;
use crate::leads::api::changed_fields;
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// Past this, a company's lead count reads "10000+".
pub const LEADS_CAP: i64 = 10_000;

/// A page of companies: name order, `after` the `next_after` of the previous page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompanyQuery {
    /// Names starting with this (any case), or this exact domain.
    pub q: Option<String>,
    /// From 1 to 200 (default 50).
    pub limit: Option<i64>,
    pub after: Option<Uuid>,
}

impl CompanyQuery {
    pub fn checked(&self) -> Result<(Option<String>, i64), AppError> {
        let limit = match self.limit {
            None => 50,
            Some(n) if (1..=200).contains(&n) => n,
            Some(_) => return Err(AppError::BadRequest("limit: from 1 to 200".into())),
        };
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 200) {
            return Err(AppError::BadRequest("q: at most 200 characters".into()));
        }
        Ok((q.map(str::to_string), limit))
    }
}

/// A taken domain is a 409 naming it; anything else stays what it is.
fn taken(e: sqlx::Error) -> AppError {
    match e {
        sqlx::Error::Database(d) if d.constraint() == Some("companies_domain") => {
            AppError::Conflict("domain: the organization has a company with this domain".into())
        }
        e => e.into(),
    }
}

#[utoipa::path(get, path = "/api/v1/companies", tag = "companies", params(CompanyQuery),
    responses((status = 200, description = "`items` in name order and `next_after` (null on the last page)", body = Object), Refusals))]
async fn list(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    ApiQuery(q): ApiQuery<CompanyQuery>,
) -> Result<Response, AppError> {
    let (prefix, limit) = q.checked()?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = super::list(&mut tx, prefix.as_deref(), q.after, limit).await?;
    tx.commit().await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let items: Vec<CompanyView> = rows.iter().map(super::CompanyRow::view).collect();
    Ok(axum::Json(json!({ "items": items, "next_after": next })).into_response())
}

#[utoipa::path(post, path = "/api/v1/companies", tag = "companies", request_body = CompanyInput,
    responses((status = 201, description = "The company", body = CompanyView), (status = 409, description = "The organization has a company with this domain", body = ErrorBody), Refusals))]
async fn create(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let fields = changed_fields(&body);
    let v = CompanyValues::default().apply(from_value::<CompanyInput>(body)?)?;
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let org = member.org_id;
    let actor = tx.context().user_id;
    sqlx::query!(
        "INSERT INTO app.companies (id, org_id, name, domain, naics, industry, employee_range,
            annual_revenue, technologies, city, region, country, updated_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        id,
        org,
        v.name,
        v.domain,
        v.naics,
        v.industry,
        v.employee_range,
        v.annual_revenue,
        &v.technologies,
        v.city,
        v.region,
        v.country,
        actor,
        now
    )
    .execute(&mut *tx)
    .await
    .map_err(taken)?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "company.create",
            target: Some(format!("company:{id}")),
            before: None,
            after: Some(json!({ "fields": fields })),
        },
    )
    .await?;
    let row = super::get(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(row.view())).into_response())
}

#[utoipa::path(get, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = Uuid, Path, description = "The company")),
    responses((status = 200, description = "The company, and `leads`: how many of its leads the caller can read (`leads_exact` false past 10,000)", body = Object), Missing, Refusals))]
async fn read(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = super::get(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let n = super::lead_count(&mut tx, id, LEADS_CAP).await?;
    tx.commit().await?;
    let mut body = serde_json::to_value(row.view()).unwrap_or_default();
    body["leads"] = n.min(LEADS_CAP).into();
    body["leads_exact"] = (n <= LEADS_CAP).into();
    Ok(axum::Json(body).into_response())
}

/// Applies a change to a company and pushes it to its leads; audited with the names of the
/// fields it sets.
pub(crate) async fn change(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    id: Uuid,
    body: Value,
) -> Result<CompanyView, AppError> {
    let fields = changed_fields(&body);
    let input: CompanyInput = from_value(body)?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = super::get(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let v = row.values().apply(input)?;
    let actor = tx.context().user_id;
    sqlx::query!(
        "UPDATE app.companies SET name = $3, domain = $4, naics = $5, industry = $6,
            employee_range = $7, annual_revenue = $8, technologies = $9, city = $10, region = $11,
            country = $12, updated_by = $13, updated_at = $14, version = version + 1
         WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        v.name,
        v.domain,
        v.naics,
        v.industry,
        v.employee_range,
        v.annual_revenue,
        &v.technologies,
        v.city,
        v.region,
        v.country,
        actor,
        now
    )
    .execute(&mut *tx)
    .await
    .map_err(taken)?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "company.update",
            target: Some(format!("company:{id}")),
            before: None,
            after: Some(json!({ "fields": fields })),
        },
    )
    .await?;
    let row = super::get(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    // After the commit: the push locks the company and reads what this change wrote. Should it
    // fail, the company is saved and the background push finishes it.
    super::push(state, member.org_id, actor, id).await?;
    Ok(row.view())
}

#[utoipa::path(patch, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = Uuid, Path, description = "The company")), request_body(content = CompanyInput, description = "Only the fields present change; `null` clears one"),
    responses((status = 200, description = "The company after the change; its name, domain, industry and size are now its leads' too, and they are rescored", body = CompanyView), (status = 409, description = "The organization has a company with this domain", body = ErrorBody), Missing, Refusals))]
async fn update(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let view = change(&state, &member, &meta, id, body).await?;
    Ok(axum::Json(view).into_response())
}

/// Deletes a company (admins and managers); its leads stay, unlinked. Audited.
pub(crate) async fn delete(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = super::get(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    // Every lead of the company, whoever may read it. The delete policy decides below whether
    // the caller may delete; if not, the error drops the transaction and the unlink with it.
    sqlx::query!("SELECT app.company_unlink($1)", id)
        .execute(&mut *tx)
        .await?;
    let done = sqlx::query!(
        "DELETE FROM app.companies WHERE org_id = $1 AND id = $2",
        member.org_id,
        id
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "role_denied",
            message: "deleting a company is for admins and managers".into(),
        });
    }
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "company.delete",
            target: Some(format!("company:{id}")),
            before: Some(json!({ "domain": row.domain })),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/companies/{id}", tag = "companies", params(("id" = Uuid, Path, description = "The company")),
    responses((status = 204, description = "Deleted (admins and managers); its leads stay, unlinked"), Missing, Refusals))]
async fn remove(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    delete(&state, &member, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
