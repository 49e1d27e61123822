//! `/api/v1/campaigns`: templates, sender addresses, campaigns and their life (send, approve,
//! pause, resume, cancel, stats), and the suppression list. Every role holds Campaign Creation;
//! sending is a separate right: Admins and Managers send, a campaign asked for by a User or an
//! API key waits for a Manager's or an Admin's approval (unless the organization turned
//! approval off). The services here are what the pages call too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::CampaignsState;
use super::render::{self, Rendered};
use crate::audit::{self, Entry, Meta};
use crate::db::{Role, TenantTx};
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{ErrorBody, Missing, Refusals};
use crate::leads::search::{Filter, SearchParams};
use crate::mail::Mail;
use crate::orgs::{Member, Require, perm};

pub fn routes() -> OpenApiRouter<CampaignsState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(read_template, update_template))
        .routes(routes!(preview))
        .routes(routes!(test_send))
        .routes(routes!(list_senders, create_sender))
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(read_campaign, update_campaign, delete_campaign))
        .routes(routes!(audience))
        .routes(routes!(send))
        .routes(routes!(approve))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(list_suppressions, add_suppression))
        .routes(routes!(remove_suppression))
}

type Campaign = Require<perm::CampaignCreation>;
type Settings = Require<perm::SystemSettings>;

fn bad(m: impl Into<String>) -> AppError {
    AppError::BadRequest(m.into())
}

fn name_of(field: &str, v: &str, max: usize) -> Result<String, AppError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(bad(format!(
            "{field}: from 1 to {max} characters, no control characters"
        )));
    }
    Ok(v.to_string())
}

async fn record(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    meta: &Meta,
    action: &str,
    target: String,
    after: Value,
) -> Result<(), AppError> {
    audit::record(
        tx,
        now,
        meta,
        Entry {
            action,
            target: Some(target),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Templates

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    pub name: String,
    /// Merge fields allowed: `{{ first_name }}`, `{{ first_name | default: "there" }}`.
    pub subject: String,
    /// Sanitized when saved (scripts, event handlers, forms and foreign schemes removed); what
    /// is stored and previewed is what is sent.
    pub html: Option<String>,
    /// Generated from the HTML when absent.
    pub text: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateView {
    pub id: Uuid,
    pub name: String,
    pub subject: String,
    pub html: Option<String>,
    pub text: String,
    pub text_generated: bool,
    /// The merge fields it uses.
    pub fields: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn checked(body: &TemplateBody) -> Result<render::Checked, AppError> {
    if body.subject.len() > 998 {
        return Err(bad("subject: at most 998 bytes"));
    }
    if body.html.as_ref().is_some_and(|h| h.len() > 512 * 1024) {
        return Err(bad("html: at most 512 KiB"));
    }
    if body.text.as_ref().is_some_and(|t| t.len() > 256 * 1024) {
        return Err(bad("text: at most 256 KiB"));
    }
    let c =
        render::check(&body.subject, body.html.as_deref(), body.text.as_deref()).map_err(|r| {
            let field = r
                .error
                .field
                .as_deref()
                .map(|f| format!(" (field {f:?})"))
                .unwrap_or_default();
            bad(format!("{}: {}{field}", r.part, r.error))
        })?;
    if c.subject.trim().is_empty() {
        return Err(bad("subject: required"));
    }
    if c.text.trim().is_empty() {
        return Err(bad("text: required when there is no html"));
    }
    Ok(c)
}

fn view_of(id: Uuid, name: String, c: render::Checked, updated_at: OffsetDateTime) -> TemplateView {
    let fields = render::Prepared::new(&c.subject, c.html.as_deref(), &c.text)
        .map(|p| {
            render::FIELDS
                .iter()
                .filter(|f| p.uses(f))
                .map(|f| (*f).to_string())
                .collect()
        })
        .unwrap_or_default();
    TemplateView {
        id,
        name,
        subject: c.subject,
        html: c.html,
        text: c.text,
        text_generated: c.text_generated,
        fields,
        updated_at,
    }
}

#[utoipa::path(post, path = "/api/v1/campaigns/templates", tag = "campaigns", request_body = TemplateBody,
    responses((status = 201, description = "The template as it will be sent (HTML sanitized, text generated when absent); an unknown merge field is a 400 naming it", body = TemplateView),
        (status = 409, description = "A template with this name exists", body = ErrorBody), Refusals))]
async fn create_template(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, AppError> {
    let v = save_template(&state, &member, &meta, None, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

#[utoipa::path(put, path = "/api/v1/campaigns/templates/{id}", tag = "campaigns", request_body = TemplateBody,
    params(("id" = Uuid, Path, description = "The template")),
    responses((status = 200, description = "The template after the change; audited", body = TemplateView), Missing, Refusals))]
async fn update_template(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, AppError> {
    let v = save_template(&state, &member, &meta, Some(id), &body).await?;
    Ok(axum::Json(v).into_response())
}

/// Creates (`id` None) or replaces a template; audited.
pub async fn save_template(
    state: &CampaignsState,
    member: &Member,
    meta: &Meta,
    id: Option<Uuid>,
    body: &TemplateBody,
) -> Result<TemplateView, AppError> {
    let name = name_of("name", &body.name, 200)?;
    let c = checked(body)?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let conflict = |e: sqlx::Error| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            AppError::Conflict("name: a template with this name exists".into())
        }
        e => e.into(),
    };
    let id = match id {
        None => {
            let id = Uuid::now_v7();
            sqlx::query!(
                "INSERT INTO app.campaign_templates
                    (id, org_id, name, subject, html, text, text_generated, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                id,
                member.org_id,
                name,
                c.subject,
                c.html,
                c.text,
                c.text_generated,
                member.principal_id,
                now
            )
            .execute(&mut *tx)
            .await
            .map_err(conflict)?;
            record(
                &mut tx,
                now,
                meta,
                "campaign.template.create",
                format!("campaign_template:{id}"),
                json!({ "name": name }),
            )
            .await?;
            id
        }
        Some(id) => {
            let done = sqlx::query!(
                "UPDATE app.campaign_templates
                    SET name = $3, subject = $4, html = $5, text = $6, text_generated = $7, updated_at = $8
                 WHERE org_id = $1 AND id = $2",
                member.org_id,
                id,
                name,
                c.subject,
                c.html,
                c.text,
                c.text_generated,
                now
            )
            .execute(&mut *tx)
            .await
            .map_err(conflict)?;
            if done.rows_affected() == 0 {
                return Err(AppError::NotFound);
            }
            record(
                &mut tx,
                now,
                meta,
                "campaign.template.update",
                format!("campaign_template:{id}"),
                json!({ "name": name, "subject": c.subject }),
            )
            .await?;
            id
        }
    };
    tx.commit().await?;
    Ok(view_of(id, name, c, now))
}

#[utoipa::path(get, path = "/api/v1/campaigns/templates", tag = "campaigns",
    responses((status = 200, description = "The organization's templates, by name", body = Object), Refusals))]
async fn list_templates(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
) -> Result<Response, AppError> {
    let items: Vec<Value> = templates(&state, &member)
        .await?
        .into_iter()
        .map(|r| {
            json!({ "id": r.id, "name": r.name, "subject": r.subject,
                    "updated_at": crate::http::ts(r.updated_at) })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// A template in the organization's list.
#[derive(Debug, Clone)]
pub struct TemplateLine {
    pub id: Uuid,
    pub name: String,
    pub subject: String,
    pub updated_at: OffsetDateTime,
}

/// The organization's templates, by name (at most 500).
pub async fn templates(
    state: &CampaignsState,
    member: &Member,
) -> Result<Vec<TemplateLine>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT id, name, subject, updated_at FROM app.campaign_templates
         WHERE org_id = $1 ORDER BY lower(name) LIMIT 500",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| TemplateLine {
            id: r.id,
            name: r.name,
            subject: r.subject,
            updated_at: r.updated_at,
        })
        .collect())
}

