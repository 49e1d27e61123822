//! The assembler: the only code that knows every slice. It builds the application (data folder
//! lock, secrets, database, each slice's state), stacks the middleware and routes
//! ([`routes`]), starts the background workers ([`workers`]) and serves the listeners. Tests
//! call [`Application::build`] with ports set to 0 and read the bound addresses back.
//!
//! Slices never import this module: each receives its own state, built here.

pub mod routes;
mod workers;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::server::graceful::GracefulShutdown;
use secrecy::SecretString;
use tokio::sync::watch;

use crate::auth::AuthState;
use crate::config::{Config, ConfigError, PlainHttp};
use crate::db::{self, embedded::EmbeddedPostgres};
use crate::http::SecurityHeaders;
use crate::leads::LeadsState;
use crate::perimeter::Perimeter;
use crate::server::{self, ConnLimits};
use crate::state::Core;

/// How long shutdown lets keep-alive clients close their own connections before closing the rest.
const DRAIN_PHASE: Duration = Duration::from_secs(2);

/// Every slice's state, built once; the router and the workers hand each slice its own part.
#[derive(Clone)]
pub struct AppState {
    pub core: Core,
    pub auth: AuthState,
    pub leads: LeadsState,
    pub campaigns: crate::campaigns::CampaignsState,
    pub public: crate::public::PublicState,
    pub forms: crate::forms::FormsState,
    pub perimeter: Perimeter,
    pub headers: SecurityHeaders,
    /// Set once shutdown begins; responses then ask HTTP/1 clients to close the connection.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    /// A state for unit tests of the router: default configuration, a pool that never connects
    /// unless used, a fixed key.
    #[cfg(test)]
    #[must_use]
    pub fn for_tests(app_key: &str) -> Self {
        let core = Core::for_tests(app_key);
        let perimeter = Perimeter::new(core.config.clone(), core.clock.clone()).unwrap();
        Self {
            headers: SecurityHeaders::from_config(&core.config).unwrap(),
            auth: AuthState {
                auth: Arc::new(crate::auth::AuthKeys::new(&core.app_key, &core.config).unwrap()),
                sso: Arc::default(),
                perimeter: perimeter.clone(),
                core: core.clone(),
            },
            leads: LeadsState {
                core: core.clone(),
                fields: crate::leads::FieldKeys::ephemeral(),
                node: Arc::new("test-node".into()),
            },
            campaigns: crate::campaigns::CampaignsState {
                core: core.clone(),
                fields: crate::leads::FieldKeys::ephemeral(),
                dkim: Arc::new(crate::campaigns::dkim::Ring::new(
                    leadgen_crypto::field::MasterKey::from_bytes([7; 32]),
                )),
                wake: Arc::default(),
            },
            public: crate::public::PublicState::new(
                core.clone(),
                crate::leads::FieldKeys::ephemeral(),
                perimeter.clone(),
            )
            .unwrap(),
            forms: crate::forms::FormsState {
                core: core.clone(),
                fields: crate::leads::FieldKeys::ephemeral(),
            },
            perimeter,
            draining: Arc::default(),
            core,
        }
    }
}

