//! The data-encryption keys, as the server holds them.
//!
//! Two kinds:
//! * **Installation-wide keys** in `app.data_keys`, wrapped by the master key: the field keys
//!   (the newest encrypts what belongs to no organization, such as vulnerability-report
//!   attachments, and decrypts contact fields written before organizations had keys of their
//!   own) and the blind-index key.
//! * **Per-organization keys**, which encrypt an organization's lead emails and phone numbers and
//!   its data-subject request addresses. Their material lives outside the database, in the key
//!   store (`secrets.org_key_dir`), one file per key wrapped by the master key and bound to its
//!   id and organization; `app.org_keys` only records which exist. Deleting an organization
//!   deletes its files, and with them the ability to read any copy of its rows taken before:
//!   dumps and backups of the database hold ciphertexts and key ids, never the keys.
//!
//! Keys are loaded lazily and cached; a ciphertext that names a key this instance has not seen
//! (another instance or `leadgen keys rotate-data` added it) reloads them once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use leadgen_crypto::field::{BlindIndexKey, DataKey, FieldError, KeyRing, MasterKey, Place};
use sqlx::PgPool;
use uuid::Uuid;

pub const FIELD: &str = "field";
pub const BLIND: &str = "blind";

/// Key ids from here on are per-organization keys (`app.org_keys`); below are the
/// installation-wide ones (`app.data_keys`).
pub const ORG_KEY_BASE: u32 = 2_000_000;

/// The key ring and blind-index key; cheap to clone.
#[derive(Clone)]
pub struct FieldKeys {
    inner: Arc<Inner>,
}

struct Inner {
    /// Connections of their own for loading and creating keys, which happens in the middle of
    /// requests that already hold a connection in a transaction: drawing from the request pool
    /// there could leave every request waiting for a connection another one holds.
    pool: PgPool,
    master: MasterKey,
    ring: RwLock<Arc<KeyRing>>,
    /// Per-organization rings, loaded on first use; cleared by [`FieldKeys::reload`].
    orgs: RwLock<HashMap<Uuid, Arc<KeyRing>>>,
    store: KeyStore,
    blind: BlindIndexKey,
}

impl std::fmt::Debug for FieldKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldKeys { .. }")
    }
}