struct StoredTemplate {
    name: String,
    subject: String,
    html: Option<String>,
    text: String,
    text_generated: bool,
    updated_at: OffsetDateTime,
}

async fn template(tx: &mut TenantTx, id: Uuid) -> Result<StoredTemplate, AppError> {
    let org = tx.context().org_id;
    sqlx::query_as!(
        StoredTemplate,
        "SELECT name, subject, html, text, text_generated, updated_at
         FROM app.campaign_templates WHERE org_id = $1 AND id = $2",
        org,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/campaigns/templates/{id}", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The template")),
    responses((status = 200, description = "The template", body = TemplateView), Missing, Refusals))]
async fn read_template(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    Ok(axum::Json(read(&state, &member, id).await?).into_response())
}

/// Template `id` as it is stored and sent (404 when it is not the organization's).
pub async fn read(
    state: &CampaignsState,
    member: &Member,
    id: Uuid,
) -> Result<TemplateView, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let t = template(&mut tx, id).await?;
    tx.commit().await?;
    let c = render::Checked {
        subject: t.subject,
        html: t.html,
        text: t.text,
        text_generated: t.text_generated,
    };
    Ok(view_of(id, t.name, c, t.updated_at))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// A lead you can read; its values fill the merge fields.
    pub lead_id: Uuid,
}

/// Renders template `id` for lead `lead` as it would be sent.
pub async fn render_for(
    state: &CampaignsState,
    member: &Member,
    id: Uuid,
    lead: Uuid,
) -> Result<(Rendered, Option<String>), AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let t = template(&mut tx, id).await?;
    let row = crate::leads::repo::get(&mut tx, lead, false)
        .await?
        .ok_or_else(|| bad("lead_id: no lead you can read has this id"))?;
    tx.commit().await?;
    let values = row.values(&state.fields).await?;
    let p = render::Prepared::new(&t.subject, t.html.as_deref(), &t.text)
        .map_err(|r| bad(format!("{}: {}", r.part, r.error)))?;
    Ok((p.render(&values, row.score), values.email))
}

#[utoipa::path(post, path = "/api/v1/campaigns/templates/{id}/preview", tag = "campaigns", request_body = PreviewBody,
    params(("id" = Uuid, Path, description = "The template")),
    responses((status = 200, description = "Subject, HTML and text rendered with the lead's values, exactly as they would be sent", body = Rendered), Missing, Refusals))]
async fn preview(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<PreviewBody>,
) -> Result<Response, AppError> {
    let (r, _) = render_for(&state, &member, id, body.lead_id).await?;
    Ok(axum::Json(r).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSendBody {
    /// A lead you can read, whose values fill the merge fields.
    pub lead_id: Uuid,
}

#[utoipa::path(post, path = "/api/v1/campaigns/templates/{id}/test", tag = "campaigns", request_body = TestSendBody,
    params(("id" = Uuid, Path, description = "The template")),
    responses((status = 202, description = "Rendered for the lead and mailed to you (the signed-in author), never to the lead", body = Object), Missing, Refusals))]
