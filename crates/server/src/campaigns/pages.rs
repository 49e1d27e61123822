//! The campaign pages: `/campaigns` (the campaigns the member can read, the organization's
//! sender addresses, a form to start a campaign), `/campaigns/templates` and
//! `/campaigns/templates/{id}` (templates, their editor and a preview with a lead's values) and
//! `/campaigns/{id}` (its audience after suppression, scheduling, approval, pause, resume,
//! cancel and live stats), a test send to oneself from the preview, and
//! `/campaigns/suppressions` (counts by reason, and a form to suppress an address). Forms call the same service functions, with the same permissions,
//! row-level security and audit, as `/api/v1/campaigns`.

use std::marker::PhantomData;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::CampaignsState;
use super::api::{self, Audience, CampaignBody, Move, SendBody, SenderBody, TemplateBody};
use crate::audit::Meta;
use crate::auth::{AuthUser, BrowserUser};
use crate::db::TenantTx;
use crate::http::error::AppError;
use crate::leads::search::{Filter, Page, Sort};
use crate::orgs::permissions::{Member, Permission, PermissionMarker, Require, check, perm};
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{CsrfForm, SignedIn, When, csrf, render};

pub fn routes() -> Router<CampaignsState> {
    Router::new()
        .route("/campaigns", get(index).post(create))
        .route("/campaigns/senders", post(add_sender))
        .route("/campaigns/templates", get(templates).post(create_template))
        .route(
            "/campaigns/templates/{id}",
            get(template).post(save_template),
        )
        .route("/campaigns/templates/{id}/test", post(test_send))
        .route("/campaigns/suppressions", get(suppressions).post(suppress))
        .route("/campaigns/{id}", get(detail))
        .route("/campaigns/{id}/send", post(send))
        .route("/campaigns/{id}/approve", post(approve))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
}

/// The member `who` is, holding permission `P` (403 with its code otherwise).
fn required<P: PermissionMarker>(who: &AuthUser) -> Result<Require<P>, AppError> {
    let m = Member::from_user(who)?;
    check(&m, P::PERMISSION)?;
    Ok(Require(m, PhantomData))
}

/// The member, allowed to work with campaigns.
fn member(who: &AuthUser) -> Result<Member, AppError> {
    let Require(m, _) = required::<perm::CampaignCreation>(who)?;
    Ok(m)
}

/// A time the service functions give as RFC 3339, as the page shows it.
fn when_of(shell: &Shell, v: &Value) -> Option<When> {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        .map(|t| shell.when(t))
}

fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// An empty form field is an absent one.
fn given(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn id_of(field: &str, v: Option<&String>) -> Result<Uuid, AppError> {
    let v = given(v).ok_or_else(|| AppError::BadRequest(format!("{field}: choose one")))?;
    Uuid::try_parse(v).map_err(|_| AppError::BadRequest(format!("{field}: not an id")))
}

/// What a page says after a form went through.
fn notice_of(done: Option<&str>) -> Option<&'static str> {
    done.map(|d| match d {
        "created" => "Campaign created as a draft. Check its audience, then schedule it.",
        "sender" => "Sender added: a link to confirm it was mailed to the address.",
        "template" => "Template created.",
        "saved" => "Saved. The HTML is shown as it will be sent (sanitized).",
        "scheduled" => "Scheduled.",
        "awaiting_approval" => "Waiting for a Manager's or an Admin's approval.",
        "approved" => "Approved: the campaign is scheduled.",
        "paused" => "Paused: no further message leaves.",
        "resumed" => "Resumed.",
        "cancelled" => "Cancelled: messages not yet sent never will be.",
        "test" => "A test was mailed to you, merged with this lead's values.",
        "suppressed" => "Suppressed: no campaign will be sent to this address.",
        _ => "Done.",
    })
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// /campaigns

struct CampaignLine {
    id: Uuid,
    name: String,
    state: String,
    state_label: String,
    recipients: String,
    scheduled: Option<When>,
    created: Option<When>,
}

struct Choice {
    id: Uuid,
    label: String,
}

struct SenderLine {
    id: Uuid,
    address: String,
    display_name: String,
    verified: bool,
}

/// The new-campaign form as the member filled it in (kept when it comes back with an error).
#[derive(Default, Deserialize)]
struct NewCampaignForm {
    name: Option<String>,
    template_id: Option<String>,
    sender_id: Option<String>,
    /// `segment`, `list` or `query`.
    audience: Option<String>,
    segment_id: Option<String>,
    list_id: Option<String>,
    query: Option<String>,
}

impl NewCampaignForm {
    fn value(v: Option<&String>) -> &str {
        v.map_or("", String::as_str)
    }

    fn name(&self) -> &str {
        Self::value(self.name.as_ref())
    }

    fn template_id(&self) -> &str {
        Self::value(self.template_id.as_ref())
    }

    fn sender_id(&self) -> &str {
        Self::value(self.sender_id.as_ref())
    }

    fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or("segment")
    }

    fn segment_id(&self) -> &str {
        Self::value(self.segment_id.as_ref())
    }

    fn list_id(&self) -> &str {
        Self::value(self.list_id.as_ref())
    }

    fn query(&self) -> &str {
        Self::value(self.query.as_ref())
    }

    /// The API's body for this form.
    fn body(&self) -> Result<CampaignBody, AppError> {
        let audience = match self.audience() {
            "segment" => Audience {
                segment: Some(id_of("segment", self.segment_id.as_ref())?),
                list: None,
                query: None,
            },
            "list" => Audience {
                segment: None,
                list: Some(id_of("list", self.list_id.as_ref())?),
                query: None,
            },
            "query" => Audience {
                segment: None,
                list: None,
                query: Some(self.query().trim().to_string()),
            },
            _ => {
                return Err(AppError::BadRequest(
                    "audience: a segment, a list or a search".into(),
                ));
            }
        };
        Ok(CampaignBody {
            name: self.name().to_string(),
            template_id: id_of("template", self.template_id.as_ref())?,
            sender_id: id_of("sender", self.sender_id.as_ref())?,
            audience,
            tracking: false,
            read_groups: vec![],
            write_groups: vec![],
            sensitivity: None,
        })
    }
}

#[derive(Template)]
#[template(path = "campaigns.html")]
struct IndexPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    campaigns: Vec<CampaignLine>,
    templates: Vec<Choice>,
    senders: Vec<SenderLine>,
    segments: Vec<Choice>,
    lists: Vec<Choice>,
    /// Admins at aal2 add sender addresses.
    can_add_sender: bool,
    form: NewCampaignForm,
    notice: Option<&'static str>,
    error: Option<String>,
}

async fn render_index(
    state: &CampaignsState,
    headers: &HeaderMap,
    who: &AuthUser,
    form: NewCampaignForm,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Campaigns, &token.token).await?;
    let member = member(who)?;
    let campaigns = api::all(state, &member)
        .await?
        .iter()
        .map(|c| CampaignLine {
            id: c["id"]
                .as_str()
                .and_then(|s| Uuid::try_parse(s).ok())
                .unwrap_or_default(),
            name: text_of(&c["name"]),
            state: text_of(&c["state"]),
            state_label: text_of(&c["state"]).replace('_', " "),
            recipients: c["recipients"]
                .as_i64()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            scheduled: when_of(&shell, &c["scheduled_at"]),
            created: when_of(&shell, &c["created_at"]),
        })
        .collect();
    let templates = api::templates(state, &member)
        .await?
        .into_iter()
        .map(|t| Choice {
            id: t.id,
            label: t.name,
        })
        .collect();
    let senders = api::senders(state, &member)
        .await?
        .into_iter()
        .map(|s| SenderLine {
            id: s.id,
            address: s.address,
            display_name: s.display_name.unwrap_or_default(),
            verified: s.verified,
        })
        .collect();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let segments = crate::leads::segments::visible(&mut tx)
        .await?
        .into_iter()
        .map(|g| Choice {
            id: g.id,
            label: g.name,
        })
        .collect();
    tx.commit().await?;
    let lists = crate::leads::lists::all(state, &member)
        .await?
        .into_iter()
        .map(|l| Choice {
            id: l.id,
            label: format!("{} ({} leads)", l.name, l.leads.unwrap_or(0)),
        })
        .collect();
    let page = IndexPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        can_add_sender: check(&member, Permission::SystemSettings).is_ok(),
        shell,
        campaigns,
        templates,
        senders,
        segments,
        lists,
        form,
        notice,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

