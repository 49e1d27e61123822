//! `/api/v1/imports`: upload (streamed to disk and checked whole), preview and mapping, start,
//! progress, cancel, and the error report as CSV.

use std::io::{Seek as _, Write as _};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use leadgen_import::{Decoded, Field, Limits, Mapping, Reader, TextEncoding};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Mode;
use crate::audit::{self, Entry, Meta};
use crate::db::TenantTx;
use crate::http::error::{ApiJson, ApiQuery, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::http::ts;
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<LeadsState> {
    OpenApiRouter::new()
        .routes(routes!(list, upload))
        .routes(routes!(status))
        .routes(routes!(start))
        .routes(routes!(set_encoding))
        .routes(routes!(cancel))
        .routes(routes!(issues))
}

type Lead = Require<perm::LeadSearchAndManagement>;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UploadQuery {
    /// The file's name, for people (shown in lists and the audit trail).
    name: Option<String>,
    /// The file's text encoding (`UTF-8`, `UTF-16LE`, `windows-1252`, …; WHATWG labels such as
    /// `latin1` too). Absent: detected from a byte-order mark, UTF-8 validity, or the bytes.
    encoding: Option<String>,
}

/// An encoding label from a user, or a 400 that lists the ones LeadGen reads.
fn encoding_of(label: &str) -> Result<TextEncoding, AppError> {
    TextEncoding::from_label(label).ok_or_else(|| {
        AppError::BadRequest(format!(
            "encoding: {label:?} is not one of {}",
            TextEncoding::CHOICES.join(", ")
        ))
    })
}

/// What checking the whole file found.
pub(super) struct Checked {
    pub(super) preview: leadgen_import::Preview,
    pub(super) rows: u64,
    pub(super) rejected: u64,
    /// The encoding the file was read in.
    pub(super) encoding: TextEncoding,
}

/// Reads the whole file once: a structural fault anywhere (an unclosed quote, a record over the
/// limit) refuses the upload now, before a single lead is written, naming its line. The first
/// `preview_rows` outcomes are kept for the wizard.
pub(super) fn check_file(
    path: &std::path::Path,
    encoding: Option<TextEncoding>,
    preview_rows: usize,
) -> Result<Checked, AppError> {
    let reopen =
        |e: std::io::Error| AppError::Internal(anyhow::anyhow!("reopening the upload: {e}"));
    let mut file = std::fs::File::open(path)
        .map(|f| std::io::BufReader::with_capacity(1 << 16, f))
        .map_err(reopen)?;
    // Detected unless the user said; either way the reader sees UTF-8.
    let encoding = match encoding {
        Some(e) => e,
        None => leadgen_import::detect_encoding(&mut file).map_err(reopen)?,
    };
    file.seek(std::io::SeekFrom::Start(0)).map_err(reopen)?;
    let file = Decoded::new(file, encoding);
    let bad = |e: leadgen_import::ImportError| AppError::BadRequest(format!("file: {e}"));
    let (mut reader, mapping) = Reader::new(file, Limits::default()).map_err(bad)?;
    let mut preview = leadgen_import::Preview {
        mapping,
        delimiter: reader.delimiter(),
        header_issues: reader.header_issues().to_vec(),
        rows: Vec::new(),
    };
    let (mut rows, mut rejected) = (0u64, 0u64);
    while let Some(r) = reader.next_row() {
        let o = r.map_err(bad)?;
        rows += 1;
        if o.record.is_none() {
            rejected += 1;
        }
        if preview.rows.len() < preview_rows {
            preview.rows.push(o);
        }
    }
    Ok(Checked {
        preview,
        rows,
        rejected,
        encoding,
    })
}

fn too_large(limit: Option<usize>) -> AppError {
    AppError::PayloadTooLarge(match limit {
        Some(l) => format!("the file is larger than {l} bytes"),
        None => "the file is too large".into(),
    })
}

#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", params(UploadQuery),
    request_body(content = String, content_type = "text/csv", description = "A CSV export (HubSpot, Apollo, Salesforce or LeadGen's template), streamed; up to the configured maximum"),
    responses((status = 201, description = "The job: detected dialect, the mapping per column and a preview; a structural fault refuses the upload naming its line", body = Object), (status = 413, description = "Larger than the configured maximum", body = crate::http::openapi::ErrorBody), Refusals))]
