//! The forms pages: `/forms` (the organization's capture forms and a new one) and `/forms/{id}`
//! (edit, the embed snippet, the counters, pause and resume, delete). Forms post through
//! `CsrfForm` and call the same services as `/api/v1/forms`.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::FormsState;
use super::api;
use super::model::{DEDUPE_MODES, FieldSpec, FormBody, FormView};
use crate::audit::Meta;
use crate::auth::{AuthUser, BrowserUser};
use crate::http::error::AppError;
use crate::orgs::permissions::{Member, Permission, check};
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{CsrfForm, SignedIn, csrf, render};

pub fn routes() -> Router<FormsState> {
    Router::new()
        .route("/forms", get(list_page).post(create))
        .route("/forms/{id}", get(form_page).post(update))
        .route("/forms/{id}/pause", post(pause))
        .route("/forms/{id}/resume", post(resume))
        .route("/forms/{id}/delete", post(delete))
}

/// The member, allowed to work with leads (forms create them).
fn member(who: &AuthUser) -> Result<Member, AppError> {
    let m = Member::from_user(who)?;
    check(&m, Permission::LeadSearchAndManagement)?;
    Ok(m)
}

/// What the editing form shows: a form's values, or what was typed when saving failed.
#[derive(Debug, Default, Deserialize)]
struct Draft {
    #[serde(default)]
    name: String,
    /// One field a line: `name | label | required`.
    #[serde(default)]
    fields: String,
    #[serde(default)]
    consent_text: String,
    #[serde(default)]
    consent_version: String,
    #[serde(default)]
    ccpa_notice: String,
    #[serde(default)]
    thank_you: String,
    #[serde(default)]
    redirect_url: String,
    /// One origin a line.
    #[serde(default)]
    allowed_origins: String,
    #[serde(default)]
    dedupe: String,
    #[serde(default)]
    accept_without_stamp: Option<String>,
    #[serde(default)]
    max_per_hour: String,
}

impl Draft {
    fn blank() -> Self {
        Self {
            fields: "email | Work email | required\nfirst_name | First name\nlast_name | Last name\ncompany_name | Company".into(),
            dedupe: "fill_empty".into(),
            accept_without_stamp: Some("on".into()),
            max_per_hour: "500".into(),
            ..Self::default()
        }
    }

    fn of(v: &FormView) -> Self {
        let fields = v
            .fields
            .iter()
            .map(|f| {
                let mut line = f.name.clone();
                line.push_str(" | ");
                line.push_str(f.label.as_deref().unwrap_or(""));
                if f.required {
                    line.push_str(" | required");
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            name: v.name.clone(),
            fields,
            consent_text: v.consent_text.clone().unwrap_or_default(),
            consent_version: v.consent_version.clone().unwrap_or_default(),
            ccpa_notice: v.ccpa_notice.clone().unwrap_or_default(),
            thank_you: v.thank_you.clone(),
            redirect_url: v.redirect_url.clone().unwrap_or_default(),
            allowed_origins: v.allowed_origins.join("\n"),
            dedupe: v.dedupe.clone(),
            accept_without_stamp: v.accept_without_stamp.then(|| "on".into()),
            max_per_hour: v.max_per_hour.to_string(),
        }
    }

    /// The API's body; owners stay as they are on an edit (the creator on a new form).
    fn body(&self) -> Result<FormBody, AppError> {
        let opt = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        let mut fields = Vec::new();
        for (i, line) in self.fields.lines().enumerate() {
            let parts: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some(name) = parts.first().filter(|n| !n.is_empty()) else {
                continue;
            };
            let required = match parts.get(2) {
                None | Some(&"") => false,
                Some(&"required") => true,
                Some(other) => {
                    return Err(AppError::BadRequest(format!(
                        "fields, line {}: the third part is \"required\" or nothing, not {other:?}",
                        i + 1
                    )));
                }
            };
            fields.push(FieldSpec {
                name: (*name).to_string(),
                label: parts.get(1).and_then(|l| opt(l)),
                required,
            });
        }
        let max_per_hour = match self.max_per_hour.trim() {
            "" => None,
            n => Some(n.parse::<i32>().map_err(|_| {
                AppError::BadRequest("max_per_hour: a whole number from 1 to 100000".into())
            })?),
        };
        Ok(FormBody {
            name: self.name.clone(),
            fields,
            consent_text: opt(&self.consent_text),
            consent_version: opt(&self.consent_version),
            ccpa_notice: opt(&self.ccpa_notice),
            thank_you: opt(&self.thank_you),
            redirect_url: opt(&self.redirect_url),
            allowed_origins: self
                .allowed_origins
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            dedupe: opt(&self.dedupe),
            accept_without_stamp: Some(self.accept_without_stamp.is_some()),
            owners: None,
            max_per_hour,
        })
    }
}

#[derive(Template)]
#[template(path = "forms.html")]
struct ListPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    forms: Vec<FormView>,
    draft: Draft,
    dedupe_modes: &'static [&'static str],
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "form.html")]
struct EditPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    form: FormView,
    draft: Draft,
    dedupe_modes: &'static [&'static str],
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct PageQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    done.map(|d| match d {
        "created" => "Form created. Paste the embed snippet into your page.",
        "saved" => "Form saved. The embed snippet below reflects the change.",
        "paused" => "Form paused: it refuses submissions until you resume it.",
        "resumed" => "Form resumed: it accepts submissions again.",
        "deleted" => "Form deleted; the leads it created stay.",
        _ => "Done.",
    })
}

