//! Export jobs: `POST /api/v1/exports` runs a large export in the background into a file on the
//! server and answers at once with a download link that carries a random token and expires
//! (`imports.export_link_secs` after the start, an hour by default). Only the job's creator can use the link (row-level
//! security keeps the job to its creator), with the Data Export permission, and only with the
//! token: a link copied into a ticket or a log is useless to anyone else and dies within the hour.
//! Every download is audited; files past their expiry are deleted by [`sweep`], whatever their
//! job's state.

use std::path::{Path as FsPath, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::export::{Format, Started, finish, start, stream_rows};
use super::search::SearchParams;
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiQuery, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::http::ts;
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(status))
        .routes(routes!(download))
}

type Export = Require<perm::DataExport>;

fn folder(data_dir: &FsPath) -> PathBuf {
    data_dir.join("exports")
}

fn file_of(data_dir: &FsPath, id: Uuid, format: &str) -> PathBuf {
    folder(data_dir).join(format!("{id}.{format}"))
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[utoipa::path(post, path = "/api/v1/exports", tag = "leads", params(SearchParams),
    responses((status = 202, description = "The job, running: its `id`, `status` and the `download_url` (with its token, shown only here) that works for you until `expires_at`; audited", body = Object), Refusals))]
async fn create(
    State(state): State<LeadsState>,
    Require(member, _): Export,
    meta: Meta,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, AppError> {
    let Started {
        format,
        filter,
        page,
        context,
        export_id,
    } = start(&state, &member, &meta, &params, "link").await?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let now = state.clock.now();
    let expires_at = now + time::Duration::seconds(state.config.imports.export_link_secs);
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    sqlx::query!(
        "INSERT INTO app.export_jobs (id, org_id, created_by, format, filter, status, token_sha256,
            expires_at, created_at, lease_until)
         VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9)",
        export_id,
        context.org_id,
        context.user_id,
        format.name(),
        super::export::describe(&params),
        token_hash(&token),
        expires_at,
        now,
        now + LEASE
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let task_state = state.clone();
    tokio::spawn(async move {
        let renewing = tokio::spawn(renew(task_state.clone(), context, export_id));
        let (rows, bytes, complete) =
            write_file(&task_state, context, &filter, page, format, export_id).await;
        renewing.abort();
        let done = async {
            let mut tx = TenantTx::begin(&task_state.pool, context).await?;
            sqlx::query!(
                "UPDATE app.export_jobs SET status = $2, rows = $3, bytes = $4, finished_at = $5,
                    lease_until = NULL, error = $6
                 WHERE id = $1",
                export_id,
                if complete { "done" } else { "failed" },
                i64::try_from(rows).unwrap_or(i64::MAX),
                i64::try_from(bytes).unwrap_or(i64::MAX),
                task_state.clock.now(),
                (!complete).then_some("writing the file failed; start the export again")
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        if let Err(e) = done.await {
            tracing::error!(error = %e, %export_id, "recording the end of an export job");
        }
        if let Err(e) = finish(&task_state, context, &meta, export_id, rows, complete).await {
            tracing::error!(error = %e, %export_id, "auditing the end of an export job");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "id": export_id,
            "status": "running",
            "format": format.name(),
            "download_url": format!("/api/v1/exports/{export_id}/download?token={token}"),
            "expires_at": ts(expires_at),
        })),
    )
        .into_response())
}

/// How long a job stays `running` without its writer renewing it.
const LEASE: time::Duration = time::Duration::seconds(60);

/// Renews the job's lease while its file is written (aborted when the writing ends).
async fn renew(state: LeadsState, context: crate::db::TenantContext, id: Uuid) {
    loop {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let renewed = async {
            let mut tx = TenantTx::begin(&state.pool, context).await?;
            sqlx::query!(
                "UPDATE app.export_jobs SET lease_until = $2 WHERE id = $1 AND status = 'running'",
                id,
                state.clock.now() + LEASE
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        if let Err(e) = renewed.await {
            tracing::warn!(error = %e, export_id = %id, "renewing an export job's lease");
        }
    }
}

/// Writes the export to `<id>.<format>.part`, renamed when complete; returns rows, bytes and
/// whether it completed (a failed export leaves no file).
async fn write_file(
    state: &LeadsState,
    context: crate::db::TenantContext,
    filter: &super::search::Filter,
    page: super::search::Page,
    format: Format,
    id: Uuid,
) -> (u64, u64, bool) {
    let dir = folder(&state.config.data_dir);
    let path = file_of(&state.config.data_dir, id, format.name());
    let part = path.with_extension(format!("{}.part", format.name()));
    let (tx_chunks, mut rx) = tokio::sync::mpsc::channel(4);
    let rows = {
        let state = state.clone();
        let filter = filter.clone();
        tokio::spawn(async move {
            stream_rows(&state, context, &filter, page, format, &tx_chunks).await
        })
    };
    let written = async {
        tokio::fs::create_dir_all(&dir).await?;
        let mut file = tokio::io::BufWriter::new(tokio::fs::File::create(&part).await?);
        let mut bytes = 0u64;
        while let Some(chunk) = rx.recv().await {
            let chunk: axum::body::Bytes = chunk?;
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.get_ref().sync_all().await?;
        Ok::<u64, std::io::Error>(bytes)
    }
    .await;
    let (rows, complete) = rows.await.unwrap_or((0, false));
    match written {
        Ok(bytes) if complete => match tokio::fs::rename(&part, &path).await {
            Ok(()) => (rows, bytes, true),
            Err(e) => {
                tracing::error!(error = %e, export_id = %id, "keeping an export file");
                (rows, bytes, false)
            }
        },
        other => {
            if let Err(e) = other {
                tracing::error!(error = %e, export_id = %id, "writing an export file");
            }
            let _ = tokio::fs::remove_file(&part).await;
            (rows, 0, false)
        }
    }
}

struct JobRow {
    id: Uuid,
    format: String,
    status: String,
    error: Option<String>,
    lease_until: Option<time::OffsetDateTime>,
    rows: i64,
    bytes: i64,
    token_sha256: Vec<u8>,
    expires_at: time::OffsetDateTime,
    created_at: time::OffsetDateTime,
    finished_at: Option<time::OffsetDateTime>,
}

/// The job `id` of the transaction's principal. One still `running` past its lease lost its
/// writer to a stopped server: it is recorded as failed now (its partial file removed, the end of
/// the export audited as incomplete), so nobody waits for it.
async fn job(state: &LeadsState, tx: &mut TenantTx, id: Uuid) -> Result<JobRow, AppError> {
    let mut j = sqlx::query_as!(
        JobRow,
        "SELECT id, format, status, error, lease_until, rows, bytes, token_sha256, expires_at,
                created_at, finished_at
         FROM app.export_jobs WHERE id = $1",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let now = state.clock.now();
    if j.status == "running" && j.lease_until.is_none_or(|l| l < now) {
        const INTERRUPTED: &str =
            "interrupted: the server stopped while writing it; start the export again";
        // In a transaction of its own: committed whatever the caller answers next.
        let mut own = TenantTx::begin(&state.pool, tx.context()).await?;
        let failed = sqlx::query!(
            "UPDATE app.export_jobs SET status = 'failed', error = $2, finished_at = $3,
                lease_until = NULL
             WHERE id = $1 AND status = 'running' AND (lease_until IS NULL OR lease_until < $3)",
            id,
            INTERRUPTED,
            now
        )
        .execute(&mut *own)
        .await?;
        if failed.rows_affected() == 1 {
            let part = file_of(&state.config.data_dir, id, &j.format)
                .with_extension(format!("{}.part", j.format));
            let _ = tokio::fs::remove_file(&part).await;
            audit::record(
                &mut own,
                now,
                &Meta::default(),
                Entry {
                    action: "leads.export.finished",
                    target: Some(format!("export:{id}")),
                    before: None,
                    after: Some(json!({ "rows": 0, "complete": false, "interrupted": true })),
                },
            )
            .await?;
        }
        own.commit().await?;
        j.status = "failed".into();
        j.error = Some(INTERRUPTED.into());
        j.finished_at = Some(now);
    }
    Ok(j)
}

#[utoipa::path(get, path = "/api/v1/exports/{id}", tag = "leads", params(("id" = Uuid, Path, description = "The export job")),
    responses((status = 200, description = "The job's state (`running`, `done`, `failed` with its `error`, also when the server stopped while writing it), rows and bytes, and when its link expires (the creator only)", body = Object), Missing, Refusals))]
async fn status(
    State(state): State<LeadsState>,
    Require(member, _): Export,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let j = job(&state, &mut tx, id).await?;
    tx.commit().await?;
    let expired = j.expires_at <= state.clock.now();
    Ok(axum::Json(json!({
        "id": j.id, "format": j.format, "status": j.status, "error": j.error, "rows": j.rows,
        "bytes": j.bytes,
        "expires_at": ts(j.expires_at), "expired": expired, "created_at": ts(j.created_at),
        "finished_at": j.finished_at.map(ts),
    }))
    .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DownloadQuery {
    /// The token of the link `POST /api/v1/exports` answered.
    token: String,
}

#[utoipa::path(get, path = "/api/v1/exports/{id}/download", tag = "leads", params(("id" = Uuid, Path, description = "The export job"), DownloadQuery),
    responses((status = 200, description = "The file (creator only, with the link's token); audited", content((String = "text/csv"), (Vec<super::model::LeadView> = "application/json"))),
        (status = 409, description = "Still running, or failed", body = crate::http::openapi::ErrorBody),
        (status = 410, description = "The link expired; the file is gone", body = crate::http::openapi::ErrorBody), Missing, Refusals))]
async fn download(
    State(state): State<LeadsState>,
    Require(member, _): Export,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let j = job(&state, &mut tx, id).await?;
    // A wrong token is the same answer as a job that is not yours: nothing to find here.
    if !bool::from(token_hash(&q.token).ct_eq(&j.token_sha256)) {
        return Err(AppError::NotFound);
    }
    let path = file_of(&state.config.data_dir, id, &j.format);
    if j.expires_at <= now {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(AppError::Gone(
            "this download link expired; start the export again".into(),
        ));
    }
    if j.status != "done" {
        return Err(AppError::Conflict(format!(
            "the export is {}; the file is there once it is done",
            j.status
        )));
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("opening export {id}: {e}")))?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "leads.export.download",
            target: Some(format!("export:{id}")),
            before: None,
            after: Some(json!({ "rows": j.rows, "bytes": j.bytes })),
        },
    )
    .await?;
    tx.commit().await?;
    let ctype = if j.format == "csv" {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"leads-{id}.{}\"", j.format),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Deletes export files older than the link lifetime, every few minutes: an expired link's file
/// does not stay on disk whether or not anyone asks for it again.
pub async fn sweep(state: LeadsState) {
    let dir = folder(&state.config.data_dir);
    let lifetime = Duration::from_secs(state.config.imports.export_link_secs.unsigned_abs());
    loop {
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(e)) = entries.next_entry().await {
                let old = e
                    .metadata()
                    .await
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > lifetime);
                if old && let Err(err) = tokio::fs::remove_file(e.path()).await {
                    tracing::warn!(error = %err, file = %e.path().display(), "removing an expired export");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
}