/// The folder that holds the per-organization keys, wrapped by the master key.
#[derive(Debug, Clone)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    #[must_use]
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    /// The wrapping purpose: a key file only unwraps for its own id and organization.
    fn purpose(org: Uuid) -> String {
        format!("org:{org}")
    }

    /// Writes a key durably: a private file renamed into place, then the folder synced.
    fn write(&self, master: &MasterKey, key: &DataKey, org: Uuid) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let path = self.path(key.id());
        let tmp = path.with_extension("key.new");
        crate::secrets::write_private(&tmp, &key.wrap(master, &Self::purpose(org)))?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()
    }

    fn read(&self, master: &MasterKey, id: u32, org: Uuid) -> anyhow::Result<DataKey> {
        let path = self.path(id);
        let wrapped = std::fs::read(&path).with_context(|| {
            format!(
                "data key {id} of organization {org} is missing from the key store ({}); \
                 its data cannot be read",
                path.display()
            )
        })?;
        DataKey::unwrap(master, id, &Self::purpose(org), &wrapped).with_context(|| {
            format!(
                "data key {id} in {} does not open with secrets.master_key",
                path.display()
            )
        })
    }

    /// Removes a key's file; `false` when it was already gone.
    pub fn destroy(&self, id: u32) -> std::io::Result<bool> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => {
                std::fs::File::open(&self.dir)?.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Wrapped keys as stored.
struct Stored {
    id: i32,
    purpose: String,
    wrapped: Vec<u8>,
}

async fn stored(pool: &PgPool) -> Result<Vec<Stored>, sqlx::Error> {
    sqlx::query_as!(
        Stored,
        "SELECT id, purpose, wrapped FROM app.data_keys WHERE retired_at IS NULL ORDER BY id"
    )
    .fetch_all(pool)
    .await
}

fn key_id(id: i32) -> anyhow::Result<u32> {
    u32::try_from(id).context("data key ids are positive")
}

fn ring_from(master: &MasterKey, rows: &[Stored]) -> anyhow::Result<Option<KeyRing>> {
    let mut keys = Vec::new();
    for r in rows.iter().filter(|r| r.purpose == FIELD) {
        let id = key_id(r.id)?;
        keys.push(
            DataKey::unwrap(master, id, FIELD, &r.wrapped)
                .with_context(|| format!("data key {id} does not open with secrets.master_key"))?,
        );
    }
    // The newest key encrypts.
    Ok(keys.pop().map(|active| KeyRing::new(active, keys)))
}

/// The unretired field keys as a ring (the newest active), or `None` before the first start.
pub async fn field_ring(pool: &PgPool, master: &MasterKey) -> anyhow::Result<Option<KeyRing>> {
    ring_from(master, &stored(pool).await?)
}

/// An organization's usable keys as a ring, the newest active; `None` when it has none.
pub async fn org_ring(
    pool: &PgPool,
    master: &MasterKey,
    store: &KeyStore,
    org: Uuid,
) -> anyhow::Result<Option<KeyRing>> {
    let ids: Vec<i32> = sqlx::query_scalar!(
        "SELECT id FROM app.org_keys
         WHERE org_id = $1 AND retired_at IS NULL AND destroyed_at IS NULL ORDER BY id",
        org
    )
    .fetch_all(pool)
    .await?;
    let mut keys = Vec::with_capacity(ids.len());
    for id in ids {
        keys.push(store.read(master, key_id(id)?, org)?);
    }
    Ok(keys.pop().map(|active| KeyRing::new(active, keys)))
}

/// Gives `org` a key of generation `stamp` unless it has a usable one of generation `need` or
/// later. Instances and `rotate-data` may race here: an advisory lock per organization makes one
/// of them create the key and the others find it. The file is written before the row commits, so
/// a recorded key always has its material (a crash in between leaves an unused file).
pub async fn provision(
    pool: &PgPool,
    master: &MasterKey,
    store: &KeyStore,
    org: Uuid,
    need: i32,
    stamp: i32,
) -> anyhow::Result<Option<u32>> {
    let mut tx = pool.begin().await?;
    let lock = i64::from_be_bytes(org.as_bytes()[..8].try_into()?) ^ 0x6f72_675f_6b65_7973;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock)
        .execute(&mut *tx)
        .await?;
    let has: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM app.org_keys WHERE org_id = $1 AND generation >= $2
             AND retired_at IS NULL AND destroyed_at IS NULL) AS "x!""#,
        org,
        need
    )
    .fetch_one(&mut *tx)
    .await?;
    if has {
        return Ok(None);
    }
    let id = sqlx::query_scalar!(
        "INSERT INTO app.org_keys (org_id, generation) VALUES ($1, $2) RETURNING id",
        org,
        stamp
    )
    .fetch_one(&mut *tx)
    .await?;
    let id = key_id(id)?;
    let key = DataKey::generate(id);
    store
        .write(master, &key, org)
        .with_context(|| format!("writing data key {id} to {}", store.dir.display()))?;
    tx.commit().await?;
    tracing::info!(target: "leadgen::audit", action = "org_key_created", org_id = %org, key_id = id, "organization data key created");
    Ok(Some(id))
}

/// Destroys the keys of organizations that no longer exist (deleted after their grace period, or
/// with their last member's account): marks them destroyed, then removes their files. Files of
/// keys marked earlier but not removed (a crash in between) go too, so a rerun finishes the job.
/// `pool` must reach every organization (the maintenance connection).
pub async fn shred_deleted_organizations(
    pool: &PgPool,
    store: &KeyStore,
) -> anyhow::Result<Vec<u32>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE leadgen_maintenance")
        .execute(&mut *tx)
        .await?;
    let marked: Vec<(i32, Uuid)> = sqlx::query_as(
        "UPDATE app.org_keys k SET destroyed_at = now()
         WHERE destroyed_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM app.organizations o WHERE o.id = k.org_id)
         RETURNING id, org_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let all: Vec<i32> = sqlx::query_scalar(
        "SELECT id FROM app.org_keys WHERE destroyed_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    for (id, org) in &marked {
        tracing::info!(target: "leadgen::audit", action = "org_key_destroyed", org_id = %org, key_id = id, "organization data key destroyed");
    }
    let mut removed = Vec::new();
    for id in all {
        let id = key_id(id)?;
        if store
            .destroy(id)
            .with_context(|| format!("removing data key {id} from {}", store.dir.display()))?
        {
            removed.push(id);
        }
    }
    metrics::counter!("org_keys_destroyed_total").increment(removed.len() as u64);
    Ok(removed)
}

