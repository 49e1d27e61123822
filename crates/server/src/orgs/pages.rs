//! The organization page (`/org`): name, members and roles, invitations, ACL groups, API keys (a
//! new key is shown once, in the response to the form that made it) and the audit log; and the
//! organization switcher every page's shell posts to. Forms post with a CSRF token and call the
//! same service functions, permission rules and audit as `/api/v1`.

use std::marker::PhantomData;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::permissions::{Member, Permission, PermissionMarker, Require, check, perm};
use super::{api, api_keys, groups, invitations};
use crate::audit::Meta;
use crate::auth::{AuthState, AuthUser, BrowserUser};
use crate::http::error::AppError;
use crate::web::assets::{self, Assets};
use crate::web::cookies::{ACCESS_COOKIE, set_cookie, with_cookies};
use crate::web::shell::{Section, Shell};
use crate::web::{CsrfForm, SignedIn, When, csrf, render};

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

struct MemberLine {
    user_id: Uuid,
    email: String,
    role: String,
    since: When,
}

struct InvitationLine {
    id: Uuid,
    email: String,
    role: String,
    status: &'static str,
    expires: When,
}

struct GroupLine {
    id: Uuid,
    name: String,
    /// (user id, email)
    members: Vec<(Uuid, String)>,
}

struct KeyLine {
    id: Uuid,
    name: String,
    prefix: String,
    status: &'static str,
    expires: When,
    last_used: Option<When>,
}

struct AuditLine {
    seq: i64,
    at: When,
    action: String,
    target: String,
    actor: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    notice: Option<String>,
    error: Option<String>,
    has_org: bool,
    org_name: String,
    role: String,
    admin: bool,
    /// An admin whose session lacks a second factor sees why admin sections are closed.
    admin_needs_mfa: bool,
    members: Vec<MemberLine>,
    invitations: Vec<InvitationLine>,
    keys: Vec<KeyLine>,
    audit: Vec<AuditLine>,
    groups: Vec<GroupLine>,
    new_key: Option<String>,
}

/// `member`'s permission `P` as a proof for the service functions, when the role (and the
/// session's assurance level) hold it.
fn allowed<P: PermissionMarker>(member: &Member) -> Option<Require<P>> {
    check(member, P::PERMISSION)
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
) -> Result<Response, AppError> {
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Organization, &token.token).await?;
    let mut page = OrgPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        notice,
        error,
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
        shell,
    };
    let Ok(member) = Member::from_user(who) else {
        return Ok(render(&page, StatusCode::OK, &token));
    };
    page.has_org = true;
    page.role = member.role.as_str().into();
    page.org_name = api::current(state, &member).await?.name;
    page.members = api::members(state, &member)
        .await?
        .into_iter()
        .map(|m| MemberLine {
            since: page.shell.when(m.since),
            user_id: m.user_id,
            email: m.email,
            role: m.role,
        })
        .collect();
    let email_of = |id: Uuid| {
        page.members
            .iter()
            .find(|m| m.user_id == id)
            .map_or_else(|| id.to_string(), |m| m.email.clone())
    };
    page.groups = groups::all(state, &member)
        .await?
        .into_iter()
        .map(|g| GroupLine {
            members: g.members.iter().map(|u| (*u, email_of(*u))).collect(),
            id: g.id,
            name: g.name,
        })
        .collect();
    page.admin_needs_mfa = member.role == crate::db::Role::Admin
        && check(&member, Permission::ManageOrganization).is_err();
    if let Some(admin) = allowed::<perm::ManageOrganization>(&member) {
        page.admin = true;
        page.invitations = invitations::all(state, &admin)
            .await?
            .into_iter()
            .map(|i| InvitationLine {
                expires: page.shell.when(i.expires_at),
                status: i.status.unwrap_or("pending"),
                id: i.id,
                email: i.email,
                role: i.role,
            })
            .collect();
        let recent = api::AuditQuery {
            action: None,
            before_seq: None,
            limit: Some(50),
        };
        page.audit = api::audit_entries(state, &admin, &recent)
            .await?
            .into_iter()
            .map(|a| AuditLine {
                at: page.shell.when(a.at),
                seq: a.seq,
                action: a.action,
                target: a.target.unwrap_or_default(),
                actor: a.actor_id.map(email_of).unwrap_or_default(),
                ip: a.ip.unwrap_or_default(),
            })
            .collect();
    }
    if let Some(keys) = allowed::<perm::ApiKeyGeneration>(&member) {
        page.keys = api_keys::all(state, &keys)
            .await?
            .into_iter()
            .map(|k| KeyLine {
                expires: page.shell.when(k.expires_at),
                last_used: k.last_used_at.map(|t| page.shell.when(t)),
                id: k.id,
                name: k.name,
                prefix: k.prefix,
                status: k.status,
            })
            .collect();
    }
    Ok(render(&page, StatusCode::OK, &token))
}

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
    /// Sent here from a page that needs an organization.
    need: Option<String>,
}

