//! Vulnerability disclosure: `/.well-known/security.txt`, the policy page with its report form,
//! `POST /api/v1/vdp/reports`, the reporter's status page behind a secret link, and the
//! operators' triage (`leadgen vdp …` and `/operator/api/vdp/…`).
//!
//! A report gets a tracking id (`LG-VDP-<year>-<seq>`) and an acknowledgement mail at once; the
//! status link in that mail is 32 random bytes of which only the SHA-256 is stored. Reports are
//! what researchers send, attack payloads included: the WAF treats their fields as data (a
//! per-route exclusion in `waf-rules.json`), the server stores them with bound parameters and
//! shows them only as escaped text, and a rate rule caps posts per address. Attachments are
//! sealed with the data key. Every step is recorded on the report's timeline and in the
//! platform's audit chain. A report still untriaged `vdp.triage_alert_hours` after receipt
//! raises the `vdp-untriaged` alert, before the 48-hour acknowledgement promise runs out.

pub mod api;
pub mod pages;
pub mod security_txt;

use std::str::FromStr as _;

use base64::Engine as _;
use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PublicState;
use crate::audit::{self, Entry, Meta};
use crate::auth::EmailAddress;
use crate::http::AppError;
use crate::leads::FieldKeys;
use crate::mail::{Mail, Mailer};

/// The triage statuses, in their order.
pub const STATUSES: &[&str] = &[
    "received",
    "triaged",
    "accepted",
    "duplicate",
    "rejected",
    "fixed",
    "disclosed",
];
pub const SEVERITIES: &[&str] = &["none", "low", "medium", "high", "critical"];
pub const REWARDS: &[&str] = &["none", "under_review", "eligible", "ineligible", "paid"];

/// Where a report may go from `from`. A report can be closed (duplicate, rejected) at the first
/// look; only an accepted report is fixed, and only a fixed one disclosed.
#[must_use]
pub fn next_statuses(from: &str) -> &'static [&'static str] {
    match from {
        "received" => &["triaged", "accepted", "duplicate", "rejected"],
        "triaged" => &["accepted", "duplicate", "rejected"],
        "accepted" => &["fixed"],
        "fixed" => &["disclosed"],
        // A closed report may be looked at again.
        "duplicate" | "rejected" => &["triaged"],
        _ => &[],
    }
}

/// A field the reporter must correct, named as the form and the API name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        Self::BadRequest(format!("{}: {}", e.field, e.message))
    }
}

/// A report as posted (the form's fields, or the API's JSON body).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// A one-line summary (at most 200 characters).
    pub title: String,
    /// Where we reach you: the acknowledgement and status updates go here.
    pub email: String,
    /// Your name (optional).
    #[serde(default)]
    pub name: Option<String>,
    /// The name to thank on the acknowledgements list once the issue is fixed (optional).
    #[serde(default)]
    pub credit_name: Option<String>,
    /// The affected endpoints: URLs, routes, parameters (one per line).
    pub endpoints: String,
    /// Steps to reproduce, with the requests sent and the responses seen.
    pub steps: String,
    /// What an attacker gains.
    pub impact: String,
    /// A CVSS 3.x or 4.0 vector (optional), scored on receipt.
    #[serde(default)]
    pub cvss: Option<String>,
    /// Logs or screenshots (optional), each `{filename, content_type, content_base64}`.
    #[serde(default)]
    pub attachments: Vec<AttachmentBody>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentBody {
    pub filename: String,
    #[serde(default)]
    pub content_type: Option<String>,
    /// The file's bytes, base64 (standard alphabet).
    pub content_base64: String,
}

