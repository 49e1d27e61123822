//! The disclosure policy page with its report form (`/security/disclosure`) and the reporter's
//! status page (`/security/reports/{token}`). Everything a reporter typed is shown as escaped
//! text, never as markup.

use askama::Template;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::super::PublicState;
use super::super::site::html;
use super::{ReportBody, Upload};
use crate::audit::Meta;
use crate::http::AppError;
use crate::web::assets::{self, Assets};
use crate::web::trap;

/// The form's purpose in its stamp (`web::trap`).
pub const PURPOSE: &str = "vdp-report";

#[derive(Template)]
#[template(path = "vdp_policy.html")]
struct Policy<'a> {
    assets: &'a Assets,
    version: &'static str,
    stamp: String,
    honeypot: &'static str,
    stamp_field: &'static str,
    form: ReportBody,
    error: Option<String>,
    max_attachments: usize,
    max_attachment_mb: String,
    disclosure_days: i64,
    thanks: Vec<(String, i32)>,
}

#[derive(Template)]
#[template(path = "vdp_received.html")]
struct Received<'a> {
    assets: &'a Assets,
    version: &'static str,
    tracking_id: Option<String>,
    status_url: String,
}

struct Step {
    at: String,
    what: String,
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "vdp_status.html")]
struct Status<'a> {
    assets: &'a Assets,
    version: &'static str,
    tracking_id: String,
    title: String,
    status: String,
    severity: Option<String>,
    reward: String,
    received: String,
    disclose_by: String,
    steps: Vec<Step>,
}

fn when(v: &Value) -> String {
    v.as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        .map(|t| {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
        })
        .unwrap_or_default()
}

fn label(s: &str) -> String {
    s.replace('_', " ")
}

async fn policy_page(
    state: &PublicState,
    form: ReportBody,
    error: Option<String>,
    stamp_at: OffsetDateTime,
    status: StatusCode,
) -> Response {
    let thanks = match super::thanks(&state.pool).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "the acknowledgements list could not be read");
            Vec::new()
        }
    };
    let v = &state.config.vdp;
    let page = Policy {
        assets: assets::get(),
        version: state.version,
        stamp: trap::stamp(&state.app_key, PURPOSE, stamp_at),
        honeypot: trap::HONEYPOT_FIELD,
        stamp_field: trap::STAMP_FIELD,
        form,
        error,
        max_attachments: v.max_attachments,
        max_attachment_mb: format!("{:.1}", v.max_attachment_bytes as f64 / 1_048_576.0),
        disclosure_days: v.disclosure_days,
        thanks,
    };
    html(&page, status)
}

/// `GET /security/disclosure`: the policy and the form.
pub async fn policy(State(state): State<PublicState>) -> Response {
    let now = state.clock.now();
    policy_page(&state, ReportBody::default(), None, now, StatusCode::OK).await
}

/// What a multipart post of the form carries.
#[derive(Default)]
struct Posted {
    body: ReportBody,
    stamp: Option<String>,
    honeypot: Option<String>,
    uploads: Vec<Upload>,
}

async fn read_form(mut multipart: Multipart, max_files: usize) -> Result<Posted, String> {
    let mut p = Posted::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| format!("the form could not be read: {e}"))?
    {
        let name = field.name().unwrap_or("").to_string();
        if name == "attachments" {
            let filename = field.file_name().unwrap_or("").to_string();
            let content_type = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|e| format!("attachments: {e}"))?;
            // A file input left empty still posts a part with no name and no bytes.
            if filename.is_empty() && bytes.is_empty() {
                continue;
            }
            if p.uploads.len() == max_files {
                return Err(format!("attachments: at most {max_files} files"));
            }
            p.uploads.push(Upload {
                filename,
                content_type,
                bytes: bytes.to_vec(),
            });
            continue;
        }
        let value = field.text().await.map_err(|e| format!("{name}: {e}"))?;
        let b = &mut p.body;
        match name.as_str() {
            "title" => b.title = value,
            "email" => b.email = value,
            "name" => b.name = Some(value),
            "credit_name" => b.credit_name = Some(value),
            "endpoints" => b.endpoints = value,
            "steps" => b.steps = value,
            "impact" => b.impact = value,
            "cvss" => b.cvss = Some(value),
            n if n == trap::STAMP_FIELD => p.stamp = Some(value),
            n if n == trap::HONEYPOT_FIELD => p.honeypot = Some(value),
            // Unknown parts are ignored, as a browser form may add its own.
            _ => {}
        }
    }
    Ok(p)
}

