//! The import worker: each server instance runs one, taking its own node's jobs in order. A
//! blocking thread parses the file (and skips what earlier runs committed) while the async side
//! writes batches; each batch is one transaction that also moves the job's checkpoint and renews
//! its lease, and refuses to commit if the job was cancelled or taken over meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use leadgen_import::{Issue, Limits, Mapping, Reader, RowOutcome, Severity};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Mode, merge};
use crate::audit::{self, Entry, Meta};
use crate::db::{Aal, Role, TenantContext, TenantTx};
use crate::http::database_unavailable;
use crate::leads::LeadsState;
use crate::leads::keys::{OrgSealer, lead_place};
use crate::leads::model::LeadValues;
use crate::leads::repo::{COLUMNS, LeadRow};

struct Claimed {
    id: Uuid,
    context: TenantContext,
}

/// Runs jobs until the task is dropped (at shutdown). An interrupted batch rolls back with its
/// transaction; the lease lapses and the job resumes from its checkpoint.
pub async fn run(state: LeadsState, node: String) {
    let owner = format!("{node}:{}", Uuid::new_v4().simple());
    let poll = Duration::from_millis(state.config.imports.poll_ms);
    loop {
        match claim(&state, &node, &owner).await {
            Ok(Some(job)) => {
                let id = job.id;
                if let Err(e) = process(&state, &job, &owner).await {
                    // The database went away, not the import: the job keeps its checkpoint (each
                    // batch commits with it) and is claimed again when its lease ends.
                    if e.chain()
                        .any(|c| c.downcast_ref().is_some_and(database_unavailable))
                    {
                        tracing::warn!(job = %id, error = %format!("{e:#}"), "import interrupted by a database outage; it resumes from its checkpoint");
                        tokio::time::sleep(poll).await;
                        continue;
                    }
                    tracing::error!(job = %id, error = %format!("{e:#}"), "import failed");
                    if let Err(e2) = fail(&state, &job, &owner, &format!("{e:#}")).await {
                        tracing::error!(job = %id, error = %e2, "recording the import failure");
                    }
                }
            }
            Ok(None) => tokio::time::sleep(poll).await,
            Err(e) => {
                tracing::warn!(error = %e, "looking for import jobs");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

async fn claim(
    state: &LeadsState,
    node: &str,
    owner: &str,
) -> Result<Option<Claimed>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id AS "id!", org_id AS "org_id!", created_by AS "created_by!", role AS "role!"
           FROM app.import_claim($1, $2, $3, $4)"#,
        node,
        owner,
        state.clock.now(),
        i32::try_from(state.config.imports.lease_secs).unwrap_or(30)
    )
    .fetch_optional(&state.pool)
    .await?;
    Ok(row.and_then(|r| {
        Some(Claimed {
            id: r.id,
            context: TenantContext {
                org_id: r.org_id,
                user_id: r.created_by,
                role: Role::parse(&r.role)?,
                // Imports write leads, which needs no second factor; ACL changes (which would)
                // are not something an import does.
                aal: Aal::Aal1,
            },
        })
    }))
}

/// The parser's output: a batch's number, its outcomes and the file position after it.
type Batch = (i64, Vec<RowOutcome>, u64);

/// Where the job stands.
struct Job {
    mode: Mode,
    mapping: Mapping,
    /// The file's text encoding, as detected at upload or chosen by the user.
    encoding: leadgen_import::TextEncoding,
    file_name: Option<String>,
    /// Rows per batch, fixed for the job's life so batch numbers mean the same rows on resume.
    batch_rows: usize,
    /// Batches already committed (by earlier runs).
    committed: std::collections::HashSet<i64>,
}

async fn load(state: &LeadsState, c: &Claimed) -> anyhow::Result<Job> {
    let mut tx = TenantTx::begin(&state.pool, c.context).await?;
    let r = sqlx::query!(
        r#"UPDATE app.import_jobs SET batch_rows = coalesce(batch_rows, $2) WHERE id = $1
           RETURNING mode, mapping, file_name, encoding, batch_rows AS "batch_rows!""#,
        c.id,
        i32::try_from(state.config.imports.batch_rows).unwrap_or(2000)
    )
    .fetch_one(&mut *tx)
    .await?;
    let committed = sqlx::query_scalar!(
        "SELECT batch_no FROM app.import_batches WHERE job_id = $1",
        c.id
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    tx.commit().await?;
    Ok(Job {
        batch_rows: usize::try_from(r.batch_rows).unwrap_or(2000).max(1),
        committed,
        mode: r
            .mode
            .as_deref()
            .and_then(Mode::parse)
            .context("the job has no import mode")?,
        mapping: serde_json::from_value(r.mapping).context("the job's mapping")?,
        encoding: leadgen_import::TextEncoding::from_label(&r.encoding)
            .with_context(|| format!("the job's encoding {:?}", r.encoding))?,
        file_name: r.file_name,
    })
}

/// Connections writing one create-only job at once; other modes keep to one, in file order,
/// because a later row must merge into what an earlier one wrote.
const WRITERS: usize = 2;

async fn process(state: &LeadsState, c: &Claimed, owner: &str) -> anyhow::Result<()> {
    let job = load(state, c).await?;
    let path = super::file_of(&state.config.data_dir, c.id);
    let batch_rows = job.batch_rows;
    let committed = job.committed.clone();
    let mapping = job.mapping.clone();
    let encoding = job.encoding;
    let (tx_batches, rx) = tokio::sync::mpsc::channel::<anyhow::Result<Batch>>(2);
    // Parsing is CPU work on a plain thread, beside the writes.
    let parser = tokio::task::spawn_blocking(move || {
        let send = |b: anyhow::Result<Batch>| tx_batches.blocking_send(b).is_ok();
        let file = match std::fs::File::open(&path) {
            Ok(f) => leadgen_import::Decoded::new(
                std::io::BufReader::with_capacity(1 << 16, f),
                encoding,
            ),
            Err(e) => {
                send(Err(anyhow::anyhow!(
                    "the uploaded file is gone ({}): {e}",
                    path.display()
                )));
                return;
            }
        };
        let reader = Reader::new(file, Limits::default())
            .map_err(anyhow::Error::from)
            .and_then(|(r, _)| r.with_mapping(mapping).map_err(anyhow::Error::from));
        let mut reader = match reader {
            Ok(r) => r,
            Err(e) => {
                send(Err(e));
                return;
            }
        };
        for number in 0i64.. {
            let mut batch = Vec::with_capacity(batch_rows);
            while batch.len() < batch_rows {
                match reader.next_row() {
                    Some(Ok(o)) => batch.push(o),
                    Some(Err(e)) => {
                        send(Err(e.into()));
                        return;
                    }
                    None => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            // Written by an earlier run: read past it.
            if committed.contains(&number) {
                continue;
            }
            // Progress is measured in the file's own bytes, whatever its encoding.
            if !send(Ok((number, batch, reader.get_ref().source_bytes()))) {
                return;
            }
        }
    });
    let writers = if job.mode == Mode::CreateOnly {
        WRITERS
    } else {
        1
    };
    let rx = tokio::sync::Mutex::new(rx);
    let lost = std::sync::atomic::AtomicBool::new(false);
    let write_all = || async {
        loop {
            if lost.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok::<(), anyhow::Error>(());
            }
            let next = rx.lock().await.recv().await;
            let Some(batch) = next else { return Ok(()) };
            let (number, outcomes, bytes) = batch?;
            if !write_retrying(state, c, owner, &job, number, outcomes, bytes).await? {
                // Cancelled, or another worker holds the job now.
                lost.store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(());
            }
        }
    };
    let results = futures_util::future::join_all((0..writers).map(|_| write_all())).await;
    if lost.load(std::sync::atomic::Ordering::Relaxed) {
        parser.abort();
        return Ok(());
    }
    for r in results {
        if let Err(e) = r {
            parser.abort();
            return Err(e);
        }
    }
    parser.await.context("the parser thread")?;
    finish(state, c, owner, &job).await
}

/// Two writers inserting the same addresses in opposite orders can deadlock; PostgreSQL then
/// aborts one transaction, which rolled back whole and is simply written again.
async fn write_retrying(
    state: &LeadsState,
    c: &Claimed,
    owner: &str,
    job: &Job,
    number: i64,
    outcomes: Vec<RowOutcome>,
    bytes: u64,
) -> anyhow::Result<bool> {
    let mut attempt = 0;
    loop {
        match write_batch(state, c, owner, job, number, outcomes.clone(), bytes).await {
            Err(e) if attempt < 5 && retryable(&e) => {
                attempt += 1;
                tracing::info!(job = %c.id, batch = number, attempt, "import batch retried after a deadlock");
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => return other,
        }
    }
}

fn retryable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sqlx::Error>()
        .and_then(|e| match e {
            sqlx::Error::Database(d) => d.code(),
            _ => None,
        })
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// Totals of one batch, added to the job's counters.
#[derive(Default)]
struct Counts {
    created: i64,
    updated: i64,
    duplicates: i64,
    rejected: i64,
    warnings: i64,
}

/// Writes one batch and moves the checkpoint, atomically. `false`: the job is no longer ours.
async fn write_batch(
    state: &LeadsState,
    c: &Claimed,
    owner: &str,
    job: &Job,
    number: i64,
    outcomes: Vec<RowOutcome>,
    bytes: u64,
) -> anyhow::Result<bool> {
    let now = state.clock.now();
    let org = c.context.org_id;
    let sealer = state.fields.sealer(org).await?;
    let mut tx = TenantTx::begin(&state.pool, c.context).await?;
    // The batch and its checkpoint commit together, so a commit lost in a crash loses both and
    // the batch is simply written again on resume: the commit need not wait for the disk.
    sqlx::query!("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    // Read per batch: a model saved during the import scores the batches after it (and the
    // rescoring it starts covers the ones before).
    let (model, _) = crate::leads::scoring::current(&mut tx).await?;
    let consumed = outcomes.len() as i64;
    let mut counts = Counts::default();
    let mut issues: Vec<Issue> = Vec::new();
    // Accepted rows, deduplicated within the batch on the blind index.
    let mut rows: Vec<LeadValues> = Vec::new();
    let mut by_index: HashMap<[u8; 32], usize> = HashMap::new();
    let mut masked_rows = 0usize;
    // Rows that parsed, with their line and the blind index of their address.
    let mut accepted = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        issues.extend(o.issues);
        let Some(rec) = o.record else {
            counts.rejected += 1;
            continue;
        };
        let raw_email = rec.email.clone();
        let v = merge::values(rec, o.line, &job.mapping, &mut issues);
        masked_rows += usize::from(!v.masked_fields.is_empty());
        if let (Some(raw), None) = (&raw_email, &v.email) {
            issues.push(Issue {
                line: o.line,
                column: "email".into(),
                reason: format!("not an email address: {raw:?}"),
                severity: Severity::Reject,
            });
            counts.rejected += 1;
            continue;
        }
        let index = v
            .email
            .as_deref()
            .and_then(|e| state.fields.email_index(org, e));
        accepted.push((o.line, v, index));
    }
    // Addresses erased on a data-subject's request do not come back: each such row is refused
    // with the reason (the database refuses them too, behind this check).
    let erased: std::collections::HashSet<Vec<u8>> = sqlx::query_scalar!(
        "SELECT email_bidx FROM app.suppressions
         WHERE org_id = $1 AND reason = 'erased' AND email_bidx = ANY($2)",
        org,
        &accepted
            .iter()
            .filter_map(|(_, _, i)| i.map(|i| i.to_vec()))
            .collect::<Vec<_>>()
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    for (line, v, index) in accepted {
        if index.is_some_and(|i| erased.contains(i.as_slice())) {
            issues.push(Issue {
                line,
                column: "email".into(),
                reason: "erased on request: this address was erased at its owner's request and \
                         is not imported again"
                    .into(),
                severity: Severity::Reject,
            });
            counts.rejected += 1;
            continue;
        }
        match index.and_then(|i| by_index.get(&i).copied()) {
            Some(first) => {
                counts.duplicates += 1;
                if let Some(m) = merge::merge(&rows[first], &v, job.mode) {
                    rows[first] = m;
                }
            }
            None => {
                if let Some(i) = index {
                    by_index.insert(i, rows.len());
                }
                rows.push(v);
            }
        }
    }
    counts.warnings = issues
        .iter()
        .filter(|i| i.severity == Severity::Warn)
        .count() as i64;
    // Before scoring: a row's blank company fields are filled from its company.
    let companies = super::link::link_batch(&mut tx, &mut rows, now).await?;
    let company_of = |v: &LeadValues| {
        v.company_domain
            .as_deref()
            .and_then(|d| companies.get(d).copied())
    };

    // Leads that already have these addresses (those the importer may see). In create-only mode
    // an existing lead changes only when the row opts out, so only those rows are looked up; the
    // unique index turns the other collisions into skipped inserts.
    let indexes: Vec<Vec<u8>> = by_index
        .iter()
        .filter(|(_, i)| job.mode != Mode::CreateOnly || rows[**i].do_not_contact)
        .map(|(k, _)| k.to_vec())
        .collect();
    let existing: Vec<LeadRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM app.leads WHERE org_id = $1 AND email_bidx = ANY($2)"
    ))
    .bind(org)
    .bind(&indexes)
    .fetch_all(&mut *tx)
    .await?;
    let existing_by_index: HashMap<Vec<u8>, &LeadRow> = existing
        .iter()
        .filter_map(|e| e.email_bidx.clone().map(|b| (b, e)))
        .collect();

    let mut inserts = Inserts::default();
    let mut updates = Updates::default();
    for v in rows {
        let index = v
            .email
            .as_deref()
            .and_then(|e| state.fields.email_index(org, e));
        match index.and_then(|i| existing_by_index.get(i.as_slice()).copied()) {
            Some(lead) => {
                let current = lead.plain_values();
                let phone_ct = match (job.mode, &v.phone, lead.phone_ct.is_some()) {
                    (Mode::UpdateExisting, Some(p), _) | (Mode::FillEmpty, Some(p), false) => {
                        Some(sealer.encrypt(p, &lead_place("phone", org, lead.id)))
                    }
                    _ => None,
                };
                // The stored phone is a ciphertext: handled above, not by the merge.
                let row = LeadValues { phone: None, ..v };
                // What scoring asks of the contact details is presence: the lead was found by
                // its email, and has a phone if it had one or gets one now.
                let has_phone = lead.phone_ct.is_some() || phone_ct.is_some();
                let score = |m: &LeadValues| {
                    model
                        .score(&LeadValues {
                            email: Some(String::new()),
                            phone: has_phone.then(String::new),
                            ..m.clone()
                        })
                        .0
                };
                match merge::merge(&current, &row, job.mode) {
                    Some(m) => {
                        // The domain is the row's (linked above) or the lead's own (kept with
                        // its company).
                        let company = company_of(&m).or(lead
                            .company_id
                            .filter(|_| m.company_domain == lead.company_domain));
                        updates.push(lead.id, &m, company, phone_ct, score(&m));
                    }
                    None if phone_ct.is_some() => {
                        updates.push(
                            lead.id,
                            &current,
                            lead.company_id,
                            phone_ct,
                            score(&current),
                        );
                    }
                    None => counts.duplicates += 1,
                }
            }
            None => {
                let company = company_of(&v);
                inserts.push(&sealer, &v, company, index, model.score(&v).0);
            }
        }
    }
    counts.updated = updates.ids.len() as i64;
    let attempted = inserts.ids.len() as i64;
    counts.created = inserts.write(&mut tx, org, now).await?;
    // An address taken by a lead this importer cannot see, or by a write that raced this one.
    counts.duplicates += attempted - counts.created;
    updates.write(&mut tx, now).await?;
    if masked_rows > 0 {
        // Rows whose card numbers were masked (each named in the report): audited per batch.
        audit::record(
            &mut tx,
            now,
            &Meta::default(),
            Entry {
                action: "pci.pan_masked",
                target: Some(format!("import:{}", c.id)),
                before: None,
                after: Some(json!({ "batch": number, "rows": masked_rows })),
            },
        )
        .await?;
        crate::pci::record_masked("import", masked_rows);
    }

    if !issues.is_empty() {
        let lines: Vec<i64> = issues.iter().map(|i| i.line as i64).collect();
        let columns: Vec<String> = issues
            .iter()
            .map(|i| i.column.chars().take(300).collect())
            .collect();
        let severities: Vec<String> = issues
            .iter()
            .map(|i| match i.severity {
                Severity::Reject => "reject".to_string(),
                Severity::Warn => "warn".to_string(),
            })
            .collect();
        let reasons: Vec<String> = issues
            .iter()
            .map(|i| i.reason.chars().take(1000).collect())
            .collect();
        sqlx::query!(
            "INSERT INTO app.import_issues (job_id, org_id, line, column_name, severity, reason)
             SELECT $1, $2, u.line, u.col, u.sev, u.reason
             FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[]) AS u(line, col, sev, reason)",
            c.id,
            org,
            &lines,
            &columns,
            &severities,
            &reasons
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "INSERT INTO app.import_batches (job_id, org_id, batch_no, rows) VALUES ($1, $2, $3, $4)",
        c.id,
        org,
        number,
        i32::try_from(consumed).unwrap_or(i32::MAX)
    )
    .execute(&mut *tx)
    .await?;
    // Last, so the job's row is locked only for the commit (other writers are mid-batch): the
    // counters move, the lease is renewed, and nothing commits unless the job is still this
    // worker's and running (a cancel or a takeover drops the batch with the transaction).
    let ours = sqlx::query_scalar!(
        r#"UPDATE app.import_jobs SET rows_done = rows_done + $2, bytes_done = GREATEST(bytes_done, $3),
            created = created + $4, updated = updated + $5, duplicates = duplicates + $6,
            rejected = rejected + $7, warnings = warnings + $8, updated_at = $9, lease_until = $10
           WHERE id = $1 AND lease_owner = $11 AND status = 'running' RETURNING true AS "ok!""#,
        c.id,
        consumed,
        i64::try_from(bytes).unwrap_or(i64::MAX),
        counts.created,
        counts.updated,
        counts.duplicates,
        counts.rejected,
        counts.warnings,
        now,
        now + time::Duration::seconds(i64::from(state.config.imports.lease_secs)),
        owner
    )
    .fetch_optional(&mut *tx)
    .await?
    .is_some();
    if !ours {
        return Ok(false);
    }
    tx.commit().await?;
    metrics::counter!("import_rows_total").increment(u64::try_from(consumed).unwrap_or(0));
    Ok(true)
}

#[derive(Default)]
struct Inserts {
    ids: Vec<Uuid>,
    first_name: Vec<Option<String>>,
    last_name: Vec<Option<String>>,
    title: Vec<Option<String>>,
    seniority: Vec<Option<String>>,
    department: Vec<Option<String>>,
    email_ct: Vec<Option<Vec<u8>>>,
    email_bidx: Vec<Option<Vec<u8>>>,
    phone_ct: Vec<Option<Vec<u8>>>,
    linkedin_url: Vec<Option<String>>,
    company_id: Vec<Option<Uuid>>,
    company_name: Vec<Option<String>>,
    company_domain: Vec<Option<String>>,
    industry: Vec<Option<String>>,
    employee_range: Vec<Option<String>>,
    city: Vec<Option<String>>,
    region: Vec<Option<String>>,
    country: Vec<Option<String>>,
    source: Vec<Option<String>>,
    status: Vec<String>,
    tags: Vec<Value>,
    custom: Vec<Value>,
    do_not_contact: Vec<bool>,
    score: Vec<i16>,
}

impl Inserts {
    /// Adds a new lead (UUIDv7: its id orders it by creation).
    fn push(
        &mut self,
        sealer: &OrgSealer,
        v: &LeadValues,
        company: Option<Uuid>,
        index: Option<[u8; 32]>,
        score: i16,
    ) {
        let org = sealer.org();
        let id = Uuid::now_v7();
        self.ids.push(id);
        self.score.push(score);
        self.first_name.push(v.first_name.clone());
        self.last_name.push(v.last_name.clone());
        self.title.push(v.title.clone());
        self.seniority.push(v.seniority.clone());
        self.department.push(v.department.clone());
        self.email_ct.push(
            v.email
                .as_deref()
                .map(|e| sealer.encrypt(e, &lead_place("email", org, id))),
        );
        self.email_bidx.push(index.map(|i| i.to_vec()));
        self.phone_ct.push(
            v.phone
                .as_deref()
                .map(|p| sealer.encrypt(p, &lead_place("phone", org, id))),
        );
        self.linkedin_url.push(v.linkedin_url.clone());
        self.company_id.push(company);
        self.company_name.push(v.company_name.clone());
        self.company_domain.push(v.company_domain.clone());
        self.industry.push(v.industry.clone());
        self.employee_range.push(v.employee_range.clone());
        self.city.push(v.city.clone());
        self.region.push(v.region.clone());
        self.country.push(v.country.clone());
        self.source.push(v.source.clone());
        self.status.push(v.status.clone());
        self.tags.push(json!(v.tags));
        self.custom.push(Value::Object(v.custom.clone()));
        self.do_not_contact.push(v.do_not_contact);
    }

    /// One statement for the batch; returns how many were created (an address that exists
    /// already is skipped, not an error).
    async fn write(
        &self,
        tx: &mut TenantTx,
        org: Uuid,
        now: OffsetDateTime,
    ) -> Result<i64, sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(0);
        }
        let created = sqlx::query_scalar!(
            r#"WITH ins AS (
                 INSERT INTO app.leads (id, org_id, first_name, last_name, title, seniority, department,
                    email_ct, email_bidx, phone_ct, linkedin_url, company_id, company_name,
                    company_domain, industry, employee_range, city, region, country, source, status,
                    tags, custom, do_not_contact, created_at, updated_at, score)
                 SELECT u.id, $1, u.first_name, u.last_name, u.title, u.seniority, u.department,
                    u.email_ct, u.email_bidx, u.phone_ct, u.linkedin_url, u.company_id,
                    u.company_name, u.company_domain, u.industry, u.employee_range, u.city,
                    u.region, u.country, u.source, u.status,
                    ARRAY(SELECT jsonb_array_elements_text(u.tags)), u.custom,
                    u.do_not_contact, $2, $2, u.score
                 FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                             $9::bytea[], $10::bytea[], $11::bytea[], $12::text[], $13::uuid[],
                             $14::text[], $15::text[], $16::text[], $17::text[], $18::text[],
                             $19::text[], $20::text[], $21::text[], $22::text[], $23::jsonb[],
                             $24::jsonb[], $25::bool[], $26::smallint[])
                   AS u(id, first_name, last_name, title, seniority, department, email_ct, email_bidx,
                        phone_ct, linkedin_url, company_id, company_name, company_domain, industry,
                        employee_range, city, region, country, source, status, tags, custom,
                        do_not_contact, score)
                 ON CONFLICT (org_id, email_bidx) WHERE email_bidx IS NOT NULL DO NOTHING
                 RETURNING 1
               )
               SELECT count(*) AS "n!" FROM ins"#,
            org,
            now,
            &self.ids,
            &self.first_name as &[Option<String>],
            &self.last_name as &[Option<String>],
            &self.title as &[Option<String>],
            &self.seniority as &[Option<String>],
            &self.department as &[Option<String>],
            &self.email_ct as &[Option<Vec<u8>>],
            &self.email_bidx as &[Option<Vec<u8>>],
            &self.phone_ct as &[Option<Vec<u8>>],
            &self.linkedin_url as &[Option<String>],
            &self.company_id as &[Option<Uuid>],
            &self.company_name as &[Option<String>],
            &self.company_domain as &[Option<String>],
            &self.industry as &[Option<String>],
            &self.employee_range as &[Option<String>],
            &self.city as &[Option<String>],
            &self.region as &[Option<String>],
            &self.country as &[Option<String>],
            &self.source as &[Option<String>],
            &self.status,
            &self.tags,
            &self.custom,
            &self.do_not_contact,
            &self.score,
        )
        .fetch_one(&mut **tx)
        .await?;
        Ok(created)
    }
}

