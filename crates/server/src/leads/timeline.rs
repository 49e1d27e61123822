//! A lead's notes, activities and consents: `/api/v1/leads/{id}/notes`,
//! `/api/v1/leads/{id}/activities` and `/api/v1/leads/{id}/consents` (read only: consents are
//! recorded by capture forms).
//!
//! They follow their lead: a principal that cannot read the lead gets 404 for its notes too (the
//! policies of both tables ask `app.leads`), and adding one needs the right to write the lead
//! (403 `acl_denied` otherwise). Notes are not edited: their author or an admin deletes one.
//! Activities are a record and are never deleted, except with their lead; the server adds
//! `status_change` and `merge` activities itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::repo;
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
        .routes(routes!(list_notes, add_note))
        .routes(routes!(remove_note))
        .routes(routes!(list_activities, add_activity))
        .routes(routes!(list_consents))
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// Most items one page returns.
const MAX_PAGE: i64 = 200;

/// Paging of a timeline: newest first, `before` the id of the last item of the previous page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// From 1 to 200 (default 50).
    limit: Option<i64>,
    /// The `next_before` of the previous page.
    before: Option<Uuid>,
}

impl TimelineQuery {
    fn limit(&self) -> Result<i64, AppError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(AppError::BadRequest(format!("limit: from 1 to {MAX_PAGE}"))),
        }
    }
}

/// Kinds a client may log; `status_change` and `merge` are the server's.
pub const LOGGED_KINDS: [&str; 4] = ["call", "email", "meeting", "task"];

/// A note as stored and shown.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: Uuid,
    pub author_id: Uuid,
    pub body: String,
    pub created_at: OffsetDateTime,
}

impl Note {
    fn json(&self) -> Value {
        json!({ "id": self.id, "author_id": self.author_id, "body": self.body,
                "created_at": ts(self.created_at) })
    }
}

/// An activity as stored and shown.
#[derive(Debug, Clone)]
pub struct Activity {
    pub id: Uuid,
    pub actor_id: Uuid,
    pub kind: String,
    pub summary: String,
    pub occurred_at: OffsetDateTime,
}

impl Activity {
    fn json(&self) -> Value {
        json!({ "id": self.id, "actor_id": self.actor_id, "kind": self.kind,
                "summary": self.summary, "occurred_at": ts(self.occurred_at) })
    }
}

/// One page of a timeline: its items and the cursor of the next page (null on the last).
fn page<T>(items: &[T], limit: i64, id: fn(&T) -> Uuid, json: fn(&T) -> Value) -> Value {
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(id))
        .flatten();
    json!({ "items": items.iter().map(json).collect::<Vec<_>>(), "next_before": next })
}

