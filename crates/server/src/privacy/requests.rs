//! Data-subject requests about the people in an organization's leads: `/api/v1/privacy/requests`.
//!
//! An admin (at `aal2`) records what a person asked for (access, rectification, erasure, the CCPA
//! opt-out of sale or sharing, the CCPA right to know) and by when it must be answered: 30 days
//! under the GDPR, 45 under the CCPA. The law is the one the admin names, or the CCPA when the
//! person's lead is flagged as a California resident (or the request is a CCPA kind), the GDPR
//! otherwise. The address is found through its blind index and kept as that; its ciphertext is
//! kept only while an erasure is open, to answer the person.
//!
//! Fulfilling a request (`POST …/{id}/complete`) does what its kind says, in one transaction,
//! audited: an erasure deletes the lead with its notes, activities, list entries and consent
//! records, blanks what the mail relay said about messages to the address, and puts the
//! address's keyed hash on the suppression list as `erased`, so an import, a capture form or a
//! hand-made lead cannot bring it back; an opt-out flags the lead `do_not_sell` and suppresses
//! the address for campaigns. A step done twice finds nothing more to do. `GET …/{id}/package`
//! gives an access or right-to-know request its answer: everything the organization holds about
//! the person, in one JSON document.
//!
//! Open requests are watched ([`watch`]): admins get a reminder 7 and 2 days before the
//! deadline, and `privacy.request_alert_days` before it the `subject-request-due` alert goes to
//! the alert webhooks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::http::openapi::{ErrorBody, Missing, Refusals};
use crate::http::ts;
use crate::leads::LeadsState;
use crate::leads::repo::{COLUMNS, LeadRow};
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read))
        .routes(routes!(package))
        .routes(routes!(complete))
        .routes(routes!(reject))
}

/// Admins at `aal2`: requests name people and undo their data.
type Admin = Require<perm::SystemSettings>;

pub const GDPR_DAYS: i64 = 30;
pub const CCPA_DAYS: i64 = 45;
const KINDS: [&str; 5] = [
    "access",
    "rectification",
    "erasure",
    "ccpa_opt_out",
    "ccpa_know",
];

fn bad(m: impl Into<String>) -> AppError {
    AppError::BadRequest(m.into())
}

use crate::leads::keys::subject_request_place as email_place;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// `access`, `rectification`, `erasure`, `ccpa_opt_out` or `ccpa_know`.
    pub kind: String,
    /// The address the person wrote from, or the one they named.
    pub email: String,
    /// `gdpr` or `ccpa`; by default the CCPA for a CCPA kind or a California lead.
    pub law: Option<String>,
    /// When the request reached the organization (default: now); the deadline runs from it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub received_at: Option<OffsetDateTime>,
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// What was done or why not (for `reject`, required).
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `open`, `completed` or `rejected`.
    pub status: Option<String>,
}

/// A request as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectRequest {
    pub id: Uuid,
    pub kind: String,
    pub law: String,
    pub status: String,
    /// The person's address, while it is kept (an erasure drops it when done).
    pub email: Option<String>,
    pub note: Option<String>,
    pub received_at: String,
    pub due_at: String,
    pub completed_at: Option<String>,
    /// What fulfilling it did.
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<Value>,
    /// Leads that carry the address now.
    pub leads: i64,
    /// Past its deadline and still open.
    pub overdue: bool,
}

struct Stored {
    id: Uuid,
    org_id: Uuid,
    kind: String,
    law: String,
    status: String,
    email_bidx: Vec<u8>,
    email_ct: Option<Vec<u8>>,
    note: Option<String>,
    received_at: OffsetDateTime,
    due_at: OffsetDateTime,
    completed_at: Option<OffsetDateTime>,
    outcome: Option<Value>,
    /// Leads that carry the address now.
    leads: i64,
}

