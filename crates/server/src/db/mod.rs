//! Database plumbing: the application pool, migrations, the embedded cluster and [`TenantTx`],
//! the only door through which tenant repositories reach data.

pub mod embedded;
pub mod tenant;

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use tenant::{Aal, Role, TenantContext, TenantTx, UserTx};

use crate::config::DatabaseConfig;

/// Migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database.url: {0}")]
    Url(String),
    #[error("connecting to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error(
        "the server must not connect as role {role:?}: it is {what}, which would bypass row-level security. \
         Connect as leadgen_app (see `leadgen migrate`)"
    )]
    UnsafeRole { role: String, what: &'static str },
    #[error("running migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Embedded(#[from] embedded::EmbeddedError),
}

/// Connection URLs resolved from configuration or from the embedded cluster.
#[derive(Clone)]
pub struct Urls {
    pub app: String,
    pub migrate: String,
}

impl Urls {
    #[must_use]
    pub fn from_config(db: &DatabaseConfig) -> Self {
        let app = db.url.expose_secret().to_string();
        let migrate = db.migrate_url.expose_secret();
        Self {
            migrate: if migrate.is_empty() {
                app.clone()
            } else {
                migrate.to_string()
            },
            app,
        }
    }

    #[must_use]
    pub fn embedded(pg: &embedded::EmbeddedPostgres) -> Self {
        Self {
            app: pg.url("leadgen_app", embedded::DATABASE),
            migrate: pg.url(embedded::BOOTSTRAP_ROLE, embedded::DATABASE),
        }
    }
}

impl std::fmt::Debug for Urls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Urls { .. }")
    }
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| DbError::Url(e.to_string()))?
        .application_name("leadgen")
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// Applies pending migrations as the migration role.
pub async fn migrate(url: &str) -> Result<usize, DbError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options(url)?)
        .await
        .map_err(DbError::Connect)?;
    let before = applied_versions(&pool).await.unwrap_or_default().len();
    MIGRATOR.run(&pool).await?;
    let after = applied_versions(&pool).await?.len();
    pool.close().await;
    Ok(after.saturating_sub(before))
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM public._sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}

/// Opens the application pool and refuses a role that would bypass row-level security.
pub async fn connect_app(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx 0.8 can return a connection to the pool inside a transaction it does not track:
        // when a request is cancelled (its client hung up) while `BEGIN` is on the wire. The next
        // borrower would then run inside that stale transaction, with its tenant settings and
        // locks. A connection that comes back in a transaction is closed instead of reused.
        .after_release(|conn, _meta| {
            Box::pin(async move {
                // One simple-protocol message: outside a transaction block both timestamps come
                // from it and are equal; inside one, the transaction began with an earlier command.
                // (A bare string without arguments goes as a simple query.)
                let stale: Result<bool, sqlx::Error> = async {
                    use sqlx::{Executor as _, Row as _};
                    conn.fetch_one("SELECT transaction_timestamp() <> statement_timestamp()")
                        .await?
                        .try_get(0)
                }
                .await;
                if !matches!(stale, Ok(false)) {
                    tracing::warn!(
                        "a pooled connection came back inside a transaction; closing it"
                    );
                    metrics::counter!("db_stale_transaction_connections_total").increment(1);
                }
                Ok(matches!(stale, Ok(false)))
            })
        })
        .connect_with(options(url)?)
        .await
        .map_err(DbError::Connect)?;
    let (role, superuser, bypass): (String, bool, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&pool)
    .await?;
    if superuser {
        return Err(DbError::UnsafeRole {
            role,
            what: "a superuser",
        });
    }
    if bypass {
        return Err(DbError::UnsafeRole {
            role,
            what: "allowed to BYPASSRLS",
        });
    }
    Ok(pool)
}

/// Whether every migration this binary knows has been applied (for readiness).
pub async fn migrations_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied = applied_versions(pool).await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .all(|m| applied.contains(&m.version)))
}
