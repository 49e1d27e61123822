//! `/api/v1/leads`: create, read, update, delete, search, count and export leads, and their ACLs.
//!
//! A lead the principal may not read does not exist for it: 404, as for an id of another
//! organization. A lead it may read but not write gets 403 `acl_denied` on change.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::model::{LeadInput, LeadValues, LeadView, SENSITIVITIES};
use super::repo;
use super::search::{Cursor, SearchParams};
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::http::openapi::{ErrorBody, Missing, Refusals};
use crate::http::wire::from_value;
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(count))
        .routes(routes!(super::export::export))
        .routes(routes!(read, update, remove))
        .routes(routes!(read_acl, put_acl))
        .routes(routes!(rollback_acl))
        .routes(routes!(approve_acl))
        .routes(routes!(reject_acl))
}

/// One page of a lead search. Serialized as it is: a page of 200 leads built as a
/// `serde_json::Value` first cost a map and a string per field.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub(crate) struct LeadPage {
    pub items: Vec<LeadView>,
    /// The `cursor` of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// Names of the fields an input sets: what the audit trail records of a change (never values,
/// which hold personal data).
pub(crate) fn changed_fields(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Array(m.keys().map(|k| Value::String(k.clone())).collect()),
        _ => Value::Null,
    }
}

#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", request_body = LeadInput,
    responses((status = 201, description = "The lead, scored", body = LeadView), (status = 409, description = "A lead with this email exists", body = ErrorBody), Refusals))]
async fn create(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let fields = changed_fields(&body);
    let input: LeadInput = from_value(body)?;
    let values = LeadValues::new_lead().apply(input)?;
    let id = Uuid::now_v7();
    let now = state.clock.now();
    // The organization's key before the transaction: creating it takes a connection of its own.
    let sealer = state.fields.sealer(member.org_id).await?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let (model, _) = super::scoring::current(&mut tx).await?;
    let score = model.score(&values).0;
    repo::insert(&mut tx, &sealer, id, &values, score, now).await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "lead.create",
            target: Some(format!("lead:{id}")),
            before: None,
            after: Some(json!({ "fields": fields })),
        },
    )
    .await?;
    let row = repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let view = row.view(&state.fields).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[utoipa::path(get, path = "/api/v1/leads/{id}", tag = "leads",
    params(("id" = Uuid, Path, description = "The lead"),
           ("X-LeadGen-Justification" = Option<String>, Header, description = "Why you need a restricted lead's contact details (10 to 500 characters); recorded with the read")),
    responses((status = 200, description = "The lead; a restricted one without its contact details unless a justification is given. Every read is recorded (`/api/v1/lead-reads`)", body = LeadView), Missing, Refusals))]
async fn read(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let justification = super::reads::from_headers(&headers)?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    let reveal = row.restricted() && justification.is_some();
    let (kind, why) = if reveal {
        (super::reads::Kind::Reveal, justification.as_deref())
    } else {
        (super::reads::Kind::Read, None)
    };
    super::reads::record(&mut tx, state.clock.now(), &meta, kind, &[&row], why).await?;
    tx.commit().await?;
    let view = if reveal {
        row.view_revealed(&state.fields).await?
    } else {
        row.view(&state.fields).await?
    };
    Ok(axum::Json(view).into_response())
}

pub(crate) fn acl_denied() -> AppError {
    AppError::Denied {
        code: "acl_denied",
        message: "this lead's ACL does not let you change it (you are in none of its write groups)"
            .into(),
    }
}

#[utoipa::path(patch, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = Uuid, Path, description = "The lead")), request_body(content = LeadInput, description = "Only the fields present change; `null` clears one"),
    responses((status = 200, description = "The lead after the change, rescored", body = LeadView), Missing, Refusals))]