/// The keys one organization's fields are encrypted with (its newest key).
#[derive(Clone)]
pub struct OrgSealer {
    org: Uuid,
    ring: Arc<KeyRing>,
    keys: FieldKeys,
}

impl OrgSealer {
    #[must_use]
    pub fn org(&self) -> Uuid {
        self.org
    }

    /// Encrypts a value of this organization. A place in another organization is a bug; the
    /// ciphertext would not open there anyway (the organization is in the associated data and
    /// the key is not in the other organization's ring).
    #[must_use]
    pub fn encrypt(&self, plain: &str, place: &Place<'_>) -> Vec<u8> {
        debug_assert_eq!(
            place.org,
            *self.org.as_bytes(),
            "sealing for another organization"
        );
        self.ring.encrypt(plain.as_bytes(), place)
    }

    /// Blind index of an email address in this organization.
    #[must_use]
    pub fn email_index(&self, email: &str) -> Option<[u8; 32]> {
        self.keys.email_index(self.org, email)
    }
}

impl FieldKeys {
    /// Loads the installation-wide keys, creating the first field key and the blind-index key
    /// on first start. Organizations' keys load on first use.
    pub async fn load(pool: &PgPool, master: MasterKey, store: KeyStore) -> anyhow::Result<Self> {
        let mut rows = stored(pool).await?;
        if !rows.iter().any(|r| r.purpose == FIELD) {
            let key = DataKey::generate(1);
            sqlx::query!(
                "INSERT INTO app.data_keys (id, purpose, wrapped) VALUES (1, 'field', $1)
                 ON CONFLICT DO NOTHING",
                key.wrap(&master, FIELD)
            )
            .execute(pool)
            .await?;
        }
        if !rows.iter().any(|r| r.purpose == BLIND) {
            // The blind-index key lives in the same table, wrapped the same way, under an id
            // that never collides with field keys (which count up from 1).
            let key = DataKey::generate(BLIND_ID);
            sqlx::query!(
                "INSERT INTO app.data_keys (id, purpose, wrapped) VALUES ($1, 'blind', $2)
                 ON CONFLICT DO NOTHING",
                i32::try_from(BLIND_ID)?,
                key.wrap(&master, BLIND)
            )
            .execute(pool)
            .await?;
        }
        // Another instance may have won either insert: read what is stored.
        rows = stored(pool).await?;
        let ring = ring_from(&master, &rows)?.context("no field key after creating one")?;
        let blind_row = rows
            .iter()
            .find(|r| r.purpose == BLIND)
            .context("no blind-index key after creating one")?;
        let blind = DataKey::unwrap(&master, key_id(blind_row.id)?, BLIND, &blind_row.wrapped)
            .context("the blind-index key does not open with secrets.master_key")?;
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with((*pool.connect_options()).clone());
        Ok(Self {
            inner: Arc::new(Inner {
                pool: own,
                blind: BlindIndexKey::from_bytes(*blind.bytes()),
                master,
                ring: RwLock::new(Arc::new(ring)),
                orgs: RwLock::new(HashMap::new()),
                store,
            }),
        })
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.inner
            .ring
            .read()
            .map_or_else(|p| p.into_inner().clone(), |r| r.clone())
    }

    fn cached(&self, org: Uuid) -> Option<Arc<KeyRing>> {
        let orgs = self.inner.orgs.read().unwrap_or_else(|p| p.into_inner());
        orgs.get(&org).cloned()
    }