async fn test_send(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<TestSendBody>,
) -> Result<Response, AppError> {
    let to = send_test(&state, &member, id, body.lead_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "sent_to": to }))).into_response())
}

/// Mails template `id`, rendered with `lead`'s values, to the signed-in author (never to the
/// lead); the address it went to.
pub async fn send_test(
    state: &CampaignsState,
    member: &Member,
    id: Uuid,
    lead: Uuid,
) -> Result<String, AppError> {
    if member.api_key.is_some() {
        return Err(bad(
            "a test send goes to the signed-in author's address; an API key has none",
        ));
    }
    let (r, _) = render_for(state, member, id, lead).await?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let to = sqlx::query_scalar!(
        "SELECT email FROM app.users WHERE id = $1",
        member.principal_id
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mail = Mail {
        to: to.clone(),
        subject: format!("[Test] {}", r.subject),
        text: r.text,
    };
    state
        .mailer
        .send(&mail, state.clock.now())
        .await
        .map_err(|e| {
            AppError::Unavailable(format!("the mail relay did not take the message: {e}"))
        })?;
    Ok(to)
}

// ---------------------------------------------------------------------------------------------
// Sender addresses

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderBody {
    pub address: String,
    pub display_name: Option<String>,
}

/// A syntactically plausible address, lower-cased: `local@domain.tld`.
pub fn address(field: &str, a: &str) -> Result<String, AppError> {
    let a = a.trim().to_ascii_lowercase();
    let ok = a.len() <= 254
        && a.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty()
                && l.len() <= 64
                && d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        });
    if ok {
        Ok(a)
    } else {
        Err(bad(format!("{field}: not an email address")))
    }
}

#[utoipa::path(post, path = "/api/v1/campaigns/senders", tag = "campaigns", request_body = SenderBody,
    responses((status = 201, description = "The address, unverified: a link to verify it is mailed to it (admins at aal2); audited", body = Object),
        (status = 409, description = "The address is already a sender", body = ErrorBody), Refusals))]
async fn create_sender(
    State(state): State<CampaignsState>,
    Require(member, _): Settings,
    meta: Meta,
    ApiJson(body): ApiJson<SenderBody>,
) -> Result<Response, AppError> {
    let v = add_sender(&state, &member, &meta, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// Adds a sender address and mails it its verification link.
pub async fn add_sender(
    state: &CampaignsState,
    member: &Member,
    meta: &Meta,
    body: &SenderBody,
) -> Result<Value, AppError> {
    let addr = address("address", &body.address)?;
    let display = body
        .display_name
        .as_deref()
        .map(|d| name_of("display_name", d, 100))
        .transpose()?;
    let id = Uuid::now_v7();
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = hex::encode(secret);
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    sqlx::query!(
        "INSERT INTO app.sender_identities
            (id, org_id, address, display_name, verify_sha256, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        member.org_id,
        addr,
        display,
        Sha256::digest(secret.as_bytes()).to_vec(),
        member.principal_id,
        now
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            AppError::Conflict("address: already a sender of this organization".into())
        }
        e => e.into(),
    })?;
    record(
        &mut tx,
        now,
        meta,
        "campaign.sender.create",
        format!("sender:{id}"),
        json!({ "address": addr }),
    )
    .await?;
    tx.commit().await?;
    let link = format!("{}/senders/verify/{id}.{secret}", state.config.site_url());
    let mail = Mail {
        to: addr.clone(),
        subject: "Confirm this address for LeadGen campaigns".into(),
        text: format!(
            "Someone added {addr} as a sender address of an organization on LeadGen.\n\n\
             To let campaigns be sent from it, open:\n{link}\n\n\
             If this was not you, ignore this message: nothing is sent from the address until it is confirmed.\n"
        ),
    };
    if let Err(e) = state.mailer.send(&mail, now).await {
        tracing::warn!(error = %e, "the sender verification mail was not sent");
    }
    Ok(json!({ "id": id, "address": addr, "display_name": display, "verified": false }))
}

#[utoipa::path(get, path = "/api/v1/campaigns/senders", tag = "campaigns",
    responses((status = 200, description = "The organization's sender addresses and whether each is verified", body = Object), Refusals))]
