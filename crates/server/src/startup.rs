//! Building and running the application: data folder lock, secrets, database, TLS and listeners.
//! Tests call [`Application::build`] with ports set to 0 and read the bound addresses back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::server::graceful::GracefulShutdown;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::config::{Config, PlainHttp};
use crate::db::{self, embedded::EmbeddedPostgres};
use crate::http::SecurityHeaders;
use crate::server::{self, ConnLimits};

/// How often the access-token key ring is re-read.
const KEY_RELOAD: Duration = Duration::from_secs(60);

/// How long shutdown lets keep-alive clients close their own connections before closing the rest.
const DRAIN_PHASE: Duration = Duration::from_secs(2);

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub headers: SecurityHeaders,
    pub app_key: Arc<SecretString>,
    pub version: &'static str,
    /// Set once shutdown begins; responses then ask HTTP/1 clients to close the connection.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    pub clock: crate::clock::SharedClock,
    pub mailer: crate::mail::Mailer,
    pub auth: Arc<crate::auth::AuthKeys>,
    /// The single sign-on providers configured (none by default).
    pub sso: Arc<crate::auth::sso::Sso>,
    /// Per-endpoint rate limits.
    pub limits: Arc<crate::perimeter::rate_limit::Limiter>,
    /// The web application firewall's rules (replaced when their file changes).
    pub waf: Arc<crate::perimeter::waf::Rules>,
    /// Client addresses' reputation (kept across rule reloads).
    pub reputation: Arc<crate::perimeter::reputation::Reputation>,
    /// Recent security events, for the alert rules.
    pub alerts: Arc<crate::perimeter::alerts::Alerts>,
    /// Lead searches and exports per address and principal, for anomaly detection.
    pub anomalies: Arc<crate::perimeter::anomaly::Anomalies>,
    pub flood: Arc<crate::perimeter::flood::Flood>,
    /// Requests past the perimeter's rate limits and not yet answered (`rate_limiting.queue`).
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The keys that encrypt lead fields and compute their blind indexes.
    pub fields: crate::leads::FieldKeys,
    /// This instance's name for the import jobs whose files its data folder holds.
    pub node: Arc<String>,
}

impl AppState {
    /// A state for unit tests of routers and extractors: default configuration, a pool that
    /// never connects unless used, a fixed key.
    #[cfg(test)]
    #[must_use]
    pub fn for_tests(app_key: &str) -> Self {
        let config = Config::load(&crate::config::Sources::default()).unwrap();
        let app_key = SecretString::from(app_key.to_string());
        Self {
            headers: SecurityHeaders::from_config(&config).unwrap(),
            auth: Arc::new(crate::auth::AuthKeys::new(&app_key, &config).unwrap()),
            pool: sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap(),
            app_key: Arc::new(app_key),
            version: "test",
            draining: Arc::default(),
            clock: Arc::new(crate::clock::SystemClock),
            mailer: crate::mail::Mailer::dev_mailbox(Path::new("/nonexistent")),
            sso: Arc::default(),
            limits: Arc::new(crate::perimeter::rate_limit::Limiter::new(
                load_rate_limits(&config).unwrap(),
            )),
            waf: Arc::new(crate::perimeter::waf::Rules::new(
                load_waf(&config).unwrap(),
            )),
            reputation: Arc::default(),
            alerts: Arc::default(),
            anomalies: Arc::default(),
            flood: Arc::default(),
            in_flight: Arc::default(),
            fields: crate::leads::FieldKeys::ephemeral(),
            node: Arc::new("test-node".into()),
            config: Arc::new(config),
        }
    }
}

/// Keeps a second server off the same data folder for as long as it lives.
pub struct DataDirLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        use std::io::Write;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
        let path = data_dir.join("leadgen.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if file.try_lock().is_err() {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            anyhow::bail!(
                "the data folder {} is in use by another LeadGen server{}; stop it first or choose another --data-dir",
                data_dir.display(),
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                }
            );
        }
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { _file: file, path })
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, b"");
    }
}

