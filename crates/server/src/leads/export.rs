//! Export of a search result as CSV or JSON, streamed: the server never holds the whole result,
//! and the client sees the first rows at once. Only roles with Data Export (Admin, Manager) reach
//! it; row-level security applies to it like to any search. Every export is audited twice: when it
//! starts (who, which filter, which format), committed before the first row leaves, and when it
//! ends (rows sent, whether it completed).
//!
//! Do-not-contact leads are left out unless `include_do_not_contact=true`; then they come with
//! `do_not_contact = true`, so a mailing tool downstream can suppress them.
//!
//! Leads whose person opted out of the sale or sharing of their data (CCPA) are left out the
//! same way unless `include_do_not_sell=true`; then they come with `do_not_sell = true`. Every
//! row says whether the lead is a California resident.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::model::LeadValues;
use super::repo;
use super::search::{Cursor, Page, SearchParams};
use crate::audit::{self, Entry, Meta};
use crate::db::{TenantContext, TenantTx};
use crate::http::error::{ApiQuery, AppError};
use crate::http::openapi::Refusals;
use crate::leads::LeadsState;
use crate::orgs::{Require, perm};

const BATCH: u32 = 1000;

pub const CSV_COLUMNS: [&str; 26] = [
    "id",
    "first_name",
    "last_name",
    "title",
    "seniority",
    "department",
    "email",
    "phone",
    "linkedin_url",
    "company_name",
    "company_domain",
    "industry",
    "employee_range",
    "city",
    "region",
    "country",
    "source",
    "status",
    "owner_id",
    "tags",
    "score",
    "do_not_contact",
    "created_at",
    "updated_at",
    "california",
    "do_not_sell",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Json,
}