async fn list_senders(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
) -> Result<Response, AppError> {
    let items: Vec<Value> = senders(&state, &member)
        .await?
        .into_iter()
        .map(|r| {
            json!({ "id": r.id, "address": r.address, "display_name": r.display_name,
                    "verified": r.verified })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// A sender address of the organization.
#[derive(Debug, Clone)]
pub struct Sender {
    pub id: Uuid,
    pub address: String,
    pub display_name: Option<String>,
    /// Confirmed through the link mailed to it: campaigns may be sent from it.
    pub verified: bool,
}

/// The organization's sender addresses, by address.
pub async fn senders(state: &CampaignsState, member: &Member) -> Result<Vec<Sender>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT id, address, display_name, verified_at FROM app.sender_identities
         WHERE org_id = $1 ORDER BY address",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| Sender {
            id: r.id,
            address: r.address,
            display_name: r.display_name,
            verified: r.verified_at.is_some(),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Campaigns

/// Whom a campaign goes to: exactly one of a saved segment, a list, or a search's query string
/// (as `GET /api/v1/leads` takes it).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl Audience {
    fn checked(&self) -> Result<(), AppError> {
        let n = usize::from(self.segment.is_some())
            + usize::from(self.list.is_some())
            + usize::from(self.query.is_some());
        if n != 1 {
            return Err(bad("audience: exactly one of segment, list or query"));
        }
        if let Some(q) = &self.query {
            if q.len() > 4000 {
                return Err(bad("audience.query: at most 4000 bytes"));
            }
            crate::leads::segments::filters(q).map_err(|e| bad(format!("audience.{e}")))?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    pub name: String,
    pub template_id: Uuid,
    pub sender_id: Uuid,
    pub audience: Audience,
    /// Open pixel and click redirects (first-party, signed). Off by default.
    #[serde(default)]
    pub tracking: bool,
    /// ACL like a lead's (admins at aal2 set it).
    #[serde(default)]
    pub read_groups: Vec<Uuid>,
    #[serde(default)]
    pub write_groups: Vec<Uuid>,
    pub sensitivity: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub template_id: Option<Uuid>,
    pub sender_id: Option<Uuid>,
    pub audience: Option<Audience>,
    pub tracking: Option<bool>,
    pub read_groups: Option<Vec<Uuid>>,
    pub write_groups: Option<Vec<Uuid>>,
    pub sensitivity: Option<String>,
}

fn sensitivity(s: Option<&str>) -> Result<Option<String>, AppError> {
    match s {
        None => Ok(None),
        Some(s @ ("public" | "internal" | "confidential" | "restricted")) => Ok(Some(s.into())),
        Some(_) => Err(bad(
            "sensitivity: one of public, internal, confidential, restricted",
        )),
    }
}

fn acl_error(e: sqlx::Error) -> AppError {
    match e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("42501") => AppError::Denied {
            code: "insufficient_aal",
            message: "only an admin at aal2 sets or changes a campaign's ACL".into(),
        },
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23503") => {
            bad("read_groups: a group, template or sender that is not this organization's")
        }
        e => e.into(),
    }
}

#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = CampaignBody,
    responses((status = 201, description = "The campaign, a draft; audited", body = Object), Refusals))]
async fn create_campaign(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    ApiJson(body): ApiJson<CampaignBody>,
) -> Result<Response, AppError> {
    let id = new_campaign(&state, &member, &meta, body).await?;
    let v = campaign(&state, &member, id).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

/// Creates a draft campaign; audited.
pub async fn new_campaign(
    state: &CampaignsState,
    member: &Member,
    meta: &Meta,
    body: CampaignBody,
) -> Result<Uuid, AppError> {
    let name = name_of("name", &body.name, 200)?;
    body.audience.checked()?;
    let sens = sensitivity(body.sensitivity.as_deref())?.unwrap_or_else(|| "confidential".into());
    let id = Uuid::now_v7();
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    sqlx::query!(
        "INSERT INTO app.campaigns (id, org_id, name, template_id, sender_id, audience, tracking,
            read_groups, write_groups, sensitivity, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        id,
        member.org_id,
        name,
        body.template_id,
        body.sender_id,
        serde_json::to_value(&body.audience).unwrap_or_default(),
        body.tracking,
        &body.read_groups,
        &body.write_groups,
        sens,
        member.principal_id,
        now
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23503") => {
            bad("template_id, sender_id: not a template or sender of this organization")
        }
        e => acl_error(e),
    })?;
    record(
        &mut tx,
        now,
        meta,
        "campaign.create",
        format!("campaign:{id}"),
        json!({ "name": name, "template_id": body.template_id, "audience": body.audience }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// A campaign as its readers see it, with its stats.
pub async fn campaign(
    state: &CampaignsState,
    member: &Member,
    id: Uuid,
) -> Result<Value, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let r = sqlx::query!(
        "SELECT c.id, c.name, c.template_id, c.sender_id, c.audience, c.state, c.tracking,
                c.scheduled_at, c.time_zone, c.send_by, c.approved_by, c.approved_at, c.recipients,
                c.suppressed, c.started_at, c.finished_at, c.read_groups, c.write_groups,
                c.sensitivity, c.created_by, c.created_at, c.updated_at, s.address AS sender
         FROM app.campaigns c
         JOIN app.sender_identities s ON s.org_id = c.org_id AND s.id = c.sender_id
         WHERE c.org_id = $1 AND c.id = $2",
        member.org_id,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let stats = stats(&mut tx, id).await?;
    tx.commit().await?;
    let ts = |t: Option<OffsetDateTime>| t.map(crate::http::ts);
    Ok(json!({
        "id": r.id, "name": r.name, "template_id": r.template_id, "sender_id": r.sender_id,
        "sender": r.sender, "audience": r.audience, "state": r.state, "tracking": r.tracking,
        "scheduled_at": ts(r.scheduled_at), "time_zone": r.time_zone, "send_by": r.send_by,
        "approved_by": r.approved_by, "approved_at": ts(r.approved_at),
        "recipients": r.recipients, "started_at": ts(r.started_at), "finished_at": ts(r.finished_at),
        "read_groups": r.read_groups, "write_groups": r.write_groups, "sensitivity": r.sensitivity,
        "created_by": r.created_by, "created_at": crate::http::ts(r.created_at),
        "updated_at": crate::http::ts(r.updated_at), "stats": stats,
    }))
}

/// Counts per outbox state and per event kind.
pub async fn stats(tx: &mut TenantTx, id: Uuid) -> Result<Value, AppError> {
    let org = tx.context().org_id;
    let states = sqlx::query!(
        r#"SELECT state, count(*) AS "n!" FROM app.campaign_messages
           WHERE org_id = $1 AND campaign_id = $2 GROUP BY state"#,
        org,
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    let events = sqlx::query!(
        r#"SELECT kind, count(*) AS "n!" FROM app.campaign_events
           WHERE org_id = $1 AND campaign_id = $2 GROUP BY kind"#,
        org,
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut s = serde_json::Map::new();
    for k in [
        "queued",
        "sending",
        "sent",
        "deferred",
        "failed",
        "suppressed",
        "skipped",
        "unsubscribed",
        "hard_bounce",
        "soft_bounce",
        "complaint",
        "opened",
        "clicked",
    ] {
        s.insert(k.into(), json!(0));
    }
    for r in states {
        s.insert(r.state, json!(r.n));
    }
    for r in events {
        s.insert(r.kind, json!(r.n));
    }
    let links = sqlx::query!(
        r#"SELECT detail AS "url!", count(*) AS "n!" FROM app.campaign_events
           WHERE org_id = $1 AND campaign_id = $2 AND kind = 'clicked' AND detail IS NOT NULL
           GROUP BY detail ORDER BY count(*) DESC, detail LIMIT 100"#,
        org,
        id
    )
    .fetch_all(&mut **tx)
    .await?;
    s.insert(
        "links".into(),
        json!(
            links
                .into_iter()
                .map(|l| json!({ "url": l.url, "clicks": l.n }))
                .collect::<Vec<_>>()
        ),
    );
    Ok(Value::Object(s))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns",
    responses((status = 200, description = "The campaigns you can read, newest first", body = Object), Refusals))]
async fn list_campaigns(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
) -> Result<Response, AppError> {
    let items = all(&state, &member).await?;
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// The campaigns `member` can read, newest first (at most 500).
pub async fn all(state: &CampaignsState, member: &Member) -> Result<Vec<Value>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT id, name, state, recipients, scheduled_at, created_at FROM app.campaigns
         WHERE org_id = $1 ORDER BY id DESC LIMIT 500",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            json!({ "id": r.id, "name": r.name, "state": r.state, "recipients": r.recipients,
                    "scheduled_at": r.scheduled_at.map(crate::http::ts),
                    "created_at": crate::http::ts(r.created_at) })
        })
        .collect())
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "The campaign and its live stats (404 when its ACL does not let you read it)", body = Object), Missing, Refusals))]
async fn read_campaign(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", request_body = CampaignPatch,
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "The draft after the change; audited", body = Object),
        (status = 409, description = "Only a draft changes", body = ErrorBody), Missing, Refusals))]