async fn load(tx: &mut TenantTx, org: Uuid, id: Uuid) -> Result<Stored, AppError> {
    sqlx::query_as!(
        Stored,
        r#"SELECT id, org_id, kind, law, status, email_bidx, email_ct, note, received_at, due_at,
                completed_at, outcome, (SELECT count(*) FROM app.leads l
                    WHERE l.org_id = r.org_id AND l.email_bidx = r.email_bidx) AS "leads!"
         FROM app.subject_requests r WHERE org_id = $1 AND id = $2"#,
        org,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)
}

async fn leads_with(tx: &mut TenantTx, org: Uuid, bidx: &[u8]) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM app.leads WHERE org_id = $1 AND email_bidx = $2"#,
        org,
        bidx
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Records a step of request `id` in the organization's audit trail.
async fn record(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    meta: &Meta,
    action: &str,
    id: Uuid,
    after: Value,
) -> Result<(), sqlx::Error> {
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action,
            target: Some(format!("privacy_request:{id}")),
            before: None,
            after: Some(after),
        },
    )
    .await
}

/// The request's address, while it is kept.
async fn open_email(state: &LeadsState, r: &Stored) -> Result<Option<String>, AppError> {
    let Some(ct) = &r.email_ct else {
        return Ok(None);
    };
    state
        .fields
        .decrypt(ct, &email_place(r.org_id, r.id))
        .await
        .map(Some)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("request {}: {e}", r.id)))
}

async fn view(
    state: &LeadsState,
    r: Stored,
    now: OffsetDateTime,
) -> Result<SubjectRequest, AppError> {
    let email = open_email(state, &r).await?;
    Ok(SubjectRequest {
        id: r.id,
        overdue: r.status == "open" && r.due_at < now,
        kind: r.kind,
        law: r.law,
        status: r.status,
        email,
        note: r.note,
        received_at: ts(r.received_at),
        due_at: ts(r.due_at),
        completed_at: r.completed_at.map(ts),
        outcome: r.outcome,
        leads: r.leads,
    })
}

/// A note as stored: trimmed, card numbers masked (PCI: none in data tables).
fn note_of(note: Option<String>) -> Result<Option<String>, AppError> {
    match note.map(|n| n.trim().to_string()) {
        Some(n) if n.chars().count() > 4000 => Err(bad("note: at most 4000 characters")),
        Some(n) if n.is_empty() => Ok(None),
        Some(mut n) => {
            crate::pci::mask_in_place(&mut n);
            Ok(Some(n))
        }
        None => Ok(None),
    }
}

#[utoipa::path(post, path = "/api/v1/privacy/requests", tag = "privacy", request_body = NewRequest,
    responses((status = 201, description = "The request is recorded with its deadline (30 days under the GDPR, 45 under the CCPA); audited", body = SubjectRequest), Refusals))]
