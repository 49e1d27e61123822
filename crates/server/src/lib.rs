//! LeadGen server: the library behind the `leadgen` binary.
//!
//! `main.rs` only parses the command line and calls [`run`]; everything else lives here so that
//! integration tests start the real application on port 0.

pub mod audit;
pub mod auth;
pub mod backups;
pub mod campaigns;
pub mod classification;
pub mod cli;
pub mod clock;
pub mod companies;
pub mod config;
pub mod db;
pub mod demo;
pub mod forms;
pub mod http;
pub mod incidents;
pub mod leads;
pub mod mail;
pub mod operators;
pub mod ops;
pub mod orgs;
pub mod pci;
pub mod perimeter;
pub mod privacy;
pub mod public;
pub mod secrets;
pub mod server;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod web;

use std::process::ExitCode;

use cli::{AuditCommand, Cli, Command, DemoCommand, KeysCommand};
use config::{Config, Sources};

/// Builds the configuration sources from the process and the command line.
fn sources(cli: &Cli, data_dir: Option<&std::path::Path>) -> Sources {
    let mut s = Sources::from_process_env();
    if cli.config.is_some() {
        s.config_file.clone_from(&cli.config);
    }
    if cli.env_file.is_some() {
        s.env_file.clone_from(&cli.env_file);
    }
    if let Some(d) = data_dir {
        s.overrides.push((
            "data_dir".into(),
            toml::Value::String(d.display().to_string()),
        ));
    }
    s
}

