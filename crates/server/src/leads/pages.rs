//! The leads pages: `/leads` (the table with filters, keyset pages, a count and the export link
//! for roles that may export), `/leads/{id}` (a lead, and for admins its ACL with revisions and
//! rollback) and `/leads/export` (the API's export, for the browser session). Every page goes
//! through the same handlers, extractor rules, row-level security and audit as `/api/v1`.

use std::marker::PhantomData;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::model::{LeadView, SENIORITIES, SENSITIVITIES, STATUSES};
use super::repo;
use super::search::{Cursor, SearchParams};
use crate::audit::Meta;
use crate::auth::BrowserUser;
use crate::db::TenantTx;
use crate::http::error::{ApiQuery, AppError};
use crate::leads::LeadsState;
use crate::orgs::permissions::{Member, Permission, Require, check};
use crate::web::CsrfForm;
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{SignedIn, When, csrf, render};

pub fn routes() -> Router<LeadsState> {
    Router::new()
        .route("/leads", get(table))
        .route("/leads/export", get(export))
        .route("/leads/segments", post(save_segment))
        .route("/leads/segments/{id}/delete", post(delete_segment))
        .route("/leads/{id}", get(detail))
        .route("/leads/{id}/reveal", post(reveal))
        .route("/leads/{id}/acl", post(set_acl))
        .route("/leads/{id}/acl/rollback", post(rollback))
        .route("/leads/{id}/acl/approve", post(approve_pending))
        .route("/leads/{id}/acl/reject", post(reject_pending))
        .route("/leads/{id}/notes", post(add_note))
        .route("/leads/{id}/notes/{note}/delete", post(delete_note))
        .route("/leads/{id}/activities", post(add_activity))
        .route("/leads/{id}/merge", post(merge))
        .route("/leads/{id}/lists", post(add_to_list))
}

fn require<P>(member: &Member, p: Permission) -> Result<Require<P>, AppError> {
    check(member, p)?;
    Ok(Require(member.clone(), PhantomData))
}

struct LeadLine {
    id: String,
    name: String,
    title: String,
    company: String,
    email: String,
    country: String,
    status: String,
    score: i16,
    dnc: bool,
    added: When,
}

/// A sortable column header of the leads table: a link to the same search sorted by it.
struct SortLink {
    href: String,
    /// `asc` or `desc` when the table is sorted by this column.
    dir: &'static str,
}

#[derive(Template)]
#[template(path = "leads.html")]
struct TablePage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    /// The list the search is limited to, when there is one.
    list: Option<(Uuid, String)>,
    /// Parameters the filter form keeps (list, company, sort, page size).
    keep: Vec<(&'static str, String)>,
    by_score: SortLink,
    by_added: SortLink,
    limit: u32,
    limits: [u32; 4],
    /// The first page of this search, when showing a later one.
    first: Option<String>,
    q: String,
    seniority: String,
    country: String,
    status: String,
    seniorities: &'static [&'static str],
    statuses: &'static [&'static str],
    leads: Vec<LeadLine>,
    /// "10000+" past the cap.
    count: String,
    next: Option<String>,
    /// The query string of the current filters (for the export and next links).
    filters: String,
    can_export: bool,
    csrf: String,
    /// Saved searches the member sees.
    segments: Vec<SegmentLine>,
    error: Option<String>,
}

struct SegmentLine {
    id: String,
    name: String,
    query: String,
    shared: bool,
    /// Its owner, or an admin for a shared one, may delete it.
    deletable: bool,
}

