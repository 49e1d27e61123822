//! Test harness: per-test databases, in-process servers on port 0, the `leadgen` binary as a
//! child process, and TLS clients that trust the server's development certificate.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leadgen::config::{Config, Sources};
use leadgen::startup::{Application, Bound};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;

/// Superuser URL of the test cluster, without a database.
pub fn pg_base() -> String {
    std::env::var("LEADGEN_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The master key of servers started by [`TestApp`].
pub const TEST_MASTER_KEY: &str =
    "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";

/// A fresh, migrated database for one test.
#[derive(Clone)]
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let name = format!("lg_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", pg_base()))
            .await
            .expect("PostgreSQL for tests is not reachable (set LEADGEN_TEST_PG or run scripts/test.sh)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let db = Self { name };
        leadgen::db::migrate(&db.migrate_url())
            .await
            .expect("migrations apply");
        db
    }

    /// As the bootstrap superuser (migrations, fixtures that bypass the app).
    pub fn migrate_url(&self) -> String {
        format!("{}/{}", pg_base(), self.name)
    }

    /// As `leadgen_app`, what the server uses.
    pub fn app_url(&self) -> String {
        self.role_url("leadgen_app")
    }

    pub fn role_url(&self, role: &str) -> String {
        let base = pg_base();
        let rest = base.split_once('@').map_or(base.as_str(), |(_, r)| r);
        format!("postgres://{role}@{rest}/{}", self.name)
    }

    /// The key store of organizations' data keys for servers and commands on this database:
    /// shared by all of them, as an installation's instances share theirs.
    pub fn key_dir(&self) -> PathBuf {
        std::env::temp_dir()
            .join("leadgen-test-keys")
            .join(&self.name)
    }

    pub async fn superuser_pool(&self) -> PgPool {
        PgPool::connect(&self.migrate_url()).await.unwrap()
    }
}

/// Environment for a server on free ports, using `db`, with its data in `data_dir`.
pub fn server_env(db: Option<&TestDb>, data_dir: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("LEADGEN_DATA_DIR".into(), data_dir.display().to_string()),
        ("LEADGEN_SERVER__BIND".into(), "127.0.0.1".into()),
        ("LEADGEN_SERVER__HTTPS_PORT".into(), "0".into()),
        ("LEADGEN_SERVER__HTTP_PORT".into(), "0".into()),
        ("LEADGEN_SERVER__ADMIN_PORT".into(), "0".into()),
        ("LEADGEN_SERVER__SHUTDOWN_GRACE_SECS".into(), "10".into()),
    ];
    if let Some(db) = db {
        env.push(("DATABASE_URL".into(), db.app_url()));
        env.push(("LEADGEN_DATABASE__MIGRATE_URL".into(), db.migrate_url()));
        env.push((
            "LEADGEN_SECRETS__ORG_KEY_DIR".into(),
            db.key_dir().display().to_string(),
        ));
    }
    env
}

