//! Retention: leads with no activity for longer than their organization's period are
//! anonymised, then purged a grace period later (`leadgen retention run`).
//!
//! A lead's last activity is the latest of its own last change, its notes and its activities.
//! Anonymising removes every field that identifies or describes the person (names, title,
//! department, the encrypted email and phone and the email's blind index, LinkedIn, city, tags,
//! custom values, notes; activity summaries are blanked; consent records lose their address
//! and user agent) and keeps what statistics are made of: status, score, source, seniority,
//! company, industry, size, region, country and the dates. Work goes in batches, each its own
//! transaction that skips rows another transaction holds, so a run never holds locks for long, and
//! a run stopped at any point (even `kill -9`) is resumed by the next: a batch is either done or
//! not, and done rows are never picked again.

use serde::Serialize;
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::maintenance;
use crate::audit::{self, Entry};

/// The longest period the seeds promise and the default: 24 months since last activity.
pub const MAX_MONTHS: u8 = crate::orgs::api::MAX_RETENTION_MONTHS;

/// What a run did (or, dry, would do) in one organization.
#[derive(Debug, Clone, Serialize)]
pub struct OrgReport {
    pub org_id: Uuid,
    pub months: u8,
    /// Leads whose last activity is before this are expired.
    #[serde(with = "time::serde::rfc3339")]
    pub cutoff: OffsetDateTime,
    /// Expired leads anonymised (dry: that would be).
    pub anonymised: u64,
    /// Anonymised leads past the grace period deleted (dry: that would be).
    pub purged: u64,
    /// The expired leads' ids in a dry run (at most [`DRY_RUN_IDS`]); empty otherwise.
    pub lead_ids: Vec<Uuid>,
    /// Audit rows older than `retention.audit_months` removed (dry: that would be); the chain
    /// then starts from a declared anchor.
    pub audit_rows_purged: u64,
}

/// Ids a dry run lists per organization.
pub const DRY_RUN_IDS: i64 = 1000;

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub now: OffsetDateTime,
    pub dry_run: bool,
    pub purge_after_days: i64,
    pub batch_size: i64,
    /// Days an import's uploaded file is kept after the import ended (or, never started,
    /// after the upload).
    pub import_upload_days: i64,
    /// Months the audit trail and the record of sign-ins are kept.
    pub audit_months: u8,
}

/// Removes the uploaded files of imports that ended (or were never started) more than
/// `import_upload_days` ago, and of imports that no longer exist (their organization was
/// deleted), from this data folder's `imports/`. Returns how many were (dry: would be) removed.
/// A file the database cannot account for is never guessed about: only `<job id>.csv` names
/// are considered.
pub async fn sweep_uploads(
    pool: &sqlx::PgPool,
    imports_dir: &std::path::Path,
    opts: Options,
) -> Result<u64, anyhow::Error> {
    let mut files = Vec::new();
    match std::fs::read_dir(imports_dir) {
        Ok(entries) => {
            for e in entries {
                let path = e?.path();
                let id = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".csv"))
                    .and_then(|n| Uuid::parse_str(n).ok());
                if let Some(id) = id {
                    files.push((id, path));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", imports_dir.display())),
    }
    if files.is_empty() {
        return Ok(0);
    }
    let before = opts.now - time::Duration::days(opts.import_upload_days);
    let ids: Vec<Uuid> = files.iter().map(|(id, _)| *id).collect();
    let mut tx = maintenance(pool).await?;
    // Jobs still wanting their file: running or queued, or ended (or uploaded) recently.
    let keep: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM app.import_jobs WHERE id = ANY($1) AND (
             status IN ('queued', 'running')
             OR (status = 'uploaded' AND created_at >= $2)
             OR (status IN ('done', 'failed', 'cancelled') AND coalesce(finished_at, updated_at) >= $2))",
    )
    .bind(&ids)
    .bind(before)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut removed = 0;
    for (id, path) in files {
        if keep.contains(&id) {
            continue;
        }
        if !opts.dry_run {
            std::fs::remove_file(&path)
                .map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
        }
        removed += 1;
    }
    if removed > 0 && !opts.dry_run {
        metrics::counter!("retention_import_uploads_removed_total").increment(removed);
    }
    Ok(removed)
}

/// The organization's period from its settings, within 1..=24 months (24 when unset).
#[must_use]
pub fn months(settings: &serde_json::Value) -> u8 {
    settings
        .get("retention_months")
        .and_then(serde_json::Value::as_u64)
        .and_then(|m| u8::try_from(m).ok())
        .filter(|m| (1..=MAX_MONTHS).contains(m))
        .unwrap_or(MAX_MONTHS)
}

