//! The company pages: `/companies` (name order, a prefix search, keyset pages) and
//! `/companies/{id}` (the record, a form to change it, its newest leads, and deleting it for
//! admins and managers). They call the same functions, with the same row-level security and
//! audit, as `/api/v1/companies`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::api::{CompanyQuery, LEADS_CAP};
use crate::audit::Meta;
use crate::auth::BrowserUser;
use crate::db::TenantTx;
use crate::http::error::{ApiQuery, AppError};
use crate::leads::LeadsState;
use crate::leads::model::EMPLOYEE_RANGES;
use crate::leads::search::{Filter, Page, Sort};
use crate::orgs::permissions::{Member, Permission, check};
use crate::web::CsrfForm;
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{SignedIn, csrf, render};

pub fn routes() -> Router<LeadsState> {
    Router::new()
        .route("/companies", get(table))
        .route("/companies/{id}", get(detail).post(save))
        .route("/companies/{id}/delete", post(delete))
}

fn member(who: &crate::auth::AuthUser) -> Result<Member, AppError> {
    let member = Member::from_user(who)?;
    check(&member, Permission::LeadSearchAndManagement)?;
    Ok(member)
}

struct CompanyLine {
    id: String,
    name: String,
    domain: String,
    industry: String,
    employees: String,
    country: String,
}

#[derive(Template)]
#[template(path = "companies.html")]
struct TablePage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    q: String,
    companies: Vec<CompanyLine>,
    /// The first page, when showing a later one.
    first: Option<String>,
    next: Option<String>,
}

async fn table(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    ApiQuery(q): ApiQuery<CompanyQuery>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(&who) {
        return Ok(away);
    }
    let token = csrf(&state, &headers);
    let shell = crate::auth::shell(&state, &who, Section::Companies, &token.token).await?;
    let member = member(&who)?;
    let (prefix, limit) = q.checked()?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = super::list(&mut tx, prefix.as_deref(), q.after, limit).await?;
    tx.commit().await?;
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last())
        .flatten()
        .map(|r| {
            let mut s = format!("after={}", r.id);
            if let Some(p) = &prefix {
                s.push_str("&q=");
                s.extend(url::form_urlencoded::byte_serialize(p.as_bytes()));
            }
            s
        });
    let first = q.after.is_some().then(|| match &prefix {
        Some(p) => format!(
            "q={}",
            url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
        ),
        None => String::new(),
    });
    let page = TablePage {
        assets: assets::get(),
        version: state.version,
        shell,
        first,
        q: prefix.clone().unwrap_or_default(),
        companies: rows
            .iter()
            .map(|r| CompanyLine {
                id: r.id.to_string(),
                name: r.label(),
                domain: o(&r.domain),
                industry: o(&r.industry),
                employees: o(&r.employee_range),
                country: o(&r.country),
            })
            .collect(),
        next,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

struct LeadLine {
    id: String,
    name: String,
    title: String,
    score: i16,
}

#[derive(Template)]
#[template(path = "company.html")]
struct DetailPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    id: String,
    name: String,
    values: super::model::CompanyValues,
    technologies: String,
    revenue: String,
    ranges: &'static [&'static str],
    leads: Vec<LeadLine>,
    /// "10000+" past the cap.
    lead_count: String,
    can_delete: bool,
    notice: Option<String>,
    error: Option<String>,
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
    let notice = q
        .done
        .map(|_| "Saved; its leads show the change.".to_string());
    render_detail(&state, &headers, &who, id, notice, None).await
}

async fn render_detail(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &crate::auth::AuthUser,
    id: Uuid,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Companies, &token.token).await?;
    let member = member(who)?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let row = super::get(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let n = super::lead_count(&mut tx, id, LEADS_CAP).await?;
    let filter = Filter {
        company: Some(id),
        ..Filter::default()
    };
    let page = Page {
        sort: Sort::NewestFirst,
        limit: 50,
        after: None,
    };
    let leads = crate::leads::repo::search(&mut tx, &filter, &page, false).await?;
    tx.commit().await?;
    let values = row.values();
    let page = DetailPage {
        assets: assets::get(),
        version: state.version,
        shell,
        csrf: token.token.clone(),
        id: id.to_string(),
        name: row.label(),
        technologies: values.technologies.join(", "),
        revenue: values
            .annual_revenue
            .map(|r| r.to_string())
            .unwrap_or_default(),
        values,
        ranges: &EMPLOYEE_RANGES,
        leads: leads
            .iter()
            .take(50)
            .map(|l| LeadLine {
                id: l.id.to_string(),
                name: [l.first_name.as_deref(), l.last_name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                title: l.title.clone().unwrap_or_default(),
                score: l.score,
            })
            .collect(),
        lead_count: if n > LEADS_CAP {
            format!("{LEADS_CAP}+")
        } else {
            n.to_string()
        },
        can_delete: matches!(
            member.role,
            crate::db::Role::Admin | crate::db::Role::Manager
        ),
        notice,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

/// The edit form as the API's JSON: every field present, an empty one `null`.
fn form_input(form: &std::collections::HashMap<String, String>) -> Result<Value, AppError> {
    let mut m = Map::new();
    for key in [
        "name",
        "domain",
        "naics",
        "industry",
        "employee_range",
        "city",
        "region",
        "country",
    ] {
        let v = form.get(key).map(|s| s.trim()).unwrap_or("");
        m.insert(
            key.into(),
            if v.is_empty() { Value::Null } else { v.into() },
        );
    }
    let revenue = form.get("annual_revenue").map(|s| s.trim()).unwrap_or("");
    m.insert(
        "annual_revenue".into(),
        if revenue.is_empty() {
            Value::Null
        } else {
            revenue
                .replace([',', '_', ' '], "")
                .parse::<i64>()
                .map_err(|_| {
                    AppError::BadRequest("annual_revenue: a whole number of US dollars".into())
                })?
                .into()
        },
    );
    let tech: Vec<Value> = form
        .get("technologies")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Value::from)
        .collect();
    m.insert("technologies".into(), Value::Array(tech));
    Ok(Value::Object(m))
}

async fn save(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let result = async {
        let member = member(&who)?;
        super::api::change(&state, &member, &meta, id, form_input(&form)?).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/companies/{id}?done=saved")).into_response()),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_detail(&state, &headers, &who, id, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

async fn delete(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<std::collections::HashMap<String, String>>,
) -> Result<Response, AppError> {
    let result = async {
        let member = member(&who)?;
        super::api::delete(&state, &member, &meta, id).await
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to("/companies").into_response()),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_detail(&state, &headers, &who, id, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}