async fn update_campaign(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<CampaignPatch>,
) -> Result<Response, AppError> {
    let name = body
        .name
        .as_deref()
        .map(|n| name_of("name", n, 200))
        .transpose()?;
    if let Some(a) = &body.audience {
        a.checked()?;
    }
    let sens = sensitivity(body.sensitivity.as_deref())?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let st = lock(&mut tx, id).await?;
    if st.state != "draft" {
        return Err(AppError::Conflict(format!(
            "state: the campaign is {}; only a draft changes",
            st.state
        )));
    }
    let done = sqlx::query!(
        "UPDATE app.campaigns SET
            name = coalesce($3, name), template_id = coalesce($4, template_id),
            sender_id = coalesce($5, sender_id), audience = coalesce($6, audience),
            tracking = coalesce($7, tracking), read_groups = coalesce($8, read_groups),
            write_groups = coalesce($9, write_groups), sensitivity = coalesce($10, sensitivity),
            updated_at = $11
         WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        name,
        body.template_id,
        body.sender_id,
        body.audience
            .as_ref()
            .map(|a| serde_json::to_value(a).unwrap_or_default()),
        body.tracking,
        body.read_groups.as_deref(),
        body.write_groups.as_deref(),
        sens,
        now
    )
    .execute(&mut *tx)
    .await
    .map_err(acl_error)?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "forbidden",
            message: "the campaign's write groups do not include you".into(),
        });
    }
    record(
        &mut tx,
        now,
        &meta,
        "campaign.update",
        format!("campaign:{id}"),
        json!({ "name": name, "template_id": body.template_id, "audience": body.audience,
                "tracking": body.tracking }),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 204, description = "The draft is deleted; audited"),
        (status = 409, description = "Only a draft is deleted (cancel a campaign that was sent)", body = ErrorBody), Missing, Refusals))]
