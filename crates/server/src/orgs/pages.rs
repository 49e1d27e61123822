//! The organization page (`/org`): name, members and roles, invitations, API keys (a new key is
//! shown once, in the response to the form that made it) and the audit log. Forms post with a
//! CSRF token and go through the same handlers, extractor rules and audit as `/api/v1`.

use std::marker::PhantomData;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::permissions::{Member, Permission, Require, check};
use super::{api, api_keys, invitations};
use crate::audit::Meta;
use crate::auth::{AuthState, AuthUser, BrowserUser};
use crate::http::error::{ApiJson, AppError};
use crate::web::assets::{self, Assets};
use crate::web::cookies::{ACCESS_COOKIE, set_cookie, with_cookies};
use crate::web::{CsrfForm, SignedIn, csrf, render};

pub fn routes() -> Router<AuthState> {
    Router::new()
        .route("/org", get(page).post(create))
        .route("/org/switch", post(switch))
        .route("/org/rename", post(rename))
        .route("/org/members/{user_id}/role", post(change_role))
        .route("/org/members/{user_id}/remove", post(remove_member))
        .route("/org/invitations", post(invite))
        .route("/org/invitations/{id}/revoke", post(revoke_invitation))
        .route("/org/groups", post(create_group))
        .route("/org/groups/{id}/delete", post(delete_group))
        .route("/org/groups/{id}/members", post(add_group_member))
        .route(
            "/org/groups/{id}/members/{user_id}/remove",
            post(remove_group_member),
        )
        .route("/org/api-keys", post(create_key))
        .route("/org/api-keys/{id}/rotate", post(rotate_key))
        .route("/org/api-keys/{id}/revoke", post(revoke_key))
}

struct Row {
    cells: Vec<String>,
    id: String,
}

struct GroupRow {
    id: String,
    name: String,
    /// (user id, email)
    members: Vec<(String, String)>,
}