/// `POST /security/disclosure`: a report from the form (multipart, attachments optional).
pub async fn submit(
    State(state): State<PublicState>,
    meta: Meta,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let posted = match read_form(multipart, state.config.vdp.max_attachments).await {
        Ok(p) => p,
        Err(problem) => {
            return Ok(policy_page(
                &state,
                ReportBody::default(),
                Some(problem),
                now,
                StatusCode::BAD_REQUEST,
            )
            .await);
        }
    };
    let verdict = trap::check(
        &state.app_key,
        PURPOSE,
        posted.stamp.as_deref(),
        posted.honeypot.as_deref(),
        now,
        trap::Rules::default(),
    );
    if let Some(reason) = verdict.spam_reason() {
        metrics::counter!("vdp_spam_total", "reason" => reason).increment(1);
        let page = Received {
            assets: assets::get(),
            version: state.version,
            tracking_id: None,
            status_url: String::new(),
        };
        return Ok(html(&page, StatusCode::OK));
    }
    // What the reporter typed comes back with the problem named (the files must be chosen
    // again: browsers do not let a page fill a file input).
    let again = |problem: String| {
        let form = posted.body.clone();
        let state = state.clone();
        async move {
            policy_page(
                &state,
                form,
                Some(problem),
                now - time::Duration::seconds(5),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    };
    let report = match posted.body.parse() {
        Ok(r) => r,
        Err(e) => return Ok(again(format!("{}: {}", e.field, e.message)).await),
    };
    if let Err(e) = super::check_uploads(&posted.uploads, &state.config.vdp) {
        let status = e.status();
        let mut page = again(e.to_string()).await;
        *page.status_mut() = status;
        return Ok(page);
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    let receipt = super::submit(&state, &meta, user_agent, report, posted.uploads).await?;
    let page = Received {
        assets: assets::get(),
        version: state.version,
        tracking_id: Some(receipt.tracking_id),
        status_url: receipt.status_url,
    };
    Ok(private(html(&page, StatusCode::OK)))
}

/// A page that shows a secret link or what it opens: not cached, not sent on as a referrer.
fn private(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// `GET /security/reports/{token}`: the reporter's view of their report.
pub async fn status(
    State(state): State<PublicState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let Some(r) = super::by_token(&state.pool, &token).await? else {
        return Err(AppError::NotFound);
    };
    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let steps = r["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    let kind = e["kind"].as_str().unwrap_or("");
                    let value = label(e["status"].as_str().unwrap_or(""));
                    let what = match kind {
                        "received" => "Report received".to_string(),
                        "acknowledged" => "Acknowledgement mailed".to_string(),
                        "status" => format!("Status: {value}"),
                        "severity" => format!("Severity: {value}"),
                        "reward" => format!("Reward: {value}"),
                        "note" => "Message from the security team".to_string(),
                        other => label(other),
                    };
                    Step {
                        at: when(&e["at"]),
                        what,
                        note: e["note"].as_str().map(str::to_string),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let page = Status {
        assets: assets::get(),
        version: state.version,
        tracking_id: s("tracking_id"),
        title: s("title"),
        status: label(&s("status")),
        severity: r["severity"].as_str().map(str::to_string),
        reward: label(&s("reward")),
        received: when(&r["created_at"]),
        disclose_by: when(&r["disclose_by"]),
        steps,
    };
    Ok(private(html(&page, StatusCode::OK)))
}