async fn create(
    State(state): State<LeadsState>,
    Require(member, _): Admin,
    meta: Meta,
    ApiJson(body): ApiJson<NewRequest>,
) -> Result<Response, AppError> {
    let kind = KINDS
        .iter()
        .find(|k| **k == body.kind)
        .ok_or_else(|| bad(format!("kind: one of {}", KINDS.join(", "))))?;
    let ccpa_kind = kind.starts_with("ccpa_");
    let law = match body.law.as_deref() {
        None => None,
        Some("gdpr") if ccpa_kind => {
            return Err(bad(format!("law: {kind} is a request under the CCPA")));
        }
        Some(l @ ("gdpr" | "ccpa")) => Some(l),
        Some(_) => return Err(bad("law: gdpr or ccpa")),
    };
    let now = state.clock.now();
    let received = body.received_at.unwrap_or(now);
    if received > now + time::Duration::minutes(5) {
        return Err(bad("received_at: in the future"));
    }
    if received < now - time::Duration::days(365) {
        return Err(bad("received_at: more than a year ago"));
    }
    let note = note_of(body.note)?;
    let email = leadgen_crypto::field::normalize_email(&body.email)
        .ok_or_else(|| bad("email: not an email address"))?;
    let bidx = state
        .fields
        .email_index(member.org_id, &email)
        .ok_or_else(|| bad("email: not an email address"))?
        .to_vec();
    // The organization's key before the transaction: creating it takes a connection of its own.
    let sealer = state.fields.sealer(member.org_id).await?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let california = sqlx::query_scalar!(
        r#"SELECT bool_or(california) AS "c" FROM app.leads WHERE org_id = $1 AND email_bidx = $2"#,
        member.org_id,
        bidx
    )
    .fetch_one(&mut *tx)
    .await?
    .unwrap_or(false);
    let law = law.unwrap_or(if ccpa_kind || california {
        "ccpa"
    } else {
        "gdpr"
    });
    let days = if law == "ccpa" { CCPA_DAYS } else { GDPR_DAYS };
    let due = received + time::Duration::days(days);
    let id = Uuid::now_v7();
    let ct = sealer.encrypt(&email, &email_place(member.org_id, id));
    sqlx::query!(
        "INSERT INTO app.subject_requests (id, org_id, kind, law, email_bidx, email_ct, note,
            received_at, due_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        id,
        member.org_id,
        kind,
        law,
        bidx,
        ct,
        note,
        received,
        due,
        member.principal_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    let leads = leads_with(&mut tx, member.org_id, &bidx).await?;
    record(
        &mut tx,
        now,
        &meta,
        "privacy.request.create",
        id,
        json!({ "kind": kind, "law": law, "due_at": ts(due), "leads": leads }),
    )
    .await?;
    let stored = load(&mut tx, member.org_id, id).await?;
    let out = view(&state, stored, now).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

#[utoipa::path(get, path = "/api/v1/privacy/requests", tag = "privacy", params(ListParams),
    responses((status = 200, description = "The organization's requests, the nearest deadline first", body = Object), Refusals))]
async fn list(
    State(state): State<LeadsState>,
    Require(member, _): Admin,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response, AppError> {
    if let Some(s) = p.status.as_deref()
        && !["open", "completed", "rejected"].contains(&s)
    {
        return Err(bad("status: open, completed or rejected"));
    }
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query_as!(
        Stored,
        r#"SELECT id, org_id, kind, law, status, email_bidx, email_ct, note, received_at, due_at,
                completed_at, outcome, (SELECT count(*) FROM app.leads l
                    WHERE l.org_id = r.org_id AND l.email_bidx = r.email_bidx) AS "leads!"
         FROM app.subject_requests r
         WHERE org_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY status <> 'open', due_at, id
         LIMIT 1000"#,
        member.org_id,
        p.status
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        items.push(view(&state, r, now).await?);
    }
    Ok(axum::Json(json!({ "items": items })).into_response())
}

#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}", tag = "privacy",
    params(("id" = Uuid, Path, description = "The request")),
    responses((status = 200, description = "The request", body = SubjectRequest), Missing, Refusals))]
async fn read(
    State(state): State<LeadsState>,
    Require(member, _): Admin,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let r = load(&mut tx, member.org_id, id).await?;
    let out = view(&state, r, now).await?;
    tx.commit().await?;
    Ok(axum::Json(out).into_response())
}

#[utoipa::path(get, path = "/api/v1/privacy/requests/{id}/package", tag = "privacy",
    params(("id" = Uuid, Path, description = "An access or right-to-know request")),
    responses((status = 200, description = "Everything the organization holds about the person: their leads with notes, activities, lists, campaign messages, consent records and the audit entries about them, the suppression entry and their requests; audited", body = Object),
        (status = 409, description = "Not an access or right-to-know request, or rejected", body = ErrorBody), Missing, Refusals))]
async fn package(
    State(state): State<LeadsState>,
    Require(member, _): Admin,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let r = load(&mut tx, member.org_id, id).await?;
    if !matches!(r.kind.as_str(), "access" | "ccpa_know") {
        return Err(AppError::Conflict(format!(
            "kind: a package answers an access or right-to-know request, not {}",
            r.kind
        )));
    }
    if r.status == "rejected" {
        return Err(AppError::Conflict(
            "status: the request was rejected".into(),
        ));
    }
    let email = open_email(&state, &r).await?;
    let body = build_package(&state, &mut tx, &r, email, now).await?;
    let leads = body["leads"].as_array().map_or(0, Vec::len);
    record(
        &mut tx,
        now,
        &meta,
        "privacy.request.package",
        id,
        json!({ "leads": leads }),
    )
    .await?;
    tx.commit().await?;
    Ok((
        [(
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"subject-access-{id}.json\""),
        )],
        axum::Json(body),
    )
        .into_response())
}

