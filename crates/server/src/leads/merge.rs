//! Duplicates: `GET /api/v1/leads/{id}/duplicates` finds candidates for a lead, and
//! `POST /api/v1/leads/{id}/merge` merges one into it.
//!
//! Two leads with the same email cannot exist (the blind index is unique per organization, case
//! and spaces normalised), so candidates are the other signals: the same LinkedIn profile, or the
//! same name at the same company domain. Only leads the principal can read are candidates.
//!
//! A merge keeps the lead of the URL (the survivor) and deletes the duplicate. Field by field the
//! survivor's value stays unless the request names the field in `take`, and the survivor's empty
//! fields are filled from the duplicate; tags and custom fields are united; an opt-out on either
//! lead stays (`do_not_contact` is never lost by a merge). Notes and activities move to the
//! survivor, a `merge` activity records it, and the audit trail names the fields taken. Both leads
//! must be writable by the principal and carry the same ACL: a merge never moves data out of a
//! lead to people its ACL kept it from.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::keys::OrgSealer;
use super::model::{LeadValues, LeadView};
use super::repo::{self, LeadRow};
use super::timeline::{record_activity, writable_lead};
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(duplicates))
        .routes(routes!(merge))
}

type Lead = Require<perm::LeadSearchAndManagement>;

/// Most candidates one lookup returns.
const MAX_CANDIDATES: i64 = 20;

/// Fields a merge may take from the duplicate.
pub const MERGEABLE: [&str; 18] = [
    "first_name",
    "last_name",
    "title",
    "seniority",
    "department",
    "email",
    "phone",
    "linkedin_url",
    "company_name",
    "company_domain",
    "industry",
    "employee_range",
    "city",
    "region",
    "country",
    "source",
    "status",
    "owner_id",
];

/// A candidate and why it is one.
#[derive(Debug)]
pub struct Candidate {
    pub view: LeadView,
    pub reasons: Vec<&'static str>,
}

fn same_name(a: &LeadRow, b: &LeadRow) -> bool {
    let eq = |x: &Option<String>, y: &Option<String>| match (x, y) {
        (Some(x), Some(y)) => x.trim().to_lowercase() == y.trim().to_lowercase(),
        _ => false,
    };
    eq(&a.first_name, &b.first_name) && eq(&a.last_name, &b.last_name)
}

/// Candidates for `lead` among the leads the transaction's principal can read.
pub(crate) async fn candidates(
    tx: &mut TenantTx,
    state: &LeadsState,
    lead: &LeadRow,
) -> Result<Vec<Candidate>, AppError> {
    if lead.linkedin_url.is_none() && lead.company_domain.is_none() {
        return Ok(Vec::new());
    }
    let org = tx.context().org_id;
    // Plain equality on indexed columns: under row-level security the planner only uses an
    // index through leakproof operators, so names are compared here, not in SQL.
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT {} FROM app.leads WHERE org_id = ",
        repo::COLUMNS
    ));
    qb.push_bind(org)
        .push(" AND id <> ")
        .push_bind(lead.id)
        .push(" AND (linkedin_url = ")
        .push_bind(lead.linkedin_url.clone())
        .push(" OR company_domain = ")
        .push_bind(lead.company_domain.clone())
        .push(") ORDER BY id DESC LIMIT 2000");
    let rows: Vec<LeadRow> = qb.build_query_as().fetch_all(&mut **tx).await?;
    let mut out = Vec::new();
    for row in rows {
        let mut reasons = Vec::new();
        if lead.linkedin_url.is_some() && row.linkedin_url == lead.linkedin_url {
            reasons.push("same_linkedin_url");
        }
        if lead.company_domain.is_some()
            && row.company_domain == lead.company_domain
            && same_name(&row, lead)
        {
            reasons.push("same_name_and_company_domain");
        }
        if reasons.is_empty() {
            continue;
        }
        out.push(Candidate {
            view: row.view(&state.fields).await?,
            reasons,
        });
        if out.len() as i64 == MAX_CANDIDATES {
            break;
        }
    }
    Ok(out)
}

#[utoipa::path(get, path = "/api/v1/leads/{id}/duplicates", tag = "leads", params(("id" = Uuid, Path, description = "The lead")),
    responses((status = 200, description = "Candidates among the leads you can read: `items` of `lead` and `reasons`", body = Object), Missing, Refusals))]