async fn update(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, AppError> {
    let fields = changed_fields(&body);
    let input: LeadInput = from_value(body)?;
    let now = state.clock.now();
    let sealer = state.fields.sealer(member.org_id).await?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    // Readable but not writable is a 403; `FOR UPDATE` would apply the write rule and make it
    // look like a 404, so the lock comes after the check.
    if repo::get(&mut tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    if !repo::writable(&mut tx, id).await? {
        return Err(acl_denied());
    }
    let row = repo::get(&mut tx, id, true).await?.ok_or_else(acl_denied)?;
    let values = row.values(&state.fields).await?.apply(input)?;
    let (model, _) = super::scoring::current(&mut tx).await?;
    let score = model.score(&values).0;
    if !repo::update(&mut tx, &sealer, id, &values, score, now).await? {
        return Err(acl_denied());
    }
    if values.status != row.status {
        let summary = format!("Status changed from {} to {}", row.status, values.status);
        super::timeline::record_activity(&mut tx, id, "status_change", &summary, now, now).await?;
    }
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "lead.update",
            target: Some(format!("lead:{id}")),
            before: None,
            after: Some(json!({ "fields": fields })),
        },
    )
    .await?;
    let row = repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(axum::Json(row.view(&state.fields).await?).into_response())
}

#[utoipa::path(delete, path = "/api/v1/leads/{id}", tag = "leads", params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 204, description = "Deleted"), Missing, Refusals))]
async fn remove(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<StatusCode, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    if repo::get(&mut tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    if !repo::writable(&mut tx, id).await? || !repo::delete(&mut tx, id).await? {
        return Err(acl_denied());
    }
    audit::record(
        &mut tx,
        state.clock.now(),
        &meta,
        Entry {
            action: "lead.delete",
            target: Some(format!("lead:{id}")),
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", params(SearchParams),
    responses((status = 200, description = "One keyset page: `items` and `next_cursor` (null on the last page)", body = LeadPage), Refusals))]
async fn list(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, AppError> {
    if params.format.is_some()
        || params.include_do_not_contact.is_some()
        || params.include_do_not_sell.is_some()
        || params.exact.is_some()
    {
        return Err(AppError::BadRequest(
            "format, include_do_not_contact, include_do_not_sell, exact: not parameters of this list"
                .into(),
        ));
    }
    Ok(axum::Json(page_of(&state, &member, &meta, &params).await?).into_response())
}

/// One page of a search, as the list answers it (segments run through here too).
pub(crate) async fn page_of(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    params: &SearchParams,
) -> Result<LeadPage, AppError> {
    let org = member.org_id;
    let (filter, page) = params.parse(|e| state.fields.email_index(org, e))?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let mut rows = repo::search(&mut tx, &filter, &page, false).await?;
    let more = rows.len() > page.limit as usize;
    rows.truncate(page.limit as usize);
    let read: Vec<&repo::LeadRow> = rows.iter().collect();
    super::reads::record(
        &mut tx,
        state.clock.now(),
        meta,
        super::reads::Kind::Search,
        &read,
        None,
    )
    .await?;
    tx.commit().await?;
    let next = more.then(|| rows.last()).flatten().map(|r| {
        Cursor {
            sort: page.sort,
            score: r.score,
            id: r.id,
        }
        .encode()
    });
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(r.view(&state.fields).await?);
    }
    Ok(LeadPage {
        items,
        next_cursor: next,
    })
}

#[utoipa::path(get, path = "/api/v1/leads/count", tag = "leads", params(SearchParams),
    responses((status = 200, description = "`count`, and `exact` false when the count stopped at the cap (`exact=true` counts all)", body = Object), Refusals))]