/// The expired leads of organization `$1` with cutoff `$2`.
const EXPIRED: &str = "l.org_id = $1 AND l.anonymized_at IS NULL AND l.updated_at < $2
    AND NOT EXISTS (SELECT 1 FROM app.lead_notes n
                    WHERE n.org_id = l.org_id AND n.lead_id = l.id AND n.created_at >= $2)
    AND NOT EXISTS (SELECT 1 FROM app.lead_activities a
                    WHERE a.org_id = l.org_id AND a.lead_id = l.id AND a.occurred_at >= $2)";

/// Runs retention over every organization on a maintenance connection pool (each batch its
/// own transaction as `leadgen_maintenance`).
pub async fn run(pool: &sqlx::PgPool, opts: Options) -> Result<Vec<OrgReport>, sqlx::Error> {
    let orgs: Vec<(Uuid, serde_json::Value)> = {
        let mut tx = maintenance(pool).await?;
        let rows = sqlx::query_as("SELECT id, settings FROM app.organizations ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows
    };
    let mut out = Vec::with_capacity(orgs.len());
    for (org_id, settings) in orgs {
        out.push(run_org(pool, org_id, months(&settings), opts).await?);
    }
    Ok(out)
}

async fn run_org(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    months: u8,
    opts: Options,
) -> Result<OrgReport, sqlx::Error> {
    let cutoff = cutoff(opts.now, months);
    let purge_before = opts.now - time::Duration::days(opts.purge_after_days);
    let mut report = OrgReport {
        org_id,
        months,
        cutoff,
        anonymised: 0,
        purged: 0,
        lead_ids: Vec::new(),
        audit_rows_purged: 0,
    };
    let audit_before = self::cutoff(opts.now, opts.audit_months);
    if opts.dry_run {
        let mut tx = maintenance(pool).await?;
        let row = sqlx::query(&format!(
            "SELECT count(*) AS n,
                    (array_agg(l.id ORDER BY l.id))[1:{DRY_RUN_IDS}] AS ids
             FROM app.leads l WHERE {EXPIRED}"
        ))
        .bind(org_id)
        .bind(cutoff)
        .fetch_one(&mut *tx)
        .await?;
        report.anonymised = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
        report.lead_ids = row
            .try_get::<Option<Vec<Uuid>>, _>("ids")?
            .unwrap_or_default();
        report.purged = u64::try_from(
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM app.leads WHERE org_id = $1 AND anonymized_at < $2",
            )
            .bind(org_id)
            .bind(purge_before)
            .fetch_one(&mut *tx)
            .await?,
        )
        .unwrap_or(0);
        report.audit_rows_purged =
            audit::purge_before(&mut tx, org_id, audit_before, opts.now, true).await?;
        tx.commit().await?;
        return Ok(report);
    }
    loop {
        let done = anonymise_batch(pool, org_id, cutoff, opts).await?;
        report.anonymised += done;
        if done < u64::try_from(opts.batch_size).unwrap_or(u64::MAX) {
            break;
        }
    }
    loop {
        let done = purge_batch(pool, org_id, purge_before, opts).await?;
        report.purged += done;
        if done < u64::try_from(opts.batch_size).unwrap_or(u64::MAX) {
            break;
        }
    }
    // Last, so this run's own rows are counted among those kept.
    {
        let mut tx = maintenance(pool).await?;
        report.audit_rows_purged =
            audit::purge_before(&mut tx, org_id, audit_before, opts.now, false).await?;
        tx.commit().await?;
    }
    if report.audit_rows_purged > 0 {
        metrics::counter!("retention_audit_rows_purged_total").increment(report.audit_rows_purged);
    }
    if report.anonymised > 0 || report.purged > 0 {
        metrics::counter!("retention_leads_anonymised_total").increment(report.anonymised);
        metrics::counter!("retention_leads_purged_total").increment(report.purged);
        tracing::info!(target: "leadgen::retention", %org_id, anonymised = report.anonymised,
            purged = report.purged, "retention run");
    }
    Ok(report)
}