/// Runs a parsed command line to completion.
pub async fn run(cli: Cli) -> ExitCode {
    match &cli.command {
        Command::Serve(args) => {
            let mut s = sources(&cli, args.data_dir.as_deref());
            if let Some(p) = args.https_port {
                s.overrides
                    .push(("server.https_port".into(), toml::Value::Integer(p.into())));
            }
            if let Some(p) = args.http_port {
                s.overrides
                    .push(("server.http_port".into(), toml::Value::Integer(p.into())));
            }
            if args.demo {
                s.overrides
                    .push(("demo.create_on_start".into(), toml::Value::Boolean(true)));
            }
            let config = match Config::load(&s) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), false),
            };
            telemetry::init_logs(&config.telemetry.log_filter, std::io::stdout);
            // Installed before anything starts: a stop sent while the server is still starting
            // (the embedded PostgreSQL, migrations) then shuts it down cleanly once it is up,
            // instead of killing it half-way with its database cluster still running.
            let shutdown = startup::shutdown_signal();
            let app = match startup::Application::build(config).await {
                Ok(app) => app,
                Err(e) => return fail("start", &format!("{e:#}"), false),
            };
            match app.run_until(shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail("shutdown", &format!("{e:#}"), false),
            }
        }
        Command::Migrate(args) => {
            let config = match Config::load(&sources(&cli, args.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), args.json),
            };
            match migrate(&config).await {
                Ok(applied) => ok(
                    args.json,
                    &format!("{applied} migration(s) applied"),
                    serde_json::json!({ "applied": applied }),
                ),
                Err(e) => fail("migrate", &format!("{e:#}"), args.json),
            }
        }
        Command::Keys(KeysCommand::RotateJwt(args)) => {
            let config = match Config::load(&sources(&cli, args.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), args.json),
            };
            match rotate_jwt(&config).await {
                Ok(kid) => ok(
                    args.json,
                    &format!(
                        "new access-token signing key {kid}; previous keys verify until their tokens expire"
                    ),
                    serde_json::json!({ "kid": kid }),
                ),
                Err(e) => fail("keys rotate-jwt", &format!("{e:#}"), args.json),
            }
        }
        Command::Keys(KeysCommand::RotateData(args)) => {
            let json = args.ops.json;
            let config = match Config::load(&sources(&cli, args.ops.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), json),
            };
            let batch = i64::from(args.batch.clamp(1, 100_000));
            let result = async {
                let master = secrets::master_key(&config.secrets.master_key, &config.data_dir)?;
                let store = leads::keys::KeyStore::new(config.org_key_dir());
                with_pool(&config, Conn::Migrate, |pool| async move {
                    leads::rotate::rotate(&pool, &master, &store, batch).await
                })
                .await
            }
            .await;
            match result {
                Ok(r) => ok(
                    json,
                    &format!(
                        "data key generation {}{}: {} organization key(s) created, {} lead(s) \
                         scanned, {} re-encrypted, {} request(s) and {} attachment(s) re-encrypted",
                        r.key_id,
                        if r.new_key { " (new)" } else { " (continued)" },
                        r.org_keys_created,
                        r.scanned,
                        r.reencrypted,
                        r.requests_reencrypted,
                        r.attachments_reencrypted
                    ),
                    serde_json::json!(r),
                ),
                Err(e) => fail("keys rotate-data", &format!("{e:#}"), json),
            }
        }
        Command::Keys(KeysCommand::RetireData(args)) => {
            let json = args.ops.json;
            let config = match Config::load(&sources(&cli, args.ops.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), json),
            };
            let key = args.key;
            let store = leads::keys::KeyStore::new(config.org_key_dir());
            let result = with_pool(&config, Conn::Migrate, |pool| async move {
                leads::rotate::retire(&pool, &store, key).await
            })
            .await;
            match result {
                Ok(()) => ok(
                    json,
                    &format!("data key {key} retired"),
                    serde_json::json!({ "retired": key }),
                ),
                Err(e) => fail("keys retire-data", &format!("{e:#}"), json),
            }
        }
        Command::Demo(DemoCommand::Csv(args)) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match leads::synthetic::write_csv(&mut out, args.leads, args.seed, args.offset)
                .and_then(|()| std::io::Write::flush(&mut out))
            {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => fail("demo csv", &e.to_string(), false),
            }
        }
        Command::Demo(DemoCommand::Seed(args)) => {
            let json = args.ops.json;
            let config = match Config::load(&sources(&cli, args.ops.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), json),
            };
            // A new data folder has no schema yet; a running server has already applied it (and
            // holds the folder's lock).
            let server_running = config.database.embedded()
                && startup::DataDirLock::acquire(&config.data_dir).is_err();
            if !server_running && let Err(e) = migrate(&config).await {
                return fail("demo seed", &format!("{e:#}"), json);
            }
            let (n, seed) = (args.leads, args.seed);
            let data_dir = config.data_dir.clone();
            let cost = config.auth.bcrypt_cost;
            let result = with_pool(&config, Conn::App, |pool| async move {
                let demo = demo::ensure(&pool, cost).await?;
                demo::announce(&demo, None);
                let job = uuid::Uuid::now_v7();
                let dir = leads::import::folder(&data_dir);
                std::fs::create_dir_all(&dir)?;
                let path = leads::import::file_of(&data_dir, job);
                let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
                leads::synthetic::write_csv(&mut out, n, seed, 0)?;
                std::io::Write::flush(&mut out)?;
                drop(out);
                let context = db::TenantContext {
                    org_id: demo.org_id,
                    user_id: demo.admin_id,
                    role: db::Role::Admin,
                    aal: db::Aal::Aal1,
                };
                let rows = leads::import::enqueue(
                    &pool,
                    &data_dir,
                    context,
                    job,
                    "demo-seed.csv",
                    time::OffsetDateTime::now_utc(),
                )
                .await?;
                Ok((job, rows))
            })
            .await;
            match result {
                Ok((job, rows)) => ok(
                    json,
                    &format!(
                        "import {job} of {rows} synthetic leads queued for the demo organization"
                    ),
                    serde_json::json!({ "job": job, "rows": rows }),
                ),
                Err(e) => fail("demo seed", &format!("{e:#}"), json),
            }
        }
        Command::Dkim(cli::DkimCommand::Generate(args)) => {
            let json = args.ops.json;
            let config = match Config::load(&sources(&cli, args.ops.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), json),
            };
            let result = async {
                let master = secrets::master_key(&config.secrets.master_key, &config.data_dir)?;
                with_pool(&config, Conn::Migrate, |pool| async move {
                    campaigns::dkim::generate(
                        &pool,
                        &master,
                        &args.domain,
                        &args.selector,
                        args.algorithm,
                        time::OffsetDateTime::now_utc(),
                    )
                    .await
                })
                .await
            }
            .await;
            match result {
                Ok((name, record)) => ok(
                    json,
                    &format!("publish this TXT record:\n{name}. IN TXT \"{record}\""),
                    serde_json::json!({ "name": name, "record": record }),
                ),
                Err(e) => fail("dkim generate", &format!("{e:#}"), json),
            }
        }
        Command::Waitlist(command) => waitlist(&cli, command).await,
        Command::Vdp(command) => vdp(&cli, command).await,
        Command::Pci(cli::PciCommand::Scan(args)) => pci_scan(&cli, args).await,
        Command::Retention(cli::RetentionCommand::Run(args)) => retention_run(&cli, args).await,
        Command::Accounts(command) => accounts(&cli, command).await,
        Command::Backup(command) => backup(&cli, command).await,
        Command::Restore(args) => restore(&cli, args).await,
        Command::Incident(command) => incident(&cli, command).await,
        Command::Operator(cli::OperatorCommand::Add(args)) => operator_add(&cli, args).await,
        Command::Audit(AuditCommand::Verify(args)) => {
            let json = args.ops.json;
            let config = match Config::load(&sources(&cli, args.ops.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), json),
            };
            let org = args.org;
            let result = with_pool(&config, Conn::Migrate, |pool| async move {
                Ok(audit::verify(&pool, org).await?)
            })
            .await;
            match result {
                Ok(report) => match &report.broken {
                    None => ok(
                        json,
                        &format!(
                            "audit trail intact: {} row(s) in {} organization(s)",
                            report.rows, report.organizations
                        ),
                        serde_json::json!(report),
                    ),
                    Some(b) => {
                        if json {
                            let mut v = serde_json::json!(report);
                            v["ok"] = false.into();
                            println!("{v}");
                        } else {
                            eprintln!(
                                "leadgen: audit trail broken in organization {} at row id {} (seq {}): {}",
                                b.org_id, b.id, b.seq, b.reason
                            );
                        }
                        ExitCode::FAILURE
                    }
                },
                Err(e) => fail("audit verify", &format!("{e:#}"), json),
            }
        }
        Command::Audit(AuditCommand::Upgrade(args)) => {
            let json = args.json;
            let config = match Config::load(&sources(&cli, args.data_dir.as_deref())) {
                Ok(c) => c,
                Err(e) => return fail("configuration", &e.to_string(), json),
            };
            let result = with_pool(&config, Conn::Migrate, |pool| async move {
                audit::upgrade(&pool).await
            })
            .await;
            match result {
                Ok(done) => ok(
                    json,
                    &format!(
                        "{} organization chain(s) moved to erasable rows ({} row(s))",
                        done.len(),
                        done.iter().map(|d| d.rows).sum::<usize>()
                    ),
                    serde_json::json!({ "upgraded": done }),
                ),
                Err(e) => fail("audit upgrade", &format!("{e:#}"), json),
            }
        }
        Command::Configtest(args) => {
            let checked = Config::load(&sources(&cli, args.data_dir.as_deref()))
                .and_then(|c| startup::check(&c).map(|()| c))
                .and_then(check_tls_files);
            match checked {
                Ok(c) => ok(
                    args.json,
                    &format!("configuration OK (profile {})", c.profile),
                    serde_json::json!({ "profile": c.profile.to_string() }),
                ),
                Err(e) => {
                    if args.json {
                        println!(
                            "{}",
                            serde_json::json!({ "ok": false, "key": e.path(), "error": e.to_string() })
                        );
                    } else {
                        eprintln!("leadgen: configuration: {e}");
                    }
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `leadgen waitlist list | export | invite`: the operator's side of the early-access list.
async fn waitlist(cli: &Cli, command: &cli::WaitlistCommand) -> ExitCode {
    use cli::WaitlistCommand as W;
    let ops = match command {
        W::List(ops) => ops,
        W::Export(a) => &a.ops,
        W::Invite(a) => &a.ops,
    };
    let json = ops.json;
    let config = match Config::load(&sources(cli, ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    match command {
        W::List(_) => {
            let listed = with_pool(&config, Conn::App, |pool| async move {
                Ok(public::early_access::list(&pool).await?)
            })
            .await;
            match listed {
                Ok((entries, spam)) => {
                    let mut text = format!("{} address(es)\n", entries.len());
                    for e in &entries {
                        let invited = if e.invited_at.is_some() {
                            ", invited"
                        } else {
                            ""
                        };
                        text.push_str(&format!("{}  {}{invited}\n", e.email, e.status));
                    }
                    for (reason, posts) in &spam {
                        text.push_str(&format!("caught by the {reason} trap: {posts}\n"));
                    }
                    let spam: serde_json::Map<String, serde_json::Value> =
                        spam.into_iter().map(|(r, n)| (r, n.into())).collect();
                    ok(
                        json,
                        text.trim_end(),
                        serde_json::json!({ "entries": entries, "spam": spam }),
                    )
                }
                Err(e) => fail("waitlist list", &format!("{e:#}"), json),
            }
        }
        W::Export(args) => {
            let csv = with_pool(&config, Conn::App, |pool| async move {
                let (entries, _) = public::early_access::list(&pool).await?;
                public::early_access::to_csv(&entries)
            })
            .await;
            let written = csv.and_then(|bytes| {
                match &args.out {
                    Some(path) => std::fs::write(path, &bytes)?,
                    None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
                }
                Ok(bytes.len())
            });
            match (written, &args.out) {
                (Ok(n), Some(path)) => ok(
                    json,
                    &format!("wrote {n} bytes to {}", path.display()),
                    serde_json::json!({ "bytes": n, "path": path }),
                ),
                (Ok(_), None) => ExitCode::SUCCESS,
                (Err(e), _) => fail("waitlist export", &format!("{e:#}"), json),
            }
        }
        W::Invite(args) => {
            use clock::Clock as _;
            let now = clock::SystemClock.now();
            let invited = async {
                let app_key = secrets::app_key(&config.secrets.app_key, &config.data_dir)?;
                let mailer = mail::Mailer::from_config(&config.mail, &config.data_dir)?;
                let site = config.site_url();
                with_pool(&config, Conn::App, |pool| async move {
                    public::early_access::invite(
                        &pool,
                        &mailer,
                        &app_key,
                        &site,
                        &args.emails,
                        args.limit,
                        now,
                    )
                    .await
                })
                .await
            }
            .await;
            match invited {
                Ok(list) => ok(
                    json,
                    &format!("invited {} address(es)", list.len()),
                    serde_json::json!({ "invited": list }),
                ),
                Err(e) => fail("waitlist invite", &format!("{e:#}"), json),
            }
        }
    }
}

/// `leadgen vdp list | show | triage | attachment`: the operators' side of vulnerability
/// disclosure.
async fn vdp(cli: &Cli, command: &cli::VdpCommand) -> ExitCode {
    use cli::VdpCommand as V;
    let ops = match command {
        V::List(ops) => ops,
        V::Show(a) => &a.ops,
        V::Triage(a) => &a.ops,
        V::Attachment(a) => &a.ops,
    };
    let json = ops.json;
    let config = match Config::load(&sources(cli, ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let vdp = public::vdp::get;
    match command {
        V::List(_) => {
            let listed = with_pool(&config, Conn::App, |pool| async move {
                Ok(public::vdp::list(&pool).await?)
            })
            .await;
            match listed {
                Ok(reports) => {
                    let rows = reports.as_array().cloned().unwrap_or_default();
                    let mut text = format!("{} report(s)\n", rows.len());
                    for r in &rows {
                        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
                        text.push_str(&format!(
                            "{}  {:<10} {:<8} received {}  {}\n",
                            s("tracking_id"),
                            s("status"),
                            s("severity"),
                            s("created_at"),
                            s("title")
                        ));
                    }
                    ok(
                        json,
                        text.trim_end(),
                        serde_json::json!({ "reports": reports }),
                    )
                }
                Err(e) => fail("vdp list", &format!("{e:#}"), json),
            }
        }
        V::Show(args) => {
            let id = args.tracking_id.clone();
            let found = with_pool(&config, Conn::App, |pool| async move {
                Ok(vdp(&pool, &id).await?)
            })
            .await;
            match found {
                Ok(Some(report)) => ok(
                    json,
                    &serde_json::to_string_pretty(&report).unwrap_or_default(),
                    report,
                ),
                Ok(None) => fail("vdp show", &format!("no report {}", args.tracking_id), json),
                Err(e) => fail("vdp show", &format!("{e:#}"), json),
            }
        }
        V::Triage(args) => {
            use clock::Clock as _;
            let now = clock::SystemClock.now();
            let step = public::vdp::Triage {
                status: args.status.clone(),
                severity: args.severity.clone(),
                reward: args.reward.clone(),
                duplicate_of: args.duplicate_of.clone(),
                note: args.note.clone(),
                note_to_reporter: args.to_reporter,
            };
            let done = async {
                let mailer = mail::Mailer::from_config(&config.mail, &config.data_dir)?;
                let site = config.site_url();
                let id = args.tracking_id.clone();
                let actor = args.actor.clone();
                with_pool(&config, Conn::App, |pool| async move {
                    public::vdp::triage(
                        &pool,
                        &mailer,
                        &site,
                        now,
                        &actor,
                        &audit::Meta::default(),
                        &id,
                        step,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .await
            }
            .await;
            match done {
                Ok(report) => ok(
                    json,
                    &format!(
                        "{} is now {}",
                        args.tracking_id,
                        report["status"].as_str().unwrap_or("?")
                    ),
                    report,
                ),
                Err(e) => fail("vdp triage", &format!("{e:#}"), json),
            }
        }
        V::Attachment(args) => {
            let written = async {
                let master = secrets::master_key(&config.secrets.master_key, &config.data_dir)?;
                let id = args.tracking_id.clone();
                let n = args.number;
                let store = leads::keys::KeyStore::new(config.org_key_dir());
                let file = with_pool(&config, Conn::App, |pool| async move {
                    let fields = leads::FieldKeys::load(&pool, master, store).await?;
                    public::vdp::attachment(&pool, &fields, &id, n)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .await?
                .ok_or_else(|| anyhow::anyhow!("no attachment {n} on {}", args.tracking_id))?;
                std::fs::write(&args.out, &file.bytes)?;
                anyhow::Ok(file)
            }
            .await;
            match written {
                Ok(file) => ok(
                    json,
                    &format!(
                        "wrote {} ({} bytes, sent as {}) to {}",
                        file.filename,
                        file.bytes.len(),
                        file.content_type,
                        args.out.display()
                    ),
                    serde_json::json!({ "filename": file.filename, "bytes": file.bytes.len(),
                                        "content_type": file.content_type, "path": args.out }),
                ),
                Err(e) => fail("vdp attachment", &format!("{e:#}"), json),
            }
        }
    }
}

/// `leadgen keys rotate-jwt`.
async fn rotate_jwt(config: &Config) -> anyhow::Result<String> {
    use clock::Clock as _;
    let now = clock::SystemClock.now();
    let app_key = secrets::app_key(&config.secrets.app_key, &config.data_dir)?;
    let keys = auth::AuthKeys::new(&app_key, config)?;
    with_pool(config, Conn::App, |pool| async move {
        keys.rotate(&pool, now).await
    })
    .await
}

/// Which of the two database connections a command needs.
#[derive(Clone, Copy)]
enum Conn {
    /// The server's own role, under row-level security.
    App,
    /// The migration role's connection (which may become the maintenance role).
    Migrate,
}

/// Runs `f` with a pool: on the configured server, or on the embedded cluster, started for the
/// command when no server holds the data folder, or reached through the running server's socket
/// when one does.
async fn with_pool<F, Fut, T>(config: &Config, conn: Conn, f: F) -> anyhow::Result<T>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let connect = |urls: db::Urls| async move {
        match conn {
            Conn::App => Ok::<_, anyhow::Error>(db::connect_app(&urls.app, 2).await?),
            Conn::Migrate => Ok(sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .connect(&urls.migrate)
                .await?),
        }
    };
    if !config.database.embedded() {
        let pool = connect(db::Urls::from_config(&config.database)).await?;
        return f(pool).await;
    }
    let pg = backups::embedded_postgres(config)?;
    let Ok(lock) = startup::DataDirLock::acquire(&config.data_dir) else {
        let pool = connect(db::Urls::embedded(&pg)).await?;
        return f(pool).await;
    };
    pg.start().await?;
    let result = async {
        pg.ensure_database().await?;
        let pool = connect(db::Urls::embedded(&pg)).await?;
        let out = f(pool.clone()).await;
        pool.close().await;
        out
    }
    .await;
    pg.stop().await?;
    drop(lock);
    result
}

/// `configtest` also loads a configured certificate pair, so a bad or (in production)
/// self-signed certificate is found before a restart.
fn check_tls_files(config: Config) -> Result<Config, config::ConfigError> {
    if config.tls.cert_path.as_os_str().is_empty() {
        return Ok(config);
    }
    let checked = tls::cert_source(&config).and_then(|source| tls::server_config(&config, &source));
    match checked {
        Ok(_) => Ok(config),
        Err(e) => Err(config::ConfigError::Rule {
            path: "tls.cert_path".into(),
            reason: e.to_string(),
        }),
    }
}

/// `leadgen migrate`: against the configured server, or the embedded cluster (started for the
/// duration of the command, under the data folder lock).
async fn migrate(config: &Config) -> anyhow::Result<usize> {
    if !config.database.embedded() {
        return Ok(db::migrate(&db::Urls::from_config(&config.database).migrate).await?);
    }
    let _lock = startup::DataDirLock::acquire(&config.data_dir)?;
    let pg = backups::embedded_postgres(config)?;
    pg.start().await?;
    let result = async {
        pg.ensure_database().await?;
        Ok::<_, anyhow::Error>(db::migrate(&db::Urls::embedded(&pg).migrate).await?)
    }
    .await;
    pg.stop().await?;
    result
}

fn ok(json: bool, text: &str, value: serde_json::Value) -> ExitCode {
    if json {
        let mut v = value;
        v["ok"] = serde_json::Value::Bool(true);
        println!("{v}");
    } else {
        println!("{text}");
    }
    ExitCode::SUCCESS
}

fn fail(what: &str, message: &str, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": false, "error": format!("{what}: {message}") })
        );
    } else {
        eprintln!("leadgen: {what}: {message}");
    }
    ExitCode::FAILURE
}

/// `leadgen pci scan`: every free-text column of the database and the configured log files.
async fn pci_scan(cli: &Cli, args: &cli::PciScanArgs) -> ExitCode {
    let json = args.ops.json;
    let config = match Config::load(&sources(cli, args.ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let fix = args.fix;
    let scanned = with_pool(&config, Conn::Migrate, |pool| async move {
        let mut tx = pool.begin().await?;
        // The maintenance role reads every organization's rows.
        sqlx::query("SET LOCAL ROLE leadgen_maintenance")
            .execute(&mut *tx)
            .await?;
        let found = pci::scan(&mut tx, fix).await?;
        tx.commit().await?;
        Ok(found)
    })
    .await;
    let found = match scanned {
        Ok(found) => found,
        Err(e) => return fail("pci scan", &format!("{e:#}"), json),
    };
    let mut log_paths = config.pci.log_paths.clone();
    log_paths.extend(args.logs.iter().cloned());
    let in_logs = match pci::scan_logs(&log_paths, fix) {
        Ok(found) => found,
        Err(e) => return fail("pci scan", &format!("log files: {e}"), json),
    };
    let total = found.len() + in_logs.len();
    if fix && total > 0 {
        alert_masked(&config, found.len(), in_logs.len()).await;
    }
    let remaining = if fix { 0 } else { total };
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": remaining == 0, "found": found, "logs": in_logs, "fixed": fix })
        );
    } else {
        for f in &found {
            let org = f.org_id.map_or_else(
                || "the platform".to_string(),
                |o| format!("organization {o}"),
            );
            println!(
                "{}.{} of {} in {org}: {}",
                f.table,
                f.column,
                f.row_id,
                f.masked.join(", ")
            );
        }
        for f in &in_logs {
            println!("{}:{}: {}", f.file, f.line, f.masked);
        }
        let what = if fix { "masked" } else { "found" };
        println!(
            "{} value(s) and {} log line number(s) with card numbers {what}",
            found.len(),
            in_logs.len()
        );
    }
    if remaining == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Tells the alert webhooks of the rules file that a scan masked card numbers: the scan runs
/// apart from the server, whose alert loop never hears of it.
async fn alert_masked(config: &Config, rows: usize, log_lines: usize) {
    let waf = match perimeter::load_waf(config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("alert not sent: {e}");
            return;
        }
    };
    let Ok(http) = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    else {
        eprintln!("alert not sent: no HTTP client");
        return;
    };
    let fired = perimeter::alerts::Fired {
        rule: "card-number-masked".into(),
        event: perimeter::alerts::Event::PanMasked,
        count: rows + log_lines,
        window_secs: 0,
        detail: Some(format!(
            "the card-number scan masked {rows} stored value(s) and {log_lines} number(s) in log files"
        )),
    };
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    for hook in &waf.monitoring.webhooks {
        if !perimeter::alerts::deliver(&http, hook, &fired, &at).await {
            eprintln!("alert not delivered to a webhook");
        }
    }
}

/// `leadgen accounts purge` and `leadgen accounts delete EMAIL --now`.
/// Reads a password from standard input: without echo when it is a terminal.
fn read_password(prompt: &str) -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let saved = tcgetattr(&stdin).map_err(std::io::Error::from)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let read = stdin.lock().read_line(&mut line);
        tcsetattr(&stdin, SetArg::TCSANOW, &saved).map_err(std::io::Error::from)?;
        eprintln!();
        read?;
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `leadgen operator add EMAIL [--allow-ip CIDR]…`.
async fn operator_add(cli: &Cli, args: &cli::OperatorAddArgs) -> ExitCode {
    let json = args.ops.json;
    let config = match Config::load(&sources(cli, args.ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let password = match read_password("Password for the new operator: ") {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return fail("operator add", "no password on standard input", json),
        Err(e) => return fail("operator add", &format!("reading the password: {e}"), json),
    };
    let keys = match secrets::app_key(&config.secrets.app_key, &config.data_dir)
        .map_err(anyhow::Error::from)
        .and_then(|k| auth::AuthKeys::new(&k, &config))
    {
        Ok(k) => k,
        Err(e) => return fail("operator add", &format!("{e:#}"), json),
    };
    let cost = config.auth.bcrypt_cost;
    let (email, allow) = (&args.email, &args.allow_ips);
    let result = with_pool(&config, Conn::Migrate, |pool| async move {
        operators::add(
            &pool,
            keys.seal_key(),
            email,
            &password,
            allow,
            cost,
            time::OffsetDateTime::now_utc(),
        )
        .await
    })
    .await;
    match result {
        Ok(added) => ok(
            json,
            &format!(
                "operator {email} created. Enrol this secret in an authenticator app now (it is not shown again):\n  {}\n  {}\nSign in at /operator/login.",
                added.secret_base32, added.otpauth_uri
            ),
            serde_json::to_value(&added).unwrap_or_default(),
        ),
        Err(e) => fail("operator add", &format!("{e:#}"), json),
    }
}

/// `leadgen incident …`: each action in one transaction that notifies every instance.
async fn incident(cli: &Cli, command: &cli::IncidentCommand) -> ExitCode {
    use cli::IncidentCommand as C;
    let (ops, who) = match command {
        C::Open(a) => (&a.who.ops, a.who.actor.as_deref()),
        C::List(a) => (&a.ops, None),
        C::Ack(a) | C::FreezeAuth(a) | C::ThawAuth(a) => (&a.who.ops, a.who.actor.as_deref()),
        C::Block(a) => (&a.who.ops, a.who.actor.as_deref()),
        C::Unblock(a) => (&a.who.ops, a.who.actor.as_deref()),
        C::RevokeSessions(a) => (&a.who.ops, a.who.actor.as_deref()),
        C::Rotate(a) => (&a.who.ops, a.who.actor.as_deref()),
        C::Resolve(a) => (&a.who.ops, a.who.actor.as_deref()),
    };
    let json = ops.json;
    let actor = who.map_or_else(
        || {
            format!(
                "operator:{}",
                std::env::var("USER").unwrap_or_else(|_| "unknown".into())
            )
        },
        str::to_string,
    );
    let config = match Config::load(&sources(cli, ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    // Refuse a malformed network before touching anything.
    let network = match command {
        C::Block(cli::IncidentBlockArgs { ip, .. })
        | C::Unblock(cli::IncidentUnblockArgs { ip, .. }) => match incidents::parse_network(ip) {
            Ok(n) => Some(n),
            Err(e) => return fail("incident", &e.to_string(), json),
        },
        _ => None,
    };
    let now = time::OffsetDateTime::now_utc();
    let config = &config;
    let actor = actor.as_str();
    let result = with_pool(config, Conn::Migrate, |pool| async move {
        let done: (String, serde_json::Value) = match command {
            C::Open(a) => {
                let severity = match a.severity {
                    cli::IncidentSeverity::Low => incidents::Severity::Low,
                    cli::IncidentSeverity::Medium => incidents::Severity::Medium,
                    cli::IncidentSeverity::High => incidents::Severity::High,
                };
                let id = incidents::open(&pool, severity, &a.summary, actor, now).await?;
                (
                    format!("incident {id} opened ({} severity)", severity.as_str()),
                    serde_json::json!({ "id": id }),
                )
            }
            C::List(a) => {
                let list = incidents::list(&pool, a.all).await?;
                let text = if list.is_empty() {
                    "no open incidents".to_string()
                } else {
                    list.iter()
                        .map(|i| {
                            let mut t = format!(
                                "#{} [{}] {}{}",
                                i.id,
                                i.severity,
                                i.summary,
                                if i.resolved_at.is_some() { " (resolved)" } else { "" }
                            );
                            for e in &i.timeline {
                                t.push_str(&format!("\n  {} {} {} {}", e.at, e.actor, e.action, e.detail));
                            }
                            t
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                (text, serde_json::json!({ "incidents": list }))
            }
            C::Ack(a) => {
                incidents::acknowledge(&pool, a.id, actor, now).await?;
                (format!("incident {} acknowledged", a.id), serde_json::json!({}))
            }
            C::Block(a) => {
                let net = network.unwrap_or_else(|| unreachable!("parsed above"));
                let until = now + a.duration;
                incidents::block(&pool, a.id, net, until, actor, now).await?;
                (
                    format!("{net} blocked on every instance until {until}"),
                    serde_json::json!({ "network": net.to_string(), "until": until.unix_timestamp() }),
                )
            }
            C::Unblock(a) => {
                let net = network.unwrap_or_else(|| unreachable!("parsed above"));
                let n = incidents::unblock(&pool, a.id, net, actor, now).await?;
                (format!("{net} unblocked"), serde_json::json!({ "lifted": n }))
            }
            C::RevokeSessions(a) => {
                let scope = match (&a.user, a.org) {
                    (Some(u), _) => incidents::Scope::User(u.clone()),
                    (None, Some(o)) => incidents::Scope::Org(o),
                    (None, None) => incidents::Scope::Everyone,
                };
                let n = incidents::revoke_sessions(&pool, a.id, &scope, actor, now).await?;
                (format!("{n} session(s) revoked"), serde_json::json!({ "revoked": n }))
            }
            C::FreezeAuth(a) | C::ThawAuth(a) => {
                let frozen = matches!(command, C::FreezeAuth(_));
                incidents::set_frozen(&pool, a.id, frozen, actor, now).await?;
                (
                    if frozen {
                        "authentication frozen on every instance".to_string()
                    } else {
                        "authentication thawed".to_string()
                    },
                    serde_json::json!({ "auth_frozen": frozen }),
                )
            }
            C::Rotate(a) => {
                incidents::ensure_open(&pool, a.id).await?;
                let detail = if a.jwt {
                    let app_key = secrets::app_key(&config.secrets.app_key, &config.data_dir)?;
                    let keys = auth::AuthKeys::new(&app_key, config)?;
                    let kid = keys.rotate_revoking(&pool, now).await?;
                    serde_json::json!({ "what": "jwt", "kid": kid })
                } else if a.data {
                    let master = secrets::master_key(&config.secrets.master_key, &config.data_dir)?;
                    let store = leads::keys::KeyStore::new(config.org_key_dir());
                    let r = leads::rotate::rotate(&pool, &master, &store, 1000).await?;
                    serde_json::json!({ "what": "data", "generation": r.key_id, "reencrypted": r.reencrypted })
                } else if let Some(org) = a.org_api_keys {
                    let n = incidents::revoke_org_api_keys(&pool, a.id, org, actor, now).await?;
                    return Ok((
                        format!("{n} API key(s) of organization {org} revoked"),
                        serde_json::json!({ "what": "org-api-keys", "revoked": n }),
                    ));
                } else {
                    unreachable!("clap requires one of --jwt, --data, --org-api-keys")
                };
                incidents::record_rotation(&pool, a.id, detail.clone(), actor, now).await?;
                (format!("rotated: {detail}"), detail)
            }
            C::Resolve(a) => {
                incidents::resolve(&pool, a.id, &a.summary, actor, now).await?;
                (format!("incident {} resolved", a.id), serde_json::json!({}))
            }
        };
        Ok(done)
    })
    .await;
    match result {
        Ok((text, value)) => ok(json, &text, value),
        Err(e) => fail("incident", &format!("{e:#}"), json),
    }
}

/// `leadgen backup run|list|verify`.
async fn backup(cli: &Cli, command: &cli::BackupCommand) -> ExitCode {
    let (ops, what) = match command {
        cli::BackupCommand::Run(a) => (&a.ops, "backup run"),
        cli::BackupCommand::List(o) => (o, "backup list"),
        cli::BackupCommand::Verify(o) => (o, "backup verify"),
    };
    let json = ops.json;
    let config = match Config::load(&sources(cli, ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let engine = match backups::Engine::for_config(&config) {
        Ok(e) => e,
        Err(e) => return fail(what, &e.to_string(), json),
    };
    match command {
        cli::BackupCommand::Run(a) => {
            let kind = match a.kind {
                cli::BackupType::Full => backups::Kind::Full,
                cli::BackupType::Incr => backups::Kind::Incr,
            };
            let clock: clock::SharedClock = std::sync::Arc::new(clock::SystemClock);
            let cfg = &config;
            let result = with_pool(cfg, Conn::Migrate, |pool| async move {
                Ok(backups::run(cfg, &engine, &pool, kind, &clock).await?)
            })
            .await;
            match result {
                Ok(r) => ok(
                    json,
                    &format!(
                        "backup {} ({}) taken in {:.1} s: {} bytes in the repository for {} bytes \
                         of database; manifest: {} tables, {} rows (transaction {})",
                        r.set.label,
                        r.set.kind,
                        r.seconds,
                        r.set.repo_delta,
                        r.set.size,
                        r.tables,
                        r.rows,
                        r.manifest_xid
                    ),
                    serde_json::to_value(&r).unwrap_or_default(),
                ),
                Err(e) => fail(what, &format!("{e:#}"), json),
            }
        }
        cli::BackupCommand::List(_) => match engine.sets().await {
            Ok(sets) => {
                let text = if sets.is_empty() {
                    "no backups yet".to_string()
                } else {
                    sets.iter()
                        .map(|s| {
                            format!(
                                "{}  {:<4}  stopped {}  {} bytes stored  {}",
                                s.label,
                                s.kind,
                                time::OffsetDateTime::from_unix_timestamp(s.stopped)
                                    .map(|t| t.to_string())
                                    .unwrap_or_default(),
                                s.repo_delta,
                                s.manifest_xid.map_or_else(
                                    || "no manifest".to_string(),
                                    |x| format!("manifest at transaction {x}")
                                )
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                ok(json, &text, serde_json::json!({ "backups": sets }))
            }
            Err(e) => fail(what, &e.to_string(), json),
        },
        cli::BackupCommand::Verify(_) => {
            // Both halves are checked, and every problem in either is named.
            let database = engine.verify(None).await;
            let files = match engine.sets().await {
                Ok(sets) => {
                    let labels: Vec<String> = sets.into_iter().map(|s| s.label).collect();
                    backups::files::verify(&config, &labels)
                }
                Err(e) => Err(e),
            };
            match (database, files) {
                (Ok(summary), Ok(n)) => ok(
                    json,
                    &format!("the repository verifies: {summary}; {n} data folder file(s)"),
                    serde_json::json!({ "summary": summary, "files": n }),
                ),
                (d, f) => {
                    let problems: Vec<String> = [d.err(), f.err()]
                        .into_iter()
                        .flatten()
                        .map(|e| e.to_string())
                        .collect();
                    fail(what, &problems.join("; "), json)
                }
            }
        }
    }
}

/// `leadgen restore --verify [--at]` and `leadgen restore --to TIME --into DIR`.
async fn restore(cli: &Cli, args: &cli::RestoreArgs) -> ExitCode {
    let json = args.ops.json;
    let config = match Config::load(&sources(cli, args.ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let engine = match backups::Engine::for_config(&config) {
        Ok(e) => e,
        Err(e) => return fail("restore", &e.to_string(), json),
    };
    if let (Some(at), Some(into)) = (args.to, args.into.as_deref()) {
        // No database connection: this is what an operator runs when the database is gone.
        return match backups::restore::to_time(&config, &engine, at, into).await {
            Ok(r) => ok(
                json,
                &format!(
                    "restored {} to {at} into {} (and {} data folder file(s)); start it with pg_ctl -D {} start",
                    r.label,
                    r.into.display(),
                    r.files,
                    r.into.display()
                ),
                serde_json::to_value(&r).unwrap_or_default(),
            ),
            Err(e) => fail("restore", &e.to_string(), json),
        };
    }
    let clock: clock::SharedClock = std::sync::Arc::new(clock::SystemClock);
    let at = args.at;
    let proved = {
        let (config, engine, clock) = (&config, &engine, &clock);
        with_pool(config, Conn::Migrate, |pool| async move {
            Ok(backups::restore::verify(config, engine, Some(&pool), at, clock).await?)
        })
        .await
    };
    match proved {
        Ok(p) => {
            let mut text = format!(
                "restore proof of {} (transaction {}, scratch cluster on port {}) in {:.1} s:",
                p.label, p.manifest_xid, p.port, p.seconds
            );
            for c in &p.checks {
                text.push_str(&format!(
                    "\n  {} {}: {}",
                    if c.ok { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                ));
            }
            if p.ok {
                ok(json, &text, serde_json::to_value(&p).unwrap_or_default())
            } else {
                if json {
                    let mut v = serde_json::to_value(&p).unwrap_or_default();
                    v["error"] = serde_json::Value::String(p.problem().unwrap_or_default());
                    println!("{v}");
                } else {
                    eprintln!("{text}");
                    eprintln!(
                        "leadgen: restore: the proof failed: {}",
                        p.problem().unwrap_or_default()
                    );
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => fail("restore", &format!("{e:#}"), json),
    }
}

async fn accounts(cli: &Cli, command: &cli::AccountsCommand) -> ExitCode {
    let (ops, what) = match command {
        cli::AccountsCommand::Purge(a) => (&a.ops, "accounts purge"),
        cli::AccountsCommand::Delete(a) => (&a.ops, "accounts delete"),
    };
    let json = ops.json;
    if let cli::AccountsCommand::Delete(a) = command
        && !a.now
    {
        return fail(
            what,
            "--now is required: it deletes the account at once, skipping the grace period in \
             which signing in would cancel it",
            json,
        );
    }
    let config = match Config::load(&sources(cli, ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let mailer = match mail::Mailer::from_config(&config.mail, &config.data_dir) {
        Ok(m) => m,
        Err(e) => return fail("mail", &format!("{e:#}"), json),
    };
    let store = leads::keys::KeyStore::new(config.org_key_dir());
    let result = with_pool(&config, Conn::Migrate, |pool| async move {
        match command {
            cli::AccountsCommand::Purge(a) => {
                let now = a.as_of.unwrap_or_else(time::OffsetDateTime::now_utc);
                privacy::accounts::purge(&pool, &mailer, &store, now).await
            }
            cli::AccountsCommand::Delete(a) => {
                privacy::accounts::delete_now(
                    &pool,
                    &mailer,
                    &store,
                    &a.email,
                    time::OffsetDateTime::now_utc(),
                )
                .await
            }
        }
    })
    .await;
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(what, &format!("{e:#}"), json),
    };
    let blocked = !report.blocked.is_empty();
    if json {
        println!(
            "{}",
            serde_json::json!({ "ok": !blocked, "deleted": report.deleted, "blocked": report.blocked,
                                "organizations_deleted": report.organizations_deleted,
                                "keys_destroyed": report.keys_destroyed })
        );
    } else {
        for d in &report.deleted {
            println!(
                "deleted an account (now {} in the audit trails): {} organization(s) with it, {} audit row(s) pseudonymised",
                d.pseudonym, d.organizations_deleted, d.audit_rows_pseudonymised
            );
        }
        for b in &report.blocked {
            println!("left an account: {}", b.reason);
        }
        println!(
            "{} account(s) deleted, {} left; {} organization(s) deleted after their grace period; \
             {} organization data key(s) destroyed",
            report.deleted.len(),
            report.blocked.len(),
            report.organizations_deleted.len(),
            report.keys_destroyed.len()
        );
    }
    if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `leadgen retention run`: every organization's expired leads anonymised, old ones purged.
async fn retention_run(cli: &Cli, args: &cli::RetentionRunArgs) -> ExitCode {
    let json = args.ops.json;
    let config = match Config::load(&sources(cli, args.ops.data_dir.as_deref())) {
        Ok(c) => c,
        Err(e) => return fail("configuration", &e.to_string(), json),
    };
    let opts = privacy::retention::Options {
        now: args.as_of.unwrap_or_else(time::OffsetDateTime::now_utc),
        dry_run: args.dry_run,
        purge_after_days: i64::from(config.retention.purge_after_days),
        batch_size: i64::from(config.retention.batch_size),
        import_upload_days: i64::from(config.retention.import_upload_days),
        audit_months: config.retention.audit_months,
    };
    let imports_dir = leads::import::folder(&config.data_dir);
    let result = with_pool(&config, Conn::Migrate, |pool| async move {
        let reports = privacy::retention::run(&pool, opts).await?;
        let uploads = privacy::retention::sweep_uploads(&pool, &imports_dir, opts).await?;
        let (sessions, reads) = privacy::retention::purge_activity_records(&pool, opts).await?;
        Ok((reports, uploads, sessions, reads))
    })
    .await;
    let (reports, uploads, sessions, reads) = match result {
        Ok(r) => r,
        Err(e) => return fail("retention run", &format!("{e:#}"), json),
    };
    let (anonymised, purged) = reports
        .iter()
        .fold((0, 0), |(a, p), r| (a + r.anonymised, p + r.purged));
    let audit_rows: u64 = reports.iter().map(|r| r.audit_rows_purged).sum();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "dry_run": args.dry_run, "anonymised": anonymised, "purged": purged,
                "import_uploads_removed": uploads, "audit_rows_purged": audit_rows,
                "sessions_purged": sessions, "lead_reads_purged": reads, "organizations": reports,
            })
        );
    } else {
        let (a, p) = if args.dry_run {
            ("would be anonymised", "would be purged")
        } else {
            ("anonymised", "purged")
        };
        for r in reports.iter().filter(|r| r.anonymised > 0 || r.purged > 0) {
            println!(
                "organization {} ({} months): {} {a}, {} {p}",
                r.org_id, r.months, r.anonymised, r.purged
            );
        }
        println!(
            "{anonymised} lead(s) {a}, {purged} {p}; {uploads} import upload(s), {audit_rows} audit \
             row(s), {sessions} ended session(s) and {reads} record(s) of lead reads older than \
             the audit period {p}"
        );
    }
    ExitCode::SUCCESS
}
