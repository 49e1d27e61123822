//! `/api/v1/forms`: create, list, read, replace, pause, resume and delete capture forms, and
//! their counters. Forms create leads, so they need the permission that creates leads (Lead
//! Search & Management, every role). Every change is audited. The services here are what the
//! pages call too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore;
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::FormsState;
use super::model::{Checked, Counters, FieldSpec, FormBody, FormParts, FormView, snippet};
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{ErrorBody, Missing, Refusals};
use crate::orgs::{Member, Require, perm};

pub fn routes() -> OpenApiRouter<FormsState> {
    OpenApiRouter::new()
        .routes(routes!(list_forms, create_form))
        .routes(routes!(read_form, replace_form, delete_form))
        .routes(routes!(pause_form))
        .routes(routes!(resume_form))
        .routes(routes!(form_stats))
}

type Lead = Require<perm::LeadSearchAndManagement>;

struct Row {
    id: Uuid,
    public_key: String,
    name: String,
    fields: Value,
    consent_text: Option<String>,
    consent_version: Option<String>,
    ccpa_notice: Option<String>,
    thank_you: String,
    redirect_url: Option<String>,
    allowed_origins: Vec<String>,
    dedupe: String,
    accept_without_stamp: bool,
    status: String,
    owners: Vec<Uuid>,
    max_per_hour: i32,
    views: i64,
    submissions: i64,
    spam: i64,
    conversions: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

fn view(site: &str, r: Row) -> FormView {
    let fields: Vec<FieldSpec> = serde_json::from_value(r.fields).unwrap_or_default();
    let embed = snippet(
        site,
        &r.public_key,
        &FormParts {
            fields: &fields,
            consent_text: r.consent_text.as_deref(),
            ccpa_notice: r.ccpa_notice.as_deref(),
        },
    );
    FormView {
        id: r.id,
        public_key: r.public_key,
        name: r.name,
        fields,
        consent_text: r.consent_text,
        consent_version: r.consent_version,
        ccpa_notice: r.ccpa_notice,
        thank_you: r.thank_you,
        redirect_url: r.redirect_url,
        allowed_origins: r.allowed_origins,
        dedupe: r.dedupe,
        accept_without_stamp: r.accept_without_stamp,
        status: r.status,
        owners: r.owners,
        max_per_hour: r.max_per_hour,
        counters: Counters {
            views: r.views,
            submissions: r.submissions,
            spam: r.spam,
            conversions: r.conversions,
        },
        embed,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

async fn fetch(tx: &mut TenantTx, id: Option<Uuid>) -> Result<Vec<Row>, sqlx::Error> {
    let org = tx.context().org_id;
    sqlx::query_as!(
        Row,
        r#"SELECT id, public_key, name, fields, consent_text, consent_version, ccpa_notice,
                  thank_you, redirect_url, allowed_origins, dedupe, accept_without_stamp, status,
                  owners, max_per_hour, views, submissions, spam, conversions, created_at,
                  updated_at
           FROM app.capture_forms WHERE org_id = $1 AND ($2::uuid IS NULL OR id = $2)
           ORDER BY name"#,
        org,
        id
    )
    .fetch_all(&mut **tx)
    .await
}

async fn one(state: &FormsState, tx: &mut TenantTx, id: Uuid) -> Result<FormView, AppError> {
    let row = fetch(tx, Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound)?;
    Ok(view(&state.config.site_url(), row))
}

/// The owners to notify, each a member of the organization now.
async fn owners(
    tx: &mut TenantTx,
    given: Option<Vec<Uuid>>,
    creator: &Member,
) -> Result<Vec<Uuid>, AppError> {
    // The creator by default; an API key has no mailbox, so a form it creates notifies nobody
    // unless it names owners.
    let mut ids = given.unwrap_or_else(|| match creator.api_key {
        Some(_) => Vec::new(),
        None => vec![creator.principal_id],
    });
    ids.sort();
    ids.dedup();
    let org = tx.context().org_id;
    let members = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM app.memberships WHERE org_id = $1 AND user_id = ANY($2)"#,
        org,
        &ids
    )
    .fetch_one(&mut **tx)
    .await?;
    if usize::try_from(members).unwrap_or(0) != ids.len() {
        return Err(AppError::BadRequest(
            "owners: every owner must be a member of the organization".into(),
        ));
    }
    Ok(ids)
}

fn conflict(e: sqlx::Error) -> AppError {
    match &e {
        sqlx::Error::Database(d) if d.constraint() == Some("capture_forms_org_id_name_key") => {
            AppError::Conflict("name: a form with this name exists in this organization".into())
        }
        _ => e.into(),
    }
}

/// A new public key: 192 random bits, URL-safe.
fn new_key() -> String {
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

async fn record(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    meta: &Meta,
    action: &str,
    id: Uuid,
    after: Option<Value>,
) -> Result<(), AppError> {
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action,
            target: Some(format!("form:{id}")),
            before: None,
            after,
        },
    )
    .await?;
    Ok(())
}

/// What the trail keeps of a definition: its shape, never a visitor's data (there is none here).
fn summary(c: &Checked) -> Value {
    json!({
        "name": c.name,
        "fields": c.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        "consent_version": c.consent_version,
        "allowed_origins": c.allowed_origins,
        "redirect_url": c.redirect_url,
        "dedupe": c.dedupe,
        "accept_without_stamp": c.accept_without_stamp,
        "max_per_hour": c.max_per_hour,
    })
}

pub async fn create(
    state: &FormsState,
    member: &Member,
    meta: &Meta,
    body: FormBody,
) -> Result<FormView, AppError> {
    let c = body.check()?;
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let owners = owners(&mut tx, c.owners.clone(), member).await?;
    let fields = serde_json::to_value(&c.fields).map_err(anyhow::Error::from)?;
    sqlx::query!(
        "INSERT INTO app.capture_forms (id, org_id, public_key, name, fields, consent_text,
            consent_version, ccpa_notice, thank_you, redirect_url, allowed_origins, dedupe,
            accept_without_stamp, owners, max_per_hour, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
        id,
        member.org_id,
        new_key(),
        c.name,
        fields,
        c.consent_text,
        c.consent_version,
        c.ccpa_notice,
        c.thank_you,
        c.redirect_url,
        &c.allowed_origins,
        c.dedupe,
        c.accept_without_stamp,
        &owners,
        c.max_per_hour,
        member.principal_id,
        now,
    )
    .execute(&mut *tx)
    .await
    .map_err(conflict)?;
    record(&mut tx, now, meta, "form.create", id, Some(summary(&c))).await?;
    let v = one(state, &mut tx, id).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn list(state: &FormsState, member: &Member) -> Result<Vec<FormView>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = fetch(&mut tx, None).await?;
    tx.commit().await?;
    let site = state.config.site_url();
    Ok(rows.into_iter().map(|r| view(&site, r)).collect())
}

pub async fn get(state: &FormsState, member: &Member, id: Uuid) -> Result<FormView, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let v = one(state, &mut tx, id).await?;
    tx.commit().await?;
    Ok(v)
}