async fn index(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response, AppError> {
    let notice = notice_of(q.done.as_deref());
    render_index(
        &state,
        &headers,
        &who,
        NewCampaignForm::default(),
        notice,
        None,
    )
    .await
}

async fn create(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<NewCampaignForm>,
) -> Result<Response, AppError> {
    let result = async {
        let body = form.body()?;
        api::new_campaign(&state, &member(&who)?, &meta, body).await
    }
    .await;
    match result {
        Ok(id) => Ok(Redirect::to(&format!("/campaigns/{id}?done=created")).into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_index(&state, &headers, &who, form, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

#[derive(Deserialize)]
struct SenderForm {
    address: String,
    display_name: Option<String>,
}

async fn add_sender(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<SenderForm>,
) -> Result<Response, AppError> {
    let result = async {
        let Require(admin, _) = required::<perm::SystemSettings>(&who)?;
        let body = SenderBody {
            address: form.address,
            display_name: given(form.display_name.as_ref()).map(str::to_string),
        };
        api::add_sender(&state, &admin, &meta, &body).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to("/campaigns?done=sender").into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res = render_index(
                &state,
                &headers,
                &who,
                NewCampaignForm::default(),
                None,
                Some(e.public_message()),
            )
            .await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Templates

struct TemplateLine {
    id: Uuid,
    name: String,
    subject: String,
    updated: When,
}

/// The editor's fields: what is stored, or what the member entered.
#[derive(Default, Deserialize)]
struct TemplateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    html: String,
    #[serde(default)]
    text: String,
}

impl TemplateForm {
    fn body(&self) -> TemplateBody {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
        TemplateBody {
            name: self.name.clone(),
            subject: self.subject.clone(),
            html: opt(&self.html),
            text: opt(&self.text),
        }
    }
}

#[derive(Template)]
#[template(path = "campaign_templates.html")]
struct TemplatesPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    templates: Vec<TemplateLine>,
    /// Where the editor's form posts.
    action: String,
    fields: &'static [&'static str],
    form: TemplateForm,
    notice: Option<&'static str>,
    error: Option<String>,
}

async fn render_templates(
    state: &CampaignsState,
    headers: &HeaderMap,
    who: &AuthUser,
    form: TemplateForm,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Campaigns, &token.token).await?;
    let member = member(who)?;
    let templates = api::templates(state, &member)
        .await?
        .into_iter()
        .map(|t| TemplateLine {
            updated: shell.when(t.updated_at),
            id: t.id,
            name: t.name,
            subject: t.subject,
        })
        .collect();
    let page = TemplatesPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        shell,
        templates,
        action: "/campaigns/templates".into(),
        fields: &super::render::FIELDS,
        form,
        notice: None,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

async fn templates(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
) -> Result<Response, AppError> {
    render_templates(&state, &headers, &who, TemplateForm::default(), None).await
}

async fn create_template(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<TemplateForm>,
) -> Result<Response, AppError> {
    let result =
        async { api::save_template(&state, &member(&who)?, &meta, None, &form.body()).await }.await;
    match result {
        Ok(v) => Ok(
            Redirect::to(&format!("/campaigns/templates/{}?done=template", v.id)).into_response(),
        ),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_templates(&state, &headers, &who, form, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

/// A template rendered for a lead, as it would be sent.
struct Preview {
    to: String,
    subject: String,
    html: Option<String>,
    text: String,
}

#[derive(Template)]
#[template(path = "campaign_template.html")]
struct EditorPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    id: Uuid,
    action: String,
    form: TemplateForm,
    /// The merge fields the stored template uses.
    used: Vec<String>,
    text_generated: bool,
    updated: Option<When>,
    fields: &'static [&'static str],
    leads: Vec<Choice>,
    /// The lead the preview is for, as entered.
    lead: String,
    preview: Option<Preview>,
    preview_error: Option<String>,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct EditorQuery {
    done: Option<String>,
    /// A lead chosen from the list.
    lead: Option<String>,
    /// A lead's id typed in (wins over the list).
    lead_id: Option<String>,
}

/// The first leads the member can read, newest first, to preview with.
async fn some_leads(state: &CampaignsState, member: &Member) -> Result<Vec<Choice>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let page = Page {
        sort: Sort::NewestFirst,
        limit: 20,
        after: None,
    };
    let rows = crate::leads::repo::search(&mut tx, &Filter::default(), &page, false).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .take(20)
        .map(|l| {
            let name = [l.first_name.as_deref(), l.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let name = if name.is_empty() {
                "(no name)".to_string()
            } else {
                name
            };
            let label = match l.company_name.as_deref() {
                Some(c) if !c.is_empty() => format!("{name}, {c}"),
                _ => name,
            };
            Choice { id: l.id, label }
        })
        .collect())
}

/// The editor of template `id`: what is stored, or `entered` with the error that refused it.
async fn render_editor(
    state: &CampaignsState,
    headers: &HeaderMap,
    who: &AuthUser,
    id: Uuid,
    q: EditorQuery,
    entered: Option<(TemplateForm, String)>,
    test_error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Campaigns, &token.token).await?;
    let member = member(who)?;
    let stored = api::read(state, &member, id).await?;
    let leads = some_leads(state, &member).await?;
    let lead = given(q.lead_id.as_ref())
        .or_else(|| given(q.lead.as_ref()))
        .unwrap_or_default()
        .to_string();
    let (mut preview, mut preview_error) = (None, None);
    if !lead.is_empty() {
        let rendered = match Uuid::try_parse(&lead) {
            Ok(lead_id) => api::render_for(state, &member, id, lead_id).await,
            Err(_) => Err(AppError::BadRequest("lead_id: not an id".into())),
        };
        match rendered {
            Ok((r, to)) => {
                preview = Some(Preview {
                    to: to.unwrap_or_default(),
                    subject: r.subject,
                    html: r.html,
                    text: r.text,
                });
            }
            Err(e) if e.status().is_server_error() => return Err(e),
            Err(e) => preview_error = Some(e.public_message()),
        }
    }
    if test_error.is_some() {
        preview_error = test_error;
    }
    let (form, error) = match entered {
        Some((form, error)) => (form, Some(error)),
        None => (
            TemplateForm {
                name: stored.name,
                subject: stored.subject,
                html: stored.html.unwrap_or_default(),
                text: if stored.text_generated {
                    String::new()
                } else {
                    stored.text
                },
            },
            None,
        ),
    };
    let page = EditorPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        updated: Some(shell.when(stored.updated_at)),
        shell,
        id,
        action: format!("/campaigns/templates/{id}"),
        form,
        used: stored.fields,
        text_generated: stored.text_generated,
        fields: &super::render::FIELDS,
        leads,
        lead,
        preview,
        preview_error,
        notice: notice_of(q.done.as_deref()),
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

async fn template(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    Query(q): Query<EditorQuery>,
) -> Result<Response, AppError> {
    render_editor(&state, &headers, &who, id, q, None, None).await
}

async fn save_template(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<TemplateForm>,
) -> Result<Response, AppError> {
    let result =
        async { api::save_template(&state, &member(&who)?, &meta, Some(id), &form.body()).await }
            .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/campaigns/templates/{id}?done=saved")).into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let q = EditorQuery {
                done: None,
                lead: None,
                lead_id: None,
            };
            let mut res = render_editor(
                &state,
                &headers,
                &who,
                id,
                q,
                Some((form, e.public_message())),
                None,
            )
            .await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /campaigns/{id}

struct Stat {
    label: &'static str,
    n: i64,
}

#[derive(Template)]
#[template(path = "campaign.html")]
struct DetailPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    id: Uuid,
    name: String,
    /// As stored (`awaiting_approval`) and as read (`awaiting approval`).
    state: String,
    state_label: String,
    sender: String,
    template_id: String,
    template: String,
    audience: String,
    scheduled: Option<When>,
    time_zone: String,
    started: Option<When>,
    finished: Option<When>,
    created: Option<When>,
    /// Leads the audience matches with an address, those suppressed, and what a send mails now.
    count: Option<(i64, i64, i64)>,
    count_error: Option<String>,
    stats: Vec<Stat>,
    /// Messages handled (sent, failed, suppressed or skipped) out of all the campaign's.
    done: i64,
    total: i64,
    /// While it sends, the page reloads itself.
    refresh: bool,
    can_send: bool,
    can_approve: bool,
    can_pause: bool,
    can_resume: bool,
    can_cancel: bool,
    zones: Vec<String>,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// The IANA time zones a send may be scheduled in, by name.
fn zones() -> Vec<String> {
    let mut z: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .filter(|n| n.contains('/') || n == "UTC")
        .collect();
    if z.is_empty() {
        z.push("UTC".into());
    }
    z.sort();
    z.dedup();
    z
}

async fn render_detail(
    state: &CampaignsState,
    headers: &HeaderMap,
    who: &AuthUser,
    id: Uuid,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Campaigns, &token.token).await?;
    let member = member(who)?;
    // A campaign whose ACL hides it is a 404, as in the API.
    let c = api::campaign(state, &member, id).await?;
    let (count, count_error) = match api::audience_count(state, &member, id).await {
        Ok(v) => (
            Some((
                v["leads"].as_i64().unwrap_or(0),
                v["suppressed"].as_i64().unwrap_or(0),
                v["recipients"].as_i64().unwrap_or(0),
            )),
            None,
        ),
        Err(e) if e.status().is_server_error() => return Err(e),
        Err(e) => (None, Some(e.public_message())),
    };
    let template_id = text_of(&c["template_id"]);
    let template = api::templates(state, &member)
        .await?
        .into_iter()
        .find(|t| t.id.to_string() == template_id)
        .map(|t| t.name)
        .unwrap_or_default();
    let audience = audience_label(state, &member, &c["audience"]).await?;
    let s = &c["stats"];
    let n = |k: &str| s[k].as_i64().unwrap_or(0);
    let stats = vec![
        Stat {
            label: "Queued",
            n: n("queued") + n("sending"),
        },
        Stat {
            label: "Sent",
            n: n("sent"),
        },
        Stat {
            label: "Deferred",
            n: n("deferred"),
        },
        Stat {
            label: "Failed",
            n: n("failed"),
        },
        Stat {
            label: "Suppressed",
            n: n("suppressed") + n("skipped"),
        },
        Stat {
            label: "Unsubscribed",
            n: n("unsubscribed"),
        },
        Stat {
            label: "Bounces",
            n: n("hard_bounce") + n("soft_bounce"),
        },
        Stat {
            label: "Complaints",
            n: n("complaint"),
        },
    ];
    let done = n("sent") + n("failed") + n("suppressed") + n("skipped");
    let total = (done + n("queued") + n("sending") + n("deferred"))
        .max(c["recipients"].as_i64().unwrap_or(0));
    let st = text_of(&c["state"]);
    let now = shell.now;
    let due = c["scheduled_at"]
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .is_some_and(|t| t <= now);
    let approver = api::may_approve(&member).is_ok();
    let can = |m: &Move| m.from.contains(&st.as_str());
    let page = DetailPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        id,
        name: text_of(&c["name"]),
        state_label: st.replace('_', " "),
        sender: text_of(&c["sender"]),
        template_id,
        template,
        audience,
        scheduled: when_of(&shell, &c["scheduled_at"]),
        time_zone: text_of(&c["time_zone"]),
        started: when_of(&shell, &c["started_at"]),
        finished: when_of(&shell, &c["finished_at"]),
        created: when_of(&shell, &c["created_at"]),
        shell,
        count,
        count_error,
        stats,
        done,
        total,
        refresh: st == "sending" || (st == "scheduled" && due),
        can_send: st == "draft",
        can_approve: approver && can(&api::APPROVE),
        can_pause: can(&api::PAUSE),
        can_resume: can(&api::RESUME),
        can_cancel: can(&api::CANCEL),
        zones: if st == "draft" { zones() } else { vec![] },
        state: st,
        notice,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

/// The campaign's audience as its readers know it: the segment's or the list's name, or the
/// search.
async fn audience_label(
    state: &CampaignsState,
    member: &Member,
    audience: &Value,
) -> Result<String, AppError> {
    let Ok(a) = serde_json::from_value::<Audience>(audience.clone()) else {
        return Ok(String::new());
    };
    if let Some(id) = a.segment {
        let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
        let name = crate::leads::segments::visible(&mut tx)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .map(|g| g.name);
        tx.commit().await?;
        return Ok(format!(
            "the saved search {}",
            name.unwrap_or_else(|| id.to_string())
        ));
    }
    if let Some(id) = a.list {
        let name = crate::leads::lists::all(state, member)
            .await?
            .into_iter()
            .find(|l| l.id == id)
            .map(|l| l.name);
        return Ok(format!(
            "the list {}",
            name.unwrap_or_else(|| id.to_string())
        ));
    }
    Ok(format!(
        "the leads matching ?{}",
        a.query.unwrap_or_default()
    ))
}

async fn detail(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, AppError> {
    let notice = notice_of(q.done.as_deref());
    render_detail(&state, &headers, &who, id, notice, None).await
}

/// Back to the campaign with a notice, or the campaign with the error.
async fn outcome(
    state: &CampaignsState,
    headers: &HeaderMap,
    who: &AuthUser,
    id: Uuid,
    result: Result<&str, AppError>,
) -> Result<Response, AppError> {
    match result {
        Ok(done) => Ok(Redirect::to(&format!("/campaigns/{id}?done={done}")).into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res =
                render_detail(state, headers, who, id, None, Some(e.public_message())).await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

#[derive(Deserialize)]
struct SendForm {
    /// `now` or `later`.
    when: Option<String>,
    /// A local date and time (`2026-12-24T09:00`), with `later`.
    at: Option<String>,
    time_zone: Option<String>,
}

impl SendForm {
    fn body(&self) -> Result<SendBody, AppError> {
        match self.when.as_deref().unwrap_or("now") {
            "now" => Ok(SendBody::default()),
            "later" => Ok(SendBody {
                at: Some(
                    given(self.at.as_ref())
                        .ok_or_else(|| {
                            AppError::BadRequest("at: the local date and time to send at".into())
                        })?
                        .to_string(),
                ),
                time_zone: Some(given(self.time_zone.as_ref()).unwrap_or("UTC").to_string()),
            }),
            _ => Err(AppError::BadRequest("when: now or later".into())),
        }
    }
}

async fn send(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<SendForm>,
) -> Result<Response, AppError> {
    let result = async {
        let member = member(&who)?;
        api::request_send(&state, &member, &meta, id, &form.body()?).await?;
        // Scheduled, or waiting for approval: the campaign says which.
        let c = api::campaign(&state, &member, id).await?;
        Ok(if c["state"] == "awaiting_approval" {
            "awaiting_approval"
        } else {
            "scheduled"
        })
    }
    .await;
    outcome(&state, &headers, &who, id, result).await
}

#[derive(Deserialize)]
struct Empty {}

/// Applies `m` to campaign `id` as the member, as the API does.
async fn apply(
    state: &CampaignsState,
    who: &AuthUser,
    meta: &Meta,
    id: Uuid,
    m: &Move,
) -> Result<(), AppError> {
    let member = member(who)?;
    api::transition(state, &member, meta, id, m.from, m.to, m.action).await
}

async fn approve(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let result = async {
        api::may_approve(&member(&who)?)?;
        apply(&state, &who, &meta, id, &api::APPROVE).await?;
        Ok("approved")
    }
    .await;
    outcome(&state, &headers, &who, id, result).await
}

async fn pause(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let result = apply(&state, &who, &meta, id, &api::PAUSE)
        .await
        .map(|()| "paused");
    outcome(&state, &headers, &who, id, result).await
}

async fn resume(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let result = apply(&state, &who, &meta, id, &api::RESUME)
        .await
        .map(|()| "resumed");
    outcome(&state, &headers, &who, id, result).await
}

async fn cancel(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let result = apply(&state, &who, &meta, id, &api::CANCEL)
        .await
        .map(|()| "cancelled");
    outcome(&state, &headers, &who, id, result).await
}

// ---------------------------------------------------------------------------------------------
// Test send and the suppression list

#[derive(Deserialize)]
struct TestForm {
    lead: Option<String>,
}

/// "Mail this to me as a test", under the preview.
async fn test_send(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Path(id): Path<Uuid>,
    CsrfForm(form): CsrfForm<TestForm>,
) -> Result<Response, AppError> {
    required::<perm::CampaignCreation>(&who)?;
    let lead = given(form.lead.as_ref()).unwrap_or_default().to_string();
    let result = async {
        let lead_id = Uuid::try_parse(&lead)
            .map_err(|_| AppError::BadRequest("lead: choose a lead".into()))?;
        api::send_test(&state, &member(&who)?, id, lead_id).await
    }
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(&format!(
            "/campaigns/templates/{id}?done=test&lead={lead}#preview"
        ))
        .into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let q = EditorQuery {
                done: None,
                lead: Some(lead),
                lead_id: None,
            };
            // The refusal is shown where the preview is.
            let mut res = render_editor(
                &state,
                &headers,
                &who,
                id,
                q,
                None,
                Some(e.public_message()),
            )
            .await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}

#[derive(Template)]
#[template(path = "campaign_suppressions.html")]
struct SuppressionsPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    csrf: String,
    counts: Vec<(&'static str, i64)>,
    email: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn reason_label(reason: &str) -> &'static str {
    match reason {
        "unsubscribed" => "Unsubscribed",
        "hard_bounce" => "Hard bounce",
        "complaint" => "Complaint (marked as spam)",
        "soft_bounces" => "Repeated soft bounces",
        "do_not_contact" => "Do not contact",
        "erased" => "Erased on request",
        "ccpa_opt_out" => "CCPA opt-out",
        _ => "Other",
    }
}

async fn render_suppressions(
    state: &CampaignsState,
    headers: &HeaderMap,
    who: &AuthUser,
    email: String,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(who) {
        return Ok(away);
    }
    let token = csrf(state, headers);
    let shell = crate::auth::shell(state, who, Section::Campaigns, &token.token).await?;
    let member = member(who)?;
    let counts = api::suppression_counts(state, &member)
        .await?
        .into_iter()
        .map(|(r, n)| (reason_label(&r), n))
        .collect();
    let page = SuppressionsPage {
        assets: assets::get(),
        version: state.version,
        csrf: token.token.clone(),
        shell,
        counts,
        email,
        notice,
        error,
    };
    Ok(render(&page, StatusCode::OK, &token))
}

async fn suppressions(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    SignedIn(who): BrowserUser,
    Query(q): Query<DoneQuery>,
) -> Result<Response, AppError> {
    required::<perm::CampaignCreation>(&who)?;
    let notice = notice_of(q.done.as_deref());
    render_suppressions(&state, &headers, &who, String::new(), notice, None).await
}

#[derive(Deserialize)]
struct SuppressForm {
    #[serde(default)]
    email: String,
    reason: Option<String>,
}

async fn suppress(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    meta: Meta,
    SignedIn(who): BrowserUser,
    CsrfForm(form): CsrfForm<SuppressForm>,
) -> Result<Response, AppError> {
    required::<perm::CampaignCreation>(&who)?;
    let body = api::SuppressionBody {
        email: form.email.clone(),
        reason: form.reason.clone(),
    };
    let result = async { api::suppress(&state, &member(&who)?, &meta, &body).await }.await;
    match result {
        Ok(_) => Ok(Redirect::to("/campaigns/suppressions?done=suppressed").into_response()),
        Err(e) if e.status().is_server_error() => Err(e),
        Err(e) => {
            let status = e.status();
            let mut res = render_suppressions(
                &state,
                &headers,
                &who,
                form.email,
                None,
                Some(e.public_message()),
            )
            .await?;
            *res.status_mut() = status;
            Ok(res)
        }
    }
}