impl Format {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

/// A spreadsheet would run a cell that begins with `=`, `+`, `-`, `@` (or a tab or carriage
/// return) as a formula; such cells get a leading apostrophe.
pub fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn csv_record(row: &repo::LeadRow, f: &LeadValues, created: &str, updated: &str) -> Vec<String> {
    let (id, score) = (row.id, row.score);
    let o = |v: &Option<String>| v.as_deref().map(cell).unwrap_or_default();
    vec![
        id.to_string(),
        o(&f.first_name),
        o(&f.last_name),
        o(&f.title),
        o(&f.seniority),
        o(&f.department),
        o(&f.email),
        // Phone numbers are E.164 (`+…`): kept as they are, since `+` and digits cannot form a
        // formula a spreadsheet would run.
        f.phone.clone().unwrap_or_default(),
        o(&f.linkedin_url),
        o(&f.company_name),
        o(&f.company_domain),
        o(&f.industry),
        o(&f.employee_range),
        o(&f.city),
        o(&f.region),
        o(&f.country),
        o(&f.source),
        cell(&f.status),
        f.owner_id.map(|u| u.to_string()).unwrap_or_default(),
        cell(&f.tags.join(";")),
        score.to_string(),
        f.do_not_contact.to_string(),
        created.to_string(),
        updated.to_string(),
        row.california.to_string(),
        row.do_not_sell.to_string(),
    ]
}

fn csv_line(fields: &[String]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(fields)?;
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[utoipa::path(get, path = "/api/v1/leads/export", tag = "leads", params(SearchParams),
    responses((status = 200, description = "The matching leads streamed as CSV (`format=csv`, default) or a JSON array; do-not-contact leads only with `include_do_not_contact=true`, CCPA do-not-sell leads only with `include_do_not_sell=true`, each flagged; audited", content((String = "text/csv"), (Vec<super::model::LeadView> = "application/json"))), Refusals))]
pub async fn export(
    State(state): State<LeadsState>,
    who: Require<perm::DataExport>,
    meta: Meta,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Response, AppError> {
    download(&state, &who, meta, &params).await
}

/// The export of the leads `params` select, streamed as a download (the API's and the leads
/// page's): audited when it starts and when it ends.
pub async fn download(
    state: &LeadsState,
    Require(member, _): &Require<perm::DataExport>,
    meta: Meta,
    params: &SearchParams,
) -> Result<Response, AppError> {
    let Started {
        format,
        filter,
        page,
        context,
        export_id,
    } = start(state, member, &meta, params, "download").await?;

    let (tx_chunks, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let task_state = state.clone();
    tokio::spawn(async move {
        let (rows, complete) =
            stream_rows(&task_state, context, &filter, page, format, &tx_chunks).await;
        if let Err(e) = finish(&task_state, context, &meta, export_id, rows, complete).await {
            tracing::error!(error = %e, %export_id, "recording the end of an export");
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let (ctype, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"leads-{export_id}.{ext}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// An export whose start is recorded: what to read and how to write it.
pub(crate) struct Started {
    pub format: Format,
    pub filter: super::search::Filter,
    pub page: Page,
    pub context: TenantContext,
    pub export_id: uuid::Uuid,
}

/// Checks an export's parameters and records its start in the audit trail (committed before any
/// row is read). `delivery` is `download` (streamed) or `link` (a job's file).
pub(crate) async fn start(
    state: &LeadsState,
    member: &crate::orgs::Member,
    meta: &Meta,
    params: &SearchParams,
    delivery: &str,
) -> Result<Started, AppError> {
    let format = match params.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        _ => return Err(AppError::BadRequest("format: csv or json".into())),
    };
    if params.cursor.is_some() || params.limit.is_some() {
        return Err(AppError::BadRequest(
            "cursor, limit: an export covers the whole result".into(),
        ));
    }
    let org = member.org_id;
    let (filter, page) = params.parse(|e| state.fields.email_index(org, e))?;
    let context = member.context();
    let export_id = uuid::Uuid::now_v7();
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "leads.export",
            target: Some(format!("export:{export_id}")),
            before: None,
            after: Some(json!({
                "format": format.name(),
                "filter": describe(params),
                "delivery": delivery,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Started {
        format,
        filter,
        page,
        context,
        export_id,
    })
}

/// The filter as the audit trail records it: parameter names and values, but an exact-email
/// filter only as "given" (it is personal data).
pub(crate) fn describe(p: &SearchParams) -> serde_json::Value {
    let mut v = json!({
        "q": p.q, "title": p.title, "seniority": p.seniority, "department": p.department,
        "industry": p.industry, "employee_range": p.employee_range, "country": p.country,
        "region": p.region, "tags": p.tags, "status": p.status, "owner": p.owner,
        "score_min": p.score_min, "score_max": p.score_max, "has_email": p.has_email,
        "california": p.california,
        "include_do_not_contact": p.include_do_not_contact,
        "include_do_not_sell": p.include_do_not_sell, "sort": p.sort,
        "email": p.email.as_ref().map(|_| "given"),
    });
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    v
}

/// Receives from the channel as a stream, without another dependency.
pub(crate) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Sends every matching row; returns how many were sent and whether the export completed.
pub(crate) async fn stream_rows(
    state: &LeadsState,
    context: TenantContext,
    filter: &super::search::Filter,
    mut page: Page,
    format: Format,
    out: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> (u64, bool) {
    let fail = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "export failed");
        std::io::Error::other("the export stopped on a server error")
    };
    page.limit = BATCH;
    let head = match format {
        Format::Csv => csv_line(&CSV_COLUMNS.map(String::from)).unwrap_or_default(),
        Format::Json => b"[".to_vec(),
    };
    if out.send(Ok(Bytes::from(head))).await.is_err() {
        return (0, false);
    }
    // One transaction for the whole export: a consistent snapshot under the principal's ACL.
    let mut tx = match TenantTx::begin(&state.pool, context).await {
        Ok(tx) => tx,
        Err(e) => {
            let _ = out.send(Err(fail(&e))).await;
            return (0, false);
        }
    };
    let mut sent = 0u64;
    loop {
        let mut rows = match repo::search(&mut tx, filter, &page, true).await {
            Ok(r) => r,
            Err(e) => {
                let _ = out.send(Err(fail(&e))).await;
                return (sent, false);
            }
        };
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        // Recorded before the rows leave, in its own transaction: an export the client
        // abandons half way (which rolls the snapshot back) is still on record.
        if let Err(e) = record_batch(state, context, &rows).await {
            let _ = out.send(Err(fail(&e))).await;
            return (sent, false);
        }
        let mut chunk = Vec::with_capacity(rows.len() * 256);
        for r in &rows {
            let mut values = match r.values(&state.fields).await {
                Ok(v) => v,
                Err(e) => {
                    let _ = out.send(Err(fail(&e))).await;
                    return (sent, false);
                }
            };
            // A restricted lead leaves without its contact details (they are shown one lead at
            // a time, with a justification).
            if r.restricted() {
                values.hide_contact_details();
            }
            let created = crate::http::ts(r.created_at);
            let updated = crate::http::ts(r.updated_at);
            match format {
                Format::Csv => match csv_line(&csv_record(r, &values, &created, &updated)) {
                    Ok(line) => chunk.extend_from_slice(&line),
                    Err(e) => {
                        let _ = out.send(Err(fail(&e))).await;
                        return (sent, false);
                    }
                },
                Format::Json => {
                    if sent > 0 || !chunk.is_empty() {
                        chunk.push(b',');
                    }
                    let mut obj = serde_json::to_value(&values).unwrap_or_default();
                    if let Some(m) = obj.as_object_mut() {
                        m.insert("id".into(), json!(r.id));
                        m.insert("score".into(), json!(r.score));
                        m.insert("created_at".into(), json!(created));
                        m.insert("updated_at".into(), json!(updated));
                        m.insert("california".into(), json!(r.california));
                        m.insert("do_not_sell".into(), json!(r.do_not_sell));
                    }
                    chunk.extend_from_slice(obj.to_string().as_bytes());
                }
            }
        }
        let n = rows.len() as u64;
        if out.send(Ok(Bytes::from(chunk))).await.is_err() {
            // The client went away.
            return (sent, false);
        }
        sent += n;
        match (more, rows.last()) {
            (true, Some(last)) => {
                page.after = Some(Cursor {
                    sort: page.sort,
                    score: last.score,
                    id: last.id,
                });
            }
            _ => break,
        }
    }
    let _ = tx.commit().await;
    if format == Format::Json && out.send(Ok(Bytes::from_static(b"]"))).await.is_err() {
        return (sent, false);
    }
    (sent, true)
}

/// Records one batch of an export as read by the exporter.
async fn record_batch(
    state: &LeadsState,
    context: TenantContext,
    rows: &[repo::LeadRow],
) -> Result<(), sqlx::Error> {
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    let read: Vec<&repo::LeadRow> = rows.iter().collect();
    super::reads::record(
        &mut tx,
        state.clock.now(),
        &Meta::default(),
        super::reads::Kind::Export,
        &read,
        None,
    )
    .await?;
    tx.commit().await
}

pub(crate) async fn finish(
    state: &LeadsState,
    context: TenantContext,
    meta: &Meta,
    export_id: uuid::Uuid,
    rows: u64,
    complete: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = TenantTx::begin(&state.pool, context).await?;
    audit::record(
        &mut tx,
        state.clock.now(),
        meta,
        Entry {
            action: "leads.export.finished",
            target: Some(format!("export:{export_id}")),
            before: None,
            after: Some(json!({ "rows": rows, "complete": complete })),
        },
    )
    .await?;
    tx.commit().await
}
