//! Whether the database answers, known without asking it on every request.
//!
//! A probe on a connection of its own runs `SELECT 1` each second. While it fails, requests
//! that would need the database get 503 with `Retry-After` at once, instead of each waiting for
//! the pool's acquire timeout and then failing with a 500; the service comes back by itself when
//! the probe succeeds again. Liveness and readiness probes always pass through.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::http::AppError;
pub use crate::state::DatabaseHealth;

/// How long the probe waits for the database before calling it down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One probe: a fresh connection when there is none, then `SELECT 1`, within the timeout.
async fn probe(conn: &mut Option<PgConnection>, options: &PgConnectOptions) -> bool {
    let attempt = async {
        if conn.is_none() {
            *conn = Some(PgConnection::connect_with(options).await?);
        }
        match conn.as_mut() {
            Some(c) => c.ping().await,
            None => Ok(()),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok(())) => true,
        _ => {
            // Dropped, so the next probe connects afresh (the server may have restarted).
            *conn = None;
            false
        }
    }
}

/// Probes each second and calls `on_change(up)` when the verdict changes.
pub async fn watch(
    options: PgConnectOptions,
    health: DatabaseHealth,
    on_change: impl Fn(bool) + Send + 'static,
) {
    let mut conn = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let up = probe(&mut conn, &options).await;
        if health.set(up) {
            on_change(up);
        }
    }
}

/// Answers 503 at once while the database is down, except the health probes.
pub async fn gate(State(health): State<DatabaseHealth>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if health.is_up() || path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    metrics::counter!("database_unavailable_responses_total").increment(1);
    AppError::Unavailable("the database is unavailable; try again shortly".into()).into_response()
}
