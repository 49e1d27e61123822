//! Who read which lead data, and why: `GET /api/v1/lead-reads` (admins).
//!
//! Every read of lead data is recorded in the same transaction that read it: a lead opened, a
//! page of a search or list, a batch of an export. A restricted lead shows its contact details
//! (names, email, phone, LinkedIn) only to a reader who says why: the `X-LeadGen-Justification`
//! header on `GET /api/v1/leads/{id}`, or the form on the lead's page; the reason is recorded
//! with the read. Everywhere else (searches, lists, exports, responses to changes) those fields
//! of a restricted lead are blank and `contact_details_hidden` is true.
//!
//! The log is written with `synchronous_commit = off`: a crash may lose the last few
//! milliseconds of it, never a lead, and searches do not wait for the disk.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::LeadsState;
use super::repo::LeadRow;
use crate::audit::Meta;
use crate::db::TenantTx;
use crate::http::error::{ApiQuery, AppError};
use crate::http::openapi::Refusals;
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The header a reader gives the reason in.
pub const JUSTIFICATION_HEADER: &str = "x-leadgen-justification";

/// What kind of read.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Read,
    Search,
    Export,
    Reveal,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Search => "search",
            Self::Export => "export",
            Self::Reveal => "reveal",
        }
    }
}

/// A justification as typed: trimmed, 10 to 500 characters, no control characters.
pub fn justification(raw: &str) -> Result<String, AppError> {
    let j: String = raw.trim().chars().filter(|c| !c.is_control()).collect();
    let n = j.chars().count();
    if !(10..=500).contains(&n) {
        return Err(AppError::BadRequest(
            "justification: say in 10 to 500 characters why you need this lead's contact details"
                .into(),
        ));
    }
    Ok(j)
}

/// The justification in a request's headers, if any (checked).
pub fn from_headers(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    match headers.get(JUSTIFICATION_HEADER) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| {
                AppError::BadRequest("justification: not valid text (use ASCII in headers)".into())
            })?;
            justification(s).map(Some)
        }
    }
}

/// Records that the transaction's principal read `rows` (nothing when there are none).
pub async fn record(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    meta: &Meta,
    kind: Kind,
    rows: &[&LeadRow],
    justification: Option<&str>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ctx = tx.context();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let restricted = rows
        .iter()
        .filter(|r| r.sensitivity == "restricted")
        .count();
    sqlx::query!("SET LOCAL synchronous_commit = off")
        .execute(&mut **tx)
        .await?;
    sqlx::query!(
        "INSERT INTO app.lead_reads (org_id, actor_id, at, kind, lead_ids, restricted, justification, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        ctx.org_id,
        ctx.user_id,
        now,
        kind.as_str(),
        &ids,
        i32::try_from(restricted).unwrap_or(i32::MAX),
        justification,
        meta.request_id.as_deref().map(|r| &r[..r.len().min(100)])
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only reads of this lead.
    pub lead: Option<Uuid>,
    /// Only reads by this member or API key.
    pub actor: Option<Uuid>,
    /// `read`, `search`, `export` or `reveal`.
    pub kind: Option<String>,
    /// At most this many (default 100, at most 1000), newest first.
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/lead-reads", tag = "leads", params(ListParams),
    responses((status = 200, description = "Who read which leads, when and why, newest first (admins at aal2)", body = Object), Refusals))]
async fn list(
    State(state): State<LeadsState>,
    Require(member, _): Require<perm::ManageOrganization>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Response, AppError> {
    if let Some(k) = p.kind.as_deref()
        && !["read", "search", "export", "reveal"].contains(&k)
    {
        return Err(AppError::BadRequest(
            "kind: read, search, export or reveal".into(),
        ));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::BadRequest("limit: from 1 to 1000".into()));
    }
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        r#"SELECT r.id, r.actor_id, r.at, r.kind, r.lead_ids, r.restricted, r.justification,
                  r.request_id, u.email AS "email?"
           FROM app.lead_reads r LEFT JOIN app.users u ON u.id = r.actor_id
           WHERE r.org_id = $1 AND ($2::uuid IS NULL OR $2 = ANY (r.lead_ids))
             AND ($3::uuid IS NULL OR r.actor_id = $3) AND ($4::text IS NULL OR r.kind = $4)
           ORDER BY r.at DESC, r.id DESC LIMIT $5"#,
        member.org_id,
        p.lead,
        p.actor,
        p.kind,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id, "actor_id": r.actor_id, "actor_email": r.email,
                "at": crate::http::ts(r.at), "kind": r.kind, "leads": r.lead_ids.len(),
                "lead_ids": r.lead_ids, "restricted": r.restricted,
                "justification": r.justification, "request_id": r.request_id,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}
