//! Driving pgBackRest: its configuration for the embedded cluster, and its commands.
//!
//! LeadGen does not reimplement a backup engine: pgBackRest already does block-level incremental
//! backups, continuous WAL archiving, AES-256 repository encryption, retention and checksums, and
//! is what PostgreSQL operators trust. LeadGen writes its configuration, runs it as the cluster's
//! OS user, and reads its JSON.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::process::Command;

use crate::config::Config;
use crate::db::embedded::EmbeddedPostgres;

/// The stanza of the embedded cluster.
pub const STANZA: &str = "leadgen";
/// What the repository passphrase is derived from the master key for.
const CIPHER_LABEL: &str = "pgbackrest repository v1";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "backups are not enabled: set backup.enabled = true (and install Debian's `pgbackrest`)"
    )]
    Disabled,
    #[error(
        "pgbackrest not found ({0}); install it with `apt-get install pgbackrest` or set backup.pgbackrest_bin"
    )]
    MissingProgram(String),
    #[error("pgbackrest {command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("the backup repository is damaged: {0}")]
    Damaged(String),
    #[error("{0}")]
    Other(String),
}

fn other(e: impl std::fmt::Display) -> BackupError {
    BackupError::Other(e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Full,
    Incr,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incr => "incr",
        }
    }
}

/// Where and how recovery stops.
#[derive(Debug, Clone)]
pub enum Target {
    /// Just after this transaction committed (a backup's manifest).
    Xid(u32),
    /// The last transaction committed at or before this time.
    Time(time::OffsetDateTime),
}

/// One backup in the repository, as `pgbackrest info` describes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSet {
    pub label: String,
    pub kind: String,
    pub started: i64,
    pub stopped: i64,
    /// Bytes in the repository for this backup alone (compressed, encrypted).
    pub repo_delta: u64,
    /// Bytes of the database it copies.
    pub size: u64,
    pub manifest_xid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Engine {
    program: PathBuf,
    config_file: PathBuf,
    stanza: String,
    run_as: Option<(u32, u32)>,
    /// Working folder for the program (readable by the user it runs as).
    work_dir: PathBuf,
    /// The embedded cluster's layout, when it is the one backed up.
    embedded: Option<EmbeddedPostgres>,
}

