//! Server secrets: the application key, read from configuration or, in development, generated
//! once into the data folder.

use std::path::Path;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

/// Development keys carry this prefix so production can recognise and refuse them.
pub const DEV_KEY_PREFIX: &str = "dev-";

/// The configured application key, or in development a generated one kept in
/// `<data_dir>/secrets/dev-app-key` (mode 0600) so restarts keep the same key.
pub fn app_key(configured: &SecretString, data_dir: &Path) -> std::io::Result<SecretString> {
    configured_or_dev(configured, data_dir, "dev-app-key")
}

/// The configured master key, or in development a generated one kept in
/// `<data_dir>/secrets/dev-master-key`, as 32 bytes.
pub fn master_key(
    configured: &SecretString,
    data_dir: &Path,
) -> anyhow::Result<leadgen_crypto::field::MasterKey> {
    let text = configured_or_dev(configured, data_dir, "dev-master-key")?;
    let text = text.expose_secret();
    let text = text.strip_prefix(DEV_KEY_PREFIX).unwrap_or(text);
    leadgen_crypto::field::MasterKey::parse(text)
        .map_err(|e| anyhow::anyhow!("secrets.master_key: {e}"))
}

fn configured_or_dev(
    configured: &SecretString,
    data_dir: &Path,
    file: &str,
) -> std::io::Result<SecretString> {
    if !configured.expose_secret().is_empty() {
        return Ok(configured.clone());
    }
    let dir = data_dir.join("secrets");
    let path = dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.starts_with(DEV_KEY_PREFIX)
        && existing.len() >= 32
    {
        return Ok(SecretString::from(existing));
    }
    std::fs::create_dir_all(&dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("{DEV_KEY_PREFIX}{}", hex::encode(bytes));
    write_private(&path, key.as_bytes())?;
    Ok(SecretString::from(key))
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}