async fn duplicates(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let lead = repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    let found = candidates(&mut tx, &state, &lead).await?;
    tx.commit().await?;
    let items: Vec<_> = found
        .into_iter()
        .map(|c| json!({ "lead": c.view, "reasons": c.reasons }))
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// A merge request: the duplicate to fold into the lead of the URL, and the fields whose value
/// comes from the duplicate even where the survivor has one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeInput {
    pub duplicate: Uuid,
    #[serde(default)]
    pub take: Vec<String>,
}

/// The survivor's values after taking `take` from `dup` and filling blanks from it.
pub fn merged(keep: &LeadValues, dup: &LeadValues, take: &[String]) -> LeadValues {
    let taken = |f: &str| take.iter().any(|t| t == f);
    let pick = |f: &str, k: &Option<String>, d: &Option<String>| {
        if taken(f) {
            d.clone()
        } else {
            k.clone().or_else(|| d.clone())
        }
    };
    let mut tags = keep.tags.clone();
    for t in &dup.tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let mut custom = dup.custom.clone();
    for (k, v) in &keep.custom {
        custom.insert(k.clone(), v.clone());
    }
    LeadValues {
        first_name: pick("first_name", &keep.first_name, &dup.first_name),
        last_name: pick("last_name", &keep.last_name, &dup.last_name),
        title: pick("title", &keep.title, &dup.title),
        seniority: pick("seniority", &keep.seniority, &dup.seniority),
        department: pick("department", &keep.department, &dup.department),
        email: pick("email", &keep.email, &dup.email),
        phone: pick("phone", &keep.phone, &dup.phone),
        linkedin_url: pick("linkedin_url", &keep.linkedin_url, &dup.linkedin_url),
        company_name: pick("company_name", &keep.company_name, &dup.company_name),
        company_domain: pick("company_domain", &keep.company_domain, &dup.company_domain),
        industry: pick("industry", &keep.industry, &dup.industry),
        employee_range: pick("employee_range", &keep.employee_range, &dup.employee_range),
        city: pick("city", &keep.city, &dup.city),
        region: pick("region", &keep.region, &dup.region),
        country: pick("country", &keep.country, &dup.country),
        source: pick("source", &keep.source, &dup.source),
        status: if taken("status") {
            dup.status.clone()
        } else {
            keep.status.clone()
        },
        owner_id: if taken("owner_id") {
            dup.owner_id
        } else {
            keep.owner_id.or(dup.owner_id)
        },
        tags: tags.into_iter().take(50).collect(),
        custom,
        do_not_contact: keep.do_not_contact || dup.do_not_contact,
        masked_fields: Vec::new(),
    }
}

/// What a merge did, for its response and its audit entry.
#[derive(Debug)]
pub struct Merged {
    pub view: LeadView,
    pub notes_moved: u64,
    pub activities_moved: u64,
}