impl Engine {
    /// The engine for this installation. For the embedded cluster this writes pgBackRest's
    /// configuration (mode 0600, owned by the cluster's OS user) with the repository passphrase
    /// derived from the master key.
    ///
    /// # Errors
    /// Backups not enabled, pgBackRest missing, or the files cannot be written.
    pub fn for_config(config: &Config) -> Result<Self, BackupError> {
        if !config.backup.enabled {
            return Err(BackupError::Disabled);
        }
        let program = find_program(&config.backup.pgbackrest_bin)?;
        if config.backup.external() {
            return Ok(Self {
                program,
                config_file: config.backup.external_config.clone(),
                stanza: config.backup.external_stanza.clone(),
                run_as: None,
                work_dir: std::env::temp_dir(),
                embedded: None,
            });
        }
        let pg = EmbeddedPostgres::new(&config.data_dir, &config.database.postgres_bin_dir)
            .map_err(other)?;
        let data_dir = std::path::absolute(&config.data_dir).map_err(other)?;
        let root = data_dir.join("backups");
        let repo = std::path::absolute(config.backup_repo()).map_err(other)?;
        let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)
            .map_err(|e| BackupError::Other(format!("{e:#}")))?;
        let engine = Self {
            program,
            config_file: root.join("pgbackrest.conf"),
            stanza: STANZA.into(),
            run_as: pg.run_as(),
            work_dir: root.clone(),
            embedded: Some(pg.clone()),
        };
        for dir in [&root, &repo, &root.join("log"), &root.join("lock")] {
            engine.own_dir(dir)?;
        }
        for path in [&root, &repo, &pg.cluster_dir().to_path_buf()] {
            if path.to_string_lossy().contains(['\'', '\n', '"']) {
                return Err(BackupError::Other(format!(
                    "{}: a quote or newline in the path cannot be passed to PostgreSQL's archive_command",
                    path.display()
                )));
            }
        }
        let text = format!(
            "# Written by LeadGen at every start; edits are lost (see backup.* in LeadGen's configuration).\n\
             [global]\n\
             repo1-path={repo}\n\
             repo1-cipher-type=aes-256-cbc\n\
             repo1-cipher-pass={pass}\n\
             repo1-retention-full-type=count\n\
             repo1-retention-full={retention}\n\
             log-path={log}\n\
             lock-path={lock}\n\
             log-level-console=warn\n\
             log-level-file=info\n\
             start-fast=y\n\
             compress-type=lz4\n\
             process-max=2\n\
             \n\
             [{STANZA}]\n\
             pg1-path={cluster}\n\
             pg1-socket-path={socket}\n\
             pg1-user={user}\n",
            repo = repo.display(),
            pass = master.derive_hex(CIPHER_LABEL),
            retention = config.backup.retention_full,
            log = root.join("log").display(),
            lock = root.join("lock").display(),
            cluster = pg.cluster_dir().display(),
            socket = pg.socket_dir().display(),
            user = crate::db::embedded::BOOTSTRAP_ROLE,
        );
        crate::secrets::write_private(&engine.config_file, text.as_bytes()).map_err(other)?;
        engine.chown(&engine.config_file)?;
        Ok(engine)
    }

    /// The server settings that make the embedded cluster archive its WAL into the repository.
    #[must_use]
    pub fn archive_settings(&self, archive_timeout_secs: u32) -> Vec<String> {
        vec![
            "wal_level=replica".into(),
            "archive_mode=on".into(),
            format!(
                "archive_command='{} --config={} --stanza={} archive-push %p'",
                self.program.display(),
                self.config_file.display(),
                self.stanza
            ),
            format!("archive_timeout={archive_timeout_secs}"),
        ]
    }

    #[must_use]
    pub fn embedded(&self) -> Option<&EmbeddedPostgres> {
        self.embedded.as_ref()
    }

    fn own_dir(&self, dir: &Path) -> Result<(), BackupError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).map_err(|e| other(format!("{}: {e}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(other)?;
        self.chown(dir)
    }

    fn chown(&self, path: &Path) -> Result<(), BackupError> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| other(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Hands a folder (and what is in it) to the user pgBackRest runs as.
    pub(crate) fn give(&self, dir: &Path) -> Result<(), BackupError> {
        self.own_dir(dir)
    }

    /// Runs pgBackRest with the stanza and configuration; returns its standard output.
    async fn run(&self, args: &[String]) -> Result<String, BackupError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg(format!("--config={}", self.config_file.display()))
            .arg(format!("--stanza={}", self.stanza))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .current_dir(&self.work_dir)
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGDATA")
            .env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| BackupError::MissingProgram(format!("{}: {e}", self.program.display())))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let detail = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .take(6)
            .collect::<Vec<_>>()
            .join(" | ");
        Err(BackupError::Command {
            command: args
                .iter()
                .find(|a| !a.starts_with("--"))
                .cloned()
                .unwrap_or_default(),
            detail,
        })
    }

    /// Creates the stanza (repository and archive layout) when missing; harmless when present.
    ///
    /// # Errors
    /// pgBackRest's own, e.g. the cluster is not running or the repository belongs to another.
    pub async fn ensure_stanza(&self) -> Result<(), BackupError> {
        self.run(&["stanza-create".into()]).await.map(|_| ())
    }

    /// Takes a backup and returns its label.
    ///
    /// # Errors
    /// pgBackRest's.
    pub async fn backup(&self, kind: Kind) -> Result<BackupSet, BackupError> {
        self.run(&[format!("--type={}", kind.as_str()), "backup".into()])
            .await?;
        self.sets()
            .await?
            .pop()
            .ok_or_else(|| other("pgbackrest reported success but lists no backup"))
    }

    /// Records the manifest's transaction on the backup, so a restore finds it in the
    /// repository alone.
    ///
    /// # Errors
    /// pgBackRest's.
    pub async fn annotate(&self, label: &str, xid: u32) -> Result<(), BackupError> {
        self.run(&[
            format!("--set={label}"),
            format!("--annotation=leadgen-xid={xid}"),
            "annotate".into(),
        ])
        .await
        .map(|_| ())
    }

    /// The backups in the repository, oldest first.
    ///
    /// # Errors
    /// pgBackRest's, or output it does not recognise.
    pub async fn sets(&self) -> Result<Vec<BackupSet>, BackupError> {
        let out = self.run(&["--output=json".into(), "info".into()]).await?;
        parse_info(&out)
    }

    /// Checks every file of the repository (or of one backup and the WAL it needs) against its
    /// checksum. Returns what was checked; a damaged repository is an error naming the files.
    ///
    /// # Errors
    /// [`BackupError::Damaged`] naming each bad file, or pgBackRest's own failure.
    pub async fn verify(&self, set: Option<&str>) -> Result<String, BackupError> {
        let mut args = vec!["--log-level-console=info".to_string(), "--verbose".into()];
        if let Some(set) = set {
            args.push(format!("--set={set}"));
        }
        args.push("verify".into());
        let out = self.run(&args).await?;
        let problems = verify_problems(&out);
        if problems.is_empty() && !out.contains("status: error") {
            let summary = out
                .lines()
                .filter(|l| l.contains("total files checked") || l.contains("total WAL checked"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("; ");
            return Ok(summary);
        }
        if problems.is_empty() {
            return Err(BackupError::Damaged(
                out.lines()
                    .filter(|l| {
                        l.contains("status:") || l.contains("invalid") || l.contains("missing")
                    })
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        Err(BackupError::Damaged(problems.join("; ")))
    }

    /// Restores a backup into `cluster_dir` (which must not hold a cluster), stopping at
    /// `target`, with archiving off so the copy never writes into the repository.
    ///
    /// # Errors
    /// pgBackRest's.
    pub async fn restore(
        &self,
        cluster_dir: &Path,
        set: Option<&str>,
        target: &Target,
    ) -> Result<(), BackupError> {
        let mut args = vec![format!("--pg1-path={}", cluster_dir.display())];
        if let Some(set) = set {
            args.push(format!("--set={set}"));
        }
        match target {
            Target::Xid(xid) => {
                args.push("--type=xid".into());
                args.push(format!("--target={xid}"));
            }
            Target::Time(at) => {
                let at = at
                    .to_offset(time::UtcOffset::UTC)
                    .format(&time::format_description::well_known::Rfc3339)
                    .map_err(other)?;
                args.push("--type=time".into());
                // PostgreSQL wants "YYYY-MM-DD HH:MM:SS.ffffff+00".
                args.push(format!(
                    "--target={}",
                    at.replace('T', " ").replace('Z', "+00")
                ));
            }
        }
        args.extend([
            "--target-action=promote".into(),
            "--archive-mode=off".into(),
            "--job-retry=0".into(),
            "restore".into(),
        ]);
        self.run(&args).await.map(|_| ())
    }
}

fn find_program(configured: &Path) -> Result<PathBuf, BackupError> {
    if !configured.as_os_str().is_empty() {
        return if configured.exists() {
            Ok(configured.to_path_buf())
        } else {
            Err(BackupError::MissingProgram(
                configured.display().to_string(),
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/local/bin".into()])
        .map(|d| d.join("pgbackrest"))
        .find(|p| p.exists())
        .ok_or_else(|| BackupError::MissingProgram("not on PATH".into()))
}

#[derive(Deserialize)]
struct InfoStanza {
    #[serde(default)]
    backup: Vec<InfoBackup>,
}

#[derive(Deserialize)]
struct InfoBackup {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    timestamp: InfoTimestamp,
    info: InfoSizes,
    #[serde(default)]
    annotation: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct InfoTimestamp {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct InfoSizes {
    size: u64,
    repository: InfoRepo,
}

#[derive(Deserialize)]
struct InfoRepo {
    delta: u64,
}

fn parse_info(json: &str) -> Result<Vec<BackupSet>, BackupError> {
    let stanzas: Vec<InfoStanza> = serde_json::from_str(json)
        .map_err(|e| other(format!("unexpected `pgbackrest info` output: {e}")))?;
    let mut sets: Vec<BackupSet> = stanzas
        .into_iter()
        .flat_map(|s| s.backup)
        .map(|b| BackupSet {
            manifest_xid: b
                .annotation
                .as_ref()
                .and_then(|a| a.get("leadgen-xid"))
                .and_then(|x| x.parse().ok()),
            label: b.label,
            kind: b.kind,
            started: b.timestamp.start,
            stopped: b.timestamp.stop,
            repo_delta: b.info.repository.delta,
            size: b.info.size,
        })
        .collect();
    sets.sort_by_key(|s| s.stopped);
    Ok(sets)
}

/// The files `pgbackrest verify --verbose` found bad, with what is wrong with each.
fn verify_problems(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (_, rest) = l.split_once("INFO: ").unwrap_or(("", l));
            for what in [
                "invalid checksum",
                "invalid size",
                "missing",
                "invalid result",
                "unable to open",
            ] {
                if let Some(file) = rest.strip_prefix(what) {
                    let file = file.trim().trim_matches('\'');
                    if !file.is_empty() && !file.contains(':') {
                        return Some(format!("{what}: {file}"));
                    }
                }
            }
            None
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_output_names_each_bad_file() {
        let out = "2026-12-03 19:42:33.552 P01   INFO: invalid checksum '20261203-194223F/pg_data/base/5/112.lz4'\n\
                   2026-12-03 19:42:33.695 P00   INFO: stanza: leadgen\n\
                   status: error\n\
                   missing: 0, checksum invalid: 1, size invalid: 0, other: 0\n";
        assert_eq!(
            verify_problems(out),
            vec!["invalid checksum: 20261203-194223F/pg_data/base/5/112.lz4"]
        );
    }

    #[test]
    fn info_lists_backups_oldest_first_with_their_manifest() {
        let json = r#"[{"backup":[
            {"label":"F_I","type":"incr","timestamp":{"start":20,"stop":30},
             "info":{"size":10,"repository":{"delta":3,"size":9}},"annotation":{"leadgen-xid":"812"}},
            {"label":"F","type":"full","timestamp":{"start":1,"stop":5},
             "info":{"size":10,"repository":{"delta":8,"size":8}}}]}]"#;
        let sets = parse_info(json).unwrap();
        assert_eq!(sets[0].label, "F");
        assert_eq!(sets[0].manifest_xid, None);
        assert_eq!(sets[1].manifest_xid, Some(812));
        assert_eq!(sets[1].repo_delta, 3);
    }
}