/// Checks what the slices make of the configuration (the perimeter's rules files, the SSO
/// issuers), beyond the shape [`Config::load`] checks: a start and `leadgen configtest` fail
/// fast on them, naming the key.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    crate::perimeter::check(config)?;
    crate::auth::sso::Sso::check(config)?;
    crate::public::check(config)?;
    Ok(())
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
        check(&config)?;
        let config = Arc::new(config);
        let lock = DataDirLock::acquire(&config.data_dir)?;
        let app_key = crate::secrets::app_key(&config.secrets.app_key, &config.data_dir)
            .context("preparing the development application key")?;

        let (urls, embedded) = if config.database.embedded() {
            let pg = crate::backups::embedded_postgres(&config)?;
            tracing::info!(socket = %pg.socket_dir().display(), "starting the embedded PostgreSQL cluster");
            pg.start().await?;
            if let Err(e) = pg.ensure_database().await {
                let _ = pg.stop().await;
                return Err(e.into());
            }
            if config.backup.enabled {
                // The stanza must exist before the first WAL segment is archived into it.
                let stanza = async {
                    crate::backups::Engine::for_config(&config)?
                        .ensure_stanza()
                        .await
                };
                if let Err(e) = stanza.await {
                    let _ = pg.stop().await;
                    return Err(anyhow::Error::new(e).context("preparing the backup repository"));
                }
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
        let demo = if config.demo.create_on_start {
            Some(
                crate::demo::ensure(&pool, config.auth.bcrypt_cost)
                    .await
                    .context("creating the demo organization")?,
            )
        } else {
            None
        };

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

        // The demo's sign-in link names the port actually bound, whatever was asked for.
        if let Some(demo) = &demo {
            crate::demo::announce(demo, Some(https.local_addr()?.port()));
        }

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
        let perimeter = Perimeter::new(config.clone(), clock.clone())?;
        auth.reload(&pool, clock.now())
            .await
            .context("loading the access-token keys")?;
        let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)?;
        let fields = crate::leads::FieldKeys::load(
            &pool,
            master,
            crate::leads::keys::KeyStore::new(config.org_key_dir()),
        )
        .await
        .context("loading the data-encryption keys")?;
        let dkim = crate::campaigns::dkim::Ring::new(crate::secrets::master_key(
            &config.secrets.master_key,
            &config.data_dir,
        )?);
        dkim.reload(&pool).await.context("loading the DKIM keys")?;
        let core = Core {
            config: config.clone(),
            pool,
            clock,
            mailer: crate::mail::Mailer::from_config(&config.mail, &config.data_dir)
                .context("the mail relay")?,
            app_key: Arc::new(app_key),
            version: env!("CARGO_PKG_VERSION"),
            database: crate::state::DatabaseHealth::default(),
        };
        let state = AppState {
            headers: SecurityHeaders::from_config(&config).context("security headers")?,
            auth: AuthState {
                core: core.clone(),
                auth,
                sso,
                perimeter: perimeter.clone(),
            },
            campaigns: crate::campaigns::CampaignsState {
                core: core.clone(),
                fields: fields.clone(),
                dkim: Arc::new(dkim),
                wake: Arc::default(),
            },
            public: crate::public::PublicState::new(
                core.clone(),
                fields.clone(),
                perimeter.clone(),
            )
            .context("the public site's pages")?,
            forms: crate::forms::FormsState {
                core: core.clone(),
                fields: fields.clone(),
            },
            leads: LeadsState {
                core: core.clone(),
                fields,
                node: Arc::new(
                    crate::leads::import::node_id(&config.data_dir)
                        .context("naming this server instance")?,
                ),
            },
            perimeter,
            core,
            draining: Arc::default(),
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
        let app = routes::app(&self.state);
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
        let workers = workers::start(&self.state);
        tracing::info!(
            https = %bound.https,
            http = ?bound.http,
            admin = %bound.admin,
            profile = %self.config.profile,
            "LeadGen is serving"
        );
        if self.config.demo.create_on_start {
            // README command 1 tells its user where to go from this line.
            println!(
                "LeadGen is serving https://localhost:{}/ (Ctrl-C stops it)",
                bound.https.port()
            );
        }

        // The embedded cluster is supervised: restarted when it dies, and when it cannot be, the
        // server stops with an error so its own supervisor (systemd) restarts everything.
        let supervised = async {
            match &self.embedded {
                Some(pg) => supervise(pg, &self.state).await,
                None => std::future::pending().await,
            }
        };
        let failure = tokio::select! {
            () = shutdown => None,
            e = supervised => Some(e),
        };
        tracing::info!("shutting down: no new connections, waiting for in-flight requests");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        if let Some(w) = watcher {
            w.abort();
        }
        workers.abort();
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
        self.state.core.pool.close().await;
        if let Some(e) = failure {
            tracing::error!(error = %format!("{e:#}"), "stopped: the embedded PostgreSQL cluster is down");
            return Err(e);
        }
        if let Some(pg) = &self.embedded {
            pg.stop().await?;
            tracing::info!("embedded PostgreSQL stopped");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Attempts at restarting a dead embedded cluster before the server gives up.
const RESTART_ATTEMPTS: u32 = 5;

/// Watches the embedded cluster every two seconds and restarts it when it died (PostgreSQL
/// recovers from its write-ahead log on start), with a growing wait between failed attempts and
/// an alert. Returns only when it gives up.
async fn supervise(pg: &EmbeddedPostgres, state: &AppState) -> anyhow::Error {
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if pg.running() {
            continue;
        }
        tracing::error!("the embedded PostgreSQL cluster is not running; restarting it");
        if failures == 0 {
            crate::perimeter::announce(
                &state.perimeter,
                "embedded-postgres-restart",
                crate::perimeter::alerts::Event::DependencyUnavailable,
                "the embedded PostgreSQL cluster stopped; LeadGen is restarting it".into(),
            );
        }
        match pg.restart().await {
            Ok(()) => {
                metrics::counter!("embedded_postgres_restarts_total").increment(1);
                tracing::info!("the embedded PostgreSQL cluster is running again");
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                tracing::error!(attempt = failures, error = %e, "restarting the embedded PostgreSQL cluster failed");
                if failures >= RESTART_ATTEMPTS {
                    return anyhow::anyhow!(
                        "the embedded PostgreSQL cluster could not be restarted ({failures} attempts): {e}"
                    );
                }
                tokio::time::sleep(Duration::from_secs(u64::from(failures) * 2)).await;
            }
        }
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