async fn delete_campaign(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let st = lock(&mut tx, id).await?;
    if st.state != "draft" {
        return Err(AppError::Conflict(format!(
            "state: the campaign is {}; only a draft is deleted",
            st.state
        )));
    }
    let done = sqlx::query!(
        "DELETE FROM app.campaigns WHERE org_id = $1 AND id = $2",
        member.org_id,
        id
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "forbidden",
            message: "the campaign's write groups do not include you".into(),
        });
    }
    record(
        &mut tx,
        now,
        &meta,
        "campaign.delete",
        format!("campaign:{id}"),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

struct Locked {
    state: String,
    sender_verified: bool,
    sender_address: String,
    resolved: bool,
}

/// The campaign, locked for a change of state (404 when the caller cannot read it).
async fn lock(tx: &mut TenantTx, id: Uuid) -> Result<Locked, AppError> {
    let org = tx.context().org_id;
    let r = sqlx::query!(
        "SELECT c.state, s.verified_at IS NOT NULL AS \"verified!\", s.address,
                c.resolved_at IS NOT NULL AS \"resolved!\"
         FROM app.campaigns c
         JOIN app.sender_identities s ON s.org_id = c.org_id AND s.id = c.sender_id
         WHERE c.org_id = $1 AND c.id = $2 FOR NO KEY UPDATE OF c",
        org,
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)?;
    Ok(Locked {
        state: r.state,
        sender_verified: r.verified,
        sender_address: r.address,
        resolved: r.resolved,
    })
}

/// The audience of a campaign as a lead filter, checked as a search would check it.
pub async fn audience_filter(
    tx: &mut TenantTx,
    audience: &Value,
    email_index: impl Fn(&str) -> Option<[u8; 32]>,
) -> Result<Filter, AppError> {
    let a: Audience =
        serde_json::from_value(audience.clone()).map_err(|_| bad("audience: not an audience"))?;
    let params = if let Some(segment) = a.segment {
        let org = tx.context().org_id;
        let query = sqlx::query_scalar!(
            "SELECT query FROM app.segments WHERE org_id = $1 AND id = $2",
            org,
            segment
        )
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| bad("audience.segment: no segment you can see has this id"))?;
        crate::leads::segments::filters(&query)?
    } else if let Some(list) = a.list {
        SearchParams {
            list: Some(list),
            ..SearchParams::default()
        }
    } else {
        crate::leads::segments::filters(a.query.as_deref().unwrap_or_default())?
    };
    let (filter, _) = params.parse(email_index)?;
    Ok(filter)
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/audience", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "How many leads you can read the audience matches with an address (`leads`), how many of them are suppressed or do-not-contact (`suppressed`), and `recipients`: what a send by you would mail now", body = Object), Missing, Refusals))]
async fn audience(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    Ok(axum::Json(audience_count(&state, &member, id).await?).into_response())
}

/// The recipient count after suppression, under the caller's ACL.
pub async fn audience_count(
    state: &CampaignsState,
    member: &Member,
    id: Uuid,
) -> Result<Value, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let aud = sqlx::query_scalar!(
        "SELECT audience FROM app.campaigns WHERE org_id = $1 AND id = $2",
        member.org_id,
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let fields = state.fields.clone();
    let org = member.org_id;
    let filter = audience_filter(&mut tx, &aud, |e| fields.email_index(org, e)).await?;
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
        "SELECT count(*), count(*) FILTER (WHERE {}) FROM app.leads WHERE org_id = ",
        super::outbox::SUPPRESSED
    ));
    qb.push_bind(member.org_id)
        .push(" AND email_bidx IS NOT NULL");
    crate::leads::search::push_filters(&mut qb, &filter, false);
    let (leads, suppressed): (i64, i64) = qb.build_query_as().fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(json!({ "leads": leads, "suppressed": suppressed, "recipients": leads - suppressed }))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// When to send: absent for now; an RFC 3339 time with its offset; or, with `time_zone`,
    /// a local date and time (`2026-12-24T09:00`) in that zone.
    pub at: Option<String>,
    /// An IANA time zone such as `Europe/Paris`.
    pub time_zone: Option<String>,
}

fn when(body: &SendBody, now: OffsetDateTime) -> Result<OffsetDateTime, AppError> {
    let Some(at) = body.at.as_deref() else {
        if body.time_zone.is_some() {
            return Err(bad("at: required with time_zone"));
        }
        return Ok(now);
    };
    let t = if let Some(zone) = body.time_zone.as_deref() {
        let tz = jiff::tz::TimeZone::get(zone)
            .map_err(|_| bad(format!("time_zone: {zone:?} is not an IANA time zone")))?;
        let civil: jiff::civil::DateTime = at
            .parse()
            .map_err(|_| bad("at: a local date and time such as 2026-12-24T09:00"))?;
        let zoned = civil.to_zoned(tz).map_err(|e| bad(format!("at: {e}")))?;
        OffsetDateTime::from_unix_timestamp(zoned.timestamp().as_second())
            .map_err(|_| bad("at: out of range"))?
    } else {
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).map_err(|_| {
            bad("at: an RFC 3339 time with its offset, or a local time with time_zone")
        })?
    };
    if t < now - time::Duration::minutes(1) {
        return Err(bad("at: is in the past"));
    }
    if t > now + time::Duration::days(366) {
        return Err(bad("at: at most a year ahead"));
    }
    Ok(t)
}

/// Whether campaigns asked for by `role` wait for approval in this organization.
async fn needs_approval(
    state: &CampaignsState,
    tx: &mut TenantTx,
    role: Role,
) -> Result<bool, AppError> {
    if matches!(role, Role::Admin | Role::Manager) {
        return Ok(false);
    }
    let org = tx.context().org_id;
    let setting = sqlx::query_scalar!(
        "SELECT (settings->>'campaign_approval')::boolean FROM app.organizations WHERE id = $1",
        org
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(setting.unwrap_or(state.config.campaigns.approval_default))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/send", tag = "campaigns", request_body = SendBody,
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "The campaign, `scheduled` (now or at the time given), or `awaiting_approval` when a User or an API key asked and the organization wants approval; the audience is resolved when it starts, under your ACL; audited", body = Object),
        (status = 409, description = "Not a draft, the sender address is not verified, its domain has no DKIM key, or no mail relay is configured", body = ErrorBody), Missing, Refusals))]