/// A lead's name as pages show it ("" when it has none).
fn display_name(v: &LeadView) -> String {
    let f = &v.values;
    [f.first_name.as_deref(), f.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

fn line(v: &LeadView, shell: &Shell) -> LeadLine {
    let f = &v.values;
    LeadLine {
        id: v.id.to_string(),
        name: display_name(v),
        title: f.title.clone().unwrap_or_default(),
        company: f.company_name.clone().unwrap_or_default(),
        email: f.email.clone().unwrap_or_default(),
        country: f.country.clone().unwrap_or_default(),
        status: f.status.clone(),
        score: v.score,
        dnc: f.do_not_contact,
        added: shell.when(v.created_at),
    }
}

/// A query string from its non-empty pairs.
fn query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn table(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, AppError> {
    render_table(&state, &headers, &who, &params, None).await
}

async fn render_table(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    params: &SearchParams,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Leads, &token.token).await?;
    let member = Member::from_user(who)?;
    require::<crate::orgs::perm::LeadSearchAndManagement>(
        &member,
        Permission::LeadSearchAndManagement,
    )?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let id = |v: Option<Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
    // The search's filters: what a saved search keeps and an export selects.
    let filters = query(&[
        ("q", text(&params.q)),
        ("seniority", text(&params.seniority)),
        ("country", text(&params.country)),
        ("status", text(&params.status)),
        ("list", id(params.list)),
        ("company", id(params.company)),
    ]);
    let sort = params.sort.clone().unwrap_or_default();
    let limit = params.limit.unwrap_or(50);
    let with = |extra: &[(&str, String)]| {
        let tail = query(extra);
        match (filters.is_empty(), tail.is_empty()) {
            (_, true) => filters.clone(),
            (true, false) => tail,
            (false, false) => format!("{filters}&{tail}"),
        }
    };
    let page_size = if limit == 50 {
        String::new()
    } else {
        limit.to_string()
    };
    let sort_link = |asc: &str, desc: &str| {
        let (next, dir) = if sort == desc {
            (asc, "desc")
        } else if sort == asc {
            (desc, "asc")
        } else {
            (desc, "")
        };
        SortLink {
            href: with(&[("sort", next.to_string()), ("limit", page_size.clone())]),
            dir,
        }
    };
    // The default order is newest first.
    let by_added = if sort.is_empty() {
        SortLink {
            href: with(&[("sort", "created".into()), ("limit", page_size.clone())]),
            dir: "desc",
        }
    } else {
        sort_link("created", "-created")
    };
    let by_score = sort_link("score", "-score");
    let keep = [
        ("list", id(params.list)),
        ("company", id(params.company)),
        ("sort", sort.clone()),
        ("limit", page_size.clone()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    let org = member.org_id;
    let mut page = TablePage {
        assets: assets::get(),
        version: state.version,
        list: None,
        keep,
        by_score,
        by_added,
        limit,
        limits: [25, 50, 100, 200],
        first: params
            .cursor
            .is_some()
            .then(|| with(&[("sort", sort.clone()), ("limit", page_size.clone())])),
        q: params.q.clone().unwrap_or_default(),
        seniority: params.seniority.clone().unwrap_or_default(),
        country: params.country.clone().unwrap_or_default(),
        status: params.status.clone().unwrap_or_default(),
        seniorities: &SENIORITIES,
        statuses: &STATUSES,
        leads: Vec::new(),
        count: String::new(),
        next: None,
        filters: filters.clone(),
        // Shown to every role that may export; below aal2 the link leads to the page that
        // explains the second factor and how to set it up.
        can_export: Permission::DataExport.allows(member.role),
        csrf: token.token.clone(),
        segments: Vec::new(),
        error,
        shell,
    };
    if let Some(list) = params.list {
        page.list = super::lists::all(state, &member)
            .await?
            .into_iter()
            .find(|l| l.id == list)
            .map(|l| (l.id, l.name));
    }
    let admin = check(&member, Permission::ManageOrganization).is_ok();
    {
        let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
        page.segments = super::segments::visible(&mut tx)
            .await?
            .into_iter()
            .map(|r| SegmentLine {
                id: r.id.to_string(),
                deletable: r.owner_id == member.principal_id || (admin && r.shared),
                name: r.name,
                query: r.query,
                shared: r.shared,
            })
            .collect();
        tx.commit().await?;
    }
    match params.parse(|e| state.fields.email_index(org, e)) {
        Err(e) => page.error = Some(AppError::from(e).public_message()),
        Ok((filter, p)) => {
            let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
            let mut rows = repo::search(&mut tx, &filter, &p, false).await?;
            let n = repo::count(&mut tx, &filter, Some(repo::COUNT_CAP)).await?;
            page.count = if n > repo::COUNT_CAP {
                format!("{}+", repo::COUNT_CAP)
            } else {
                n.to_string()
            };
            let more = rows.len() > p.limit as usize;
            rows.truncate(p.limit as usize);
            let read: Vec<&repo::LeadRow> = rows.iter().collect();
            super::reads::record(
                &mut tx,
                state.clock.now(),
                &Meta::default(),
                super::reads::Kind::Search,
                &read,
                None,
            )
            .await?;
            tx.commit().await?;
            if more && let Some(last) = rows.last() {
                let cursor = Cursor {
                    sort: p.sort,
                    score: last.score,
                    id: last.id,
                }
                .encode();
                page.next = Some(with(&[
                    ("sort", sort.clone()),
                    ("limit", page_size.clone()),
                    ("cursor", cursor),
                ]));
            }
            for r in &rows {
                let view = r.view(&state.fields).await?;
                page.leads.push(line(&view, &page.shell));
            }
        }
    }
    Ok(render(&page, StatusCode::OK, &token))
}

#[derive(Deserialize)]
struct SegmentForm {
    name: String,
    /// The search's query string, as the page shows it.
    query: String,
    shared: Option<String>,
}

/// "Save this search": the current filters under a name.
async fn save_segment(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<SegmentForm>,
) -> Result<Response, AppError> {
    let result = async {
        let member = Member::from_user(&who)?;
        check(&member, Permission::LeadSearchAndManagement)?;
        super::segments::save(
            &state,
            &member,
            &meta,
            &form.name,
            &form.query,
            form.shared.is_some(),
        )
        .await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/leads?{}", form.query)).into_response()),
        Err(e) => {
            let status = e.status();
            let params = axum::extract::Query::<SearchParams>::try_from_uri(
                &format!("/?{}", form.query)
                    .parse()
                    .unwrap_or_else(|_| axum::http::Uri::from_static("/")),
            )
            .map(|q| q.0)
            .unwrap_or_default();
            let mut res =
                render_table(&state, &headers, &who, &params, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

async fn delete_segment(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let result = async {
        let member = Member::from_user(&who)?;
        check(&member, Permission::LeadSearchAndManagement)?;
        super::segments::delete(&state, &member, &meta, id).await
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to("/leads").into_response()),
        Err(e) => {
            let status = e.status();
            let mut res = render_table(
                &state,
                &headers,
                &who,
                &SearchParams::default(),
                Some(e.public_message()),
            )
            .await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

async fn export(
    State(state): State<LeadsState>,
    SignedIn(who): BrowserUser,
    meta: Meta,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, AppError> {
    let member = Member::from_user(&who)?;
    let r = require(&member, Permission::DataExport)?;
    super::export::download(&state, &r, meta, &params).await
}

struct Field {
    label: &'static str,
    value: String,
}

struct Group {
    id: String,
    name: String,
    read: bool,
    write: bool,
}

struct Revision {
    revision: String,
    summary: String,
    changed_at: When,
    rollback_of: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "lead.html")]
struct DetailPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    id: String,
    name: String,
    added: When,
    updated: When,
    /// The lists the member may add this lead to: (id, name).
    lists: Vec<(Uuid, String)>,
    fields: Vec<Field>,
    admin: bool,
    sensitivity: String,
    sensitivities: &'static [&'static str],
    groups: Vec<Group>,
    revisions: Vec<Revision>,
    notes: Vec<NoteLine>,
    activities: Vec<ActivityLine>,
    consents: Vec<ConsentLine>,
    kinds: &'static [&'static str],
    duplicates: Vec<DuplicateLine>,
    /// The company record's id, when its domain links one.
    company: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    /// A restricted lead shown without its contact details: the form to ask for them.
    hidden: bool,
    /// An ACL change that widens access, waiting for a second admin (admins only).
    pending: Option<PendingLine>,
}

struct PendingLine {
    sensitivity: String,
    read: usize,
    write: usize,
    by: String,
    /// Asked for by the viewer, who cannot approve it.
    mine: bool,
}

struct ConsentLine {
    form: String,
    version: String,
    from: String,
    at: When,
}

struct NoteLine {
    id: String,
    body: String,
    at: When,
    /// Its author or an admin may delete it.
    deletable: bool,
}

struct ActivityLine {
    kind: String,
    summary: String,
    at: When,
}

/// A duplicate candidate with the fields where it differs, for a field-by-field merge.
struct DuplicateLine {
    id: String,
    name: String,
    reasons: String,
    fields: Vec<MergeField>,
}

struct MergeField {
    name: &'static str,
    mine: String,
    theirs: String,
}

/// A lead's value of field `name` (one of [`super::merge::MERGEABLE`]) as text.
fn field_text(values: &serde_json::Value, name: &str) -> String {
    match &values[name] {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailQuery {
    done: Option<String>,
}

async fn detail(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    ApiQuery(q): ApiQuery<DetailQuery>,
) -> Result<Response, AppError> {
    render_detail(
        &state,
        &headers,
        &who,
        id,
        q.done.map(|d| {
            match d.as_str() {
                "note" => "Note added.",
                "note_deleted" => "Note deleted.",
                "activity" => "Activity logged.",
                "merge" => "Duplicate merged into this lead.",
                "listed" => "Added to the list.",
                "acl_pending" => {
                    "The change widens who may see or change this lead: it waits for another \
                     admin's approval."
                }
                "acl_approved" => "ACL change approved and applied.",
                "acl_rejected" => "Pending ACL change rejected.",
                _ => "ACL saved.",
            }
            .to_string()
        }),
        None,
    )
    .await
}

async fn render_detail(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    id: Uuid,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    render_detail_with(state, headers, who, id, notice, error, None).await
}

#[derive(Deserialize)]
struct RevealForm {
    justification: String,
}

/// Shows a restricted lead's contact details to a reader who says why (recorded); the page is
/// the answer to the form, so the details are never in a URL or the browser's history.
async fn reveal(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<RevealForm>,
) -> Result<Response, AppError> {
    match super::reads::justification(&form.justification) {
        Ok(why) => render_detail_with(&state, &headers, &who, id, None, None, Some(&why)).await,
        Err(e) => {
            render_detail_with(
                &state,
                &headers,
                &who,
                id,
                None,
                Some(e.public_message()),
                None,
            )
            .await
        }
    }
}

async fn render_detail_with(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    id: Uuid,
    notice: Option<String>,
    error: Option<String>,
    justification: Option<&str>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Leads, &token.token).await?;
    let member = Member::from_user(who)?;
    require::<crate::orgs::perm::LeadSearchAndManagement>(
        &member,
        Permission::LeadSearchAndManagement,
    )?;
    let lists = super::lists::all(state, &member)
        .await?
        .into_iter()
        .map(|l| (l.id, l.name))
        .collect();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = repo::get(&mut tx, id, false)
        .await?
        .ok_or(AppError::NotFound)?;
    let admin = check(&member, Permission::ManageOrganization).is_ok();
    let mut groups = Vec::new();
    let mut revisions = Vec::new();
    let mut pending = None;
    if admin {
        pending = super::api::pending(&mut tx, id)
            .await?
            .map(|p| PendingLine {
                sensitivity: p["sensitivity"].as_str().unwrap_or_default().to_string(),
                read: p["read_groups"].as_array().map_or(0, Vec::len),
                write: p["write_groups"].as_array().map_or(0, Vec::len),
                by: p["requested_by_email"]
                    .as_str()
                    .unwrap_or("an admin")
                    .to_string(),
                mine: p["requested_by"].as_str() == Some(member.principal_id.to_string().as_str()),
            });
        groups = sqlx::query!(
            "SELECT id, name FROM app.acl_groups WHERE org_id = $1 ORDER BY name",
            member.org_id
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|g| Group {
            read: row.read_groups.contains(&g.id),
            write: row.write_groups.contains(&g.id),
            id: g.id.to_string(),
            name: g.name,
        })
        .collect();
        revisions = sqlx::query!(
            "SELECT revision, read_groups, write_groups, sensitivity, changed_at, rollback_of
             FROM app.acl_revisions WHERE resource_id = $1 ORDER BY revision DESC",
            id
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|r| Revision {
            current: r.revision == row.acl_revision,
            revision: r.revision.to_string(),
            summary: format!(
                "{}; read: {} group(s); write: {} group(s)",
                r.sensitivity,
                r.read_groups.len(),
                r.write_groups.len()
            ),
            changed_at: shell.when(r.changed_at),
            rollback_of: r.rollback_of.map(|r| r.to_string()).unwrap_or_default(),
        })
        .collect();
        revisions.push(Revision {
            current: row.acl_revision == 0,
            revision: "0".into(),
            summary: "confidential; no groups (the default)".into(),
            changed_at: shell.when(row.created_at),
            rollback_of: String::new(),
        });
    }
    let notes = super::timeline::notes(&mut tx, id, None, 50)
        .await?
        .into_iter()
        .map(|n| NoteLine {
            id: n.id.to_string(),
            deletable: admin || n.author_id == member.principal_id,
            body: n.body,
            at: shell.when(n.created_at),
        })
        .collect();
    let activities = super::timeline::activities(&mut tx, id, None, 50)
        .await?
        .into_iter()
        .map(|a| ActivityLine {
            kind: a.kind,
            summary: a.summary,
            at: shell.when(a.occurred_at),
        })
        .collect();
    let consents = super::timeline::consents(&mut tx, id, None, 20)
        .await?
        .into_iter()
        .map(|c| ConsentLine {
            form: c.form_name.unwrap_or_else(|| "a deleted form".into()),
            version: c.consent_version,
            from: c.ip.map(|n| n.ip().to_string()).unwrap_or_default(),
            at: shell.when(c.given_at),
        })
        .collect();
    let candidates = super::merge::candidates(&mut tx, state, &row).await?;
    let reveal = row.restricted() && justification.is_some();
    let (kind, why) = if reveal {
        (super::reads::Kind::Reveal, justification)
    } else {
        (super::reads::Kind::Read, None)
    };
    super::reads::record(
        &mut tx,
        state.clock.now(),
        &Meta::default(),
        kind,
        &[&row],
        why,
    )
    .await?;
    tx.commit().await?;
    let view = if reveal {
        row.view_revealed(&state.fields).await?
    } else {
        row.view(&state.fields).await?
    };
    let hidden = view.contact_details_hidden;
    let mine = serde_json::to_value(&view.values).unwrap_or_default();
    let duplicates = candidates
        .into_iter()
        .map(|c| {
            let theirs = serde_json::to_value(&c.view.values).unwrap_or_default();
            DuplicateLine {
                id: c.view.id.to_string(),
                name: display_name(&c.view),
                reasons: c.reasons.join(", ").replace('_', " "),
                fields: super::merge::MERGEABLE
                    .iter()
                    .map(|&name| MergeField {
                        name,
                        mine: field_text(&mine, name),
                        theirs: field_text(&theirs, name),
                    })
                    .filter(|f| !f.theirs.is_empty() && f.theirs != f.mine)
                    .collect(),
            }
        })
        .collect();
    let f = &view.values;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let fields = vec![
        Field {
            label: "Title",
            value: o(&f.title),
        },
        Field {
            label: "Seniority",
            value: o(&f.seniority),
        },
        Field {
            label: "Department",
            value: o(&f.department),
        },
        Field {
            label: "Email",
            value: o(&f.email),
        },
        Field {
            label: "Phone",
            value: o(&f.phone),
        },
        Field {
            label: "LinkedIn",
            value: o(&f.linkedin_url),
        },
        Field {
            label: "Company",
            value: o(&f.company_name),
        },
        Field {
            label: "Domain",
            value: o(&f.company_domain),
        },
        Field {
            label: "Industry",
            value: o(&f.industry),
        },
        Field {
            label: "Employees",
            value: o(&f.employee_range),
        },
        Field {
            label: "Location",
            value: [o(&f.city), o(&f.region), o(&f.country)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", "),
        },
        Field {
            label: "Source",
            value: o(&f.source),
        },
        Field {
            label: "Status",
            value: f.status.clone(),
        },
        Field {
            label: "Tags",
            value: f.tags.join(", "),
        },
        Field {
            label: "Score",
            value: view.score.to_string(),
        },
        Field {
            label: "Do not contact",
            value: if f.do_not_contact {
                "yes".into()
            } else {
                "no".into()
            },
        },
        Field {
            label: "Sensitivity",
            value: view.sensitivity.clone(),
        },
    ];
    let name = display_name(&view);
    let page = DetailPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        id: id.to_string(),
        name: if name.is_empty() { o(&f.email) } else { name },
        added: shell.when(view.created_at),
        updated: shell.when(view.updated_at),
        lists,
        shell,
        fields,
        admin,
        sensitivity: view.sensitivity.clone(),
        sensitivities: &SENSITIVITIES,
        groups,
        revisions,
        notes,
        activities,
        consents,
        kinds: &super::timeline::LOGGED_KINDS,
        duplicates,
        company: view.company_id.map(|c| c.to_string()),
        notice,
        error,
        hidden,
        pending,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

/// The ACL form: a checkbox per group and direction (`read_<id>`, `write_<id>`) and the class.
async fn set_acl(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let mut read = Vec::new();
    let mut write = Vec::new();
    let mut sensitivity = String::from("confidential");
    let group = |v: &str| {
        v.parse::<Uuid>()
            .map_err(|_| AppError::BadRequest(format!("{v}: not a group id")))
    };
    for (k, v) in form {
        if let Some(g) = k.strip_prefix("read_") {
            read.push(group(g)?);
        } else if let Some(g) = k.strip_prefix("write_") {
            write.push(group(g)?);
        } else if k == "sensitivity" {
            sensitivity = v;
        }
    }
    let result = async {
        let member = Member::from_user(&who)?;
        let r = require(&member, Permission::ManageOrganization)?;
        super::api::put_acl_values(&state, r, id, meta, read, write, sensitivity).await
    }
    .await;
    let done = result.map(|pending| if pending { "acl_pending" } else { "acl" });
    answer(&state, &headers, &who, id, done).await
}

/// A second admin approves, or any admin rejects, the lead's pending ACL change.
async fn approve_pending(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let result = async {
        let member = Member::from_user(&who)?;
        let r = require(&member, Permission::ManageOrganization)?;
        super::api::approve(&state, r, id, meta).await
    }
    .await;
    answer(&state, &headers, &who, id, result.map(|_| "acl_approved")).await
}

async fn reject_pending(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let result = async {
        let member = Member::from_user(&who)?;
        let r = require(&member, Permission::ManageOrganization)?;
        super::api::reject(&state, r, id, meta).await
    }
    .await;
    answer(&state, &headers, &who, id, result.map(|()| "acl_rejected")).await
}

/// The answer to a form on the lead's page: back to the lead with `done`, or the lead page again
/// with the reason for a refusal.
async fn answer(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    id: Uuid,
    result: Result<&str, AppError>,
) -> Result<Response, AppError> {
    match result {
        Ok(done) => Ok(Redirect::to(&format!("/leads/{id}?done={done}")).into_response()),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_detail(state, headers, who, id, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

/// Form fields arrive as text (the CSRF envelope flattens them, and numbers do not survive that).
#[derive(Deserialize)]
struct RollbackForm {
    revision: String,
}

async fn rollback(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<RollbackForm>,
) -> Result<Response, AppError> {
    let result = async {
        let member = Member::from_user(&who)?;
        let r = require(&member, Permission::ManageOrganization)?;
        let revision = form
            .revision
            .parse()
            .map_err(|_| AppError::BadRequest("revision: a number".into()))?;
        super::api::rollback_to(&state, r, id, meta, revision).await
    }
    .await;
    let done = result.map(|pending| if pending { "acl_pending" } else { "rollback" });
    answer(&state, &headers, &who, id, done).await
}

/// Runs a form's change for the signed-in member: on success back to the lead with `done`, on a
/// refusal the lead page again with the reason.
async fn lead_form<F>(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    id: Uuid,
    done: &str,
    change: F,
) -> Result<Response, AppError>
where
    F: AsyncFnOnce(&mut TenantTx) -> Result<(), AppError>,
{
    let result = async {
        let member = Member::from_user(who)?;
        require::<crate::orgs::perm::LeadSearchAndManagement>(
            &member,
            Permission::LeadSearchAndManagement,
        )?;
        let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
        change(&mut tx).await?;
        tx.commit().await?;
        Ok::<(), AppError>(())
    }
    .await;
    answer(state, headers, who, id, result.map(|()| done)).await
}

#[derive(Deserialize)]
struct NoteForm {
    body: String,
}

async fn add_note(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<NoteForm>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    lead_form(
        &state,
        &headers,
        &who,
        id,
        "note",
        async |tx: &mut TenantTx| {
            super::timeline::insert_note(tx, &meta, id, &form.body, now)
                .await
                .map(|_| ())
        },
    )
    .await
}

async fn delete_note(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path((id, note)): Path<(Uuid, Uuid)>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    lead_form(
        &state,
        &headers,
        &who,
        id,
        "note_deleted",
        async |tx: &mut TenantTx| super::timeline::delete_note(tx, &meta, id, note, now).await,
    )
    .await
}

#[derive(Deserialize)]
struct ActivityForm {
    kind: String,
    summary: String,
}

async fn add_activity(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ActivityForm>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    lead_form(
        &state,
        &headers,
        &who,
        id,
        "activity",
        async |tx: &mut TenantTx| {
            super::timeline::log_activity(tx, id, &form.kind, &form.summary, now, now)
                .await
                .map(|_| ())
        },
    )
    .await
}

/// The merge form: `duplicate` and a `take_<field>` checkbox per field taken from it.
async fn merge(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let input = form
        .get("duplicate")
        .and_then(|d| d.parse::<Uuid>().ok())
        .map(|duplicate| super::merge::MergeInput {
            duplicate,
            take: form
                .keys()
                .filter_map(|k| k.strip_prefix("take_"))
                .map(str::to_string)
                .collect(),
        });
    // The organization's key before the transaction: creating it takes a connection of its own.
    let sealer = match Member::from_user(&who) {
        Ok(m) => Some(state.fields.sealer(m.org_id).await?),
        Err(_) => None,
    };
    lead_form(
        &state,
        &headers,
        &who,
        id,
        "merge",
        async |tx: &mut TenantTx| {
            let input =
                input.ok_or_else(|| AppError::BadRequest("duplicate: not a lead id".into()))?;
            let sealer = sealer.ok_or(AppError::Forbidden("no organization"))?;
            super::merge::merge_into(tx, &sealer, &state, &meta, id, &input)
                .await
                .map(|_| ())
        },
    )
    .await
}

#[derive(Deserialize)]
struct ListForm {
    list_id: Uuid,
}

/// "Add to list", from the lead's page.
async fn add_to_list(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<ListForm>,
) -> Result<Response, AppError> {
    let result = async {
        let member = Member::from_user(&who)?;
        check(&member, Permission::LeadSearchAndManagement)?;
        super::lists::add_leads(&state, &member, &meta, form.list_id, &[id]).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/leads/{id}?done=listed")).into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_detail(&state, &headers, &who, id, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}