/// The access package: every item about the address, as the organization holds it.
async fn build_package(
    state: &LeadsState,
    tx: &mut TenantTx,
    r: &Stored,
    email: Option<String>,
    now: OffsetDateTime,
) -> Result<Value, AppError> {
    let org = r.org_id;
    let rows: Vec<LeadRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.leads WHERE org_id = $1 AND email_bidx = $2 ORDER BY id"
    ))
    .bind(org)
    .bind(&r.email_bidx)
    .fetch_all(&mut **tx)
    .await?;
    // Everything, restricted contact details included: the person is owed all of it. The read
    // is recorded with the request as its reason.
    let why = format!("data-subject request {}", r.id);
    for row in &rows {
        let kind = if row.restricted() {
            crate::leads::reads::Kind::Reveal
        } else {
            crate::leads::reads::Kind::Read
        };
        let why = row.restricted().then_some(why.as_str());
        crate::leads::reads::record(tx, now, &crate::audit::Meta::default(), kind, &[row], why)
            .await?;
    }
    let mut leads = Vec::with_capacity(rows.len());
    for row in &rows {
        let lead = row.view_revealed(&state.fields).await?;
        let notes: Vec<Value> = sqlx::query!(
            "SELECT id, body, created_at FROM app.lead_notes
             WHERE org_id = $1 AND lead_id = $2 ORDER BY created_at, id",
            org,
            row.id
        )
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|n| json!({ "id": n.id, "body": n.body, "created_at": ts(n.created_at) }))
        .collect();
        let activities: Vec<Value> = sqlx::query!(
            "SELECT id, kind, summary, occurred_at FROM app.lead_activities
             WHERE org_id = $1 AND lead_id = $2 ORDER BY occurred_at, id",
            org,
            row.id
        )
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|a| {
            json!({ "id": a.id, "kind": a.kind, "summary": a.summary, "occurred_at": ts(a.occurred_at) })
        })
        .collect();
        let lists: Vec<Value> = sqlx::query!(
            r#"SELECT list_id AS "list_id!", name AS "name!", shared AS "shared!", added_at AS "added_at!"
               FROM app.subject_lead_lists($1)"#,
            row.id
        )
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|l| {
            json!({ "id": l.list_id, "name": l.name, "shared": l.shared, "added_at": ts(l.added_at) })
        })
        .collect();
        let consent: Vec<Value> = sqlx::query!(
            r#"SELECT c.consent_version, c.given_at, host(c.ip) AS ip, c.user_agent,
                      c.text_sha256, f.name AS "form?"
               FROM app.consent_records c LEFT JOIN app.capture_forms f ON f.id = c.form_id
               WHERE c.org_id = $1 AND c.lead_id = $2 ORDER BY c.given_at, c.id"#,
            org,
            row.id
        )
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "form": c.form, "consent_version": c.consent_version,
                "consent_text_sha256": hex::encode(c.text_sha256),
                "given_at": ts(c.given_at), "ip": c.ip, "user_agent": c.user_agent,
            })
        })
        .collect();
        let trail: Vec<Value> = sqlx::query!(
            "SELECT seq, at, action, after FROM app.audit_log
             WHERE org_id = $1 AND target = $2 ORDER BY seq",
            org,
            format!("lead:{}", row.id)
        )
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|a| json!({ "seq": a.seq, "at": ts(a.at), "action": a.action, "details": a.after }))
        .collect();
        leads.push(json!({
            "lead": lead,
            "notes": notes,
            "activities": activities,
            "lists": lists,
            "consent_records": consent,
            "audit_entries": trail,
        }));
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let campaigns: Vec<Value> = sqlx::query!(
        "SELECT c.id, c.name, m.state, m.sent_at FROM app.campaign_messages m
         JOIN app.campaigns c ON c.org_id = m.org_id AND c.id = m.campaign_id
         WHERE m.org_id = $1 AND (m.email_bidx = $2 OR m.lead_id = ANY($3))
         ORDER BY m.id",
        org,
        r.email_bidx,
        &ids
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|c| {
        json!({ "campaign_id": c.id, "campaign": c.name, "state": c.state, "sent_at": c.sent_at.map(ts) })
    })
    .collect();
    let suppression = sqlx::query!(
        "SELECT reason, created_at FROM app.suppressions WHERE org_id = $1 AND email_bidx = $2",
        org,
        r.email_bidx
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(|s| json!({ "reason": s.reason, "since": ts(s.created_at) }));
    let requests: Vec<Value> = sqlx::query!(
        "SELECT id, kind, law, status, received_at, completed_at FROM app.subject_requests
         WHERE org_id = $1 AND email_bidx = $2 ORDER BY received_at, id",
        org,
        r.email_bidx
    )
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(|q| {
        json!({ "id": q.id, "kind": q.kind, "law": q.law, "status": q.status,
                "received_at": ts(q.received_at), "completed_at": q.completed_at.map(ts) })
    })
    .collect();
    Ok(json!({
        "request": { "id": r.id, "kind": r.kind, "law": r.law, "received_at": ts(r.received_at), "due_at": ts(r.due_at) },
        "generated_at": ts(now),
        "email": email,
        "leads": leads,
        "campaign_messages": campaigns,
        "suppression": suppression,
        "requests": requests,
    }))
}

