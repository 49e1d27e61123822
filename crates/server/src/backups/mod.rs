//! Backups and restore proofs.
//!
//! - [`engine`] drives pgBackRest (full and incremental backups, continuous WAL archiving,
//!   an AES-256 repository, retention, checksums).
//! - [`run`] takes a backup and then its *manifest*: the row count of every table, taken while
//!   writers pause, committed in one transaction whose id is annotated on the backup. Recovery
//!   to that transaction reproduces exactly those counts, which is what [`restore::verify`]
//!   checks.
//! - [`restore`] restores into a scratch cluster and proves it, or restores to a point in time.

pub mod engine;
pub mod files;
pub mod restore;

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgPool;

pub use engine::{BackupError, BackupSet, Engine, Kind, Target};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::embedded::EmbeddedPostgres;

/// The embedded cluster as this configuration runs it: with WAL archiving into the repository
/// when backups are enabled.
///
/// # Errors
/// The cluster's programs, or pgBackRest when backups are enabled, are missing.
pub fn embedded_postgres(config: &Config) -> anyhow::Result<EmbeddedPostgres> {
    let pg = EmbeddedPostgres::new(&config.data_dir, &config.database.postgres_bin_dir)?;
    if !config.backup.enabled {
        return Ok(pg);
    }
    let engine = Engine::for_config(config)?;
    Ok(pg.with_settings(engine.archive_settings(config.backup.archive_timeout_secs)))
}

/// What one `leadgen backup run` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub set: BackupSet,
    /// The data folder's files recorded with it.
    pub files: files::Snapshot,
    pub manifest_xid: u32,
    pub tables: usize,
    pub rows: i64,
    pub seconds: f64,
}

