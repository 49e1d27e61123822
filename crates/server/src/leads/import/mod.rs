//! Lead import: a CSV file streamed to the data folder, checked whole before the import may start
//! (structure, header, every row), mapped (automatically for HubSpot, Apollo, Salesforce and our
//! template; the user may correct it), then written by a durable background job.
//!
//! The job's checkpoint (rows consumed, bytes read, counters) commits in the same transaction as
//! each batch of leads, so a server killed at any point resumes at the last committed batch: no
//! row is lost and none is written twice. Dedupe is on the blind index of the normalised email,
//! within the file and against the organization's existing leads, in one of three modes.

pub mod api;
pub mod link;
pub mod merge;
pub mod page;
pub mod worker;

use std::path::{Path, PathBuf};

/// How an imported row meets an existing lead with the same email address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Existing leads are left alone; the row counts as a duplicate.
    CreateOnly,
    /// Fields present in the row replace the lead's.
    UpdateExisting,
    /// The row only fills the lead's empty fields.
    FillEmpty,
}

impl Mode {
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create_only" => Some(Self::CreateOnly),
            "update_existing" => Some(Self::UpdateExisting),
            "fill_empty" => Some(Self::FillEmpty),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateOnly => "create_only",
            Self::UpdateExisting => "update_existing",
            Self::FillEmpty => "fill_empty",
        }
    }
}

/// Where uploads are kept.
#[must_use]
pub fn folder(data_dir: &Path) -> PathBuf {
    data_dir.join("imports")
}

#[must_use]
pub fn file_of(data_dir: &Path, job: uuid::Uuid) -> PathBuf {
    folder(data_dir).join(format!("{job}.csv"))
}

/// This server instance's name for the jobs whose files it holds: made once, kept in the data
/// folder, so a restarted server finds its jobs again.
pub fn node_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() && id.len() <= 100 {
            return Ok(id.to_string());
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let id = format!("node-{}", uuid::Uuid::new_v4().simple());
    crate::secrets::write_private(&path, id.as_bytes())?;
    Ok(id)
}

/// Queues an import of `path` (already in the imports folder as `<job>.csv`) for `context`, as if
/// its member had uploaded and started it: `leadgen demo seed` uses it, and the server's worker
/// (on this data folder's node) runs it.
pub async fn enqueue(
    pool: &sqlx::PgPool,
    data_dir: &Path,
    context: crate::db::TenantContext,
    job: uuid::Uuid,
    file_name: &str,
    now: time::OffsetDateTime,
) -> anyhow::Result<u64> {
    use anyhow::Context as _;
    use sha2::Digest as _;
    let path = file_of(data_dir, job);
    // The same whole-file check as an upload, streaming; then its digest, streaming too.
    // LeadGen wrote the file itself, in UTF-8.
    let checked = api::check_file(&path, Some(leadgen_import::TextEncoding::UTF_8), 0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mapping = checked.preview.mapping;
    mapping.validate()?;
    let rows = checked.rows;
    let mut hash = sha2::Sha256::new();
    let bytes = std::io::copy(
        &mut std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?,
        &mut hash,
    )?;
    let sha = hash.finalize().to_vec();
    let node = node_id(data_dir)?;
    let mut tx = crate::db::TenantTx::begin(pool, context).await?;
    sqlx::query!(
        "INSERT INTO app.import_jobs (id, org_id, created_by, node, file_name, file_bytes, file_sha256,
            status, mode, mapping, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 'create_only', $8, $9, $9)",
        job,
        context.org_id,
        context.user_id,
        node,
        file_name,
        i64::try_from(bytes)?,
        sha,
        serde_json::to_value(&mapping)?,
        now
    )
    .execute(&mut *tx)
    .await?;
    crate::audit::record(
        &mut tx,
        now,
        &crate::audit::Meta::default(),
        crate::audit::Entry {
            action: "import.start",
            target: Some(format!("import:{job}")),
            before: None,
            after: Some(
                serde_json::json!({ "file_name": file_name, "mode": "create_only", "rows": rows }),
            ),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(rows)
}