/// Removes the record of sign-ins (sessions, with their address and browser) that ended before
/// the audit period (sessions that expired, or were revoked, before it began) and the record of
/// lead reads older than it. How many rows (dry: would be).
pub async fn purge_activity_records(
    pool: &sqlx::PgPool,
    opts: Options,
) -> Result<(u64, u64), sqlx::Error> {
    let before = cutoff(opts.now, opts.audit_months);
    let mut tx = maintenance(pool).await?;
    let n = if opts.dry_run {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM app.sessions
             WHERE not_after < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(before)
        .fetch_one(&mut *tx)
        .await
        .map(|n| u64::try_from(n).unwrap_or(0))?
    } else {
        sqlx::query(
            "DELETE FROM app.sessions WHERE not_after < $1 OR (revoked_at IS NOT NULL AND revoked_at < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    // Who read which lead data: kept as long as the audit trail.
    let reads = if opts.dry_run {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM app.lead_reads WHERE at < $1")
            .bind(before)
            .fetch_one(&mut *tx)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))?
    } else {
        sqlx::query("DELETE FROM app.lead_reads WHERE at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    };
    tx.commit().await?;
    Ok((n, reads))
}

/// `now` minus `months` calendar months (the day clamped to the shorter month's end).
#[must_use]
pub fn cutoff(now: OffsetDateTime, months: u8) -> OffsetDateTime {
    let total = i32::from(now.month() as u8) - 1 - i32::from(months);
    let year = now.year() + total.div_euclid(12);
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let day = now.day().min(month.length(year));
    now.replace_day(1)
        .and_then(|d| d.replace_year(year))
        .and_then(|d| d.replace_month(month))
        .and_then(|d| d.replace_day(day))
        .unwrap_or(now)
}

async fn anonymise_batch(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    cutoff: OffsetDateTime,
    opts: Options,
) -> Result<u64, sqlx::Error> {
    let mut tx = maintenance(pool).await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "WITH batch AS (
             SELECT l.id FROM app.leads l WHERE {EXPIRED}
             ORDER BY l.id LIMIT $3 FOR UPDATE SKIP LOCKED)
         UPDATE app.leads l
         SET first_name = NULL, last_name = NULL, title = NULL, department = NULL,
             email_ct = NULL, email_bidx = NULL, phone_ct = NULL, linkedin_url = NULL,
             city = NULL, tags = '{{}}', custom = '{{}}', anonymized_at = $4
         FROM batch WHERE l.org_id = $1 AND l.id = batch.id
         RETURNING l.id"
    ))
    .bind(org_id)
    .bind(cutoff)
    .bind(opts.batch_size)
    .bind(opts.now)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    sqlx::query("DELETE FROM app.lead_notes WHERE org_id = $1 AND lead_id = ANY($2)")
        .bind(org_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE app.lead_activities SET summary = 'Removed by the retention policy'
         WHERE org_id = $1 AND lead_id = ANY($2)",
    )
    .bind(org_id)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE app.consent_records SET ip = NULL, user_agent = NULL
         WHERE org_id = $1 AND lead_id = ANY($2)",
    )
    .bind(org_id)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    audit::record_system(
        &mut tx,
        org_id,
        opts.now,
        Entry {
            action: "retention.anonymised",
            target: None,
            before: None,
            after: Some(serde_json::json!({
                "by": "retention", "leads": ids.len(), "cutoff": cutoff.unix_timestamp(),
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}

async fn purge_batch(
    pool: &sqlx::PgPool,
    org_id: Uuid,
    purge_before: OffsetDateTime,
    opts: Options,
) -> Result<u64, sqlx::Error> {
    let mut tx = maintenance(pool).await?;
    let n = sqlx::query(
        "DELETE FROM app.leads l USING (
             SELECT id FROM app.leads WHERE org_id = $1 AND anonymized_at < $2
             ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) batch
         WHERE l.org_id = $1 AND l.id = batch.id",
    )
    .bind(org_id)
    .bind(purge_before)
    .bind(opts.batch_size)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n > 0 {
        audit::record_system(
            &mut tx,
            org_id,
            opts.now,
            Entry {
                action: "retention.purged",
                target: None,
                before: None,
                after: Some(serde_json::json!({ "by": "retention", "leads": n })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_cutoff_is_calendar_months_back() {
        let at = datetime!(2026-12-03 10:00 UTC);
        assert_eq!(cutoff(at, 24), datetime!(2024-12-03 10:00 UTC));
        assert_eq!(cutoff(at, 12), datetime!(2025-12-03 10:00 UTC));
        assert_eq!(cutoff(at, 11), datetime!(2026-01-03 10:00 UTC));
        assert_eq!(cutoff(at, 12 + 11), datetime!(2025-01-03 10:00 UTC));
        // The 31st, back to a shorter month.
        assert_eq!(
            cutoff(datetime!(2026-03-31 00:00 UTC), 1),
            datetime!(2026-02-28 00:00 UTC)
        );
        assert_eq!(
            cutoff(datetime!(2028-03-31 00:00 UTC), 1),
            datetime!(2028-02-29 00:00 UTC)
        );
    }

    #[test]
    fn the_period_is_one_to_twenty_four_months() {
        use serde_json::json;
        assert_eq!(months(&json!({})), 24);
        assert_eq!(months(&json!({ "retention_months": 6 })), 6);
        assert_eq!(months(&json!({ "retention_months": 36 })), 24);
        assert_eq!(months(&json!({ "retention_months": 0 })), 24);
    }
}