    fn remember(&self, org: Uuid, ring: Arc<KeyRing>) {
        let mut orgs = self.inner.orgs.write().unwrap_or_else(|p| p.into_inner());
        orgs.insert(org, ring);
    }

    /// Re-reads the installation-wide keys (a rotation added one).
    async fn reload_shared(&self) -> anyhow::Result<()> {
        if let Some(ring) = field_ring(&self.inner.pool, &self.inner.master).await? {
            let mut slot = self
                .inner
                .ring
                .write()
                .map_err(|_| anyhow::anyhow!("key ring lock poisoned"))?;
            *slot = Arc::new(ring);
        }
        Ok(())
    }

    /// Re-reads every key in use (a rotation added some, or an organization's were destroyed):
    /// the installation-wide ring and each cached organization's, dropping organizations that
    /// have none left. Runs on a timer, outside any request.
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.reload_shared().await?;
        let cached: Vec<Uuid> = {
            let orgs = self.inner.orgs.read().unwrap_or_else(|p| p.into_inner());
            orgs.keys().copied().collect()
        };
        for org in cached {
            let inner = &self.inner;
            match org_ring(&inner.pool, &inner.master, &inner.store, org).await? {
                Some(ring) => self.remember(org, Arc::new(ring)),
                None => {
                    let mut orgs = inner.orgs.write().unwrap_or_else(|p| p.into_inner());
                    orgs.remove(&org);
                }
            }
        }
        Ok(())
    }

    /// The organization's ring from the key store, cached; `None` when it has no key yet.
    async fn load_org(&self, org: Uuid) -> anyhow::Result<Option<Arc<KeyRing>>> {
        let inner = &self.inner;
        let Some(ring) = org_ring(&inner.pool, &inner.master, &inner.store, org).await? else {
            return Ok(None);
        };
        let ring = Arc::new(ring);
        self.remember(org, ring.clone());
        Ok(Some(ring))
    }

    /// What encrypts `org`'s fields: its newest key, created on first use.
    pub async fn sealer(&self, org: Uuid) -> anyhow::Result<OrgSealer> {
        if let Some(ring) = self.cached(org) {
            return Ok(OrgSealer {
                org,
                ring,
                keys: self.clone(),
            });
        }
        if let Some(ring) = self.load_org(org).await? {
            return Ok(OrgSealer {
                org,
                ring,
                keys: self.clone(),
            });
        }
        let generation = i32::try_from(self.ring().active_id())?;
        provision(
            &self.inner.pool,
            &self.inner.master,
            &self.inner.store,
            org,
            1,
            generation,
        )
        .await?;
        let ring = self
            .load_org(org)
            .await?
            .context("the organization's new data key did not read back")?;
        Ok(OrgSealer {
            org,
            ring,
            keys: self.clone(),
        })
    }

    /// Loads `org`'s keys ahead of [`Self::decrypt_now`] (a worker that decrypts many values),
    /// again when one of `ciphertexts` names a key added since they were cached.
    pub async fn prepare(&self, org: Uuid, ciphertexts: &[&[u8]]) -> anyhow::Result<()> {
        let stale = match self.cached(org) {
            None => true,
            Some(ring) => ciphertexts.iter().any(|ct| {
                KeyRing::key_id_of(ct).is_some_and(|id| id >= ORG_KEY_BASE && !ring.contains(id))
            }),
        };
        if stale {
            self.load_org(org).await?;
        }
        Ok(())
    }

    #[must_use]
    pub fn active_id(&self) -> u32 {
        self.ring().active_id()
    }

    /// Decrypts with the keys at hand: the installation-wide ring, or the ring of the
    /// organization the place belongs to (never another organization's keys).
    fn open_now(&self, ciphertext: &[u8], place: &Place<'_>) -> Result<Vec<u8>, FieldError> {
        let id = KeyRing::key_id_of(ciphertext).ok_or(FieldError::Format)?;
        if id < ORG_KEY_BASE {
            return self.ring().decrypt(ciphertext, place);
        }
        match self.cached(Uuid::from_bytes(place.org)) {
            Some(ring) => ring.decrypt(ciphertext, place),
            None => Err(FieldError::UnknownKey(id)),
        }
    }

    /// Decrypts, reloading the keys once when the ciphertext names one this instance lacks.
    async fn open(&self, ciphertext: &[u8], place: &Place<'_>) -> Result<Vec<u8>, FieldError> {
        match self.open_now(ciphertext, place) {
            Err(FieldError::UnknownKey(id)) => {
                let reloaded = if id < ORG_KEY_BASE {
                    self.reload_shared().await
                } else {
                    self.load_org(Uuid::from_bytes(place.org)).await.map(|_| ())
                };
                if let Err(e) = reloaded {
                    tracing::warn!(error = %format!("{e:#}"), "reloading data keys");
                }
                self.open_now(ciphertext, place)
            }
            other => other,
        }
    }

    /// Decrypts a text field, loading keys as needed.
    pub async fn decrypt(
        &self,
        ciphertext: &[u8],
        place: &Place<'_>,
    ) -> Result<String, FieldError> {
        let plain = self.open(ciphertext, place).await?;
        String::from_utf8(plain).map_err(|_| FieldError::Utf8)
    }

    /// Seals bytes that belong to no organization (a vulnerability report's file) with the
    /// active installation-wide key.
    #[must_use]
    pub fn encrypt_bytes(&self, plain: &[u8], place: &Place<'_>) -> Vec<u8> {
        self.ring().encrypt(plain, place)
    }

    /// Opens what [`Self::encrypt_bytes`] sealed, reloading the keys once for an unknown one.
    pub async fn decrypt_bytes(
        &self,
        ciphertext: &[u8],
        place: &Place<'_>,
    ) -> Result<Vec<u8>, FieldError> {
        self.open(ciphertext, place).await
    }

    /// Decrypts with the keys at hand (see [`Self::prepare`]).
    pub fn decrypt_now(&self, ciphertext: &[u8], place: &Place<'_>) -> Result<String, FieldError> {
        let plain = self.open_now(ciphertext, place)?;
        String::from_utf8(plain).map_err(|_| FieldError::Utf8)
    }

    /// Blind index of an email address in an organization; `None` when it is not an address.
    #[must_use]
    pub fn email_index(&self, org: Uuid, email: &str) -> Option<[u8; 32]> {
        self.inner.blind.email(*org.as_bytes(), email)
    }
}