async fn count(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, AppError> {
    let org = member.org_id;
    let (filter, _) = params.parse(|e| state.fields.email_index(org, e))?;
    let cap = (!params.exact.unwrap_or(false)).then_some(repo::COUNT_CAP);
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let n = repo::count(&mut tx, &filter, cap).await?;
    tx.commit().await?;
    // Past the cap the answer is a floor, as large CRMs show "10,000+".
    let exact = cap.is_none_or(|c| n <= c);
    Ok(
        axum::Json(json!({ "count": n.min(cap.unwrap_or(i64::MAX)), "exact": exact }))
            .into_response(),
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AclInput {
    read_groups: Vec<Uuid>,
    write_groups: Vec<Uuid>,
    sensitivity: String,
}

fn acl_json(read: &[Uuid], write: &[Uuid], sensitivity: &str, revision: i32) -> Value {
    json!({ "read_groups": read, "write_groups": write, "sensitivity": sensitivity, "revision": revision })
}

/// The lead's ACL and its revisions (admin only: ACLs are admin business).
#[utoipa::path(get, path = "/api/v1/leads/{id}/acl", tag = "leads", params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 200, description = "`current` ACL, every `revisions` entry and the `pending` change waiting for a second admin, if any (admins)", body = Object), Missing, Refusals))]
async fn read_acl(
    State(state): State<LeadsState>,
    Require(member, _): Require<perm::ManageOrganization>,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    let revisions = sqlx::query!(
        "SELECT revision, read_groups, write_groups, sensitivity, changed_by, changed_at, rollback_of
         FROM app.acl_revisions WHERE resource_id = $1 ORDER BY revision",
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    let pending = pending(&mut tx, id).await?;
    tx.commit().await?;
    let mut history = vec![json!({
        "revision": 0, "read_groups": [], "write_groups": [], "sensitivity": "confidential",
        "changed_by": null, "changed_at": row.created_at.format(&time::format_description::well_known::Rfc3339).ok(),
        "rollback_of": null,
    })];
    history.extend(revisions.into_iter().map(|r| {
        json!({
            "revision": r.revision, "read_groups": r.read_groups, "write_groups": r.write_groups,
            "sensitivity": r.sensitivity, "changed_by": r.changed_by,
            "changed_at": crate::http::ts(r.changed_at), "rollback_of": r.rollback_of,
        })
    }));
    Ok(axum::Json(json!({
        "current": acl_json(&row.read_groups, &row.write_groups, &row.sensitivity, row.acl_revision),
        "revisions": history,
        "pending": pending,
    }))
    .into_response())
}

/// Checks that every group is the organization's.
async fn check_groups(tx: &mut TenantTx, acl: &AclInput) -> Result<(), AppError> {
    if !SENSITIVITIES.contains(&acl.sensitivity.as_str()) {
        return Err(AppError::BadRequest(format!(
            "sensitivity: one of {}",
            SENSITIVITIES.join(", ")
        )));
    }
    for (field, groups) in [
        ("read_groups", &acl.read_groups),
        ("write_groups", &acl.write_groups),
    ] {
        if groups.len() > 20 {
            return Err(AppError::BadRequest(format!("{field}: at most 20 groups")));
        }
        let known: Vec<Uuid> =
            sqlx::query_scalar!("SELECT id FROM app.acl_groups WHERE id = ANY($1)", groups)
                .fetch_all(&mut **tx)
                .await?;
        if let Some(g) = groups.iter().find(|g| !known.contains(g)) {
            return Err(AppError::BadRequest(format!(
                "{field}: {g} is not a group of this organization"
            )));
        }
    }
    Ok(())
}

fn dedup(v: &[Uuid]) -> Vec<Uuid> {
    let mut out = v.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

/// Sets the ACL (as a new revision) and records it in the audit trail, before and after.
async fn set_acl(
    state: &LeadsState,
    tx: &mut TenantTx,
    meta: &Meta,
    id: Uuid,
    acl: AclInput,
    rollback_of: Option<i32>,
) -> Result<Value, AppError> {
    let row = repo::get(tx, id, true).await?.ok_or(AppError::NotFound)?;
    let before = acl_json(
        &row.read_groups,
        &row.write_groups,
        &row.sensitivity,
        row.acl_revision,
    );
    if let Some(r) = rollback_of {
        sqlx::query_scalar!(
            "SELECT set_config('app.acl_rollback_of', $1, true)",
            r.to_string()
        )
        .fetch_one(&mut **tx)
        .await?;
    }
    let (read, write) = (dedup(&acl.read_groups), dedup(&acl.write_groups));
    let revision = sqlx::query_scalar!(
        "UPDATE app.leads SET read_groups = $2, write_groups = $3, sensitivity = $4
         WHERE id = $1 AND org_id = $5 RETURNING acl_revision",
        id,
        &read,
        &write,
        acl.sensitivity,
        tx.context().org_id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let after = acl_json(&read, &write, &acl.sensitivity, revision);
    audit::record(
        tx,
        state.clock.now(),
        meta,
        Entry {
            action: if rollback_of.is_some() {
                "lead.acl.rollback"
            } else {
                "lead.acl.change"
            },
            target: Some(format!("lead:{id}")),
            before: Some(before),
            after: Some(match rollback_of {
                Some(r) => json!({ "acl": after, "rollback_to": r }),
                None => after.clone(),
            }),
        },
    )
    .await?;
    Ok(after)
}

#[utoipa::path(put, path = "/api/v1/leads/{id}/acl", tag = "leads", params(("id" = Uuid, Path, description = "The lead")), request_body = AclInput,
    responses((status = 200, description = "The new ACL and its revision (admins at aal2): a change that narrows access applies at once", body = Object),
        (status = 202, description = "The change widens access (a lower sensitivity, groups opened or added): it waits for a second admin's approval (`…/acl/pending/approve`); audited", body = Object), Missing, Refusals))]
async fn put_acl(
    State(state): State<LeadsState>,
    member: Require<perm::ManageOrganization>,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(acl): ApiJson<AclInput>,
) -> Result<Response, AppError> {
    Ok(acl_response(
        put_acl_inner(&state, member, id, meta, acl).await?,
    ))
}

/// 200 with the new ACL, or 202 with the change waiting for a second admin.
fn acl_response(out: AclOutcome) -> Response {
    match out {
        AclOutcome::Applied(after) => axum::Json(after).into_response(),
        AclOutcome::Pending(pending) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "awaiting_approval", "pending": pending })),
        )
            .into_response(),
    }
}