/// 404 unless the principal can read the lead; 403 `acl_denied` unless it can write it.
pub(crate) async fn writable_lead(tx: &mut TenantTx, id: Uuid) -> Result<(), AppError> {
    if repo::get(tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    if !repo::writable(tx, id).await? {
        return Err(super::api::acl_denied());
    }
    Ok(())
}

/// Trimmed text of 1..=`max` characters without control characters other than line breaks.
fn text(field: &str, v: &str, max: usize) -> Result<String, AppError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(AppError::BadRequest(format!(
            "{field}: from 1 to {max} characters"
        )));
    }
    if v.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(AppError::BadRequest(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(v.to_string())
}

/// The newest notes of a lead the transaction's principal can read.
pub(crate) async fn notes(
    tx: &mut TenantTx,
    lead: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Note>, AppError> {
    let org = tx.context().org_id;
    Ok(sqlx::query_as!(
        Note,
        "SELECT id, author_id, body, created_at FROM app.lead_notes
         WHERE org_id = $1 AND lead_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
        org,
        lead,
        before,
        limit
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// A consent the person behind a lead gave through a capture form: which text (its version and
/// SHA-256), when, and from where.
#[derive(Debug, Clone)]
pub struct Consent {
    pub id: Uuid,
    /// The form's name; `None` once the form is deleted (the record stays).
    pub form_name: Option<String>,
    pub consent_version: String,
    pub text_sha256: Vec<u8>,
    pub given_at: OffsetDateTime,
    pub ip: Option<sqlx::types::ipnetwork::IpNetwork>,
    pub user_agent: Option<String>,
}

impl Consent {
    fn json(&self) -> Value {
        json!({ "id": self.id, "form_name": self.form_name,
                "consent_version": self.consent_version,
                "text_sha256": hex::encode(&self.text_sha256),
                "given_at": ts(self.given_at),
                "ip": self.ip.map(|n| n.ip().to_string()),
                "user_agent": self.user_agent })
    }
}

/// The consent records of a lead the transaction's principal can read, newest first (the
/// table's policy asks `app.leads`, so they follow the lead's ACL).
pub(crate) async fn consents(
    tx: &mut TenantTx,
    lead: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Consent>, AppError> {
    let org = tx.context().org_id;
    Ok(sqlx::query_as!(
        Consent,
        r#"SELECT c.id, f.name AS "form_name?", c.consent_version, c.text_sha256, c.given_at,
                  c.ip, c.user_agent
           FROM app.consent_records c
           LEFT JOIN app.capture_forms f ON f.org_id = c.org_id AND f.id = c.form_id
           WHERE c.org_id = $1 AND c.lead_id = $2 AND ($3::uuid IS NULL OR c.id < $3)
           ORDER BY c.id DESC LIMIT $4"#,
        org,
        lead,
        before,
        limit
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// The newest activities of a lead the transaction's principal can read.
pub(crate) async fn activities(
    tx: &mut TenantTx,
    lead: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Activity>, AppError> {
    let org = tx.context().org_id;
    // Ordered by id (UUIDv7, so by logging time) for a stable cursor; `occurred_at` is shown.
    Ok(sqlx::query_as!(
        Activity,
        "SELECT id, actor_id, kind, summary, occurred_at FROM app.lead_activities
         WHERE org_id = $1 AND lead_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
        org,
        lead,
        before,
        limit
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Records an activity on a lead the principal may write (checked by the table's policy).
pub(crate) async fn record_activity(
    tx: &mut TenantTx,
    lead: Uuid,
    kind: &str,
    summary: &str,
    occurred_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Uuid, AppError> {
    let id = Uuid::now_v7();
    let ctx = tx.context();
    let (org, actor) = (ctx.org_id, ctx.user_id);
    sqlx::query!(
        "INSERT INTO app.lead_activities (id, org_id, lead_id, actor_id, kind, summary, occurred_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        id,
        org,
        lead,
        actor,
        kind,
        summary,
        occurred_at,
        now
    )
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Adds a note to a lead the principal may write; audited without its text.
pub(crate) async fn insert_note(
    tx: &mut TenantTx,
    meta: &Meta,
    lead: Uuid,
    body: &str,
    now: OffsetDateTime,
) -> Result<Note, AppError> {
    let mut body = text("body", body, 10_000)?;
    writable_lead(tx, lead).await?;
    // Card numbers never reach the table (PCI): masked to the first six and last four digits.
    let masked = crate::pci::mask_in_place(&mut body);
    let ctx = tx.context();
    let note = Note {
        id: Uuid::now_v7(),
        author_id: ctx.user_id,
        body,
        created_at: now,
    };
    let org = ctx.org_id;
    sqlx::query!(
        "INSERT INTO app.lead_notes (id, org_id, lead_id, author_id, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        note.id,
        org,
        lead,
        note.author_id,
        note.body,
        now
    )
    .execute(&mut **tx)
    .await?;
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action: "lead.note.add",
            target: Some(format!("lead:{lead}")),
            before: None,
            after: Some(json!({ "note": note.id })),
        },
    )
    .await?;
    if masked > 0 {
        audit::record(
            tx,
            now,
            meta,
            Entry {
                action: "pci.pan_masked",
                target: Some(format!("lead:{lead}")),
                before: None,
                after: Some(json!({ "note": note.id, "count": masked })),
            },
        )
        .await?;
        crate::pci::record_masked("lead_notes", masked);
    }
    Ok(note)
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/notes", tag = "leads", params(("id" = Uuid, Path, description = "The lead"), TimelineQuery),
    responses((status = 200, description = "The lead's notes, newest first: `items` and `next_before`", body = Object), Missing, Refusals))]
async fn list_notes(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Response, AppError> {
    let limit = q.limit()?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    if repo::get(&mut tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let items = notes(&mut tx, id, q.before, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(page(&items, limit, |i| i.id, Note::json)).into_response())
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/consents", tag = "leads", params(("id" = Uuid, Path, description = "The lead"), TimelineQuery),
    responses((status = 200, description = "The consents the person gave through capture forms, newest first: `items` (form, consent text version and SHA-256, time, address, user agent) and `next_before`", body = Object), Missing, Refusals))]
async fn list_consents(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Response, AppError> {
    let limit = q.limit()?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    if repo::get(&mut tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let items = consents(&mut tx, id, q.before, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(page(&items, limit, |i| i.id, Consent::json)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNote {
    body: String,
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/notes", tag = "leads", params(("id" = Uuid, Path, description = "The lead")), request_body = NewNote,
    responses((status = 201, description = "The note (needs the right to write the lead); audited", body = Object), Missing, Refusals))]
async fn add_note(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<NewNote>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let note = insert_note(&mut tx, &meta, id, &body.body, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(note.json())).into_response())
}

/// Deletes a note (its author, or an admin); audited.
pub(crate) async fn delete_note(
    tx: &mut TenantTx,
    meta: &Meta,
    lead: Uuid,
    note: Uuid,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let org = tx.context().org_id;
    // Visible but not deletable is a 403, invisible a 404: the DELETE policy alone would make
    // both "0 rows".
    let visible = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM app.lead_notes WHERE org_id = $1 AND lead_id = $2 AND id = $3) AS "visible!""#,
        org,
        lead,
        note
    )
    .fetch_one(&mut **tx)
    .await?;
    if !visible {
        return Err(AppError::NotFound);
    }
    let done = sqlx::query!(
        "DELETE FROM app.lead_notes WHERE org_id = $1 AND lead_id = $2 AND id = $3",
        org,
        lead,
        note
    )
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "not_author",
            message: "only a note's author or an admin deletes it".into(),
        });
    }
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action: "lead.note.delete",
            target: Some(format!("lead:{lead}")),
            before: Some(json!({ "note": note })),
            after: None,
        },
    )
    .await?;
    Ok(())
}

#[utoipa::path(delete, path = "/api/v1/leads/{id}/notes/{note}", tag = "leads", params(("id" = Uuid, Path, description = "The lead"), ("note" = Uuid, Path, description = "The note")),
    responses((status = 204, description = "Deleted (its author or an admin); audited"), Missing, Refusals))]
async fn remove_note(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path((id, note)): Path<(Uuid, Uuid)>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    delete_note(&mut tx, &meta, id, note, state.clock.now()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/activities", tag = "leads", params(("id" = Uuid, Path, description = "The lead"), TimelineQuery),
    responses((status = 200, description = "The lead's activities, newest first: `items` and `next_before`", body = Object), Missing, Refusals))]
async fn list_activities(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<Response, AppError> {
    let limit = q.limit()?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    if repo::get(&mut tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let items = activities(&mut tx, id, q.before, limit).await?;
    tx.commit().await?;
    Ok(axum::Json(page(&items, limit, |i| i.id, Activity::json)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewActivity {
    /// `call`, `email`, `meeting` or `task`.
    kind: String,
    summary: String,
    /// When it happened (RFC 3339); now when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    occurred_at: Option<OffsetDateTime>,
}

/// Logs a client's activity (one of [`LOGGED_KINDS`]) on a lead the principal may write.
pub(crate) async fn log_activity(
    tx: &mut TenantTx,
    lead: Uuid,
    kind: &str,
    summary: &str,
    occurred_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Activity, AppError> {
    if !LOGGED_KINDS.contains(&kind) {
        return Err(AppError::BadRequest(format!(
            "kind: one of {}",
            LOGGED_KINDS.join(", ")
        )));
    }
    let summary = text("summary", summary, 1000)?;
    // A logged call is in the past or today; far future dates are typing mistakes.
    if occurred_at > now + time::Duration::days(1) {
        return Err(AppError::BadRequest(
            "occurred_at: in the future; log an activity once it happened".into(),
        ));
    }
    writable_lead(tx, lead).await?;
    Ok(Activity {
        id: record_activity(tx, lead, kind, &summary, occurred_at, now).await?,
        actor_id: tx.context().user_id,
        kind: kind.to_string(),
        summary,
        occurred_at,
    })
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/activities", tag = "leads", params(("id" = Uuid, Path, description = "The lead")), request_body = NewActivity,
    responses((status = 201, description = "The activity (needs the right to write the lead)", body = Object), Missing, Refusals))]
async fn add_activity(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<NewActivity>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let activity = log_activity(
        &mut tx,
        id,
        &body.kind,
        &body.summary,
        body.occurred_at.unwrap_or(now),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(activity.json())).into_response())
}
