//! The data-encryption keys of lead fields, as the server holds them: unwrapped from
//! `app.data_keys` with the master key at start, reloaded when a ciphertext names a key this
//! instance has not seen (another instance or `leadgen keys rotate-data` added it).

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use leadgen_crypto::field::{BlindIndexKey, DataKey, FieldError, KeyRing, MasterKey, Place};
use sqlx::PgPool;
use uuid::Uuid;

pub const FIELD: &str = "field";
pub const BLIND: &str = "blind";

/// The key ring and blind-index key; cheap to clone.
#[derive(Clone)]
pub struct FieldKeys {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterKey,
    ring: RwLock<Arc<KeyRing>>,
    blind: BlindIndexKey,
}

impl std::fmt::Debug for FieldKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldKeys { .. }")
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

impl FieldKeys {
    /// Loads the keys, creating the first field key and the blind-index key on first start.
    pub async fn load(pool: &PgPool, master: MasterKey) -> anyhow::Result<Self> {
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
        Ok(Self {
            inner: Arc::new(Inner {
                blind: BlindIndexKey::from_bytes(*blind.bytes()),
                master,
                ring: RwLock::new(Arc::new(ring)),
            }),
        })
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.inner
            .ring
            .read()
            .map_or_else(|p| p.into_inner().clone(), |r| r.clone())
    }

    /// Re-reads the stored keys (a rotation added one).
    pub async fn reload(&self, pool: &PgPool) -> anyhow::Result<()> {
        if let Some(ring) = field_ring(pool, &self.inner.master).await? {
            let mut slot = self
                .inner
                .ring
                .write()
                .map_err(|_| anyhow::anyhow!("key ring lock poisoned"))?;
            *slot = Arc::new(ring);
        }
        Ok(())
    }

    #[must_use]
    pub fn active_id(&self) -> u32 {
        self.ring().active_id()
    }

    #[must_use]
    pub fn encrypt(&self, plain: &str, place: &Place<'_>) -> Vec<u8> {
        self.ring().encrypt(plain.as_bytes(), place)
    }

    /// Decrypts, reloading the keys once when the ciphertext names one this instance lacks.
    pub async fn decrypt(
        &self,
        pool: &PgPool,
        ciphertext: &[u8],
        place: &Place<'_>,
    ) -> Result<String, FieldError> {
        match self.decrypt_now(ciphertext, place) {
            Err(FieldError::UnknownKey(_)) => {
                if let Err(e) = self.reload(pool).await {
                    tracing::warn!(error = %e, "reloading data keys");
                }
                self.decrypt_now(ciphertext, place)
            }
            other => other,
        }
    }

    /// Seals bytes that are not text (a file) with the active key.
    #[must_use]
    pub fn encrypt_bytes(&self, plain: &[u8], place: &Place<'_>) -> Vec<u8> {
        self.ring().encrypt(plain, place)
    }

    /// Opens what [`Self::encrypt_bytes`] sealed, reloading the keys once for an unknown one.
    pub async fn decrypt_bytes(
        &self,
        pool: &PgPool,
        ciphertext: &[u8],
        place: &Place<'_>,
    ) -> Result<Vec<u8>, FieldError> {
        match self.ring().decrypt(ciphertext, place) {
            Err(FieldError::UnknownKey(_)) => {
                if let Err(e) = self.reload(pool).await {
                    tracing::warn!(error = %e, "reloading data keys");
                }
                self.ring().decrypt(ciphertext, place)
            }
            other => other,
        }
    }

    /// Decrypts with the keys at hand.
    pub fn decrypt_now(&self, ciphertext: &[u8], place: &Place<'_>) -> Result<String, FieldError> {
        let plain = self.ring().decrypt(ciphertext, place)?;
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

impl FieldKeys {
    /// Keys that live in memory only, for unit tests of routers that never touch leads.
    #[cfg(test)]
    #[must_use]
    pub fn ephemeral() -> Self {
        Self {
            inner: Arc::new(Inner {
                master: MasterKey::from_bytes([7; 32]),
                ring: RwLock::new(Arc::new(KeyRing::new(DataKey::generate(1), Vec::new()))),
                blind: BlindIndexKey::from_bytes([8; 32]),
            }),
        }
    }
}