/// Merges `input.duplicate` into `id` in the caller's transaction; audited.
pub(crate) async fn merge_into(
    tx: &mut TenantTx,
    sealer: &OrgSealer,
    state: &LeadsState,
    meta: &Meta,
    id: Uuid,
    input: &MergeInput,
) -> Result<Merged, AppError> {
    if input.duplicate == id {
        return Err(AppError::BadRequest(
            "duplicate: a lead cannot be merged into itself".into(),
        ));
    }
    for (i, f) in input.take.iter().enumerate() {
        if !MERGEABLE.contains(&f.as_str()) {
            return Err(AppError::BadRequest(format!(
                "take[{i}]: unknown field {f:?}; one of {}",
                MERGEABLE.join(", ")
            )));
        }
    }
    writable_lead(tx, id).await?;
    writable_lead(tx, input.duplicate).await?;
    // Lock both in id order, so two merges of the same pair cannot deadlock.
    let (first, second) = if id < input.duplicate {
        (id, input.duplicate)
    } else {
        (input.duplicate, id)
    };
    let a = repo::get(tx, first, true)
        .await?
        .ok_or_else(super::api::acl_denied)?;
    let b = repo::get(tx, second, true)
        .await?
        .ok_or_else(super::api::acl_denied)?;
    let (keep, dup) = if a.id == id { (a, b) } else { (b, a) };
    if keep.sensitivity != dup.sensitivity
        || keep.read_groups != dup.read_groups
        || keep.write_groups != dup.write_groups
    {
        return Err(AppError::Conflict(
            "duplicate: the two leads have different ACLs; give them the same sensitivity and groups first"
                .into(),
        ));
    }
    let keep_values = keep.values(&state.fields).await?;
    let dup_values = dup.values(&state.fields).await?;
    let values = merged(&keep_values, &dup_values, &input.take);
    let now = state.clock.now();
    let org = tx.context().org_id;

    let notes_moved = sqlx::query!(
        "UPDATE app.lead_notes SET lead_id = $3 WHERE org_id = $1 AND lead_id = $2",
        org,
        dup.id,
        keep.id
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let activities_moved = sqlx::query!(
        "UPDATE app.lead_activities SET lead_id = $3 WHERE org_id = $1 AND lead_id = $2",
        org,
        dup.id,
        keep.id
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    // The duplicate goes first: the survivor may take its email, which is unique.
    if !repo::delete(tx, dup.id).await? {
        return Err(super::api::acl_denied());
    }
    let (model, _) = super::scoring::current(tx).await?;
    let score = model.score(&values).0;
    if !repo::update(tx, sealer, keep.id, &values, score, now).await? {
        return Err(super::api::acl_denied());
    }
    // In MERGEABLE's order, each field once however often the request named it.
    let taken: Vec<&str> = MERGEABLE
        .iter()
        .copied()
        .filter(|f| input.take.iter().any(|t| t == f))
        .collect();
    let summary = if taken.is_empty() {
        format!("Merged duplicate lead {} into this lead", dup.id)
    } else {
        format!(
            "Merged duplicate lead {} into this lead; taken from it: {}",
            dup.id,
            taken.join(", ")
        )
    };
    record_activity(tx, keep.id, "merge", &summary, now, now).await?;
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action: "lead.merge",
            target: Some(format!("lead:{}", keep.id)),
            before: Some(json!({ "duplicate": dup.id })),
            after: Some(json!({
                "fields_from_duplicate": taken,
                "notes_moved": notes_moved,
                "activities_moved": activities_moved,
            })),
        },
    )
    .await?;
    let row = repo::get(tx, keep.id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Merged {
        view: row.view(&state.fields).await?,
        notes_moved,
        activities_moved,
    })
}

#[utoipa::path(post, path = "/api/v1/leads/{id}/merge", tag = "leads", params(("id" = Uuid, Path, description = "The lead that stays")), request_body = MergeInput,
    responses((status = 200, description = "The merged lead and how many notes and activities moved; audited", body = Object), (status = 409, description = "The two leads have different ACLs", body = crate::http::openapi::ErrorBody), Missing, Refusals))]
async fn merge(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(input): ApiJson<MergeInput>,
) -> Result<Response, AppError> {
    let sealer = state.fields.sealer(member.org_id).await?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let done = merge_into(&mut tx, &sealer, &state, &meta, id, &input).await?;
    tx.commit().await?;
    Ok(axum::Json(json!({
        "lead": done.view,
        "notes_moved": done.notes_moved,
        "activities_moved": done.activities_moved,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(first: &str, title: Option<&str>, tags: &[&str], dnc: bool) -> LeadValues {
        LeadValues {
            first_name: Some(first.into()),
            title: title.map(Into::into),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            do_not_contact: dnc,
            ..LeadValues::new_lead()
        }
    }

    #[test]
    fn the_survivor_wins_blanks_are_filled_taken_fields_come_over_and_opt_outs_stay() {
        let keep = values("Ana", None, &["a", "b"], false);
        let dup = LeadValues {
            email: Some("ana@example.com".into()),
            ..values("Anna", Some("CTO"), &["b", "c"], true)
        };
        let m = merged(&keep, &dup, &[]);
        assert_eq!(m.first_name.as_deref(), Some("Ana"));
        assert_eq!(m.title.as_deref(), Some("CTO"));
        assert_eq!(m.email.as_deref(), Some("ana@example.com"));
        assert_eq!(m.tags, ["a", "b", "c"]);
        assert!(m.do_not_contact);
        let m = merged(&keep, &dup, &["first_name".into()]);
        assert_eq!(m.first_name.as_deref(), Some("Anna"));
    }
}