/// The blind-index key's id: apart from field keys, which count up from 1.
pub const BLIND_ID: u32 = 1_000_000;

/// Where a lead's field is stored, for the associated data of its ciphertext.
#[must_use]
pub fn lead_place(column: &'static str, org: Uuid, lead: Uuid) -> Place<'static> {
    Place {
        table: "leads",
        column,
        org: *org.as_bytes(),
        row: *lead.as_bytes(),
    }
}

/// Where a data-subject request's address is stored.
#[must_use]
pub fn subject_request_place(org: Uuid, id: Uuid) -> Place<'static> {
    Place {
        table: "subject_requests",
        column: "email",
        org: *org.as_bytes(),
        row: *id.as_bytes(),
    }
}

/// Where a vulnerability report's attachment is stored (no organization: the platform's).
#[must_use]
pub fn attachment_place(id: Uuid) -> Place<'static> {
    Place {
        table: "vdp_attachments",
        column: "content",
        org: [0; 16],
        row: *id.as_bytes(),
    }
}

impl FieldKeys {
    /// Keys that live in memory only, for unit tests of routers that never touch leads.
    #[cfg(test)]
    #[must_use]
    pub fn ephemeral() -> Self {
        Self {
            inner: Arc::new(Inner {
                pool: sqlx::postgres::PgPoolOptions::new()
                    .connect_lazy("postgres://localhost/none")
                    .expect("a valid URL"),
                master: MasterKey::from_bytes([7; 32]),
                ring: RwLock::new(Arc::new(KeyRing::new(DataKey::generate(1), Vec::new()))),
                orgs: RwLock::new(HashMap::new()),
                store: KeyStore::new(std::env::temp_dir().join("leadgen-ephemeral-keys")),
                blind: BlindIndexKey::from_bytes([8; 32]),
            }),
        }
    }
}
