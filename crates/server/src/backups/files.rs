//! The data folder's files in backups: uploaded import files (`imports/`) and generated exports
//! (`exports/`). pgBackRest copies only the database cluster, so each backup also records these
//! files beside the repository: every file content once, sealed under the master key (AES-256-GCM)
//! and named by its SHA-256, plus one index per backup listing which files it holds. An
//! incremental backup therefore stores only files it has not seen. The key store
//! (`secrets/org-keys`) is never included: shredding an organization's keys must reach old
//! backups too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engine::BackupError;
use crate::config::Config;

/// The folders of the data folder that backups include.
pub const INCLUDED: &[&str] = &["imports", "exports"];
/// What sealed objects are bound to.
const PURPOSE: &str = "leadgen backup file v1";

fn other(e: impl std::fmt::Display) -> BackupError {
    BackupError::Other(e.to_string())
}

/// Where file objects and indexes live: beside the embedded repository, so copying the
/// repository off the machine takes them along.
#[must_use]
pub fn root(config: &Config) -> PathBuf {
    if config.backup.external() {
        config.data_dir.join("backups").join("files")
    } else {
        config.backup_repo().join("leadgen-files")
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the data folder, e.g. `imports/<id>.csv`.
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// What [`snapshot`] stored.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub files: usize,
    pub bytes: u64,
    /// Objects written by this backup (contents no earlier backup had).
    pub new_objects: usize,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries {
        let e = e?;
        let kind = e.file_type()?;
        if kind.is_dir() {
            walk(&e.path(), out)?;
        } else if kind.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Records the included files for backup `label`.
///
/// # Errors
/// A file that cannot be read, or the repository cannot be written.
pub fn snapshot(config: &Config, label: &str) -> Result<Snapshot, BackupError> {
    let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)
        .map_err(|e| other(format!("{e:#}")))?;
    let root = root(config);
    let objects = root.join("objects");
    std::fs::create_dir_all(&objects).map_err(|e| other(format!("{}: {e}", objects.display())))?;
    let mut paths = Vec::new();
    for dir in INCLUDED {
        walk(&config.data_dir.join(dir), &mut paths).map_err(other)?;
    }
    paths.sort();
    let mut snap = Snapshot::default();
    let mut index = Vec::with_capacity(paths.len());
    for path in paths {
        // A file removed meanwhile (an export expiring) is simply not in this backup.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let sha = hex(&Sha256::digest(&bytes));
        let object = objects.join(&sha);
        if !object.exists() {
            let sealed = master
                .seal(&bytes, &format!("{PURPOSE}:{sha}"))
                .map_err(other)?;
            let tmp = objects.join(format!(".{sha}.tmp"));
            crate::secrets::write_private(&tmp, &sealed).map_err(other)?;
            std::fs::rename(&tmp, &object).map_err(other)?;
            snap.new_objects += 1;
        }
        let rel = path
            .strip_prefix(&config.data_dir)
            .map_err(other)?
            .to_string_lossy()
            .into_owned();
        snap.files += 1;
        snap.bytes += bytes.len() as u64;
        index.push(Entry {
            path: rel,
            sha256: sha,
            size: bytes.len() as u64,
        });
    }
    let text = serde_json::to_vec_pretty(&index).map_err(other)?;
    crate::secrets::write_private(&root.join(format!("{label}.json")), &text).map_err(other)?;
    Ok(snap)
}

fn read_index(root: &Path, label: &str) -> Result<Vec<Entry>, BackupError> {
    let path = root.join(format!("{label}.json"));
    let text = std::fs::read(&path)
        .map_err(|e| BackupError::Damaged(format!("file index {}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| BackupError::Damaged(format!("file index {}: {e}", path.display())))
}

fn open_object(
    master: &leadgen_crypto::field::MasterKey,
    root: &Path,
    sha: &str,
) -> Result<Vec<u8>, BackupError> {
    let path = root.join("objects").join(sha);
    let sealed = std::fs::read(&path)
        .map_err(|e| BackupError::Damaged(format!("missing: leadgen-files/objects/{sha} ({e})")))?;
    let plain = master
        .open(&sealed, &format!("{PURPOSE}:{sha}"))
        .map_err(|_| {
            BackupError::Damaged(format!("invalid checksum: leadgen-files/objects/{sha}"))
        })?;
    if hex(&Sha256::digest(&plain)) != sha {
        return Err(BackupError::Damaged(format!(
            "invalid checksum: leadgen-files/objects/{sha}"
        )));
    }
    Ok(plain)
}

/// Checks that every object the given backups' indexes name opens and matches its hash.
/// Returns how many files were checked.
///
/// # Errors
/// [`BackupError::Damaged`] naming each bad object or index.
pub fn verify(config: &Config, labels: &[String]) -> Result<usize, BackupError> {
    let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)
        .map_err(|e| other(format!("{e:#}")))?;
    let root = root(config);
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for label in labels {
        match read_index(&root, label) {
            Ok(index) => {
                for e in index {
                    if seen.insert(e.sha256.clone())
                        && let Err(err) = open_object(&master, &root, &e.sha256)
                    {
                        problems.push(err.to_string());
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(seen.len())
    } else {
        Err(BackupError::Damaged(problems.join("; ")))
    }
}

/// Writes backup `label`'s files under `into` (a restored data folder).
///
/// # Errors
/// A damaged object or index, or `into` cannot be written.
pub fn restore(config: &Config, label: &str, into: &Path) -> Result<usize, BackupError> {
    let master = crate::secrets::master_key(&config.secrets.master_key, &config.data_dir)
        .map_err(|e| other(format!("{e:#}")))?;
    let root = root(config);
    let index = read_index(&root, label)?;
    for e in &index {
        let rel = Path::new(&e.path);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(BackupError::Damaged(format!("file index names {}", e.path)));
        }
        let plain = open_object(&master, &root, &e.sha256)?;
        let target = into.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(other)?;
        }
        crate::secrets::write_private(&target, &plain).map_err(other)?;
    }
    Ok(index.len())
}

/// Removes the indexes of backups pgBackRest expired and the objects no index names any more.
///
/// # Errors
/// The repository cannot be read or written.
pub fn expire(config: &Config, kept: &[String]) -> Result<usize, BackupError> {
    let root = root(config);
    let kept: BTreeSet<&str> = kept.iter().map(String::as_str).collect();
    let mut referenced = BTreeSet::new();
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(0);
    };
    let mut indexes = BTreeMap::new();
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(label) = name.strip_suffix(".json") {
            indexes.insert(label.to_string(), e.path());
        }
    }
    for (label, path) in indexes {
        if kept.contains(label.as_str()) {
            for entry in read_index(&root, &label)? {
                referenced.insert(entry.sha256);
            }
        } else {
            std::fs::remove_file(path).map_err(other)?;
        }
    }
    if let Ok(objects) = std::fs::read_dir(root.join("objects")) {
        for e in objects.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            // A dot file is an object being written by a backup running now.
            if !name.starts_with('.') && !referenced.contains(&name) {
                std::fs::remove_file(e.path()).map_err(other)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