async fn page(
    State(state): State<AuthState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let needed = q.need.map(|_| {
        "Leads, companies and lists belong to an organization: create one below, or accept an \
         invitation from one."
            .to_string()
    });
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
    render_page(&state, &headers, &who, notice.or(needed), None, None).await
}

/// The outcome of a form: back to the page with a notice, or the page with the error.
async fn outcome(
    state: &AuthState,
    headers: &HeaderMap,
    who: &AuthUser,
    result: Result<(), AppError>,
    done: &str,
) -> Result<Response, AppError> {
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/org?done={done}")).into_response()),
        Err(e) => {
            let status = e.status();
            if status.is_server_error() {
                return Err(e);
            }
            let mut res =
                render_page(state, headers, who, None, Some(e.public_message()), None).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

/// The member `who` is, holding permission `P` (403 with its code otherwise).
fn required<P: PermissionMarker>(who: &AuthUser) -> Result<Require<P>, AppError> {
    let m = Member::from_user(who)?;
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
) -> Result<Response, AppError> {
    match api::new_org(&state, &who, &meta, &form.name).await {
        Ok(org) => Ok(switch_to(&state, &who, org.id, "/org?done=created").await),
        Err(e) => outcome(&state, &headers, &who, Err(e), "").await,
    }
}

/// Moves the browser's session to `org`, hands it the new access cookie and goes to `to`.
async fn switch_to(state: &AuthState, who: &AuthUser, org: Uuid, to: &str) -> Response {
    match crate::auth::service::switch_org(state, who, org).await {
        Ok(Some(s)) => with_cookies(
            Redirect::to(to).into_response(),
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
    /// The section the switcher was used on, to return to it (only a section of the shell).
    #[serde(default)]
    back: Option<String>,
}

async fn switch(
    State(state): State<AuthState>,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<SwitchForm>,
) -> Response {
    let to = form
        .back
        .as_deref()
        .and_then(|b| Section::ALL.into_iter().find(|s| s.href() == b))
        .map_or("/org?done=switched", Section::href);
    switch_to(&state, &who, form.org_id, to).await
}

async fn rename(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, AppError> {
    let result = async {
        api::rename(&state, &required(&who)?, &meta, &form.name).await?;
        Ok(())
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
) -> Result<Response, AppError> {
    let result = async {
        api::set_role(&state, &required(&who)?, &meta, user_id, &form.role).await?;
        Ok(())
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
) -> Result<Response, AppError> {
    let result = async { api::remove(&state, &required(&who)?, &meta, user_id).await }.await;
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
) -> Result<Response, AppError> {
    let result = async {
        let body = invitations::Invite {
            email: form.email,
            role: form.role,
        };
        invitations::send(&state, &required(&who)?, &meta, &body).await?;
        Ok(())
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
) -> Result<Response, AppError> {
    let result = async { invitations::withdraw(&state, &required(&who)?, &meta, id).await }.await;
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
    made: Result<api_keys::IssuedKey, AppError>,
) -> Result<Response, AppError> {
    match made {
        Ok(issued) => {
            let mut res = render_page(
                state,
                headers,
                who,
                Some("Copy the new key now: it is shown only this once.".into()),
                None,
                Some(issued.key),
            )
            .await?;
            // Nobody should cache a page that carries a secret.
            res.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(res)
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
) -> Result<Response, AppError> {
    let made = async {
        let body = api_keys::NewKey {
            name: form.name,
            scopes: None,
            expires_in_days: None,
        };
        api_keys::issue(&state, &required(&who)?, &meta, &body).await
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
) -> Result<Response, AppError> {
    let made = async { api_keys::succeed(&state, &required(&who)?, &meta, id).await }.await;
    show_key(&state, &headers, &who, made).await
}

async fn revoke_key(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let result = async { api_keys::withdraw(&state, &required(&who)?, &meta, id).await }.await;
    outcome(&state, &headers, &who, result, "revoked").await
}

async fn create_group(
    State(state): State<AuthState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, AppError> {
    let result = async {
        groups::new_group(&state, &required(&who)?, &meta, &form.name).await?;
        Ok(())
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
) -> Result<Response, AppError> {
    let result = async { groups::delete(&state, &required(&who)?, &meta, id).await }.await;
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
) -> Result<Response, AppError> {
    let result = async {
        groups::member_change(&state, &required(&who)?, &meta, id, form.user_id, true).await
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
) -> Result<Response, AppError> {
    let result =
        async { groups::member_change(&state, &required(&who)?, &meta, id, user_id, false).await }
            .await;
    outcome(&state, &headers, &who, result, "group").await
}