/// A built, bound application, not yet serving.
pub struct Application {
    config: Arc<Config>,
    state: AppState,
    https: tokio::net::TcpListener,
    http: Option<tokio::net::TcpListener>,
    admin: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    cert_watch: Option<(Arc<crate::tls::ReloadingCert>, crate::tls::CertSource)>,
    embedded: Option<EmbeddedPostgres>,
    _lock: DataDirLock,
}

/// Addresses the application listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    pub admin: SocketAddr,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(crate::clock::SystemClock)).await
    }

    /// Like [`Application::build`], reading time from `clock` (tests move it forward).
    pub async fn build_with_clock(
        config: Config,
        clock: crate::clock::SharedClock,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let app_key = crate::secrets::app_key(&config.secrets.app_key, &config.data_dir)
            .context("preparing the development application key")?;

        let (urls, embedded) = if config.database.embedded() {
            let pg = EmbeddedPostgres::new(&config.data_dir, &config.database.postgres_bin_dir)?;
            tracing::info!(socket = %pg.socket_dir().display(), "starting the embedded PostgreSQL cluster");
            pg.start().await?;
            if let Err(e) = pg.ensure_database().await {
                let _ = pg.stop().await;
                return Err(e.into());
            }
            (db::Urls::embedded(&pg), Some(pg))
        } else {
            (db::Urls::from_config(&config.database), None)
        };
        // From here on, a failure must stop the cluster we started.
        let built = Self::build_rest(config, urls, app_key, lock, embedded.clone(), clock).await;
        if let (Err(_), Some(pg)) = (&built, &embedded) {
            let _ = pg.stop().await;
        }
        built
    }

    async fn build_rest(
        config: Arc<Config>,
        urls: db::Urls,
        app_key: SecretString,
        lock: DataDirLock,
        embedded: Option<EmbeddedPostgres>,
        clock: crate::clock::SharedClock,
    ) -> anyhow::Result<Self> {
        if config.database.migrate_on_start {
            let applied = db::migrate(&urls.migrate).await?;
            if applied > 0 {
                tracing::info!(applied, "migrations applied");
            }
        }
        let pool = db::connect_app(&urls.app, config.database.max_connections).await?;
        if config.demo.create_on_start {
            let demo = crate::demo::ensure(&pool, config.auth.bcrypt_cost)
                .await
                .context("creating the demo organization")?;
            crate::demo::announce(&demo, config.server.https_port);
        }

        let source = crate::tls::cert_source(&config)?;
        let (tls, resolver) = crate::tls::server_config(&config, &source)?;
        let cert_watch = (!source.self_signed_dev).then_some((resolver, source));

        let s = &config.server;
        let https = server::bind(SocketAddr::new(s.bind, s.https_port)).await?;
        let http = match s.plain_http {
            PlainHttp::Off => None,
            PlainHttp::Redirect | PlainHttp::Serve => {
                Some(server::bind(SocketAddr::new(s.bind, s.http_port)).await?)
            }
        };
        // The admin listener is for the operator's own scraper: loopback only, never configurable.
        let admin = server::bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            s.admin_port,
        ))
        .await?;

        // With port 0 (tests, or an operator letting the OS choose) links and redirect URIs must
        // name the port actually bound.
        let config = if config.auth.site_url.is_empty() && s.https_port == 0 {
            let mut c = (*config).clone();
            c.auth.site_url = format!("https://localhost:{}", https.local_addr()?.port());
            Arc::new(c)
        } else {
            config
        };
        let auth = Arc::new(crate::auth::AuthKeys::new(&app_key, &config)?);
        let sso = Arc::new(crate::auth::sso::Sso::from_config(&config)?);
        let waf = Arc::new(crate::perimeter::waf::Rules::new(load_waf(&config)?));
        let limits = {
            let l = crate::perimeter::rate_limit::Limiter::new(load_rate_limits(&config)?);
            let url = secrecy::ExposeSecret::expose_secret(&config.perimeter.redis_url);
            Arc::new(if url.is_empty() {
                l
            } else {
                l.with_shared(crate::perimeter::shared::Shared::new(
                    url,
                    &config.perimeter.redis_prefix,
                )?)
            })
        };
        auth.reload(&pool, clock.now())
            .await
            .context("loading the access-token keys")?;
        let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)?;
        let fields = crate::leads::FieldKeys::load(&pool, master)
            .await
            .context("loading the data-encryption keys")?;
        let state = AppState {
            headers: SecurityHeaders::from_config(&config).context("security headers")?,
            config: config.clone(),
            pool,
            auth,
            app_key: Arc::new(app_key),
            version: env!("CARGO_PKG_VERSION"),
            draining: Arc::default(),
            clock,
            mailer: crate::mail::Mailer::dev_mailbox(&config.data_dir),
            sso,
            limits,
            waf,
            reputation: Arc::default(),
            alerts: Arc::default(),
            anomalies: Arc::default(),
            flood: Arc::default(),
            in_flight: Arc::default(),
            fields,
            node: Arc::new(
                crate::leads::import::node_id(&config.data_dir)
                    .context("naming this server instance")?,
            ),
        };
        Ok(Self {
            config,
            state,
            https,
            http,
            admin,
            tls,
            cert_watch,
            embedded,
            _lock: lock,
        })
    }

    pub fn bound(&self) -> anyhow::Result<Bound> {
        Ok(Bound {
            https: self.https.local_addr()?,
            http: self
                .http
                .as_ref()
                .map(tokio::net::TcpListener::local_addr)
                .transpose()?,
            admin: self.admin.local_addr()?,
        })
    }

    #[must_use]
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests (up to the grace period),
    /// closes the pool and stops the embedded cluster.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let bound = self.bound()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let limits = ConnLimits {
            handshake: Duration::from_secs(self.config.server.tls_handshake_timeout_secs),
            header_read: Duration::from_secs(self.config.server.header_read_timeout_secs),
        };
        let app = crate::http::app_router(self.state.clone());
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(server::serve(
            self.https,
            Some(self.tls),
            app.clone(),
            limits,
            stop_rx.clone(),
            graceful.clone(),
        ));
        if let Some(http) = self.http {
            let router = match self.config.server.plain_http {
                PlainHttp::Serve => app,
                _ => crate::http::redirect_router(bound.https.port()),
            };
            tasks.spawn(server::serve(
                http,
                None,
                router,
                limits,
                stop_rx.clone(),
                graceful.clone(),
            ));
        }
        let admin = crate::ops::admin_router(crate::telemetry::metrics_handle());
        tasks.spawn(server::serve(
            self.admin,
            None,
            admin,
            limits,
            stop_rx.clone(),
            graceful.clone(),
        ));
        let watcher = self.cert_watch.map(|(resolver, source)| {
            tokio::spawn(crate::tls::watch(
                resolver,
                source,
                Duration::from_secs(self.config.tls.reload_interval_secs),
            ))
        });
        // Other instances may rotate the signing key; pick that up for signing within a minute
        // (verification reloads at once when it meets an unknown `kid`).
        let reloader = {
            let (auth, pool, clock, limits, fields) = (
                self.state.auth.clone(),
                self.state.pool.clone(),
                self.state.clock.clone(),
                self.state.limits.clone(),
                self.state.fields.clone(),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(KEY_RELOAD);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = auth.reload(&pool, clock.now()).await {
                        tracing::warn!(error = %e, "reloading access-token keys failed; keeping the current ones");
                    }
                    // `leadgen keys rotate-data` adds data keys: encrypt with the newest.
                    if let Err(e) = fields.reload(&pool).await {
                        tracing::warn!(error = %e, "reloading data keys failed; keeping the current ones");
                    }
                    limits.forget_idle();
                }
            })
        };
        // An operator's WAF rules file is re-read when it changes.
        let waf_watch = {
            let path = self.config.perimeter.waf_rules_path.clone();
            (!path.as_os_str().is_empty()).then(|| {
                tokio::spawn(self.state.waf.clone().watch(
                    path,
                    Duration::from_secs(self.config.tls.reload_interval_secs),
                ))
            })
        };
        let alerting = tokio::spawn(crate::perimeter::alert_loop(self.state.clone()));
        let reputation = tokio::spawn(crate::perimeter::reputation_sync(self.state.clone()));
        // Leads rescored after their organization's scoring model changed.
        let rescoring = tokio::spawn(crate::leads::scoring::run(self.state.clone()));
        // Which full-text words are common, for the search's choice of plan.
        let lexicon = tokio::spawn(crate::leads::search::lexicon_loop(self.state.pool.clone()));
        // Company edits whose push to their leads a crash interrupted.
        let company_push = tokio::spawn(crate::companies::run(self.state.clone()));
        let export_sweep = tokio::spawn(crate::leads::export_jobs::sweep(self.state.clone()));
        // Lead imports of this instance, resumed from their checkpoints after a restart.
        let importer = tokio::spawn(crate::leads::import::worker::run(
            self.state.clone(),
            self.state.node.to_string(),
        ));
        // API keys near expiry: notices to their organization's admins at 14, 7 and 1 days.
        let notices = {
            let state = self.state.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(
                    state.config.api_keys.notice_check_secs,
                ));
                loop {
                    tick.tick().await;
                    if let Err(e) = crate::orgs::api_keys::send_expiry_notices(&state).await {
                        tracing::warn!(error = %e, "sending API key expiry notices failed; retrying at the next check");
                    }
                }
            })
        };
        tracing::info!(
            https = %bound.https,
            http = ?bound.http,
            admin = %bound.admin,
            profile = %self.config.profile,
            "LeadGen is serving"
        );

        shutdown.await;
        tracing::info!("shutting down: no new connections, waiting for in-flight requests");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        if let Some(w) = watcher {
            w.abort();
        }
        reloader.abort();
        notices.abort();
        alerting.abort();
        reputation.abort();
        rescoring.abort();
        company_push.abort();
        lexicon.abort();
        export_sweep.abort();
        importer.abort();
        if let Some(w) = waf_watch {
            w.abort();
        }
        let grace = Duration::from_secs(self.config.server.shutdown_grace_secs);
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
        // Drain first: keep-alive clients get `Connection: close` on their current response and
        // hang up themselves. Closing a connection that merely looks idle could cut off a request
        // already on the wire, which the client would see as a failure.
        self.state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let drain_until = tokio::time::Instant::now() + grace.min(DRAIN_PHASE);
        while graceful.count() > 0 && tokio::time::Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "grace period over; closing the remaining connections"
            );
        }
        self.state.pool.close().await;
        if let Some(pg) = &self.embedded {
            pg.stop().await?;
            tracing::info!("embedded PostgreSQL stopped");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or SIGINT.
///
/// The handlers are installed when this is called, not when the future is first polled: the
/// server polls it only after it logs that it is serving, and a SIGTERM sent in between (a
/// supervisor stopping a server that just started) would otherwise kill the process outright
/// instead of shutting it down gracefully.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        let recv = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = recv(term) => {},
            () = recv(int) => {},
        }
    }
}

/// The rate-limit rules: the operator's file, or the shipped one.
fn load_rate_limits(config: &Config) -> anyhow::Result<crate::perimeter::rate_limit::RulesFile> {
    use crate::perimeter::rate_limit::{DEFAULT_RULES, RulesFile};
    let path = &config.perimeter.rate_limits_path;
    if path.as_os_str().is_empty() {
        return Ok(RulesFile::parse(DEFAULT_RULES)?);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading perimeter.rate_limits_path {}", path.display()))?;
    RulesFile::parse(&text).with_context(|| format!("in {}", path.display()))
}

/// The WAF rules: the operator's file, or the shipped one.
fn load_waf(config: &Config) -> anyhow::Result<crate::perimeter::waf::Waf> {
    use crate::perimeter::waf::{DEFAULT_RULES, Waf};
    let path = &config.perimeter.waf_rules_path;
    if path.as_os_str().is_empty() {
        return Ok(Waf::parse(DEFAULT_RULES)?);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading perimeter.waf_rules_path {}", path.display()))?;
    Waf::parse(&text).with_context(|| format!("in {}", path.display()))
}
