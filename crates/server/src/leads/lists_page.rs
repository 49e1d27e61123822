//! The lists page (`/lists`): the member's lists and the shared ones, each opening the leads
//! table filtered to it; create and delete. Forms call the same service functions as
//! `/api/v1/lists`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::LeadsState;
use super::lists::{self, NewList};
use crate::audit::Meta;
use crate::auth::{AuthUser, BrowserUser};
use crate::http::error::AppError;
use crate::orgs::permissions::{Member, Permission, check};
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{CsrfForm, SignedIn, When, csrf, render};

pub fn routes() -> Router<LeadsState> {
    Router::new()
        .route("/lists", get(page).post(create))
        .route("/lists/{id}/delete", post(delete))
}

struct ListLine {
    id: Uuid,
    name: String,
    leads: i64,
    shared: bool,
    mine: bool,
    created: When,
    deletable: bool,
}

#[derive(Template)]
#[template(path = "lists.html")]
struct ListsPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    lists: Vec<ListLine>,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// The member, allowed to work with leads (403 with its code otherwise).
fn member(who: &AuthUser) -> Result<Member, AppError> {
    let m = Member::from_user(who)?;
    check(&m, Permission::LeadSearchAndManagement)?;
    Ok(m)
}

async fn render_page(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &AuthUser,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Lists, &token.token).await?;
    let member = member(who)?;
    let admin = check(&member, Permission::ManageOrganization).is_ok();
    let lists = lists::all(state, &member)
        .await?
        .into_iter()
        .map(|l| {
            let mine = l.owner_id == member.principal_id;
            ListLine {
                created: shell.when(l.created_at),
                deletable: mine || (admin && l.shared),
                leads: l.leads.unwrap_or(0),
                id: l.id,
                name: l.name,
                shared: l.shared,
                mine,
            }
        })
        .collect();
    let page = ListsPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        shell,
        lists,
        notice,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
}

async fn page(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let notice = q.done.map(|d| match d.as_str() {
        "created" => "List created. Add leads to it from a lead's page.",
        "deleted" => "List deleted; its leads stay.",
        _ => "Done.",
    });
    render_page(&state, &headers, &who, notice, None).await
}

/// Back to the page with a notice, or the page with the error.
async fn outcome(
    state: &LeadsState,
    headers: &HeaderMap,
    who: &AuthUser,
    result: Result<(), AppError>,
    done: &str,
) -> Result<Response, AppError> {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/lists?done={done}")).into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res = render_page(state, headers, who, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

#[derive(Deserialize)]
struct NewListForm {
    name: String,
    shared: Option<String>,
}

async fn create(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NewListForm>,
) -> Result<Response, AppError> {
    let result = async {
        let body = NewList {
            name: form.name,
            shared: form.shared.is_some(),
        };
        lists::new_list(&state, &member(&who)?, &meta, body).await?;
        Ok(())
    }
    .await;
    outcome(&state, &headers, &who, result, "created").await
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    State(state): State<LeadsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let result = async { lists::delete(&state, &member(&who)?, &meta, id).await }.await;
    outcome(&state, &headers, &who, result, "deleted").await
}
