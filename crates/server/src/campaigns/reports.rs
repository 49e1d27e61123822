//! Bounces and complaints: delivery status notifications (RFC 3464) and feedback reports
//! (ARF, RFC 5965) about LeadGen's messages, from an authenticated webhook
//! (`POST /hooks/mail/reports`, for relays and mail services that forward them) and from a
//! maildir the server polls (where a bounce mailbox delivers). A hard bounce or a complaint
//! suppresses the address at once; soft bounces count, and suppress after
//! `campaigns.soft_bounce_limit`. Messages sent to a mailed unsubscribe address
//! (`unsubscribe+<token>@…`) in the same maildir unsubscribe like the one-click link.

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use leadgen_mail::bounce::{ReportKind, parse_report};
use secrecy::ExposeSecret;
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::CampaignsState;
use crate::http::AppError;

pub fn routes() -> Router<CampaignsState> {
    Router::new().route("/hooks/mail/reports", post(webhook))
}

/// What a report did.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// About one of our messages: recorded (and the address suppressed where the kind says).
    Recorded(&'static str),
    /// A mailed unsubscribe.
    Unsubscribed,
    /// Not a report about a message LeadGen sent.
    Ignored,
}

/// The message id in a Message-ID LeadGen wrote (`<uuid>@domain`).
fn ours(message_id: &str) -> Option<Uuid> {
    let local = message_id.trim().trim_start_matches('<').split_once('@')?.0;
    Uuid::try_parse(local).ok()
}

/// The token of a mailed unsubscribe: the `unsubscribe+<token>@` recipient, as written (the
/// token is case-sensitive; mail keeps a local part's case).
fn mailed_unsubscribe(raw: &[u8]) -> Option<String> {
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    let to = msg.to()?.first()?.address()?;
    let local = to.split_once('@')?.0;
    let (prefix, token) = local.split_once('+')?;
    prefix
        .eq_ignore_ascii_case("unsubscribe")
        .then(|| token.to_string())
}

/// Handles one raw message: a report, a mailed unsubscribe, or neither.
pub async fn handle(state: &CampaignsState, raw: &[u8]) -> Result<Handled, AppError> {
    if let Some(token) = mailed_unsubscribe(raw) {
        let Some(id) = super::public::verify(&state.app_key, &token) else {
            return Ok(Handled::Ignored);
        };
        super::public::unsubscribe(state, id).await?;
        return Ok(Handled::Unsubscribed);
    }
    let Some(report) = parse_report(raw) else {
        return Ok(Handled::Ignored);
    };
    let Some(id) = report.original_message_id.as_deref().and_then(ours) else {
        return Ok(Handled::Ignored);
    };
    let kind = match report.kind {
        ReportKind::HardBounce => "hard_bounce",
        ReportKind::SoftBounce => "soft_bounce",
        ReportKind::Complaint => "complaint",
        ReportKind::Delayed => return Ok(Handled::Ignored),
    };
    let detail = [report.status.as_deref(), report.diagnostic.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let found = sqlx::query_scalar!(
        "SELECT app.campaign_report($1, $2, $3, $4, $5)",
        id,
        kind,
        detail,
        state.clock.now(),
        i32::try_from(state.config.campaigns.soft_bounce_limit).unwrap_or(i32::MAX)
    )
    .fetch_one(&state.pool)
    .await?
    .unwrap_or(false);
    if !found {
        return Ok(Handled::Ignored);
    }
    metrics::counter!("campaign_reports_total", "kind" => kind).increment(1);
    Ok(Handled::Recorded(kind))
}

/// `POST /hooks/mail/reports` with `Authorization: Bearer <campaigns.report_secret>` and the
/// report as the body (`message/rfc822`).
async fn webhook(
    State(state): State<CampaignsState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let secret = state.config.campaigns.report_secret.expose_secret();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if secret.is_empty() || !bool::from(presented.as_bytes().ct_eq(secret.as_bytes())) {
        return Err(AppError::Unauthenticated {
            code: "bad_credentials",
            message: "the report webhook needs its secret (campaigns.report_secret)".into(),
        });
    }
    let handled = handle(&state, &body).await?;
    let what = match handled {
        Handled::Recorded(kind) => kind,
        Handled::Unsubscribed => "unsubscribed",
        Handled::Ignored => "ignored",
    };
    Ok((StatusCode::OK, axum::Json(json!({ "handled": what }))).into_response())
}

/// Polls `campaigns.report_maildir` (`new/` → handled → `cur/`) until the server stops.
pub async fn poll_maildir(state: CampaignsState) {
    let dir = state.config.campaigns.report_maildir.clone();
    if dir.as_os_str().is_empty() {
        return;
    }
    let poll = Duration::from_millis(state.config.campaigns.poll_ms.max(250));
    loop {
        if let Err(e) = sweep(&state, &dir).await {
            tracing::warn!(error = %format!("{e:#}"), "reading the report maildir failed");
        }
        tokio::time::sleep(poll).await;
    }
}

async fn sweep(state: &CampaignsState, dir: &Path) -> anyhow::Result<()> {
    let (new, cur) = (dir.join("new"), dir.join("cur"));
    tokio::fs::create_dir_all(&cur).await?;
    let mut entries = match tokio::fs::read_dir(&new).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let raw = tokio::fs::read(&path).await?;
        match handle(state, &raw).await {
            Ok(h) => tracing::debug!(file = %path.display(), handled = ?h, "report handled"),
            Err(e) => {
                // Left in new/ to be read again (the database may be back next time).
                tracing::warn!(file = %path.display(), error = %e, "a report could not be recorded");
                continue;
            }
        }
        let name = entry.file_name();
        tokio::fs::rename(&path, cur.join(format!("{}:2,S", name.to_string_lossy()))).await?;
    }
    Ok(())
}