/// A file that came with a report.
#[derive(Debug, Clone)]
pub struct Upload {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A scored CVSS vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Cvss {
    pub vector: String,
    pub score: f64,
    pub severity: &'static str,
}

/// Parses and scores a CVSS 3.0, 3.1 or 4.0 vector.
pub fn score_cvss(vector: &str) -> Result<Cvss, String> {
    let vector = vector.trim();
    let parsed =
        cvss::Cvss::from_str(vector).map_err(|e| format!("not a CVSS 3.x or 4.0 vector ({e})"))?;
    let severity = match parsed.severity() {
        cvss::Severity::None => "none",
        cvss::Severity::Low => "low",
        cvss::Severity::Medium => "medium",
        cvss::Severity::High => "high",
        cvss::Severity::Critical => "critical",
    };
    Ok(Cvss {
        vector: vector.to_string(),
        score: parsed.score(),
        severity,
    })
}

/// A report that passed the checks.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub title: String,
    pub email: EmailAddress,
    pub name: Option<String>,
    pub credit_name: Option<String>,
    pub endpoints: String,
    pub steps: String,
    pub impact: String,
    pub cvss: Option<Cvss>,
}

fn text(field: &'static str, v: &str, max: usize, required: bool) -> Result<String, Invalid> {
    // Reports are kept as sent, except for the line ends and the NUL a database cannot store.
    let v = v.replace("\r\n", "\n").replace('\0', "");
    let trimmed = v.trim();
    if required && trimmed.is_empty() {
        return Err(Invalid {
            field,
            message: "is required".into(),
        });
    }
    if trimmed.chars().count() > max {
        return Err(Invalid {
            field,
            message: format!("can have at most {max} characters"),
        });
    }
    Ok(trimmed.to_string())
}

fn optional(field: &'static str, v: Option<&str>, max: usize) -> Result<Option<String>, Invalid> {
    let v = text(field, v.unwrap_or(""), max, false)?;
    Ok((!v.is_empty()).then_some(v))
}

impl ReportBody {
    /// Checks every field, naming the first that needs correcting.
    pub fn parse(&self) -> Result<NewReport, Invalid> {
        let title = text("title", &self.title, 200, true)?;
        if title.contains('\n') {
            return Err(Invalid {
                field: "title",
                message: "must be one line".into(),
            });
        }
        let email = EmailAddress::parse(self.email.trim()).map_err(|_| Invalid {
            field: "email",
            message: "must be an email address like name@example.com".into(),
        })?;
        let cvss = match optional("cvss", self.cvss.as_deref(), 200)? {
            Some(v) => Some(score_cvss(&v).map_err(|message| Invalid {
                field: "cvss",
                message,
            })?),
            None => None,
        };
        Ok(NewReport {
            title,
            email,
            name: optional("name", self.name.as_deref(), 200)?,
            credit_name: optional("credit_name", self.credit_name.as_deref(), 200)?,
            endpoints: text("endpoints", &self.endpoints, 4000, true)?,
            steps: text("steps", &self.steps, 50_000, true)?,
            impact: text("impact", &self.impact, 20_000, true)?,
            cvss,
        })
    }
}

impl NewReport {
    /// Masks card numbers in every text field (first six and last four digits kept): a report
    /// may quote one, and none is stored. Returns how many were masked.
    pub fn mask_cards(&mut self) -> usize {
        let mut n = 0;
        for field in [
            &mut self.title,
            &mut self.endpoints,
            &mut self.steps,
            &mut self.impact,
        ] {
            n += crate::pci::mask_in_place(field);
        }
        for field in [&mut self.name, &mut self.credit_name]
            .into_iter()
            .flatten()
        {
            n += crate::pci::mask_in_place(field);
        }
        n
    }
}

/// Checks the attachments against `vdp.max_attachments` and `vdp.max_attachment_bytes`.
pub fn check_uploads(
    uploads: &[Upload],
    config: &crate::config::VdpConfig,
) -> Result<(), AppError> {
    if uploads.len() > config.max_attachments {
        return Err(AppError::BadRequest(format!(
            "attachments: at most {} files",
            config.max_attachments
        )));
    }
    for u in uploads {
        if u.bytes.len() > config.max_attachment_bytes {
            return Err(AppError::PayloadTooLarge(format!(
                "attachments: {} is larger than {} bytes",
                u.filename, config.max_attachment_bytes
            )));
        }
    }
    Ok(())
}