/// Erases every copy of the address in the organization, then suppresses it as `erased`. What
/// it removed, counted. Running it again removes nothing more.
pub async fn erase(
    tx: &mut TenantTx,
    org: Uuid,
    bidx: &[u8],
    now: OffsetDateTime,
) -> Result<Value, AppError> {
    let ids: Vec<Uuid> = sqlx::query_scalar!(
        "SELECT id FROM app.leads WHERE org_id = $1 AND email_bidx = $2 FOR UPDATE",
        org,
        bidx
    )
    .fetch_all(&mut **tx)
    .await?;
    let counts = sqlx::query!(
        r#"SELECT
             (SELECT count(*) FROM app.lead_notes WHERE org_id = $1 AND lead_id = ANY($2)) AS "notes!",
             (SELECT count(*) FROM app.lead_activities WHERE org_id = $1 AND lead_id = ANY($2)) AS "activities!",
             (SELECT count(*) FROM app.consent_records WHERE org_id = $1 AND lead_id = ANY($2)) AS "consent!",
             -- Other members' private lists included, which the lists' own policy hides.
             (SELECT count(*) FROM unnest($2::uuid[]) AS l (id), app.subject_lead_lists(l.id)) AS "lists!""#,
        org,
        &ids
    )
    .fetch_one(&mut **tx)
    .await?;
    // The relay's replies and the events about messages to the address may quote it.
    let scrubbed = sqlx::query!(
        "WITH m AS (
             UPDATE app.campaign_messages SET smtp_reply = NULL
             WHERE org_id = $1 AND (email_bidx = $2 OR lead_id = ANY($3))
             RETURNING id)
         UPDATE app.campaign_events e SET detail = NULL FROM m
         WHERE e.org_id = $1 AND e.message_id = m.id AND e.detail IS NOT NULL",
        org,
        bidx,
        &ids
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // Notes, activities, list entries and consent records go with the lead (foreign keys).
    let deleted = sqlx::query!(
        "DELETE FROM app.leads WHERE org_id = $1 AND id = ANY($2)",
        org,
        &ids
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if deleted != ids.len() as u64 {
        return Err(AppError::Internal(anyhow::anyhow!(
            "erasure: {} of {} leads deleted",
            deleted,
            ids.len()
        )));
    }
    // Whatever the address was suppressed for before, it is now erased (which nobody lifts).
    sqlx::query!(
        "INSERT INTO app.suppressions (org_id, email_bidx, reason, created_at)
         VALUES ($1, $2, 'erased', $3)
         ON CONFLICT (org_id, email_bidx) DO UPDATE SET reason = 'erased', campaign_id = NULL",
        org,
        bidx,
        now
    )
    .execute(&mut **tx)
    .await?;
    Ok(json!({
        "leads_deleted": deleted,
        "notes_deleted": counts.notes,
        "activities_deleted": counts.activities,
        "consent_records_deleted": counts.consent,
        "list_entries_deleted": counts.lists,
        "campaign_events_scrubbed": scrubbed,
        "suppressed": "erased",
    }))
}

/// Records the opt-out of sale or sharing: the leads flagged, the address suppressed for
/// campaigns (an existing suppression keeps its reason).
async fn opt_out(
    tx: &mut TenantTx,
    org: Uuid,
    bidx: &[u8],
    now: OffsetDateTime,
) -> Result<Value, AppError> {
    let flagged = sqlx::query!(
        "UPDATE app.leads SET do_not_sell = true, updated_at = $3
         WHERE org_id = $1 AND email_bidx = $2 AND NOT do_not_sell",
        org,
        bidx,
        now
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query!(
        "INSERT INTO app.suppressions (org_id, email_bidx, reason, created_at)
         VALUES ($1, $2, 'ccpa_opt_out', $3) ON CONFLICT DO NOTHING",
        org,
        bidx,
        now
    )
    .execute(&mut **tx)
    .await?;
    Ok(json!({ "leads_flagged_do_not_sell": flagged, "suppressed": true }))
}

#[utoipa::path(post, path = "/api/v1/privacy/requests/{id}/complete", tag = "privacy", request_body = CloseBody,
    params(("id" = Uuid, Path, description = "The request")),
    responses((status = 200, description = "The request is fulfilled: an erasure erased and suppressed the address, an opt-out flagged and suppressed it; access, right-to-know and rectification are marked answered. Idempotent; audited", body = SubjectRequest),
        (status = 409, description = "The request was rejected", body = ErrorBody), Missing, Refusals))]