/// What became of an ACL change.
pub(crate) enum AclOutcome {
    Applied(Value),
    /// It widens access: it waits for another admin (the pending change).
    Pending(Value),
}

/// How open a sensitivity leaves a lead: lower is wider.
fn rank(sensitivity: &str) -> u8 {
    match sensitivity {
        "public" => 0,
        "internal" => 1,
        "confidential" => 2,
        _ => 3,
    }
}

/// Whether going from one ACL to another lets anyone read or change the lead who could not:
/// a lower sensitivity, or read or write groups opened (an empty list is everyone) or added to.
pub(crate) fn widens(from: (&[Uuid], &[Uuid], &str), to: (&[Uuid], &[Uuid], &str)) -> bool {
    let opens = |old: &[Uuid], new: &[Uuid]| {
        !old.is_empty() && (new.is_empty() || new.iter().any(|g| !old.contains(g)))
    };
    rank(to.2) < rank(from.2) || opens(from.0, to.0) || opens(from.1, to.1)
}

/// Applies a narrowing change at once; records a widening one as pending (replacing any
/// pending change of the lead), audited either way.
async fn change_acl(
    state: &LeadsState,
    tx: &mut TenantTx,
    meta: &Meta,
    id: Uuid,
    acl: AclInput,
    rollback_of: Option<i32>,
) -> Result<AclOutcome, AppError> {
    let row = repo::get(tx, id, true).await?.ok_or(AppError::NotFound)?;
    let (read, write) = (dedup(&acl.read_groups), dedup(&acl.write_groups));
    let wider = widens(
        (&row.read_groups, &row.write_groups, &row.sensitivity),
        (&read, &write, &acl.sensitivity),
    );
    if !wider {
        return set_acl(state, tx, meta, id, acl, rollback_of)
            .await
            .map(AclOutcome::Applied);
    }
    let now = state.clock.now();
    let by = tx.context().user_id;
    sqlx::query!(
        "INSERT INTO app.acl_pending (org_id, lead_id, read_groups, write_groups, sensitivity,
            rollback_of, requested_by, requested_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (org_id, lead_id) DO UPDATE SET read_groups = excluded.read_groups,
            write_groups = excluded.write_groups, sensitivity = excluded.sensitivity,
            rollback_of = excluded.rollback_of, requested_by = excluded.requested_by,
            requested_at = excluded.requested_at",
        tx.context().org_id,
        id,
        &read,
        &write,
        acl.sensitivity,
        rollback_of,
        by,
        now
    )
    .execute(&mut **tx)
    .await?;
    let pending = json!({
        "read_groups": read, "write_groups": write, "sensitivity": acl.sensitivity,
        "rollback_of": rollback_of, "requested_by": by, "requested_at": crate::http::ts(now),
    });
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action: "lead.acl.requested",
            target: Some(format!("lead:{id}")),
            before: Some(acl_json(
                &row.read_groups,
                &row.write_groups,
                &row.sensitivity,
                row.acl_revision,
            )),
            after: Some(pending.clone()),
        },
    )
    .await?;
    Ok(AclOutcome::Pending(pending))
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/acl/pending/approve", tag = "leads", params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 200, description = "The pending change is applied as a new revision (an admin at aal2 other than the one who asked); audited", body = Object),
        (status = 409, description = "The admin who asked for the change cannot approve it", body = ErrorBody), Missing, Refusals))]