/// A file name as given, reduced to something safe to show and to offer as a download name.
#[must_use]
pub fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | ';'))
        .take(200)
        .collect();
    if cleaned.trim().is_empty() {
        "attachment".into()
    } else {
        cleaned.trim().to_string()
    }
}

use crate::leads::keys::attachment_place;

/// The SHA-256 a status link's token is stored as.
fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// What the reporter gets back.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Receipt {
    pub tracking_id: String,
    /// The secret status link: keep it; anyone with it can read the report's status.
    pub status_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// When the acknowledgement promise (48 hours) runs out.
    #[serde(with = "time::serde::rfc3339")]
    pub acknowledge_by: OffsetDateTime,
    /// The end of the coordinated disclosure window.
    #[serde(with = "time::serde::rfc3339")]
    pub disclose_by: OffsetDateTime,
    #[schema(value_type = Option<f64>)]
    pub cvss_score: Option<f64>,
    pub cvss_severity: Option<&'static str>,
}

/// Stores a report with its attachments, audits it and mails the acknowledgement.
pub async fn submit(
    state: &PublicState,
    meta: &Meta,
    user_agent: Option<String>,
    mut report: NewReport,
    uploads: Vec<Upload>,
) -> Result<Receipt, AppError> {
    check_uploads(&uploads, &state.config.vdp)?;
    let masked = report.mask_cards();
    let now = state.clock.now();
    let id = Uuid::now_v7();
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let disclose_by = now + time::Duration::days(state.config.vdp.disclosure_days);
    let mut ids = Vec::new();
    let (mut names, mut types, mut sizes, mut contents) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for u in &uploads {
        let att = Uuid::now_v7();
        ids.push(att);
        names.push(clean_filename(&u.filename));
        types.push(u.content_type.chars().take(100).collect::<String>());
        sizes.push(i32::try_from(u.bytes.len()).unwrap_or(i32::MAX));
        contents.push(state.fields.encrypt_bytes(&u.bytes, &attachment_place(att)));
    }
    let score = report.cvss.as_ref().map(|c| c.score);
    let mut tx = state.pool.begin().await?;
    let tracking = sqlx::query_scalar!(
        r#"SELECT app.vdp_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                                 $15, $16, $17, $18, $19, $20) AS "tracking!""#,
        id,
        token_hash(&token),
        report.title,
        report.email.as_str(),
        report.name,
        report.credit_name,
        report.endpoints,
        report.steps,
        report.impact,
        report.cvss.as_ref().map(|c| c.vector.clone()),
        score,
        meta.ip.map(sqlx::types::ipnetwork::IpNetwork::from),
        user_agent,
        now,
        disclose_by,
        &ids,
        &names,
        &types,
        &sizes,
        &contents
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record_platform(
        &mut tx,
        now,
        meta,
        "reporter",
        Entry {
            action: "vdp.report_received",
            target: Some(tracking.clone()),
            before: None,
            after: Some(json!({
                "title": report.title,
                "attachments": uploads.len(),
                "cvss": report.cvss.as_ref().map(|c| c.vector.clone()),
                "card_numbers_masked": masked,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    crate::pci::record_masked("vdp_reports", masked);
    metrics::counter!("vdp_reports_total").increment(1);
    tracing::info!(target: "leadgen::vdp", tracking_id = %tracking, "vulnerability report received");
    let site = state.config.site_url();
    let status_url = format!("{site}/security/reports/{token}");
    let receipt = Receipt {
        tracking_id: tracking.clone(),
        status_url: status_url.clone(),
        received_at: now,
        acknowledge_by: now + time::Duration::hours(48),
        disclose_by,
        cvss_score: report.cvss.as_ref().map(|c| c.score),
        cvss_severity: report.cvss.as_ref().map(|c| c.severity),
    };
    let mail = Mail {
        to: report.email.as_str().to_string(),
        subject: format!("[{tracking}] We received your vulnerability report"),
        text: format!(
            "Thank you for your report \"{}\".\n\nIts tracking ID is {tracking}: please quote it \
             in anything you send us about it.\n\nFollow its status here (keep this link to \
             yourself: anyone with it can read the status):\n{status_url}\n\nWhat happens next: \
             our security team triages the report and you hear from us at each step until it \
             is resolved. We ask you to keep the details private until a fix ships or until \
             {}, whichever comes first. The policy: {site}/security/disclosure\n",
            report.title,
            disclose_by.date()
        ),
    };
    let (pool, mailer) = (state.pool.clone(), state.mailer.clone());
    tokio::spawn(async move {
        match mailer.send(&mail, now).await {
            Ok(()) => {
                if let Err(e) = sqlx::query!("SELECT app.vdp_acknowledged($1, $2)", id, now)
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "recording a report's acknowledgement failed");
                }
            }
            Err(e) => {
                tracing::warn!(target: "leadgen::vdp", error = %e, "acknowledgement mail failed; the report stays unacknowledged in the queue");
            }
        }
    });
    Ok(receipt)
}

/// The report a status link names, with the events meant for the reporter.
pub async fn by_token(pool: &PgPool, token: &str) -> Result<Option<Value>, sqlx::Error> {
    if token.len() != 43 {
        return Ok(None);
    }
    sqlx::query_scalar!("SELECT app.vdp_by_token($1)", token_hash(token))
        .fetch_one(pool)
        .await
}

/// The operators' queue, newest first.
pub async fn list(pool: &PgPool) -> Result<Value, sqlx::Error> {
    Ok(sqlx::query_scalar!("SELECT app.vdp_list()")
        .fetch_one(pool)
        .await?
        .unwrap_or_else(|| json!([])))
}

/// One report in full.
pub async fn get(pool: &PgPool, tracking: &str) -> Result<Option<Value>, sqlx::Error> {
    sqlx::query_scalar!("SELECT app.vdp_get($1)", tracking)
        .fetch_one(pool)
        .await
}

/// An operator's triage step. Absent fields change nothing.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Triage {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub reward: Option<String>,
    /// The tracking id of the report this one duplicates (with `status: duplicate`).
    pub duplicate_of: Option<String>,
    /// A note on the timeline.
    pub note: Option<String>,
    /// Whether the note shows on the reporter's status page (and is mailed to them).
    #[serde(default)]
    pub note_to_reporter: bool,
}

fn one_of(field: &str, v: Option<&str>, allowed: &[&str]) -> Result<(), AppError> {
    match v {
        Some(v) if !allowed.contains(&v) => Err(AppError::BadRequest(format!(
            "{field}: must be one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Applies a triage step by `actor`: checks the transition, records it on the timeline and in
/// the audit chain, and mails the reporter what changed for them. Returns the report after it.
#[allow(clippy::too_many_arguments)]
pub async fn triage(
    pool: &PgPool,
    mailer: &Mailer,
    site: &str,
    now: OffsetDateTime,
    actor: &str,
    meta: &Meta,
    tracking: &str,
    t: Triage,
) -> Result<Value, AppError> {
    let current = get(pool, tracking).await?.ok_or(AppError::NotFound)?;
    let from = current["status"].as_str().unwrap_or("received").to_string();
    one_of("status", t.status.as_deref(), STATUSES)?;
    one_of("severity", t.severity.as_deref(), SEVERITIES)?;
    one_of("reward", t.reward.as_deref(), REWARDS)?;
    let status = t.status.as_deref().filter(|s| *s != from);
    if let Some(to) = status
        && !next_statuses(&from).contains(&to)
    {
        return Err(AppError::Conflict(format!(
            "status: a {from} report can become {}, not {to}",
            next_statuses(&from).join(" or ")
        )));
    }
    let duplicate_of = match (status, t.duplicate_of.as_deref().map(str::trim)) {
        (Some("duplicate"), Some(of)) if of != tracking => {
            if get(pool, of).await?.is_none() {
                return Err(AppError::BadRequest(format!(
                    "duplicate_of: no report {of}"
                )));
            }
            Some(of.to_string())
        }
        (Some("duplicate"), _) => {
            return Err(AppError::BadRequest(
                "duplicate_of: name the report this one duplicates".into(),
            ));
        }
        _ => None,
    };
    let note = match t.note.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > 20_000 => {
            return Err(AppError::BadRequest(
                "note: can have at most 20000 characters".into(),
            ));
        }
        Some(n) if !n.is_empty() => {
            // An operator quoting the report's card number stores it masked, like the report.
            let mut n = n.to_string();
            crate::pci::record_masked("vdp_events", crate::pci::mask_in_place(&mut n));
            Some(n)
        }
        _ => None,
    };
    if status.is_none() && t.severity.is_none() && t.reward.is_none() && note.is_none() {
        return Err(AppError::BadRequest(
            "nothing to change: give a status, severity, reward or note".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let applied = sqlx::query_scalar!(
        r#"SELECT app.vdp_apply($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) AS "applied!""#,
        tracking,
        from,
        status,
        t.severity,
        t.reward,
        duplicate_of,
        note,
        t.note_to_reporter,
        actor,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    if !applied {
        return Err(AppError::Conflict(
            "the report changed meanwhile: look at it again".into(),
        ));
    }
    audit::record_platform(
        &mut tx,
        now,
        meta,
        actor,
        Entry {
            action: "vdp.triage",
            target: Some(tracking.to_string()),
            before: Some(json!({ "status": from })),
            after: Some(json!({
                "status": status, "severity": t.severity, "reward": t.reward,
                "duplicate_of": duplicate_of, "note": note.is_some(),
                "note_to_reporter": t.note_to_reporter,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    // The reporter hears of every change their status page shows.
    let mut lines = Vec::new();
    if let Some(s) = status {
        lines.push(format!("Status: {}", s.replace('_', " ")));
    }
    if let Some(s) = &t.severity {
        lines.push(format!("Severity: {s}"));
    }
    if let Some(r) = &t.reward {
        lines.push(format!("Reward: {}", r.replace('_', " ")));
    }
    if let (Some(n), true) = (&note, t.note_to_reporter) {
        lines.push(format!("Message from the security team:\n{n}"));
    }
    if let (false, Some(to)) = (lines.is_empty(), current["reporter_email"].as_str()) {
        let mail = Mail {
            to: to.to_string(),
            subject: format!("[{tracking}] Your vulnerability report was updated"),
            text: format!(
                "Your report \"{}\" ({tracking}) was updated.\n\n{}\n\nThe status link in our \
                 first mail shows the whole history. The policy: {site}/security/disclosure\n",
                current["title"].as_str().unwrap_or(""),
                lines.join("\n")
            ),
        };
        if let Err(e) = mailer.send(&mail, now).await {
            tracing::warn!(target: "leadgen::vdp", error = %e, tracking_id = %tracking, "status update mail failed; the status page shows the change");
        }
    }
    get(pool, tracking).await?.ok_or(AppError::NotFound)
}

/// One attachment, opened.
pub async fn attachment(
    pool: &PgPool,
    fields: &FieldKeys,
    tracking: &str,
    n: i32,
) -> Result<Option<Upload>, AppError> {
    let Some(row) = sqlx::query!(
        r#"SELECT id AS "id!", filename AS "filename!", content_type AS "content_type!",
                  content AS "content!"
           FROM app.vdp_attachment($1, $2)"#,
        tracking,
        n
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let bytes = fields
        .decrypt_bytes(&row.content, &attachment_place(row.id))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("attachment {n} of {tracking}: {e}")))?;
    Ok(Some(Upload {
        filename: row.filename,
        content_type: row.content_type,
        bytes,
    }))
}

/// Who asked to be thanked for a fixed report, with the year of the fix.
pub async fn thanks(pool: &PgPool) -> Result<Vec<(String, i32)>, sqlx::Error> {
    Ok(sqlx::query!(
        r#"SELECT credit_name AS "credit_name!", year AS "year!" FROM app.vdp_thanks()"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.credit_name, r.year))
    .collect())
}

/// Raises the untriaged alert for every report that is due, once each. Returns their ids.
pub async fn alert_untriaged(state: &PublicState) -> Result<Vec<String>, AppError> {
    let now = state.clock.now();
    let hours = state.config.vdp.triage_alert_hours;
    let mut tx = state.pool.begin().await?;
    let due = sqlx::query!(
        r#"SELECT tracking_id AS "tracking_id!", title AS "title!", created_at AS "created_at!"
           FROM app.vdp_due_alerts($1, $2)"#,
        now,
        i32::try_from(hours * 3600).unwrap_or(i32::MAX)
    )
    .fetch_all(&mut *tx)
    .await?;
    for d in &due {
        audit::record_platform(
            &mut tx,
            now,
            &Meta::default(),
            "leadgen",
            Entry {
                action: "vdp.untriaged_alert",
                target: Some(d.tracking_id.clone()),
                before: None,
                after: Some(json!({ "hours": hours })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    for d in &due {
        let deadline = d.created_at + time::Duration::hours(48);
        let detail = format!(
            "vulnerability report {} (\"{}\") is still untriaged {hours} hours after it was \
             received; the 48-hour acknowledgement promise runs out at {}",
            d.tracking_id,
            d.title.chars().take(120).collect::<String>(),
            deadline
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        );
        metrics::counter!("vdp_untriaged_alerts_total").increment(1);
        crate::perimeter::announce(
            &state.perimeter,
            "vdp-untriaged",
            crate::perimeter::alerts::Event::VdpUntriaged,
            detail,
        );
    }
    Ok(due.into_iter().map(|d| d.tracking_id).collect())
}

/// Checks for untriaged reports every `vdp.check_secs`.
pub async fn watch(state: PublicState) {
    let mut tick =
        tokio::time::interval(std::time::Duration::from_secs(state.config.vdp.check_secs));
    loop {
        tick.tick().await;
        if let Err(e) = alert_untriaged(&state).await {
            tracing::warn!(target: "leadgen::vdp", error = %e, "checking for untriaged reports failed; retrying at the next check");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_vectors_are_scored_and_nonsense_is_named() {
        let v3 = score_cvss("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
        assert!((v3.score - 9.8).abs() < 1e-9);
        assert_eq!(v3.severity, "critical");
        let v4 =
            score_cvss("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert!(v4.score > 9.0, "{v4:?}");
        let e = score_cvss("CVSS:3.1/AV:X").unwrap_err();
        assert!(e.contains("CVSS"), "{e}");
    }

    #[test]
    fn a_report_names_the_field_to_correct() {
        let good = ReportBody {
            title: "Stored XSS in lead notes".into(),
            email: "r@example.com".into(),
            endpoints: "POST /api/v1/leads".into(),
            steps: "1. Post <script>alert(1)</script>".into(),
            impact: "Session theft".into(),
            ..ReportBody::default()
        };
        assert!(good.parse().is_ok());
        let mut bad = good.clone();
        bad.steps = "  ".into();
        assert_eq!(bad.parse().unwrap_err().field, "steps");
        let mut bad = good.clone();
        bad.email = "nobody".into();
        assert_eq!(bad.parse().unwrap_err().field, "email");
        let mut bad = good;
        bad.cvss = Some("9.8".into());
        assert_eq!(bad.parse().unwrap_err().field, "cvss");
    }

    #[test]
    fn transitions_follow_the_programme() {
        assert!(next_statuses("received").contains(&"triaged"));
        assert!(!next_statuses("received").contains(&"fixed"));
        assert_eq!(next_statuses("accepted"), &["fixed"]);
        assert!(next_statuses("disclosed").is_empty());
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\x\\shot\".png"), "shot.png");
    }
}
