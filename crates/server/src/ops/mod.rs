//! Operational endpoints: liveness, readiness, CSP violation reports, and the admin listener's
//! Prometheus metrics.

pub mod database;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::state::Core;

/// Largest CSP report accepted; reports are small and the endpoint is unauthenticated.
const MAX_CSP_REPORT: usize = 16 * 1024;

pub fn routes() -> Router<Core> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/csp-report", post(csp_report))
}

/// Liveness: the process answers. Touches nothing else, so a slow database never gets the
/// process killed.
async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: the database answers and every migration this binary knows has been applied.
async fn readyz(State(state): State<Core>) -> Response {
    // While the probe finds the database down, say so at once rather than wait for the pool.
    let checked = if state.database.is_up() {
        crate::db::migrations_current(&state.pool).await
    } else {
        Err(sqlx::Error::PoolTimedOut)
    };
    let (database, migrations) = match checked {
        Ok(current) => (true, current),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            (false, false)
        }
    };
    let ready = database && migrations;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": { "database": database, "migrations_current": migrations },
    });
    (status, axum::Json(body)).into_response()
}

/// Browsers post Content-Security-Policy violations here (`report-uri /csp-report`). Each one is
/// logged, since a violation is either a bug in our pages or an injection attempt.
async fn csp_report(body: Bytes) -> StatusCode {
    if body.len() > MAX_CSP_REPORT {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let report: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return StatusCode::BAD_REQUEST,
    };
    let r = report.get("csp-report").unwrap_or(&report);
    let field = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    tracing::warn!(
        target: "leadgen::csp",
        document = %field("document-uri"),
        directive = %field("violated-directive"),
        blocked = %field("blocked-uri"),
        "content security policy violation"
    );
    metrics::counter!("csp_violations_total").increment(1);
    StatusCode::NO_CONTENT
}

/// The admin listener's router (loopback only): Prometheus metrics.
pub fn admin_router(metrics: metrics_exporter_prometheus::PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    metrics.render(),
                )
            }
        }),
    )
}