async fn approve_acl(
    State(state): State<LeadsState>,
    member: Require<perm::ManageOrganization>,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<Response, AppError> {
    let after = approve(&state, member, id, meta).await?;
    Ok(axum::Json(after).into_response())
}

/// [`approve_acl`], for the lead page's form too.
pub(crate) async fn approve(
    state: &LeadsState,
    Require(member, _): Require<perm::ManageOrganization>,
    id: Uuid,
    meta: Meta,
) -> Result<Value, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let p = sqlx::query!(
        "DELETE FROM app.acl_pending WHERE org_id = $1 AND lead_id = $2
         RETURNING read_groups, write_groups, sensitivity, rollback_of, requested_by",
        member.org_id,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if p.requested_by == member.principal_id {
        return Err(AppError::Conflict(
            "approval: a change that widens access needs a second admin; the one who asked \
             cannot approve it"
                .into(),
        ));
    }
    let acl = AclInput {
        read_groups: p.read_groups,
        write_groups: p.write_groups,
        sensitivity: p.sensitivity,
    };
    // Groups deleted since the request cannot come back.
    check_groups(&mut tx, &acl).await?;
    let after = set_acl(state, &mut tx, &meta, id, acl, p.rollback_of).await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        &meta,
        Entry {
            action: "lead.acl.approved",
            target: Some(format!("lead:{id}")),
            before: None,
            after: Some(json!({ "requested_by": p.requested_by, "acl": after })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/acl/pending/reject", tag = "leads", params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 204, description = "The pending change is dropped (any admin, the one who asked included); audited"), Missing, Refusals))]
async fn reject_acl(
    State(state): State<LeadsState>,
    member: Require<perm::ManageOrganization>,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<Response, AppError> {
    reject(&state, member, id, meta).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// [`reject_acl`], for the lead page's form too.
pub(crate) async fn reject(
    state: &LeadsState,
    Require(member, _): Require<perm::ManageOrganization>,
    id: Uuid,
    meta: Meta,
) -> Result<(), AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let p = sqlx::query!(
        "DELETE FROM app.acl_pending WHERE org_id = $1 AND lead_id = $2
         RETURNING read_groups, write_groups, sensitivity, requested_by",
        member.org_id,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    audit::record(
        &mut tx,
        state.clock.now(),
        &meta,
        Entry {
            action: "lead.acl.rejected",
            target: Some(format!("lead:{id}")),
            before: Some(json!({
                "read_groups": p.read_groups, "write_groups": p.write_groups,
                "sensitivity": p.sensitivity, "requested_by": p.requested_by,
            })),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The lead's pending ACL change, if any (admins).
pub(crate) async fn pending(tx: &mut TenantTx, id: Uuid) -> Result<Option<Value>, AppError> {
    Ok(sqlx::query!(
        r#"SELECT p.read_groups, p.write_groups, p.sensitivity, p.rollback_of, p.requested_by,
                  p.requested_at, u.email AS "email?"
           FROM app.acl_pending p LEFT JOIN app.users u ON u.id = p.requested_by
           WHERE p.lead_id = $1"#,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .map(|p| {
        json!({
            "read_groups": p.read_groups, "write_groups": p.write_groups,
            "sensitivity": p.sensitivity, "rollback_of": p.rollback_of,
            "requested_by": p.requested_by, "requested_by_email": p.email,
            "requested_at": crate::http::ts(p.requested_at),
        })
    }))
}

async fn put_acl_inner(
    state: &LeadsState,
    Require(member, _): Require<perm::ManageOrganization>,
    id: Uuid,
    meta: Meta,
    acl: AclInput,
) -> Result<AclOutcome, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    check_groups(&mut tx, &acl).await?;
    let out = change_acl(state, &mut tx, &meta, id, acl, None).await?;
    tx.commit().await?;
    Ok(out)
}

/// [`put_acl`] for the lead page's form.
pub(crate) async fn put_acl_values(
    state: &LeadsState,
    member: Require<perm::ManageOrganization>,
    id: Uuid,
    meta: Meta,
    read_groups: Vec<Uuid>,
    write_groups: Vec<Uuid>,
    sensitivity: String,
) -> Result<bool, AppError> {
    let acl = AclInput {
        read_groups,
        write_groups,
        sensitivity,
    };
    put_acl_inner(state, member, id, meta, acl)
        .await
        .map(|o| matches!(o, AclOutcome::Pending(_)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Rollback {
    revision: i32,
}

/// Restores the ACL of an earlier revision exactly, as a new revision.
#[utoipa::path(post, path = "/api/v1/leads/{id}/acl/rollback", tag = "leads", params(("id" = Uuid, Path, description = "The lead")), request_body = Rollback,
    responses((status = 200, description = "The restored ACL, as a new revision", body = Object),
        (status = 202, description = "Restoring it widens access: it waits for a second admin's approval", body = Object), Missing, Refusals))]
async fn rollback_acl(
    State(state): State<LeadsState>,
    member: Require<perm::ManageOrganization>,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(body): ApiJson<Rollback>,
) -> Result<Response, AppError> {
    Ok(acl_response(
        rollback_inner(&state, member, id, meta, body.revision).await?,
    ))
}

/// [`rollback_acl`] for the lead page's form.
pub(crate) async fn rollback_to(
    state: &LeadsState,
    member: Require<perm::ManageOrganization>,
    id: Uuid,
    meta: Meta,
    revision: i32,
) -> Result<bool, AppError> {
    rollback_inner(state, member, id, meta, revision)
        .await
        .map(|o| matches!(o, AclOutcome::Pending(_)))
}

async fn rollback_inner(
    state: &LeadsState,
    Require(member, _): Require<perm::ManageOrganization>,
    id: Uuid,
    meta: Meta,
    revision: i32,
) -> Result<AclOutcome, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    if repo::get(&mut tx, id, false).await?.is_none() {
        return Err(AppError::NotFound);
    }
    let acl = if revision == 0 {
        AclInput {
            read_groups: Vec::new(),
            write_groups: Vec::new(),
            sensitivity: "confidential".into(),
        }
    } else {
        let r = sqlx::query!(
            "SELECT read_groups, write_groups, sensitivity FROM app.acl_revisions
             WHERE resource_id = $1 AND revision = $2",
            id,
            revision
        )
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            AppError::BadRequest(format!("revision: this lead has no revision {revision}"))
        })?;
        AclInput {
            read_groups: r.read_groups,
            write_groups: r.write_groups,
            sensitivity: r.sensitivity,
        }
    };
    // A group deleted since that revision cannot come back.
    check_groups(&mut tx, &acl).await?;
    let out = change_acl(state, &mut tx, &meta, id, acl, Some(revision)).await?;
    tx.commit().await?;
    Ok(out)
}