async fn complete(
    State(state): State<LeadsState>,
    Require(member, _): Admin,
    meta: Meta,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<CloseBody>,
) -> Result<Response, AppError> {
    let note = note_of(body.note)?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    // One fulfilment at a time: a second click waits and then finds it done.
    sqlx::query!(
        "SELECT id FROM app.subject_requests WHERE org_id = $1 AND id = $2 FOR UPDATE",
        member.org_id,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let r = load(&mut tx, member.org_id, id).await?;
    match r.status.as_str() {
        "rejected" => {
            return Err(AppError::Conflict(
                "status: the request was rejected".into(),
            ));
        }
        "completed" => {
            let out = view(&state, r, now).await?;
            tx.commit().await?;
            return Ok(axum::Json(out).into_response());
        }
        _ => {}
    }
    let outcome = match r.kind.as_str() {
        "erasure" => erase(&mut tx, member.org_id, &r.email_bidx, now).await?,
        "ccpa_opt_out" => opt_out(&mut tx, member.org_id, &r.email_bidx, now).await?,
        _ => json!({ "leads": leads_with(&mut tx, member.org_id, &r.email_bidx).await? }),
    };
    let erasure = r.kind == "erasure";
    sqlx::query!(
        "UPDATE app.subject_requests SET status = 'completed', completed_at = $3, completed_by = $4,
            outcome = $5, note = coalesce($6, note),
            email_ct = CASE WHEN $7 THEN NULL ELSE email_ct END
         WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        now,
        member.principal_id,
        outcome,
        note,
        erasure
    )
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        now,
        &meta,
        "privacy.request.complete",
        id,
        json!({ "kind": r.kind, "outcome": outcome, "late": now > r.due_at }),
    )
    .await?;
    let r = load(&mut tx, member.org_id, id).await?;
    let out = view(&state, r, now).await?;
    tx.commit().await?;
    metrics::counter!("subject_requests_completed_total").increment(1);
    Ok(axum::Json(out).into_response())
}