async fn render_list(
    state: &FormsState,
    headers: &HeaderMap,
    who: &AuthUser,
    draft: Draft,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Forms, &token.token).await?;
    let forms = api::list(state, &member(who)?).await?;
    let page = ListPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        shell,
        forms,
        draft,
        dedupe_modes: &DEDUPE_MODES,
        notice,
        error,
    };
    Ok(render(&page, status, &token))
}

#[allow(clippy::too_many_arguments)]
async fn render_edit(
    state: &FormsState,
    headers: &HeaderMap,
    who: &AuthUser,
    id: Uuid,
    draft: Option<Draft>,
    notice: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Forms, &token.token).await?;
    let form = api::get(state, &member(who)?, id).await?;
    let page = EditPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        shell,
        draft: draft.unwrap_or_else(|| Draft::of(&form)),
        form,
        dedupe_modes: &DEDUPE_MODES,
        notice,
        error,
    };
    Ok(render(&page, status, &token))
}

async fn list_page(
    State(state): State<FormsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let n = notice(q.done.as_deref());
    render_list(
        &state,
        &headers,
        &who,
        Draft::blank(),
        n,
        None,
        StatusCode::OK,
    )
    .await
}

async fn form_page(
    State(state): State<FormsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let n = notice(q.done.as_deref());
    render_edit(&state, &headers, &who, id, None, n, None, StatusCode::OK).await
}

async fn create(
    State(state): State<FormsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(draft): CsrfForm<Draft>,
) -> Result<Response, AppError> {
    let result = async {
        let m = member(&who)?;
        api::create(&state, &m, &meta, draft.body()?).await
    }
    .await;
    match result {
        Ok(v) => Ok(Redirect::to(&format!("/forms/{}?done=created", v.id)).into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let msg = e.public_message();
            render_list(&state, &headers, &who, draft, None, Some(msg), e.status()).await
        }
    }
}

async fn update(
    State(state): State<FormsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(draft): CsrfForm<Draft>,
) -> Result<Response, AppError> {
    let result = async {
        let m = member(&who)?;
        api::replace(&state, &m, &meta, id, draft.body()?).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/forms/{id}?done=saved")).into_response()),
        Err(e) if e.status().is_server_error() || e.status() == StatusCode::NOT_FOUND => Err(e),
        Err(e) => {
            let msg = e.public_message();
            let status = e.status();
            render_edit(
                &state,
                &headers,
                &who,
                id,
                Some(draft),
                None,
                Some(msg),
                status,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

async fn pause(
    State(state): State<FormsState>,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    api::set_status(&state, &member(&who)?, &meta, id, "paused").await?;
    Ok(Redirect::to(&format!("/forms/{id}?done=paused")).into_response())
}

async fn resume(
    State(state): State<FormsState>,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    api::set_status(&state, &member(&who)?, &meta, id, "active").await?;
    Ok(Redirect::to(&format!("/forms/{id}?done=resumed")).into_response())
}

async fn delete(
    State(state): State<FormsState>,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    api::delete(&state, &member(&who)?, &meta, id).await?;
    Ok(Redirect::to("/forms?done=deleted").into_response())
}