/// Takes a backup of `kind`, then its manifest, and records both in `app.backup_runs`. A failed
/// backup is recorded too (the `backup-late` alert and the operators see it).
///
/// # Errors
/// pgBackRest's, or the database's.
pub async fn run(
    config: &Config,
    engine: &Engine,
    pool: &PgPool,
    kind: Kind,
    clock: &SharedClock,
) -> Result<RunReport, BackupError> {
    let started = std::time::Instant::now();
    let id: i64 = sqlx::query_scalar!(
        "INSERT INTO app.backup_runs (kind, started_at) VALUES ($1, $2) RETURNING id",
        kind.as_str(),
        clock.now()
    )
    .fetch_one(pool)
    .await
    .map_err(db)?;
    let result = async {
        engine.ensure_stanza().await?;
        let set = engine.backup(kind).await?;
        let (xid, counts) = manifest(pool, id, &set, clock).await?;
        wait_archived(pool).await?;
        engine.annotate(&set.label, xid).await?;
        let snapshot = files::snapshot(config, &set.label)?;
        // pgBackRest expired old backups with this one; their files go too.
        let kept: Vec<String> = engine.sets().await?.into_iter().map(|s| s.label).collect();
        files::expire(config, &kept)?;
        Ok::<_, BackupError>((set, xid, counts, snapshot))
    }
    .await;
    match result {
        Ok((set, xid, counts, files)) => Ok(RunReport {
            files,
            manifest_xid: xid,
            tables: counts.len(),
            rows: counts.values().sum(),
            set,
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(e) => {
            let message: String = e.to_string().chars().take(2000).collect();
            let recorded = sqlx::query!(
                "UPDATE app.backup_runs SET finished_at = $2, ok = false, error = $3 WHERE id = $1",
                id,
                clock.now(),
                message
            )
            .execute(pool)
            .await;
            if let Err(db_error) = recorded {
                tracing::warn!(error = %db_error, "recording a failed backup");
            }
            Err(e)
        }
    }
}

fn db(e: sqlx::Error) -> BackupError {
    BackupError::Other(format!("database: {e}"))
}

/// Every table whose rows a manifest counts: all but the backup bookkeeping itself.
async fn counted_tables(conn: &mut sqlx::PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_%'
           AND NOT (n.nspname = 'app' AND c.relname IN ('backup_runs', 'restore_proofs'))
         ORDER BY 1",
    )
    .fetch_all(conn)
    .await
}

/// Row counts of the given tables in one statement (one snapshot).
async fn count_rows(
    conn: &mut sqlx::PgConnection,
    tables: &[String],
) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    if tables.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Names come from the catalogue, already quoted by format('%I'); the labels are literals.
    let sql = tables
        .iter()
        .map(|t| {
            format!(
                "SELECT '{}'::text, count(*) FROM {t}",
                t.replace('\'', "''")
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql).fetch_all(conn).await?;
    Ok(rows.into_iter().collect())
}

/// Counts every table while writers wait (SHARE locks), and commits the counts with the run in
/// one transaction: recovery that stops just after it sees exactly these rows.
async fn manifest(
    pool: &PgPool,
    id: i64,
    set: &BackupSet,
    clock: &SharedClock,
) -> Result<(u32, BTreeMap<String, i64>), BackupError> {
    let mut last = None;
    for _ in 0..3 {
        match try_manifest(pool, id, set, clock).await {
            Ok(done) => return Ok(done),
            // A lock wait too long or a deadlock with a writer: try again.
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| BackupError::Other("manifest".into()), db))
}

async fn try_manifest(
    pool: &PgPool,
    id: i64,
    set: &BackupSet,
    clock: &SharedClock,
) -> Result<(u32, BTreeMap<String, i64>), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *tx)
        .await?;
    let tables = counted_tables(&mut tx).await?;
    if !tables.is_empty() {
        sqlx::query(&format!("LOCK TABLE {} IN SHARE MODE", tables.join(", ")))
            .execute(&mut *tx)
            .await?;
    }
    let counts = count_rows(&mut tx, &tables).await?;
    let xid: i64 = sqlx::query_scalar!("SELECT txid_current() AS \"x!\"")
        .fetch_one(&mut *tx)
        .await?;
    let counts_json = serde_json::to_value(&counts).unwrap_or_default();
    sqlx::query!(
        "UPDATE app.backup_runs
         SET finished_at = $2, ok = true, label = $3, manifest_xid = $4, counts = $5,
             size_bytes = $6
         WHERE id = $1",
        id,
        clock.now(),
        set.label,
        xid,
        counts_json,
        i64::try_from(set.repo_delta).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Recovery targets take the 32-bit transaction id (the epoch is implied).
    Ok(((xid & 0xffff_ffff) as u32, counts))
}

/// Switches to a new WAL segment and waits until the one holding the manifest is archived, so
/// the backup can be restored to it at once.
async fn wait_archived(pool: &PgPool) -> Result<(), BackupError> {
    let segment: String =
        sqlx::query_scalar!("SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS \"s!\"")
            .fetch_one(pool)
            .await
            .map_err(db)?;
    sqlx::query("SELECT pg_switch_wal()")
        .execute(pool)
        .await
        .map_err(db)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (archived, failed): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT last_archived_wal::text, last_failed_wal::text FROM pg_stat_archiver",
        )
        .fetch_one(pool)
        .await
        .map_err(db)?;
        if archived.as_deref().is_some_and(|a| a >= segment.as_str()) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(BackupError::Other(format!(
                "WAL segment {segment} was not archived within 2 minutes (last archived: {}, last \
                 failed: {}); check the cluster's archive_command and log",
                archived.unwrap_or_default(),
                failed.unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A backup run as recorded in `app.backup_runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedRun {
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    pub ok: Option<bool>,
    pub label: Option<String>,
    pub error: Option<String>,
}

/// The last runs, newest first.
///
/// # Errors
/// The database's.
pub async fn recorded_runs(pool: &PgPool, limit: i64) -> Result<Vec<RecordedRun>, BackupError> {
    sqlx::query_as!(
        RecordedRun,
        "SELECT kind, started_at, ok, label, error FROM app.backup_runs
         ORDER BY started_at DESC LIMIT $1",
        limit
    )
    .fetch_all(pool)
    .await
    .map_err(db)
}

/// Where backups stand, for the server's metrics and alert.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub last_full: Option<time::OffsetDateTime>,
    pub last_any: Option<time::OffsetDateTime>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
    pub last_proof: Option<time::OffsetDateTime>,
    pub last_proof_ok: Option<bool>,
}

/// Reads the status through the definer function the server's role may call.
///
/// # Errors
/// The database's.
pub async fn status(pool: &PgPool) -> Result<Status, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT last_full, last_incr, last_ok, last_error, last_proof, last_proof_ok
         FROM app.backup_status()"
    )
    .fetch_one(pool)
    .await?;
    Ok(Status {
        last_full: row.last_full,
        last_any: row.last_incr,
        last_ok: row.last_ok,
        last_error: row.last_error,
        last_proof: row.last_proof,
        last_proof_ok: row.last_proof_ok,
    })
}

/// Checks backup status every `backup.check_secs`: exports the metrics and raises the
/// `backup-late` alert once for each new problem (and again when it changes).
pub async fn watch(
    config: std::sync::Arc<Config>,
    pool: PgPool,
    clock: SharedClock,
    perimeter: crate::perimeter::Perimeter,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(config.backup.check_secs));
    let mut announced: Option<String> = None;
    loop {
        tick.tick().await;
        let status = match status(&pool).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading backup status failed; retrying at the next check");
                continue;
            }
        };
        let now = clock.now();
        let age = |t: Option<time::OffsetDateTime>| t.map_or(-1.0, |t| (now - t).as_seconds_f64());
        metrics::gauge!("backup_last_full_age_seconds").set(age(status.last_full));
        metrics::gauge!("backup_last_age_seconds").set(age(status.last_any));
        metrics::gauge!("backup_last_ok").set(match status.last_ok {
            Some(true) => 1.0,
            Some(false) => 0.0,
            None => -1.0,
        });
        metrics::gauge!("restore_proof_last_age_seconds").set(age(status.last_proof));
        metrics::gauge!("restore_proof_last_ok").set(match status.last_proof_ok {
            Some(true) => 1.0,
            Some(false) => 0.0,
            None => -1.0,
        });
        let problem = late(&config, &status, now);
        if problem.is_some() && problem != announced {
            crate::perimeter::announce(
                &perimeter,
                "backup-late",
                crate::perimeter::alerts::Event::BackupProblem,
                problem.clone().unwrap_or_default(),
            );
        }
        announced = problem;
    }
}

/// Why backups need attention, if they do: the last run failed, or the last full (or any)
/// backup is older than allowed. `None` when all is well or backups are not enabled.
#[must_use]
pub fn late(config: &Config, status: &Status, now: time::OffsetDateTime) -> Option<String> {
    if !config.backup.enabled {
        return None;
    }
    if status.last_ok == Some(false) {
        return Some(format!(
            "the last backup failed: {}",
            status.last_error.as_deref().unwrap_or("no detail")
        ));
    }
    let hours = |h: u32| time::Duration::hours(i64::from(h));
    match status.last_full {
        None => return Some("no full backup has been taken yet".into()),
        Some(t) if now - t > hours(config.backup.max_full_age_hours) => {
            return Some(format!("the last full backup is from {t}"));
        }
        Some(_) => {}
    }
    if let Some(t) = status.last_any
        && now - t > hours(config.backup.max_incr_age_hours)
    {
        return Some(format!("the last backup is from {t}"));
    }
    if status.last_proof_ok == Some(false) {
        return Some("the last restore proof failed; see `leadgen restore --verify`".into());
    }
    let max_proof_age = time::Duration::days(i64::from(config.backup.proof_max_age_days));
    match status.last_proof {
        None => Some("no restore proof has been run yet".into()),
        Some(t) if now - t > max_proof_age => Some(format!("the last restore proof is from {t}")),
        Some(_) => None,
    }
}