pub async fn replace(
    state: &FormsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
    body: FormBody,
) -> Result<FormView, AppError> {
    let c = body.check()?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    // Absent owners stay as they are.
    let owners = match c.owners.clone() {
        Some(given) => Some(owners(&mut tx, Some(given), member).await?),
        None => None,
    };
    let fields = serde_json::to_value(&c.fields).map_err(anyhow::Error::from)?;
    let done = sqlx::query!(
        "UPDATE app.capture_forms SET name = $3, fields = $4, consent_text = $5,
            consent_version = $6, ccpa_notice = $7, thank_you = $8, redirect_url = $9,
            allowed_origins = $10, dedupe = $11, accept_without_stamp = $12,
            owners = coalesce($13, owners),
            max_per_hour = $14, updated_at = $15
         WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        c.name,
        fields,
        c.consent_text,
        c.consent_version,
        c.ccpa_notice,
        c.thank_you,
        c.redirect_url,
        &c.allowed_origins,
        c.dedupe,
        c.accept_without_stamp,
        owners.as_deref(),
        c.max_per_hour,
        now,
    )
    .execute(&mut *tx)
    .await
    .map_err(conflict)?;
    if done.rows_affected() != 1 {
        return Err(AppError::NotFound);
    }
    record(&mut tx, now, meta, "form.update", id, Some(summary(&c))).await?;
    let v = one(state, &mut tx, id).await?;
    tx.commit().await?;
    Ok(v)
}

