//! The embedded default: a private PostgreSQL cluster inside the data folder.
//!
//! With no `database.url`, `leadgen serve` runs the system's PostgreSQL server programs against
//! `<data_dir>/postgres`, listening only on a Unix socket in `<data_dir>/run` (no TCP at all), and
//! stops it on shutdown. `initdb` and `postgres` refuse to run as root, so when LeadGen runs as root
//! they run as the unprivileged `postgres` OS user, which owns the cluster folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// The OS user the cluster runs as when LeadGen itself is root.
const CLUSTER_OS_USER: &str = "postgres";
/// Superuser created inside the private cluster; only reachable through the private socket.
pub const BOOTSTRAP_ROLE: &str = "postgres";
pub const DATABASE: &str = "leadgen";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server programs not found in {searched}. Install them with `apt-get install postgresql` \
         (Debian package `postgresql`), or set database.url to an existing server"
    )]
    MissingBinaries { searched: String },
    #[error(
        "LeadGen runs as root, and PostgreSQL refuses to; the `{0}` OS user it would run the cluster as does not exist (installing Debian's `postgresql` package creates it)"
    )]
    NoClusterUser(&'static str),
    #[error(
        "the `postgres` OS user, which runs the embedded cluster, cannot reach {0}: a folder on the way is \
         not searchable by other users. Choose a --data-dir under a searchable folder (e.g. /var/lib/leadgen) or \
         allow it with `chmod o+x` on that folder"
    )]
    Unreachable(String),
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

#[derive(Debug, Clone)]
pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    cluster_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    run_as: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
    /// Extra server settings (`name=value`), e.g. WAL archiving for backups.
    settings: Vec<String>,
    /// A TCP port on 127.0.0.1 as well as the socket (restore proofs' scratch clusters).
    port: Option<u16>,
}

impl EmbeddedPostgres {
    /// Locates the programs and decides which OS user runs them; touches nothing yet.
    pub fn new(data_dir: &Path, bin_dir: &Path) -> Result<Self, EmbeddedError> {
        let bin_dir = if bin_dir.as_os_str().is_empty() {
            find_bin_dir()?
        } else {
            bin_dir.to_path_buf()
        };
        if !bin_dir.join("initdb").exists() || !bin_dir.join("pg_ctl").exists() {
            return Err(EmbeddedError::MissingBinaries {
                searched: bin_dir.display().to_string(),
            });
        }
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = nix::unistd::User::from_name(CLUSTER_OS_USER)
                .ok()
                .flatten()
                .ok_or(EmbeddedError::NoClusterUser(CLUSTER_OS_USER))?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        let data_dir =
            std::path::absolute(data_dir).map_err(|e| step("resolving the data folder", e))?;
        Ok(Self {
            bin_dir,
            cluster_dir: data_dir.join("postgres"),
            socket_dir: data_dir.join("run"),
            log_file: data_dir.join("postgres.log"),
            run_as,
            settings: Vec::new(),
            port: None,
        })
    }

    /// Starts the cluster with these settings (`name=value`) as well.
    #[must_use]
    pub fn with_settings(mut self, settings: Vec<String>) -> Self {
        self.settings = settings;
        self
    }