/// A server running inside the test process.
pub struct TestApp {
    pub bound: Bound,
    pub data_dir: tempfile::TempDir,
    /// Kept so the database outlives the server that uses it.
    _db: TestDb,
    /// The SMTP server this server relays through, when it has one.
    pub sink: Option<Arc<MailSink>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a server with extra `LEADGEN_…` variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_on(
            TestDb::new().await,
            extra,
            Arc::new(leadgen::clock::SystemClock),
        )
        .await
    }

    /// Starts a server that sends all its mail through a real SMTP server (a fresh
    /// [`MailSink`]), with the campaign worker's waits shortened for tests.
    pub async fn spawn_with_sink(extra: &[(&str, &str)]) -> Self {
        let sink = Arc::new(MailSink::start(None));
        let mut env: Vec<(String, String)> = sink.env();
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut app = Self::spawn_on(
            TestDb::new().await,
            &env,
            Arc::new(leadgen::clock::SystemClock),
        )
        .await;
        app.sink = Some(sink);
        app
    }

    /// Starts a server on an existing database (several instances may share one), reading time
    /// from `clock`.
    pub async fn spawn_on(
        db: TestDb,
        extra: &[(&str, &str)],
        clock: leadgen::clock::SharedClock,
    ) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut env = server_env(Some(&db), data_dir.path());
        // Tests hash at bcrypt's lowest allowed cost; the cost itself is covered by unit tests.
        env.push(("LEADGEN_AUTH__BCRYPT_COST".into(), "10".into()));
        // Instances sharing a database must share the master key that wraps its data keys (each
        // would otherwise generate its own development key in its own data folder).
        env.push(("LEADGEN_SECRETS__MASTER_KEY".into(), TEST_MASTER_KEY.into()));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        let config = Config::load(&Sources {
            env,
            ..Sources::default()
        })
        .unwrap();
        let app = Application::build_with_clock(config, clock).await.unwrap();
        let bound = app.bound().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            bound,
            data_dir,
            _db: db,
            sink: None,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Messages this server mailed, oldest first, as JSON (`to`, `subject`, `text`): its
    /// development mailbox, or what its SMTP server received.
    pub fn mailbox(&self) -> Vec<serde_json::Value> {
        if let Some(sink) = &self.sink {
            return sink.mails();
        }
        let dir = self.data_dir.path().join("mailbox");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    pub fn db(&self) -> &TestDb {
        &self._db
    }

    pub fn cert_path(&self) -> PathBuf {
        self.data_dir.path().join("tls/dev-cert.pem")
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.bound.https.port())
    }

    /// A client that trusts only this server's certificate and never follows redirects.
    pub fn client(&self) -> reqwest::Client {
        client_for(&self.cert_path(), self.bound.https)
    }

    /// Like [`TestApp::client`], connecting from the given loopback address (127.0.0.0/8), so
    /// tests can play clients at different IPs.
    pub fn client_from(&self, local: std::net::IpAddr) -> reqwest::Client {
        let pem = std::fs::read(self.cert_path()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve("localhost", self.bound.https)
            .local_address(local)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub fn client_for(cert: &Path, https: SocketAddr) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("localhost", https)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A rustls client config limited to `versions`, trusting `cert`.
pub fn rustls_client(
    cert: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(cert).unwrap();
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    for c in CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens a TLS connection to `addr` as `localhost` with a client from [`rustls_client`].
pub async fn tls_connect(
    cert: &Path,
    addr: SocketAddr,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    tls_connect_with(rustls_client(cert, versions), addr).await
}

/// Opens a TLS connection to `addr` as `localhost` with the given client configuration.
pub async fn tls_connect_with(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// The `leadgen` binary running as a child process, with its stdout lines collected.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
    pub stderr: Arc<std::sync::Mutex<String>>,
}

impl Proc {
    pub fn spawn(args: &[&str], env: &[(String, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadgen"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("LEADGEN_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let err = child.stderr.take().unwrap();
        let e = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = e.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for the "LeadGen is serving" log line and returns (https, http) addresses.
    pub fn wait_serving(&mut self, within: Duration) -> (SocketAddr, Option<SocketAddr>) {
        let start = Instant::now();
        loop {
            let found = self.lines.lock().unwrap().iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "LeadGen is serving").then_some(v)
            });
            if let Some(v) = found {
                let https = v["https"].as_str().unwrap().parse().unwrap();
                let http = v["http"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok());
                return (https, http);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "leadgen exited with {status} before serving; stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                start.elapsed() < within,
                "leadgen did not start within {within:?}; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, sig).unwrap();
    }

    /// Waits for exit, failing the test after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Give the reader threads a moment to drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if start.elapsed() > within {
                let _ = self.child.kill();
                panic!("leadgen did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stdout(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `leadgen` to completion and returns (exit code, stdout, stderr).
pub fn run_leadgen(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadgen"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADGEN_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Workspace root (where `e2e/` and `config/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The shipped rate limits with a far larger API allowance, written into `dir`, for tests that
/// send hundreds of requests as one principal (the limiter has its own tests).
pub fn generous_rate_limits(dir: &Path) -> PathBuf {
    let mut shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/rate-limits.json")).unwrap(),
    )
    .unwrap();
    for rule in shipped["rules"].as_array_mut().unwrap() {
        if rule["name"] == "api" {
            rule["burst"] = 5000.into();
            rule["limit"] = 50000.into();
        }
    }
    let path = dir.join("rate-limits.json");
    std::fs::write(&path, shipped.to_string()).unwrap();
    path
}

/// A real SMTP server (aiosmtpd, `e2e/smtp_sink.py`) on a free port, recording what it accepts.
pub struct MailSink {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl MailSink {
    /// Starts the sink; `index_only` skips writing each message (for thousands of them).
    pub fn start(index_only: Option<bool>) -> Self {
        let python = std::env::var("LEADGEN_MAIL_PYTHON").expect(
            "LEADGEN_MAIL_PYTHON is not set: run the tests with scripts/test.sh, which installs \
             the mail peers (aiosmtpd, dkimpy) and sets it",
        );
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(workspace_root().join("e2e/smtp_sink.py"))
            .arg(dir.path())
            .arg("--reply-file")
            .arg(dir.path().join("reply"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if index_only == Some(true) {
            cmd.arg("--index-only");
        }
        let mut child = cmd.spawn().expect("starting the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"))
            .parse()
            .unwrap();
        Self { dir, port, child }
    }

    /// The server settings that relay through this sink (plain SMTP on loopback).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LEADGEN_MAIL__HOST".into(), "127.0.0.1".into()),
            ("LEADGEN_MAIL__PORT".into(), self.port.to_string()),
            ("LEADGEN_MAIL__TLS".into(), "none".into()),
            (
                "LEADGEN_MAIL__FROM_ADDRESS".into(),
                "LeadGen <no-reply@leadgen.test>".into(),
            ),
            ("LEADGEN_CAMPAIGNS__POLL_MS".into(), "100".into()),
            ("LEADGEN_CAMPAIGNS__LEASE_SECS".into(), "5".into()),
            ("LEADGEN_CAMPAIGNS__RETRY_BASE_SECS".into(), "1".into()),
        ]
    }

    /// Makes the sink answer every RCPT with `code` (e.g. "451", "550"), or accept again.
    pub fn reply(&self, code: Option<&str>) {
        std::fs::write(self.dir.path().join("reply"), code.unwrap_or("")).unwrap();
    }

    /// (Message-ID, recipient) of every accepted message, in arrival order.
    pub fn index(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.dir.path().join("index.tsv"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((f.next()?.to_string(), f.next()?.to_string()))
            })
            .collect()
    }

    /// Every accepted message as received, in arrival order.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        let dir = self.dir.path().join("msgs");
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| {
                        let p = e.path();
                        let n = p.file_stem()?.to_str()?.parse().ok()?;
                        Some((n, p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| std::fs::read(p).unwrap())
            .collect()
    }

    /// Every accepted message as JSON: `to`, `subject`, `text` (the plain part), `html`.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        self.raw()
            .iter()
            .filter_map(|raw| {
                let m = mail_parser::MessageParser::default().parse(raw)?;
                Some(serde_json::json!({
                    "to": m.to().and_then(|t| t.first()).and_then(|a| a.address()).unwrap_or_default(),
                    "subject": m.subject().unwrap_or_default(),
                    "text": m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                    "html": m.body_html(0).map(|t| t.into_owned()),
                }))
            })
            .collect()
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