async fn send(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Response, AppError> {
    request_send(&state, &member, &meta, id, &body).await?;
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

/// Asks for a draft to be sent: scheduled, or waiting for approval.
pub async fn request_send(
    state: &CampaignsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
    body: &SendBody,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let at = when(body, now)?;
    if state.mailer.relay().is_none() {
        return Err(AppError::Conflict(
            "no mail relay is configured ([mail] host); campaigns cannot send".into(),
        ));
    }
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let st = lock(&mut tx, id).await?;
    if st.state != "draft" {
        return Err(AppError::Conflict(format!(
            "state: the campaign is {}; only a draft is sent",
            st.state
        )));
    }
    if !st.sender_verified {
        return Err(AppError::Conflict(format!(
            "sender_id: {} is not verified yet (follow the link mailed to it)",
            st.sender_address
        )));
    }
    let domain = st
        .sender_address
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    if state.dkim.signer(&state.pool, &domain).await.is_none() {
        return Err(AppError::Conflict(format!(
            "sender_id: {domain} has no DKIM key; the operator adds one with `leadgen dkim generate --domain {domain}`"
        )));
    }
    let approval = needs_approval(state, &mut tx, member.role).await?;
    let next = if approval {
        "awaiting_approval"
    } else {
        "scheduled"
    };
    let done = sqlx::query!(
        "UPDATE app.campaigns SET state = $3, scheduled_at = $4, time_zone = $5, send_by = $6,
            send_role = $7, updated_at = $8
         WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        next,
        at,
        body.time_zone,
        member.principal_id,
        member.role.as_str(),
        now
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "forbidden",
            message: "the campaign's write groups do not include you".into(),
        });
    }
    record(
        &mut tx,
        now,
        meta,
        "campaign.send",
        format!("campaign:{id}"),
        json!({ "state": next, "scheduled_at": crate::http::ts(at), "time_zone": body.time_zone }),
    )
    .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/approve", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "Approved (Managers and Admins): the campaign is scheduled; audited", body = Object),
        (status = 409, description = "The campaign is not awaiting approval", body = ErrorBody), Missing, Refusals))]
async fn approve(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    may_approve(&member)?;
    let m = &APPROVE;
    transition(&state, &member, &meta, id, m.from, m.to, m.action).await?;
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "Paused: no further message leaves (within a second); audited", body = Object),
        (status = 409, description = "Not scheduled or sending", body = ErrorBody), Missing, Refusals))]
async fn pause(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let m = &PAUSE;
    transition(&state, &member, &meta, id, m.from, m.to, m.action).await?;
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "Sending again from where it stopped; audited", body = Object),
        (status = 409, description = "Not paused", body = ErrorBody), Missing, Refusals))]
async fn resume(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let m = &RESUME;
    transition(&state, &member, &meta, id, m.from, m.to, m.action).await?;
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns",
    params(("id" = Uuid, Path, description = "The campaign")),
    responses((status = 200, description = "Cancelled: messages not yet sent never will be; audited", body = Object),
        (status = 409, description = "Already sent or cancelled", body = ErrorBody), Missing, Refusals))]
async fn cancel(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let m = &CANCEL;
    transition(&state, &member, &meta, id, m.from, m.to, m.action).await?;
    Ok(axum::Json(campaign(&state, &member, id).await?).into_response())
}

/// A change of a campaign's state that its readers ask for: the states it starts from, the
/// state it goes to, and its audit action. The API and the pages use the same ones.
pub struct Move {
    pub from: &'static [&'static str],
    pub to: &'static str,
    pub action: &'static str,
}

pub const APPROVE: Move = Move {
    from: &["awaiting_approval"],
    to: "scheduled",
    action: "campaign.approve",
};

pub const PAUSE: Move = Move {
    from: &["scheduled", "sending"],
    to: "paused",
    action: "campaign.pause",
};

pub const RESUME: Move = Move {
    from: &["paused"],
    to: "resume",
    action: "campaign.resume",
};

pub const CANCEL: Move = Move {
    from: &[
        "draft",
        "awaiting_approval",
        "scheduled",
        "sending",
        "paused",
    ],
    to: "cancelled",
    action: "campaign.cancel",
};

/// Only a Manager or an Admin approves a campaign.
pub fn may_approve(member: &Member) -> Result<(), AppError> {
    if matches!(member.role, Role::Admin | Role::Manager) {
        Ok(())
    } else {
        Err(AppError::Denied {
            code: "forbidden",
            message: "only a Manager or an Admin approves a campaign".into(),
        })
    }
}

