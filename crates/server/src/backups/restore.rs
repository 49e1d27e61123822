//! Restores: the proof that a backup restores (`leadgen restore --verify`), and a point-in-time
//! restore into a folder (`leadgen restore --to TIME --into DIR`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::PgPool;

use super::engine::{BackupError, BackupSet, Engine, Target};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::embedded::{BOOTSTRAP_ROLE, DATABASE, EmbeddedPostgres};

/// One check of a restore proof.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// A restore proof's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Proof {
    pub ok: bool,
    pub label: String,
    pub manifest_xid: u32,
    pub port: u16,
    pub checks: Vec<Check>,
    pub seconds: f64,
}

impl Proof {
    /// The first failed check, for messages and alerts.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        self.checks
            .iter()
            .find(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
    }
}

/// The backup a proof restores: the newest with a manifest, or the newest whose manifest was
/// taken at or before `at`.
fn choose(
    sets: &[BackupSet],
    at: Option<time::OffsetDateTime>,
) -> Result<(String, u32), BackupError> {
    sets.iter()
        .rev()
        .filter(|s| at.is_none_or(|at| s.stopped <= at.unix_timestamp()))
        .find_map(|s| s.manifest_xid.map(|x| (s.label.clone(), x)))
        .ok_or_else(|| {
            BackupError::Other(match at {
                Some(at) => format!("no backup with a manifest was taken at or before {at}"),
                None => "no backup with a manifest in the repository; take one with `leadgen backup run`".into(),
            })
        })
}

/// `port` when nothing listens there, else one the system picks.
fn free_port(preferred: u16) -> Result<u16, BackupError> {
    if preferred != 0 && std::net::TcpListener::bind(("127.0.0.1", preferred)).is_ok() {
        return Ok(preferred);
    }
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| BackupError::Other(format!("finding a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BackupError::Other(e.to_string()))
}

/// A scratch folder beside the repository's working files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(config: &Config, engine: &Engine) -> Result<Self, BackupError> {
        let root = std::path::absolute(config.data_dir.join("backups"))
            .map_err(|e| BackupError::Other(e.to_string()))?;
        let dir = root.join(format!("restore-proof-{}", uuid::Uuid::new_v4().simple()));
        engine.give(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(error = %e, dir = %self.0.display(), "removing a scratch restore");
        }
    }
}

/// Restores the chosen backup into a scratch cluster on a free local port and checks it:
/// the repository's checksums for that backup, migrations current, every table's row count
/// against the manifest, the audit chains, a sample of encrypted fields against the key ring,
/// and the server's readiness check. The scratch cluster is stopped and removed whatever
/// happens. The proof is recorded in `live` (when given) for operators and the alert.
///
/// # Errors
/// Only when no proof could be attempted (no backup to prove, no port); a failed check is an
/// `Ok` proof with `ok: false`.
pub async fn verify(
    config: &Config,
    engine: &Engine,
    live: Option<&PgPool>,
    at: Option<time::OffsetDateTime>,
    clock: &SharedClock,
) -> Result<Proof, BackupError> {
    let started_at = clock.now();
    let started = std::time::Instant::now();
    let sets = engine.sets().await?;
    let (label, xid) = choose(&sets, at)?;
    let port = free_port(config.backup.verify_port)?;
    let mut proof = Proof {
        ok: false,
        label: label.clone(),
        manifest_xid: xid,
        port,
        checks: Vec::new(),
        seconds: 0.0,
    };
    let scratch = Scratch::new(config, engine)?;
    let pg = EmbeddedPostgres::new(&scratch.0, &config.database.postgres_bin_dir)
        .map_err(|e| BackupError::Other(e.to_string()))?
        .with_port(port);
    prove(config, engine, &pg, &label, xid, &mut proof.checks).await;
    if pg.running() {
        let _ = pg.stop().await;
    }
    drop(scratch);
    proof.ok = !proof.checks.is_empty() && proof.checks.iter().all(|c| c.ok);
    proof.seconds = started.elapsed().as_secs_f64();
    if let Some(live) = live {
        let report = serde_json::to_value(&proof).unwrap_or_default();
        let recorded = sqlx::query!(
            "INSERT INTO app.restore_proofs (started_at, finished_at, ok, label, report)
             VALUES ($1, $2, $3, $4, $5)",
            started_at,
            clock.now(),
            proof.ok,
            proof.label,
            report
        )
        .execute(live)
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "recording a restore proof");
        }
    }
    Ok(proof)
}