struct OrgChoice {
    id: String,
    name: String,
    role: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    orgs: Vec<OrgChoice>,
    has_org: bool,
    org_name: String,
    role: String,
    admin: bool,
    /// An admin whose session lacks a second factor sees why admin sections are closed.
    admin_needs_mfa: bool,
    members: Vec<Row>,
    invitations: Vec<Row>,
    keys: Vec<Row>,
    audit: Vec<Row>,
    groups: Vec<GroupRow>,
    new_key: Option<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rows(list: &Value, id: &str, fields: &[&str]) -> Vec<Row> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|r| Row {
                    id: text(&r[id]),
                    cells: fields.iter().map(|f| text(&r[*f])).collect(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn require<P>(member: &Member, p: Permission) -> Option<Require<P>> {
    check(member, p)
        .ok()
        .map(|()| Require(member.clone(), PhantomData))
}

async fn render_page(
    state: &AuthState,
    headers: &HeaderMap,
    who: &AuthUser,
    notice: Option<String>,
    error: Option<String>,
    new_key: Option<String>,
) -> Response {
    let token = csrf(state, headers);
    let orgs = match api::list_orgs(State(state.clone()), who.clone()).await {
        Ok(axum::Json(v)) => v,
        Err(e) => return e.into_response(),
    };
    let orgs: Vec<OrgChoice> = orgs
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| OrgChoice {
                    id: text(&o["id"]),
                    name: text(&o["name"]),
                    role: text(&o["role"]),
                    current: o["current"] == true,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut page = OrgPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        notice,
        error,
        orgs,
        has_org: false,
        org_name: String::new(),
        role: String::new(),
        admin: false,
        admin_needs_mfa: false,
        members: Vec::new(),
        invitations: Vec::new(),
        keys: Vec::new(),
        audit: Vec::new(),
        groups: Vec::new(),
        new_key,
    };
    if let Ok(member) = Member::from_user(who) {
        page.has_org = true;
        page.role = member.role.as_str().into();
        if let Ok(axum::Json(org)) = api::current_org(State(state.clone()), member.clone()).await {
            page.org_name = text(&org["name"]);
        }
        if let Ok(axum::Json(m)) = api::list_members(State(state.clone()), member.clone()).await {
            page.members = rows(&m, "user_id", &["email", "role", "since"]);
        }
        if let Ok(v) = super::groups::list(State(state.clone()), member.clone()).await
            && let Ok(v) = axum::body::to_bytes(v.into_body(), 1 << 20).await
            && let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&v)
        {
            let email_of = |id: &str| {
                page.members
                    .iter()
                    .find(|m| m.id == id)
                    .map_or_else(|| id.to_string(), |m| m.cells[0].clone())
            };
            page.groups = list
                .iter()
                .map(|g| GroupRow {
                    id: text(&g["id"]),
                    name: text(&g["name"]),
                    members: g["members"]
                        .as_array()
                        .map(|m| {
                            m.iter()
                                .map(|u| {
                                    let id = text(u);
                                    let email = email_of(&id);
                                    (id, email)
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
        }
        page.admin_needs_mfa = member.role == crate::db::Role::Admin
            && check(&member, Permission::ManageOrganization).is_err();
        if let Some(r) = require(&member, Permission::ManageOrganization) {
            page.admin = true;
            if let Ok(axum::Json(v)) = invitations::list(State(state.clone()), r).await {
                page.invitations = rows(&v, "id", &["email", "role", "status", "expires_at"]);
            }
            let r = require(&member, Permission::ManageOrganization);
            if let Some(r) = r
                && let Ok(axum::Json(v)) = api::audit_log(
                    State(state.clone()),
                    r,
                    Query(api::AuditQuery {
                        action: None,
                        before_seq: None,
                        limit: Some(50),
                    }),
                )
                .await
            {
                page.audit = rows(&v, "seq", &["at", "action", "target", "actor_id", "ip"]);
            }
        }
        if let Some(r) = require(&member, Permission::ApiKeyGeneration)
            && let Ok(axum::Json(v)) = api_keys::list(State(state.clone()), r).await
        {
            page.keys = rows(
                &v,
                "id",
                &["name", "prefix", "status", "expires_at", "last_used_at"],
            );
        }
    }
    render(&page, StatusCode::OK, &token)
}

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
}

async fn page(
    State(state): State<AuthState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<PageQuery>,
) -> Response {
    let notice = q.done.map(|d| {
        match d.as_str() {
            "created" => "Organization created; you are its admin.",
            "switched" => "You now work in this organization.",
            "renamed" => "Organization renamed.",
            "role" => "Role changed.",
            "removed" => "Member removed.",
            "invited" => "Invitation sent.",
            "revoked" => "Revoked.",
            "group" => "Group updated.",
            _ => "Done.",
        }
        .to_string()
    });
    render_page(&state, &headers, &who, notice, None, None).await
}

/// The outcome of a form: back to the page with a notice, or the page with the error.
async fn outcome(
    state: &AuthState,
    headers: &HeaderMap,
    who: &AuthUser,
    result: Result<(), AppError>,
    done: &str,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/org?done={done}")).into_response(),
        Err(e) => {
            let message = match &e {
                AppError::Database(_) | AppError::Internal(_) => {
                    tracing::error!(error = ?e, "organization page action failed");
                    "internal error".to_string()
                }
                other => other.to_string(),
            };
            let mut res = render_page(state, headers, who, None, Some(message), None).await;
            *res.status_mut() = e.status();
            res
        }
    }
}

fn member_of(who: &AuthUser) -> Result<Member, AppError> {
    Member::from_user(who)
}

fn required<P: super::permissions::PermissionMarker>(
    who: &AuthUser,
) -> Result<Require<P>, AppError> {
    let m = member_of(who)?;
    check(&m, P::PERMISSION)?;
    Ok(Require(m, PhantomData))
}

#[derive(Deserialize)]
struct NameForm {
    name: String,
}

async fn create(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Response {
    let created = api::create_org(
        State(state.clone()),
        who.clone(),
        meta,
        ApiJson(api::NewOrg { name: form.name }),
    )
    .await;
    let id = match created {
        Ok(res) => {
            let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            body.and_then(|v| v["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()))
        }
        Err(e) => return outcome(&state, &headers, &who, Err(e), "").await,
    };
    match id {
        Some(id) => switch_to(&state, &who, id, "created").await,
        None => Redirect::to("/org").into_response(),
    }
}

/// Moves the browser's session to `org` and hands it the new access cookie.
async fn switch_to(state: &AuthState, who: &AuthUser, org: Uuid, done: &str) -> Response {
    match crate::auth::service::switch_org(state, who, org).await {
        Ok(Some(s)) => with_cookies(
            Redirect::to(&format!("/org?done={done}")).into_response(),
            set_cookie(ACCESS_COOKIE, &s.access_token, s.expires_in)
                .into_iter()
                .collect(),
        ),
        Ok(None) => AppError::NotFound.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SwitchForm {
    org_id: Uuid,
}

async fn switch(
    State(state): State<AuthState>,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<SwitchForm>,
) -> Response {
    switch_to(&state, &who, form.org_id, "switched").await
}

async fn rename(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Response {
    let result = async {
        api::rename_org(
            State(state.clone()),
            required(&who)?,
            meta,
            ApiJson(api::NewOrg { name: form.name }),
        )
        .await
        .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "renamed").await
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

async fn change_role(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(user_id): Path<Uuid>,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> Response {
    let result = async {
        api::change_role(
            State(state.clone()),
            required(&who)?,
            meta,
            Path(user_id),
            ApiJson(api::RoleChange { role: form.role }),
        )
        .await
        .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "role").await
}

#[derive(Deserialize)]
struct Empty {}

async fn remove_member(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(user_id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let result = async {
        api::remove_member(State(state.clone()), required(&who)?, meta, Path(user_id))
            .await
            .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "removed").await
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    role: String,
}

async fn invite(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<InviteForm>,
) -> Response {
    let result = async {
        invitations::invite(
            State(state.clone()),
            required(&who)?,
            meta,
            ApiJson(invitations::Invite {
                email: form.email,
                role: form.role,
            }),
        )
        .await
        .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "invited").await
}

async fn revoke_invitation(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let result = async {
        invitations::revoke(State(state.clone()), required(&who)?, meta, Path(id))
            .await
            .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "revoked").await
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
}

/// Shows a new or rotated key once, in this response; it is never in a URL or shown again.
async fn show_key(
    state: &AuthState,
    headers: &HeaderMap,
    who: &AuthUser,
    made: Result<Response, AppError>,
) -> Response {
    match made {
        Ok(res) => {
            let body = axum::body::to_bytes(res.into_body(), 64 * 1024)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .unwrap_or(Value::Null);
            let key = body["key"].as_str().map(str::to_string);
            let mut res = render_page(
                state,
                headers,
                who,
                Some("Copy the new key now: it is shown only this once.".into()),
                None,
                key,
            )
            .await;
            // Nobody should cache a page that carries a secret.
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => outcome(state, headers, who, Err(e), "").await,
    }
}

async fn create_key(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> Response {
    let made = async {
        api_keys::create(
            State(state.clone()),
            required(&who)?,
            meta,
            ApiJson(api_keys::NewKey {
                name: form.name,
                scopes: None,
                expires_in_days: None,
            }),
        )
        .await
    }
    .await;
    show_key(&state, &headers, &who, made).await
}

async fn rotate_key(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let made =
        async { api_keys::rotate(State(state.clone()), required(&who)?, meta, Path(id)).await }
            .await;
    show_key(&state, &headers, &who, made).await
}

async fn revoke_key(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let result = async {
        api_keys::revoke(State(state.clone()), required(&who)?, meta, Path(id))
            .await
            .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "revoked").await
}

async fn create_group(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Response {
    let result = async {
        super::groups::create(
            State(state.clone()),
            required(&who)?,
            meta,
            ApiJson(super::groups::NewGroup { name: form.name }),
        )
        .await
        .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "group").await
}

async fn delete_group(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let result = async {
        super::groups::remove(State(state.clone()), required(&who)?, Path(id), meta)
            .await
            .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "group").await
}

#[derive(Deserialize)]
struct UserForm {
    user_id: Uuid,
}

async fn add_group_member(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Response {
    let result = async {
        super::groups::add_member(
            State(state.clone()),
            required(&who)?,
            Path((id, form.user_id)),
            meta,
        )
        .await
        .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "group").await
}

async fn remove_group_member(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path((id, user_id)): Path<(Uuid, Uuid)>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Response {
    let result = async {
        super::groups::remove_member(
            State(state.clone()),
            required(&who)?,
            Path((id, user_id)),
            meta,
        )
        .await
        .map(|_| ())
    }
    .await;
    outcome(&state, &headers, &who, result, "group").await
}