/// Pauses (`paused`) or resumes (`active`) the form.
pub async fn set_status(
    state: &FormsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
    status: &'static str,
) -> Result<FormView, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let done = sqlx::query!(
        "UPDATE app.capture_forms SET status = $3, updated_at = $4 WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        status,
        now
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(AppError::NotFound);
    }
    let action = if status == "paused" {
        "form.pause"
    } else {
        "form.resume"
    };
    record(&mut tx, now, meta, action, id, None).await?;
    let v = one(state, &mut tx, id).await?;
    tx.commit().await?;
    Ok(v)
}

/// Deletes the form; the leads it created and their consent records stay (the records lose
/// only their link to it).
pub async fn delete(
    state: &FormsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let done = sqlx::query!(
        "DELETE FROM app.capture_forms WHERE org_id = $1 AND id = $2",
        member.org_id,
        id
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(AppError::NotFound);
    }
    record(&mut tx, now, meta, "form.delete", id, None).await?;
    tx.commit().await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/forms", tag = "forms", request_body = FormBody,
    responses((status = 201, description = "The form, active, with its public key and embed snippet; audited", body = FormView),
        (status = 409, description = "A form with this name exists", body = ErrorBody), Refusals))]
async fn create_form(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiJson(body): ApiJson<FormBody>,
) -> Result<Response, AppError> {
    let v = create(&state, &member, &meta, body).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

#[utoipa::path(get, path = "/api/v1/forms", tag = "forms",
    responses((status = 200, description = "The organization's forms, by name", body = Vec<FormView>), Refusals))]
async fn list_forms(
    State(state): State<FormsState>,
    Require(member, _): Lead,
) -> Result<Response, AppError> {
    Ok(axum::Json(list(&state, &member).await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/forms/{id}", tag = "forms",
    params(("id" = Uuid, Path, description = "The form")),
    responses((status = 200, description = "The form, its counters and its embed snippet", body = FormView), Missing, Refusals))]
async fn read_form(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    Ok(axum::Json(get(&state, &member, id).await?).into_response())
}

#[utoipa::path(put, path = "/api/v1/forms/{id}", tag = "forms", request_body = FormBody,
    params(("id" = Uuid, Path, description = "The form")),
    responses((status = 200, description = "The form after the change (its key, status and counters stay); audited", body = FormView),
        (status = 409, description = "A form with this name exists", body = ErrorBody), Missing, Refusals))]
async fn replace_form(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<FormBody>,
) -> Result<Response, AppError> {
    Ok(axum::Json(replace(&state, &member, &meta, id, body).await?).into_response())
}

#[utoipa::path(delete, path = "/api/v1/forms/{id}", tag = "forms",
    params(("id" = Uuid, Path, description = "The form")),
    responses((status = 204, description = "Deleted; the leads it created and their consent records stay; audited"), Missing, Refusals))]
async fn delete_form(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    delete(&state, &member, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/forms/{id}/pause", tag = "forms",
    params(("id" = Uuid, Path, description = "The form")),
    responses((status = 200, description = "Paused: posts are refused with 409 until it is resumed; audited", body = FormView), Missing, Refusals))]
async fn pause_form(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<Response, AppError> {
    Ok(axum::Json(set_status(&state, &member, &meta, id, "paused").await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/forms/{id}/resume", tag = "forms",
    params(("id" = Uuid, Path, description = "The form")),
    responses((status = 200, description = "Active again; audited", body = FormView), Missing, Refusals))]
async fn resume_form(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<Response, AppError> {
    Ok(axum::Json(set_status(&state, &member, &meta, id, "active").await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/forms/{id}/stats", tag = "forms",
    params(("id" = Uuid, Path, description = "The form")),
    responses((status = 200, description = "Views, submissions, spam caught and conversions (submissions that created a new lead)", body = Counters), Missing, Refusals))]
async fn form_stats(
    State(state): State<FormsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    Ok(axum::Json(get(&state, &member, id).await?.counters).into_response())
}