fn check(checks: &mut Vec<Check>, name: &'static str, result: Result<String, String>) -> bool {
    let ok = result.is_ok();
    checks.push(Check {
        name,
        ok,
        detail: result.unwrap_or_else(|e| e),
    });
    ok
}

async fn prove(
    config: &Config,
    engine: &Engine,
    pg: &EmbeddedPostgres,
    label: &str,
    xid: u32,
    checks: &mut Vec<Check>,
) {
    let verified = engine.verify(Some(label)).await.map_err(|e| e.to_string());
    if !check(checks, "repository checksums", verified) {
        return;
    }
    let files = super::files::verify(config, &[label.to_string()])
        .map(|n| format!("{n} data folder file(s) open and match their hashes"))
        .map_err(|e| e.to_string());
    if !check(checks, "data folder files", files) {
        return;
    }
    let restored = async {
        pg.prepare_empty().map_err(|e| e.to_string())?;
        engine
            .restore(pg.cluster_dir(), Some(label), &Target::Xid(xid))
            .await
            .map_err(|e| e.to_string())?;
        pg.start_existing().await.map_err(|e| e.to_string())?;
        Ok(format!("backup {label} recovered to transaction {xid}"))
    }
    .await;
    if !check(checks, "restore", restored) {
        return;
    }
    let pool = match connect_promoted(pg).await {
        Ok(pool) => pool,
        Err(e) => {
            check(checks, "recovery", Err(e));
            return;
        }
    };
    let migrations = crate::db::migrations_current(&pool).await;
    check(
        checks,
        "migrations current",
        match migrations {
            Ok(true) => Ok("every migration this binary knows is applied".into()),
            Ok(false) => Err("the restored database lacks migrations this binary has".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    check(checks, "row counts", compare_counts(&pool, label).await);
    check(checks, "audit chains", audit(&pool).await);
    check(
        checks,
        "encrypted fields",
        decrypt_sample(config, &pool).await,
    );
    check(checks, "readiness", readiness(pg).await);
    pool.close().await;
}

/// Waits until recovery has reached its target and promoted the cluster, then connects as the
/// bootstrap superuser.
async fn connect_promoted(pg: &EmbeddedPostgres) -> Result<PgPool, String> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&pg.url(BOOTSTRAP_ROLE, DATABASE))
        .await
        .map_err(|e| format!("connecting to the restored cluster: {e}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
        if !in_recovery {
            return Ok(pool);
        }
        if std::time::Instant::now() > deadline {
            return Err("the restored cluster was still recovering after 5 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn compare_counts(pool: &PgPool, label: &str) -> Result<String, String> {
    let manifest: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT counts FROM app.backup_runs WHERE label = $1 AND ok")
            .bind(label)
            .fetch_optional(pool)
            .await
            .map_err(|e| e.to_string())?
            .flatten();
    let Some(manifest) = manifest else {
        return Err(format!(
            "the restored database holds no manifest for {label}"
        ));
    };
    let expected: std::collections::BTreeMap<String, i64> =
        serde_json::from_value(manifest).map_err(|e| format!("unreadable manifest: {e}"))?;
    let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
    let tables = super::counted_tables(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let actual = super::count_rows(&mut conn, &tables)
        .await
        .map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    for (table, want) in &expected {
        match actual.get(table) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!("{table}: {want} in the manifest, {got} restored")),
            None => problems.push(format!("{table}: missing from the restored database")),
        }
    }
    for table in actual.keys().filter(|t| !expected.contains_key(*t)) {
        problems.push(format!("{table}: not in the manifest"));
    }
    if problems.is_empty() {
        Ok(format!(
            "{} tables, {} rows, as in the manifest",
            expected.len(),
            expected.values().sum::<i64>()
        ))
    } else {
        Err(problems.join("; "))
    }
}

async fn audit(pool: &PgPool) -> Result<String, String> {
    let report = crate::audit::verify(pool, None)
        .await
        .map_err(|e| e.to_string())?;
    match report.broken {
        None => Ok(format!(
            "{} chain(s), {} entries verify",
            report.organizations, report.rows
        )),
        Some(b) => Err(format!(
            "organization {}: entry {} (seq {}) {}",
            b.org_id, b.id, b.seq, b.reason
        )),
    }
}

async fn decrypt_sample(config: &Config, pool: &PgPool) -> Result<String, String> {
    use crate::leads::keys::{FieldKeys, KeyStore, lead_place};
    let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)
        .map_err(|e| format!("{e:#}"))?;
    let keys = FieldKeys::load(pool, master, KeyStore::new(config.org_key_dir()))
        .await
        .map_err(|e| format!("loading the key ring: {e:#}"))?;
    let rows: Vec<(uuid::Uuid, uuid::Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT id, org_id, email_ct FROM app.leads WHERE email_ct IS NOT NULL
         ORDER BY random() LIMIT $1",
    )
    .bind(i64::from(config.backup.verify_sample))
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?;
    let mut failed = Vec::new();
    for (id, org, ct) in &rows {
        if let Err(e) = keys.decrypt(ct, &lead_place("email", *org, *id)).await {
            failed.push(format!("lead {id}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(format!("{} sampled email(s) decrypt", rows.len()))
    } else {
        Err(format!(
            "{} of {} sampled email(s) do not decrypt: {}",
            failed.len(),
            rows.len(),
            failed.into_iter().take(5).collect::<Vec<_>>().join("; ")
        ))
    }
}

/// What the server's `/readyz` checks, as the server's own role: it can connect (and is
/// neither superuser nor exempt from row-level security) and every migration is applied.
async fn readiness(pg: &EmbeddedPostgres) -> Result<String, String> {
    let pool = crate::db::connect_app(&pg.url("leadgen_app", DATABASE), 1)
        .await
        .map_err(|e| e.to_string())?;
    let current = crate::db::migrations_current(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    if current {
        Ok("ready: the server's role connects and migrations are current".into())
    } else {
        Err("not ready: migrations missing".into())
    }
}

/// What a point-in-time restore did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub into: PathBuf,
    pub label: String,
    /// The data folder's files written beside the cluster.
    pub files: usize,
}

/// Restores the cluster as it was at `at` into `into` (a new or empty folder), ready to be
/// started with `pg_ctl -D <into>/postgres start` or served with `--data-dir`-style layout.
///
/// # Errors
/// `into` holds something, no backup precedes `at`, or pgBackRest's own.
pub async fn to_time(
    config: &Config,
    engine: &Engine,
    at: time::OffsetDateTime,
    into: &Path,
) -> Result<Restored, BackupError> {
    if into.exists()
        && std::fs::read_dir(into)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(BackupError::Other(format!(
            "{} is not empty; restore into a new folder",
            into.display()
        )));
    }
    let sets = engine.sets().await?;
    let label = sets
        .iter()
        .rev()
        .find(|s| s.stopped <= at.unix_timestamp())
        .map(|s| s.label.clone())
        .ok_or_else(|| BackupError::Other(format!("no backup finished at or before {at}")))?;
    let pg = EmbeddedPostgres::new(into, &config.database.postgres_bin_dir)
        .map_err(|e| BackupError::Other(e.to_string()))?;
    pg.prepare_empty()
        .map_err(|e| BackupError::Other(e.to_string()))?;
    engine
        .restore(pg.cluster_dir(), Some(&label), &Target::Time(at))
        .await?;
    // The files as the backup before that moment held them (files have no log to replay).
    let files = super::files::restore(config, &label, into)?;
    Ok(Restored {
        into: pg.cluster_dir().to_path_buf(),
        label,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(label: &str, stopped: i64, xid: Option<u32>) -> BackupSet {
        BackupSet {
            label: label.into(),
            kind: "full".into(),
            started: stopped - 1,
            stopped,
            repo_delta: 0,
            size: 0,
            manifest_xid: xid,
        }
    }

    #[test]
    fn a_proof_takes_the_newest_backup_with_a_manifest_at_or_before_the_time() {
        let sets = [
            set("a", 100, Some(1)),
            set("b", 200, Some(2)),
            set("c", 300, None),
        ];
        assert_eq!(choose(&sets, None).unwrap(), ("b".into(), 2));
        let at = time::OffsetDateTime::from_unix_timestamp(150).unwrap();
        assert_eq!(choose(&sets, Some(at)).unwrap(), ("a".into(), 1));
        let early = time::OffsetDateTime::from_unix_timestamp(50).unwrap();
        assert!(choose(&sets, Some(early)).is_err());
    }

    #[test]
    fn a_taken_port_gives_way_to_a_free_one() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let chosen = free_port(port).unwrap();
        assert_ne!(chosen, port);
    }
}