#[derive(Default)]
struct Updates {
    ids: Vec<Uuid>,
    values: Vec<Value>,
    phone_ct: Vec<Option<Vec<u8>>>,
}

impl Updates {
    fn push(
        &mut self,
        id: Uuid,
        v: &LeadValues,
        company: Option<Uuid>,
        phone_ct: Option<Vec<u8>>,
        score: i16,
    ) {
        self.ids.push(id);
        self.values.push(json!({
            "score": score, "company_id": company,
            "first_name": v.first_name, "last_name": v.last_name, "title": v.title,
            "seniority": v.seniority, "department": v.department, "linkedin_url": v.linkedin_url,
            "company_name": v.company_name, "company_domain": v.company_domain,
            "industry": v.industry, "employee_range": v.employee_range, "city": v.city,
            "region": v.region, "country": v.country, "source": v.source, "status": v.status,
            "tags": v.tags, "custom": v.custom, "do_not_contact": v.do_not_contact,
        }));
        self.phone_ct.push(phone_ct);
    }

    async fn write(&self, tx: &mut TenantTx, now: OffsetDateTime) -> Result<(), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        // Values travel as one JSON object per lead (the batch has one shape for every column).
        sqlx::query!(
            "UPDATE app.leads l SET
                first_name = u.v->>'first_name', last_name = u.v->>'last_name',
                title = u.v->>'title', seniority = u.v->>'seniority',
                department = u.v->>'department', linkedin_url = u.v->>'linkedin_url',
                company_id = (u.v->>'company_id')::uuid,
                company_name = u.v->>'company_name', company_domain = u.v->>'company_domain',
                industry = u.v->>'industry', employee_range = u.v->>'employee_range',
                city = u.v->>'city', region = u.v->>'region', country = u.v->>'country',
                source = u.v->>'source', status = u.v->>'status',
                tags = ARRAY(SELECT jsonb_array_elements_text(u.v->'tags')),
                custom = u.v->'custom', do_not_contact = (u.v->>'do_not_contact')::boolean,
                phone_ct = coalesce(u.phone_ct, l.phone_ct), updated_at = $4,
                score = (u.v->>'score')::smallint
             FROM UNNEST($1::uuid[], $2::jsonb[], $3::bytea[]) AS u(id, v, phone_ct)
             WHERE l.org_id = $5 AND l.id = u.id",
            &self.ids,
            &self.values,
            &self.phone_ct as &[Option<Vec<u8>>],
            now,
            tx.context().org_id
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

async fn finish(state: &LeadsState, c: &Claimed, owner: &str, job: &Job) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, c.context).await?;
    let done = sqlx::query!(
        "UPDATE app.import_jobs SET status = 'done', finished_at = $3, updated_at = $3,
            lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'
         RETURNING rows_done, created, updated, duplicates, rejected, warnings",
        c.id,
        owner,
        now
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(d) = done else { return Ok(()) };
    audit::record(
        &mut tx,
        now,
        &Meta::default(),
        Entry {
            action: "import.finish",
            target: Some(format!("import:{}", c.id)),
            before: None,
            after: Some(json!({
                "file_name": job.file_name, "mode": job.mode.as_str(), "rows": d.rows_done,
                "created": d.created, "updated": d.updated, "duplicates": d.duplicates,
                "rejected": d.rejected, "warnings": d.warnings,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(job = %c.id, rows = d.rows_done, created = d.created, "import finished");
    Ok(())
}

async fn fail(state: &LeadsState, c: &Claimed, owner: &str, error: &str) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, c.context).await?;
    let error: String = error.chars().take(1000).collect();
    let failed = sqlx::query!(
        "UPDATE app.import_jobs SET status = 'failed', error = $3, finished_at = $4, updated_at = $4,
            lease_owner = NULL, lease_until = NULL
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        c.id,
        owner,
        error,
        now
    )
    .execute(&mut *tx)
    .await?;
    if failed.rows_affected() == 1 {
        audit::record(
            &mut tx,
            now,
            &Meta::default(),
            Entry {
                action: "import.fail",
                target: Some(format!("import:{}", c.id)),
                before: None,
                after: Some(json!({ "error": error })),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