async fn upload(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    meta: Meta,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Body,
) -> Result<Response, AppError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(media.as_deref(), Some("text/csv" | "text/plain")) {
        return Err(AppError::UnsupportedMediaType(
            "upload the file as text/csv".into(),
        ));
    }
    let name = q
        .name
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(255)
                .collect::<String>()
        })
        .filter(|n| !n.trim().is_empty());
    let chosen = q.encoding.as_deref().map(encoding_of).transpose()?;
    let id = Uuid::now_v7();
    let dir = super::folder(&state.config.data_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
    let part = dir.join(format!("{id}.part"));
    let final_path = super::file_of(&state.config.data_dir, id);

    // Stream to disk: the file is never whole in memory.
    let written = async {
        let mut file = std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(&part).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("creating the upload file: {e}"))
            })?,
        );
        let mut hash = Sha256::new();
        let mut bytes = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk: Bytes = chunk.map_err(|e| {
                let limited = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                    || e.to_string().contains("length limit");
                if limited {
                    too_large(None)
                } else {
                    AppError::BadRequest(format!("the upload was interrupted: {e}"))
                }
            })?;
            hash.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk)
                .map_err(|e| AppError::Internal(anyhow::anyhow!("writing the upload: {e}")))?;
        }
        let file = file
            .into_inner()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("writing the upload: {e}")))?;
        file.sync_all()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("writing the upload: {e}")))?;
        Ok::<_, AppError>((bytes, hash.finalize().to_vec()))
    }
    .await;
    let (bytes, sha) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    if bytes == 0 {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(AppError::BadRequest("file: the upload is empty".into()));
    }
    tokio::fs::rename(&part, &final_path)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("keeping the upload: {e}")))?;
    let preview_rows = state.config.imports.preview_rows;
    let path = final_path.clone();
    let checked = tokio::task::spawn_blocking(move || check_file(&path, chosen, preview_rows))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("checking the upload: {e}")))?;
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::fs::remove_file(&final_path).await;
            return Err(e);
        }
    };
    let now = state.clock.now();
    let mapping =
        serde_json::to_value(&checked.preview.mapping).map_err(|e| AppError::Internal(e.into()))?;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    sqlx::query!(
        "INSERT INTO app.import_jobs (id, org_id, created_by, node, file_name, file_bytes, file_sha256,
            status, mapping, encoding, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'uploaded', $8, $10, $9, $9)",
        id,
        member.org_id,
        member.principal_id,
        state.node.as_str(),
        name,
        i64::try_from(bytes).unwrap_or(i64::MAX),
        sha,
        mapping,
        now,
        checked.encoding.name()
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "import.upload",
            target: Some(format!("import:{id}")),
            before: None,
            after: Some(
                json!({ "file_name": name, "bytes": bytes, "sha256": hex::encode(&sha),
                                "rows": checked.rows, "encoding": checked.encoding.name() }),
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(review(id, name.as_deref(), bytes, &checked)),
    )
        .into_response())
}

/// What the wizard shows of an uploaded file: its dialect, encoding, mapping and first rows.
fn review(id: Uuid, name: Option<&str>, bytes: u64, checked: &Checked) -> Value {
    let p = &checked.preview;
    json!({
        "id": id,
        "status": "uploaded",
        "file_name": name,
        "file_bytes": bytes,
        "rows": checked.rows,
        "rejected_rows": checked.rejected,
        "dialect": p.mapping.dialect,
        "encoding": checked.encoding.name(),
        "encodings": TextEncoding::CHOICES,
        "columns": columns(&p.mapping),
        "header_issues": p.header_issues,
        "preview": p.rows,
        "fields": Field::ALL.iter().map(Field::key).collect::<Vec<_>>(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EncodingInput {
    /// The file's text encoding: one of `encodings` in the upload's answer, or a WHATWG label.
    encoding: String,
}

/// Reads an uploaded file again in the encoding the user names (the detector's guess can be
/// wrong for short files in a legacy code page): the header is mapped anew and the preview
/// redone, as at upload.
#[utoipa::path(put, path = "/api/v1/imports/{id}/encoding", tag = "imports", params(("id" = Uuid, Path, description = "The import job")), request_body = EncodingInput,
    responses((status = 200, description = "The file read in that encoding: dialect, mapping and preview, as at upload", body = Object), (status = 409, description = "The import has started", body = crate::http::openapi::ErrorBody), Missing, Refusals))]
async fn set_encoding(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(input): ApiJson<EncodingInput>,
) -> Result<Response, AppError> {
    let encoding = encoding_of(&input.encoding)?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let j = job(&mut tx, id).await?;
    if j.status != "uploaded" {
        return Err(AppError::Conflict(format!(
            "this import is {}; the encoding can change only before it starts",
            j.status
        )));
    }
    let path = super::file_of(&state.config.data_dir, id);
    let preview_rows = state.config.imports.preview_rows;
    let checked =
        tokio::task::spawn_blocking(move || check_file(&path, Some(encoding), preview_rows))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("checking the upload: {e}")))??;
    let mapping =
        serde_json::to_value(&checked.preview.mapping).map_err(|e| AppError::Internal(e.into()))?;
    sqlx::query!(
        "UPDATE app.import_jobs SET encoding = $2, mapping = $3, updated_at = $4 WHERE id = $1",
        id,
        encoding.name(),
        mapping,
        now
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "import.encoding",
            target: Some(format!("import:{id}")),
            before: Some(json!({ "encoding": j.encoding })),
            after: Some(json!({ "encoding": encoding.name(), "rows": checked.rows })),
        },
    )
    .await?;
    tx.commit().await?;
    let bytes = u64::try_from(j.file_bytes).unwrap_or(0);
    Ok(axum::Json(review(id, j.file_name.as_deref(), bytes, &checked)).into_response())
}

