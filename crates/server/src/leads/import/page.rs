//! `/leads/import`: the import wizard. The page lists the organization's recent imports; its
//! script (`static/import.js`) drives the same API a client would (`/api/v1/imports`), with the
//! session's cookie: upload the file as it is (streamed, never read whole by the browser), show the
//! detected dialect, the preview and the column mapping for the user to correct, start the job in
//! the chosen mode, then follow its progress (percent, rows/s, ETA) until it ends, with the error
//! report to download.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::auth::BrowserUser;
use crate::db::TenantTx;
use crate::http::error::AppError;
use crate::leads::LeadsState;
use crate::orgs::permissions::{Member, Permission, check};
use crate::web::assets::{self, Assets};
use crate::web::shell::{Section, Shell};
use crate::web::{SignedIn, When, csrf, render};

pub fn routes() -> Router<LeadsState> {
    Router::new().route("/leads/import", get(page))
}

struct JobLine {
    id: String,
    file_name: String,
    status: String,
    rows: i64,
    created: i64,
    updated: i64,
    rejected: i64,
    at: When,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    shell: Shell,
    jobs: Vec<JobLine>,
}

async fn page(
    State(state): State<LeadsState>,
    headers: axum::http::HeaderMap,
    SignedIn(who): BrowserUser,
) -> Result<Response, AppError> {
    if let Some(away) = crate::auth::shell::without_organization(&who) {
        return Ok(away);
    }
    let token = csrf(&state, &headers);
    let shell = crate::auth::shell(&state, &who, Section::Import, &token.token).await?;
    let member = Member::from_user(&who)?;
    check(&member, Permission::LeadSearchAndManagement)?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let jobs = sqlx::query!(
        "SELECT id, file_name, status, rows_done, created, updated, rejected, created_at
         FROM app.import_jobs WHERE org_id = $1 ORDER BY created_at DESC LIMIT 20",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|j| JobLine {
        id: j.id.to_string(),
        file_name: j.file_name.unwrap_or_default(),
        status: j.status,
        rows: j.rows_done,
        created: j.created,
        updated: j.updated,
        rejected: j.rejected,
        at: shell.when(j.created_at),
    })
    .collect();
    tx.commit().await?;
    let page = ImportPage {
        assets: assets::get(),
        version: state.version,
        shell,
        jobs,
    };
    Ok(render(&page, StatusCode::OK, &token))
}