    /// Listens on 127.0.0.1:`port` as well as the socket (whose name carries the port).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The OS user and group the cluster's programs run as, when not LeadGen's own.
    #[must_use]
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.run_as.map(|(u, g)| (u.as_raw(), g.as_raw()))
    }

    /// The cluster's folder (`PGDATA`).
    #[must_use]
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    /// The folder of the PostgreSQL server programs.
    #[must_use]
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Creates the cluster's folders (owned by its OS user) without initialising anything, for a
    /// cluster that a restore is about to fill.
    pub fn prepare_empty(&self) -> Result<(), EmbeddedError> {
        self.prepare_dirs()
    }

    /// Starts a cluster that exists (restored, not initialised by us).
    pub async fn start_existing(&self) -> Result<(), EmbeddedError> {
        self.restart().await
    }

    /// Socket folder, for connection URLs (`host=` accepts a folder).
    #[must_use]
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// Initialises the cluster on first use and starts it; waits until it accepts connections.
    pub async fn start(&self) -> Result<(), EmbeddedError> {
        self.prepare_dirs()?;
        if !self.cluster_dir.join("PG_VERSION").exists() {
            self.run(
                "initdb",
                &[
                    "-D".as_ref(),
                    self.cluster_dir.as_os_str(),
                    "-U".as_ref(),
                    BOOTSTRAP_ROLE.as_ref(),
                    "--auth-local=trust".as_ref(),
                    "--auth-host=reject".as_ref(),
                    "--encoding=UTF8".as_ref(),
                    "--locale=C".as_ref(),
                ],
            )
            .await?;
        }
        self.pg_ctl_start().await
    }

    async fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let mut options = format!(
            "-c unix_socket_directories='{}' -c unix_socket_permissions=0700",
            self.socket_dir.display()
        );
        match self.port {
            Some(port) => options.push_str(&format!(" -c listen_addresses=127.0.0.1 -p {port}")),
            None => options.push_str(" -c listen_addresses=''"),
        }
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        self.run(
            "pg_ctl start",
            &[
                "start".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-D".as_ref(),
                self.cluster_dir.as_os_str(),
                "-l".as_ref(),
                self.log_file.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
            ],
        )
        .await?;
        Ok(())
    }

    /// Whether the cluster's postmaster is alive: the process its `postmaster.pid` names exists.
    /// (`pg_ctl start` itself copes with a stale pid file after a crash.)
    #[must_use]
    pub fn running(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.cluster_dir.join("postmaster.pid")) else {
            return false;
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return false;
        };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }

    /// Starts an existing cluster again after it died (PostgreSQL recovers from its write-ahead
    /// log). Unlike [`Self::start`] it never initialises or re-permissions anything: a cluster
    /// folder that went missing or unusable is an operator's matter, not something to paper over
    /// with a fresh, empty cluster.
    pub async fn restart(&self) -> Result<(), EmbeddedError> {
        if !self.cluster_dir.join("PG_VERSION").exists() {
            return Err(EmbeddedError::Step {
                step: "restarting the cluster",
                detail: format!("{} holds no cluster", self.cluster_dir.display()),
            });
        }
        self.pg_ctl_start().await
    }

    /// Creates the application database when it does not exist yet.
    pub async fn ensure_database(&self) -> Result<(), EmbeddedError> {
        use sqlx::Connection;
        let url = self.url(BOOTSTRAP_ROLE, "postgres");
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .map_err(|e| step("connecting to the embedded cluster", e))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| step("checking the database", e))?;
        if !exists {
            sqlx::query(&format!("CREATE DATABASE {DATABASE}"))
                .execute(&mut conn)
                .await
                .map_err(|e| step("creating the database", e))?;
        }
        conn.close().await.ok();
        Ok(())
    }

    /// Stops the cluster (fast mode: open transactions roll back, the cluster shuts down cleanly).
    pub async fn stop(&self) -> Result<(), EmbeddedError> {
        self.run(
            "pg_ctl stop",
            &[
                "stop".as_ref(),
                "-w".as_ref(),
                "-m".as_ref(),
                "fast".as_ref(),
                "-D".as_ref(),
                self.cluster_dir.as_os_str(),
            ],
        )
        .await
    }

    /// A connection URL through the private socket.
    #[must_use]
    pub fn url(&self, role: &str, database: &str) -> String {
        let port = self.port.map(|p| format!("&port={p}")).unwrap_or_default();
        format!(
            "postgres://{role}@localhost/{database}?host={}{port}",
            self.socket_dir.display()
        )
    }

    fn prepare_dirs(&self) -> Result<(), EmbeddedError> {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, _)) = self.run_as {
            self.check_reachable(uid)?;
        }
        for dir in [&self.cluster_dir, &self.socket_dir] {
            std::fs::create_dir_all(dir).map_err(|e| step("creating the cluster folders", e))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| step("restricting the cluster folders", e))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(dir, Some(uid.as_raw()), Some(gid.as_raw()))
                    .map_err(|e| step("handing the cluster folders to the postgres user", e))?;
            }
        }
        if let Some((uid, gid)) = self.run_as {
            if !self.log_file.exists() {
                std::fs::write(&self.log_file, b"")
                    .map_err(|e| step("creating the cluster log", e))?;
            }
            std::os::unix::fs::chown(&self.log_file, Some(uid.as_raw()), Some(gid.as_raw()))
                .map_err(|e| step("handing the cluster log to the postgres user", e))?;
        }
        Ok(())
    }

    /// Every folder above the cluster must be searchable by the cluster's OS user, or initdb
    /// fails with a confusing message deep inside PostgreSQL.
    fn check_reachable(&self, uid: nix::unistd::Uid) -> Result<(), EmbeddedError> {
        use std::os::unix::fs::MetadataExt;
        let Some(data_dir) = self.cluster_dir.parent() else {
            return Ok(());
        };
        for dir in data_dir.ancestors() {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            let searchable = meta.mode() & 0o001 != 0 || meta.uid() == uid.as_raw();
            if !searchable {
                return Err(EmbeddedError::Unreachable(data_dir.display().to_string()));
            }
        }
        Ok(())
    }

    async fn run(
        &self,
        what: &'static str,
        args: &[&std::ffi::OsStr],
    ) -> Result<(), EmbeddedError> {
        let program = if what.starts_with("initdb") {
            "initdb"
        } else {
            "pg_ctl"
        };
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The cluster must not inherit settings meant for LeadGen's own client connections.
        cmd.env_remove("PGHOST")
            .env_remove("PGPORT")
            .env_remove("PGDATA")
            .env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw())
                .gid(gid.as_raw())
                .current_dir(&self.cluster_dir);
        }
        let out = cmd.output().await.map_err(|e| step(what, e))?;
        if out.status.success() {
            return Ok(());
        }
        let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if detail.is_empty() {
            detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        if what == "pg_ctl start" {
            let tail = std::fs::read_to_string(&self.log_file).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            detail = format!(
                "{detail}; cluster log ({}): {}",
                self.log_file.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            );
        }
        Err(EmbeddedError::Step { step: what, detail })
    }
}

fn step(what: &'static str, e: impl std::fmt::Display) -> EmbeddedError {
    EmbeddedError::Step {
        step: what,
        detail: e.to_string(),
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> Result<PathBuf, EmbeddedError> {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .max_by_key(|(v, _)| *v);
    newest
        .map(|(_, bin)| bin)
        .ok_or_else(|| EmbeddedError::MissingBinaries {
            searched: "/usr/lib/postgresql/*/bin".into(),
        })
}