#[utoipa::path(post, path = "/api/v1/privacy/requests/{id}/reject", tag = "privacy", request_body = CloseBody,
    params(("id" = Uuid, Path, description = "The request")),
    responses((status = 200, description = "The request is closed without action (for instance, the person's identity could not be verified), with the reason; audited", body = SubjectRequest),
        (status = 409, description = "The request is already closed", body = ErrorBody), Missing, Refusals))]
async fn reject(
    State(state): State<LeadsState>,
    Require(member, _): Admin,
    meta: Meta,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<CloseBody>,
) -> Result<Response, AppError> {
    let note = note_of(body.note)?.ok_or_else(|| bad("note: say why the request is rejected"))?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let updated = sqlx::query!(
        "UPDATE app.subject_requests SET status = 'rejected', completed_at = $3, completed_by = $4,
            note = $5
         WHERE org_id = $1 AND id = $2 AND status = 'open'",
        member.org_id,
        id,
        now,
        member.principal_id,
        note
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let r = load(&mut tx, member.org_id, id).await?;
    if updated == 0 {
        return Err(AppError::Conflict(format!(
            "status: the request is already {}",
            r.status
        )));
    }
    record(
        &mut tx,
        now,
        &meta,
        "privacy.request.reject",
        id,
        json!({ "kind": r.kind }),
    )
    .await?;
    let out = view(&state, r, now).await?;
    tx.commit().await?;
    Ok(axum::Json(out).into_response())
}

/// Sends the reminders and raises the alerts that are due; how many requests it acted on.
pub async fn remind(
    state: &LeadsState,
    perimeter: &crate::perimeter::Perimeter,
) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let alert_days = i32::try_from(state.config.privacy.request_alert_days).unwrap_or(3);
    let due = sqlx::query!(
        r#"SELECT id AS "id!", org_id AS "org_id!", kind AS "kind!", law AS "law!",
                  due_at AS "due_at!", days, alert AS "alert!"
           FROM app.subject_requests_due($1, $2)"#,
        now,
        alert_days
    )
    .fetch_all(&state.pool)
    .await?;
    for r in &due {
        let left = (r.due_at - now).whole_hours().max(0);
        let message = format!(
            "The {} request {} ({}) must be answered by {} ({} days and {} hours left). \
             Open it at /api/v1/privacy/requests/{}.",
            r.kind.replace('_', " "),
            r.id,
            r.law.to_uppercase(),
            ts(r.due_at),
            left / 24,
            left % 24,
            r.id
        );
        if r.days.is_some() {
            crate::orgs::tell_admins(
                state,
                r.org_id,
                "subject_request_due",
                &format!("LeadGen: a data-subject request is due on {}", ts(r.due_at)),
                &message,
                now,
            )
            .await?;
        }
        sqlx::query!(
            "SELECT app.subject_request_reminded($1, $2, $3)",
            r.id,
            r.days,
            r.alert
        )
        .execute(&state.pool)
        .await?;
        if r.alert {
            metrics::counter!("subject_request_due_alerts_total").increment(1);
            crate::perimeter::announce(
                perimeter,
                "subject-request-due",
                crate::perimeter::alerts::Event::SubjectRequestDue,
                format!("organization {}: {message}", r.org_id),
            );
        }
        tracing::info!(target: "leadgen::audit", action = "subject_request_reminder", request = %r.id, org_id = %r.org_id, days = ?r.days, alert = r.alert, "data-subject request reminder");
    }
    Ok(due.len())
}

/// Checks the open requests every `privacy.request_check_secs`.
pub async fn watch(state: LeadsState, perimeter: crate::perimeter::Perimeter) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(
        state.config.privacy.request_check_secs,
    ));
    loop {
        tick.tick().await;
        if let Err(e) = remind(&state, &perimeter).await {
            tracing::warn!(target: "leadgen::privacy", error = %e, "checking data-subject request deadlines failed; retrying at the next check");
        }
    }
}