/// Moves a campaign from one of `from` to `to` (`resume`: back to sending, or to scheduled
/// when its audience was never resolved); audited.
pub async fn transition(
    state: &CampaignsState,
    member: &Member,
    meta: &Meta,
    id: Uuid,
    from: &[&str],
    to: &str,
    action: &str,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let st = lock(&mut tx, id).await?;
    if !from.contains(&st.state.as_str()) {
        return Err(AppError::Conflict(format!(
            "state: the campaign is {}",
            st.state
        )));
    }
    let to = match to {
        "resume" if st.resolved => "sending",
        "resume" => "scheduled",
        other => other,
    };
    let done = sqlx::query!(
        "UPDATE app.campaigns SET state = $3, updated_at = $4,
            approved_by = CASE WHEN $5 THEN $6 ELSE approved_by END,
            approved_at = CASE WHEN $5 THEN $4 ELSE approved_at END,
            finished_at = CASE WHEN $3 = 'cancelled' THEN $4 ELSE finished_at END
         WHERE org_id = $1 AND id = $2",
        member.org_id,
        id,
        to,
        now,
        action == "campaign.approve",
        member.principal_id
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::Denied {
            code: "forbidden",
            message: "the campaign's write groups do not include you".into(),
        });
    }
    record(
        &mut tx,
        now,
        meta,
        action,
        format!("campaign:{id}"),
        json!({ "from": st.state, "to": to }),
    )
    .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Suppression list

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionBody {
    pub email: String,
    /// `do_not_contact` (default) or `ccpa_opt_out`.
    pub reason: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/suppressions", tag = "campaigns",
    responses((status = 200, description = "How many addresses are suppressed, per reason (addresses are kept only as keyed hashes)", body = Object), Refusals))]
async fn list_suppressions(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
) -> Result<Response, AppError> {
    let by: serde_json::Map<String, Value> = suppression_counts(&state, &member)
        .await?
        .into_iter()
        .map(|(r, n)| (r, json!(n)))
        .collect();
    Ok(axum::Json(json!({ "reasons": by })).into_response())
}

#[utoipa::path(post, path = "/api/v1/suppressions", tag = "campaigns", request_body = SuppressionBody,
    responses((status = 201, description = "The address is suppressed: no campaign of the organization sends to it, whatever list or import it comes from; audited", body = Object), Refusals))]
async fn add_suppression(
    State(state): State<CampaignsState>,
    Require(member, _): Campaign,
    meta: Meta,
    ApiJson(body): ApiJson<SuppressionBody>,
) -> Result<Response, AppError> {
    let (reason, added) = suppress(&state, &member, &meta, &body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "suppressed": true, "reason": reason, "new": added })),
    )
        .into_response())
}

/// Puts an address on the organization's suppression list (`do_not_contact` unless the body
/// says `ccpa_opt_out`); audited. The reason, and whether the address was not there yet.
pub async fn suppress(
    state: &CampaignsState,
    member: &Member,
    meta: &Meta,
    body: &SuppressionBody,
) -> Result<(&'static str, bool), AppError> {
    let reason = match body.reason.as_deref() {
        None | Some("do_not_contact") => "do_not_contact",
        Some("ccpa_opt_out") => "ccpa_opt_out",
        Some(_) => return Err(bad("reason: do_not_contact or ccpa_opt_out")),
    };
    let bidx = state
        .fields
        .email_index(member.org_id, &body.email)
        .ok_or_else(|| bad("email: not an email address"))?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let added = sqlx::query!(
        "INSERT INTO app.suppressions (org_id, email_bidx, reason, created_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        member.org_id,
        bidx.to_vec(),
        reason,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    record(
        &mut tx,
        now,
        meta,
        "suppression.add",
        format!("suppression:{}", hex::encode(&bidx[..8])),
        json!({ "reason": reason, "new": added }),
    )
    .await?;
    tx.commit().await?;
    Ok((reason, added))
}

/// How many addresses are suppressed, per reason.
pub async fn suppression_counts(
    state: &CampaignsState,
    member: &Member,
) -> Result<Vec<(String, i64)>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        r#"SELECT reason, count(*) AS "n!" FROM app.suppressions WHERE org_id = $1 GROUP BY reason ORDER BY reason"#,
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| (r.reason, r.n)).collect())
}

#[utoipa::path(post, path = "/api/v1/suppressions/remove", tag = "campaigns", request_body = SuppressionBody,
    responses((status = 200, description = "Admins at aal2 lift a do-not-contact or CCPA entry; audited", body = Object),
        (status = 404, description = "The address is not suppressed", body = ErrorBody),
        (status = 409, description = "An unsubscribe, bounce or complaint is the recipient's choice or the receiver's verdict and stays", body = ErrorBody), Refusals))]
async fn remove_suppression(
    State(state): State<CampaignsState>,
    Require(member, _): Settings,
    meta: Meta,
    ApiJson(body): ApiJson<SuppressionBody>,
) -> Result<Response, AppError> {
    let bidx = state
        .fields
        .email_index(member.org_id, &body.email)
        .ok_or_else(|| bad("email: not an email address"))?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let reason = sqlx::query_scalar!(
        "SELECT reason FROM app.suppressions WHERE org_id = $1 AND email_bidx = $2",
        member.org_id,
        bidx.to_vec()
    )
    .fetch_optional(&mut *tx)
    .await?;
    match reason.as_deref() {
        None => return Err(AppError::NotFound),
        Some("do_not_contact" | "ccpa_opt_out") => {}
        Some(r) => {
            return Err(AppError::Conflict(format!(
                "reason: the address is suppressed as {r}, which only the recipient can undo"
            )));
        }
    }
    sqlx::query!(
        "DELETE FROM app.suppressions WHERE org_id = $1 AND email_bidx = $2",
        member.org_id,
        bidx.to_vec()
    )
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        now,
        &meta,
        "suppression.remove",
        format!("suppression:{}", hex::encode(&bidx[..8])),
        json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(axum::Json(json!({ "suppressed": false })).into_response())
}