/// The mapping as the wizard shows it: one entry per column.
fn columns(m: &Mapping) -> Value {
    Value::Array(
        m.headers
            .iter()
            .zip(&m.columns)
            .map(|(h, f)| json!({ "header": h, "field": f.map(|f| f.key()) }))
            .collect(),
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartInput {
    /// `create_only`, `update_existing` or `fill_empty`.
    mode: String,
    /// One entry per column: a field key, or null to leave the column out. Absent: the automatic
    /// mapping shown at upload.
    mapping: Option<Vec<Option<String>>>,
}

struct JobRow {
    id: Uuid,
    status: String,
    mode: Option<String>,
    mapping: Value,
    file_name: Option<String>,
    file_bytes: i64,
    encoding: String,
    bytes_done: i64,
    rows_done: i64,
    created: i64,
    updated: i64,
    duplicates: i64,
    rejected: i64,
    warnings: i64,
    error: Option<String>,
    created_at: OffsetDateTime,
    started_at: Option<OffsetDateTime>,
    finished_at: Option<OffsetDateTime>,
}

async fn job(tx: &mut TenantTx, id: Uuid) -> Result<JobRow, AppError> {
    sqlx::query_as!(
        JobRow,
        "SELECT id, status, mode, mapping, file_name, file_bytes, encoding, bytes_done, rows_done, created,
                updated, duplicates, rejected, warnings, error, created_at, started_at, finished_at
         FROM app.import_jobs WHERE id = $1",
        id
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound)
}

fn view(j: &JobRow, now: OffsetDateTime) -> Value {
    let percent = if j.status == "done" {
        100.0
    } else if j.file_bytes > 0 {
        (j.bytes_done as f64 * 100.0 / j.file_bytes as f64).min(100.0)
    } else {
        0.0
    };
    let elapsed = j
        .started_at
        .map(|s| (j.finished_at.unwrap_or(now) - s).as_seconds_f64())
        .filter(|e| *e > 0.0);
    let rows_per_sec = elapsed.map(|e| j.rows_done as f64 / e);
    let eta = match (j.status.as_str(), elapsed) {
        ("running", Some(e)) if j.bytes_done > 0 => {
            Some(((j.file_bytes - j.bytes_done) as f64 * e / j.bytes_done as f64).ceil())
        }
        _ => None,
    };
    let mapping: Option<Mapping> = serde_json::from_value(j.mapping.clone()).ok();
    json!({
        "id": j.id, "status": j.status, "mode": j.mode, "file_name": j.file_name,
        "file_bytes": j.file_bytes, "encoding": j.encoding, "bytes_done": j.bytes_done,
        "percent": (percent * 10.0).round() / 10.0,
        "rows_done": j.rows_done, "created": j.created, "updated": j.updated,
        "duplicates": j.duplicates, "rejected": j.rejected, "warnings": j.warnings,
        "rows_per_sec": rows_per_sec.map(f64::round), "eta_secs": eta, "error": j.error,
        "columns": mapping.as_ref().map(columns),
        "created_at": ts(j.created_at), "started_at": j.started_at.map(ts),
        "finished_at": j.finished_at.map(ts),
    })
}

#[utoipa::path(post, path = "/api/v1/imports/{id}/start", tag = "imports", params(("id" = Uuid, Path, description = "The import job")), request_body = StartInput,
    responses((status = 202, description = "The job, queued to run in the background", body = Object), Missing, Refusals))]
async fn start(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
    ApiJson(input): ApiJson<StartInput>,
) -> Result<Response, AppError> {
    let mode = Mode::parse(&input.mode).ok_or_else(|| {
        AppError::BadRequest("mode: one of create_only, update_existing, fill_empty".into())
    })?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let j = job(&mut tx, id).await?;
    if j.status != "uploaded" {
        return Err(AppError::Conflict(format!(
            "this import is {}; only an uploaded file can be started",
            j.status
        )));
    }
    let mut mapping: Mapping = serde_json::from_value(j.mapping)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored mapping: {e}")))?;
    if let Some(cols) = input.mapping {
        if cols.len() != mapping.headers.len() {
            return Err(AppError::BadRequest(format!(
                "mapping: the file has {} columns, the mapping names {}",
                mapping.headers.len(),
                cols.len()
            )));
        }
        for (i, key) in cols.iter().enumerate() {
            let field = match key {
                None => None,
                Some(k) => Some(Field::parse(k).ok_or_else(|| {
                    AppError::BadRequest(format!("mapping[{i}]: {k:?} is not a field"))
                })?),
            };
            mapping.set(i, field);
        }
    }
    mapping
        .validate()
        .map_err(|e| AppError::BadRequest(format!("mapping: {e}")))?;
    let mapping_json = serde_json::to_value(&mapping).map_err(|e| AppError::Internal(e.into()))?;
    sqlx::query!(
        "UPDATE app.import_jobs SET status = 'queued', mode = $2, mapping = $3, updated_at = $4
         WHERE id = $1",
        id,
        mode.as_str(),
        mapping_json,
        now
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "import.start",
            target: Some(format!("import:{id}")),
            before: None,
            after: Some(json!({ "file_name": j.file_name, "mode": mode.as_str(),
                                "dialect": mapping.dialect })),
        },
    )
    .await?;
    let j = job(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, axum::Json(view(&j, now))).into_response())
}

#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports", params(("id" = Uuid, Path, description = "The import job")),
    responses((status = 200, description = "The job's state and progress (percent, rows/s, ETA)", body = Object), Missing, Refusals))]
async fn status(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let j = job(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(view(&j, state.clock.now())).into_response())
}

#[utoipa::path(get, path = "/api/v1/imports", tag = "imports",
    responses((status = 200, description = "The organization's 100 latest import jobs", body = Vec<Object>), Refusals))]
async fn list(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let ids = sqlx::query_scalar!(
        "SELECT id FROM app.import_jobs WHERE org_id = $1 ORDER BY created_at DESC LIMIT 100",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    let now = state.clock.now();
    for id in ids {
        out.push(view(&job(&mut tx, id).await?, now));
    }
    tx.commit().await?;
    Ok(axum::Json(Value::Array(out)).into_response())
}

#[utoipa::path(post, path = "/api/v1/imports/{id}/cancel", tag = "imports", params(("id" = Uuid, Path, description = "The import job")),
    responses((status = 200, description = "The job, cancelled (rows already written stay)", body = Object), (status = 409, description = "The import has ended already", body = crate::http::openapi::ErrorBody), Missing, Refusals))]
async fn cancel(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
    meta: Meta,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let j = job(&mut tx, id).await?;
    if !matches!(j.status.as_str(), "uploaded" | "queued" | "running") {
        return Err(AppError::Conflict(format!(
            "this import is already {}",
            j.status
        )));
    }
    // A running batch that has not committed yet will not: the worker's checkpoint requires
    // the job to be running.
    sqlx::query!(
        "UPDATE app.import_jobs SET status = 'cancelled', finished_at = $2, updated_at = $2,
            lease_owner = NULL, lease_until = NULL WHERE id = $1",
        id,
        now
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        &meta,
        Entry {
            action: "import.cancel",
            target: Some(format!("import:{id}")),
            before: Some(json!({ "status": j.status, "rows_done": j.rows_done })),
            after: None,
        },
    )
    .await?;
    let j = job(&mut tx, id).await?;
    tx.commit().await?;
    Ok(axum::Json(view(&j, now)).into_response())
}

/// The error report: line, column, severity and reason of every problem, as CSV.
#[utoipa::path(get, path = "/api/v1/imports/{id}/issues", tag = "imports", params(("id" = Uuid, Path, description = "The import job")),
    responses((status = 200, description = "The error report as CSV: line, column and reason of every rejected row", content_type = "text/csv", body = String), Missing, Refusals))]
async fn issues(
    State(state): State<LeadsState>,
    Require(member, _): Lead,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    job(&mut tx, id).await?;
    let rows = sqlx::query!(
        "SELECT line, column_name, severity, reason FROM app.import_issues
         WHERE job_id = $1 ORDER BY line, id LIMIT 1000000",
        id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(rows.len() * 64 + 64));
    let csv_err = |e: csv::Error| AppError::Internal(e.into());
    w.write_record(["line", "column", "severity", "reason"])
        .map_err(csv_err)?;
    for r in rows {
        w.write_record([
            r.line.to_string(),
            super::super::export::cell(&r.column_name),
            r.severity,
            super::super::export::cell(&r.reason),
        ])
        .map_err(csv_err)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-issues.csv\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}
