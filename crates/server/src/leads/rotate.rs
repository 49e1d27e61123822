//! `leadgen keys rotate-data` and `leadgen keys retire-data`: moving every encrypted field to
//! new keys, online and resumably, then retiring the old keys.
//!
//! A rotation adds an installation-wide field key (its id is the rotation's *generation*),
//! gives every organization a key of that generation, and re-encrypts each organization's lead
//! fields and request addresses under its new key, and the platform's vulnerability-report files
//! under the new installation-wide key. The same run moves data written before organizations
//! had keys of their own (encrypted under an installation-wide key) to per-organization keys:
//! that is how an existing installation gains crypto-shredding.
//!
//! It walks each table in key order in small batches, each its own transaction, and re-encrypts
//! only values whose ciphertext names another key than the target. A run that stops half way is
//! finished by running it again: while anything is behind, a run continues the same generation
//! rather than starting another. Servers pick new keys up within a minute (and at once on an
//! unknown key id); a second run catches rows they wrote meanwhile.

use std::collections::HashMap;

use anyhow::Context as _;
use leadgen_crypto::field::{DataKey, KeyRing, MasterKey, Place};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::keys::{
    FIELD, KeyStore, ORG_KEY_BASE, attachment_place, field_ring, lead_place, org_ring, provision,
    subject_request_place,
};

#[derive(Debug, Serialize)]
pub struct RotateReport {
    /// The installation-wide key of this rotation: its generation.
    pub key_id: u32,
    pub new_key: bool,
    /// Organizations given a key of this generation by this run.
    pub org_keys_created: u64,
    /// Leads scanned and re-encrypted.
    pub scanned: u64,
    pub reencrypted: u64,
    /// Data-subject requests and vulnerability-report attachments re-encrypted.
    pub requests_reencrypted: u64,
    pub attachments_reencrypted: u64,
}

/// Whether a run of generation `generation` is unfinished: an organization lacks a key of it, or
/// a value is not under its target key.
async fn behind(pool: &PgPool, generation: u32) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        r"WITH newest AS (
              SELECT org_id, int4send(max(id)) AS k FROM app.org_keys
              WHERE retired_at IS NULL AND destroyed_at IS NULL GROUP BY org_id)
          SELECT EXISTS (SELECT 1 FROM app.organizations o WHERE NOT EXISTS (
                     SELECT 1 FROM app.org_keys k WHERE k.org_id = o.id AND k.generation >= $1
                       AND k.retired_at IS NULL AND k.destroyed_at IS NULL))
              OR EXISTS (SELECT 1 FROM app.leads l LEFT JOIN newest n ON n.org_id = l.org_id
                     WHERE (l.email_ct IS NOT NULL AND substring(l.email_ct FROM 2 FOR 4) IS DISTINCT FROM n.k)
                        OR (l.phone_ct IS NOT NULL AND substring(l.phone_ct FROM 2 FOR 4) IS DISTINCT FROM n.k))
              OR EXISTS (SELECT 1 FROM app.subject_requests r LEFT JOIN newest n ON n.org_id = r.org_id
                     WHERE r.email_ct IS NOT NULL AND substring(r.email_ct FROM 2 FOR 4) IS DISTINCT FROM n.k)
              OR EXISTS (SELECT 1 FROM app.vdp_attachments
                     WHERE substring(content FROM 2 FOR 4) <> int4send($1))",
    )
    .bind(i32::try_from(generation).unwrap_or(i32::MAX))
    .fetch_one(pool)
    .await
}

/// Keys for one run: the installation-wide ring and each organization's, loaded on first use.
struct Keys<'a> {
    pool: &'a PgPool,
    master: &'a MasterKey,
    store: &'a KeyStore,
    shared: KeyRing,
    stamp: i32,
    orgs: HashMap<Uuid, KeyRing>,
}

impl Keys<'_> {
    async fn org(&mut self, org: Uuid) -> anyhow::Result<&KeyRing> {
        if !self.orgs.contains_key(&org) {
            // An organization created after the run listed them has a key by now (the server
            // made it) or gets one here.
            provision(
                self.pool,
                self.master,
                self.store,
                org,
                self.stamp,
                self.stamp,
            )
            .await?;
            let ring = org_ring(self.pool, self.master, self.store, org)
                .await?
                .with_context(|| format!("organization {org} has no data key"))?;
            self.orgs.insert(org, ring);
        }
        self.orgs
            .get(&org)
            .context("the organization's keys were just loaded")
    }

    /// Re-encrypts `ct` under `target` unless it already is; `None` when nothing changes.
    fn rekey(
        shared: &KeyRing,
        target: &KeyRing,
        ct: Option<&[u8]>,
        place: &Place<'_>,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(ct) = ct else { return Ok(None) };
        let from = KeyRing::key_id_of(ct).context("not a field ciphertext")?;
        if from == target.active_id() {
            return Ok(None);
        }
        let plain = if from >= ORG_KEY_BASE {
            target.decrypt(ct, place)?
        } else {
            shared.decrypt(ct, place)?
        };
        Ok(Some(target.encrypt(&plain, place)))
    }
}

/// Re-encrypts every field under the newest keys, starting a new generation unless a previous
/// run is still under way. `pool` must reach every organization (the maintenance connection).
pub async fn rotate(
    pool: &PgPool,
    master: &MasterKey,
    store: &KeyStore,
    batch: i64,
) -> anyhow::Result<RotateReport> {
    let current = field_ring(pool, master)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no data key yet: start the server once first"))?;
    let newest = current.active_id();
    let (shared, generation, new_key) = if behind(pool, newest).await? {
        (current, newest, false)
    } else {
        let id = newest + 1;
        let key = DataKey::generate(id);
        sqlx::query!(
            "INSERT INTO app.data_keys (id, purpose, wrapped) VALUES ($1, 'field', $2)",
            i32::try_from(id)?,
            key.wrap(master, FIELD)
        )
        .execute(pool)
        .await?;
        // The ring again, now with the new key active and every previous one to decrypt.
        let ring = field_ring(pool, master)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the new data key did not read back"))?;
        (ring, id, true)
    };
    let stamp = i32::try_from(generation)?;
    let mut report = RotateReport {
        key_id: generation,
        new_key,
        org_keys_created: 0,
        scanned: 0,
        reencrypted: 0,
        requests_reencrypted: 0,
        attachments_reencrypted: 0,
    };
    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM app.organizations ORDER BY id")
        .fetch_all(pool)
        .await?;
    for org in orgs {
        if provision(pool, master, store, org, stamp, stamp)
            .await?
            .is_some()
        {
            report.org_keys_created += 1;
        }
    }
    let mut keys = Keys {
        pool,
        master,
        store,
        shared,
        stamp,
        orgs: HashMap::new(),
    };
    leads(&mut keys, batch, &mut report).await?;
    requests(&mut keys, batch, &mut report).await?;
    attachments(&keys, batch, &mut report).await?;
    Ok(report)
}

async fn leads(keys: &mut Keys<'_>, batch: i64, report: &mut RotateReport) -> anyhow::Result<()> {
    // In key order, (org_id, id), so each batch starts with an index lookup.
    let mut after = (Uuid::nil(), Uuid::nil());
    loop {
        let mut tx = keys.pool.begin().await?;
        let rows = sqlx::query!(
            "SELECT id, org_id, email_ct, phone_ct FROM app.leads WHERE (org_id, id) > ($1, $2)
             ORDER BY org_id, id LIMIT $3 FOR UPDATE SKIP LOCKED",
            after.0,
            after.1,
            batch
        )
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (last.org_id, last.id);
        report.scanned += rows.len() as u64;
        for r in rows {
            keys.org(r.org_id).await?;
            let target = &keys.orgs[&r.org_id];
            let moved = |col: &'static str, ct: Option<&[u8]>| {
                Keys::rekey(&keys.shared, target, ct, &lead_place(col, r.org_id, r.id))
                    .with_context(|| format!("lead {} {col}", r.id))
            };
            let email = moved("email", r.email_ct.as_deref())?;
            let phone = moved("phone", r.phone_ct.as_deref())?;
            if email.is_none() && phone.is_none() {
                continue;
            }
            sqlx::query!(
                "UPDATE app.leads SET email_ct = coalesce($3, email_ct), phone_ct = coalesce($4, phone_ct)
                 WHERE org_id = $1 AND id = $2",
                r.org_id,
                r.id,
                email,
                phone
            )
            .execute(&mut *tx)
            .await?;
            report.reencrypted += 1;
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn requests(
    keys: &mut Keys<'_>,
    batch: i64,
    report: &mut RotateReport,
) -> anyhow::Result<()> {
    let mut after = (Uuid::nil(), Uuid::nil());
    loop {
        let mut tx = keys.pool.begin().await?;
        let rows: Vec<(Uuid, Uuid, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT org_id, id, email_ct FROM app.subject_requests WHERE (org_id, id) > ($1, $2)
             ORDER BY org_id, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (last.0, last.1);
        for (org, id, ct) in rows {
            keys.org(org).await?;
            let target = &keys.orgs[&org];
            let place = subject_request_place(org, id);
            let Some(ct) = Keys::rekey(&keys.shared, target, ct.as_deref(), &place)
                .with_context(|| format!("data-subject request {id}"))?
            else {
                continue;
            };
            sqlx::query(
                "UPDATE app.subject_requests SET email_ct = $3 WHERE org_id = $1 AND id = $2",
            )
            .bind(org)
            .bind(id)
            .bind(ct)
            .execute(&mut *tx)
            .await?;
            report.requests_reencrypted += 1;
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn attachments(keys: &Keys<'_>, batch: i64, report: &mut RotateReport) -> anyhow::Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = keys.pool.begin().await?;
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT id, content FROM app.vdp_attachments WHERE id > $1
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(after)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, ct) in rows {
            let place = attachment_place(id);
            let Some(ct) = Keys::rekey(&keys.shared, &keys.shared, Some(&ct), &place)
                .with_context(|| format!("attachment {id}"))?
            else {
                continue;
            };
            sqlx::query("UPDATE app.vdp_attachments SET content = $2 WHERE id = $1")
                .bind(id)
                .bind(ct)
                .execute(&mut *tx)
                .await?;
            report.attachments_reencrypted += 1;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Retires a key no ciphertext uses any more; refuses the newest key (installation-wide, or of
/// its organization). A retired organization key's file is removed from the key store.
pub async fn retire(pool: &PgPool, store: &KeyStore, key: u32) -> anyhow::Result<()> {
    let id = i32::try_from(key)?;
    let bytes = &key.to_be_bytes()[..];
    if key >= ORG_KEY_BASE {
        let org: Option<Uuid> = sqlx::query_scalar(
            "SELECT org_id FROM app.org_keys WHERE id = $1 AND retired_at IS NULL AND destroyed_at IS NULL",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?;
        let Some(org) = org else {
            anyhow::bail!("there is no unretired organization key {key}");
        };
        let newest: Option<i32> = sqlx::query_scalar(
            "SELECT max(id) FROM app.org_keys
             WHERE org_id = $1 AND retired_at IS NULL AND destroyed_at IS NULL",
        )
        .bind(org)
        .fetch_one(pool)
        .await?;
        if newest == Some(id) {
            anyhow::bail!(
                "key {key} is the active key of organization {org}; rotate to a new one first"
            );
        }
        let users: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM app.leads WHERE org_id = $1
                       AND (substring(email_ct FROM 2 FOR 4) = $2 OR substring(phone_ct FROM 2 FOR 4) = $2))
                  + (SELECT count(*) FROM app.subject_requests WHERE org_id = $1
                       AND substring(email_ct FROM 2 FOR 4) = $2)",
        )
        .bind(org)
        .bind(bytes)
        .fetch_one(pool)
        .await?;
        if users > 0 {
            anyhow::bail!(
                "key {key} still encrypts {users} value(s); run `leadgen keys rotate-data` again"
            );
        }
        sqlx::query("UPDATE app.org_keys SET retired_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        store
            .destroy(key)
            .with_context(|| format!("removing key {key} from {}", store.dir().display()))?;
        return Ok(());
    }
    let newest: Option<i32> = sqlx::query_scalar!(
        "SELECT max(id) FROM app.data_keys WHERE purpose = 'field' AND retired_at IS NULL"
    )
    .fetch_one(pool)
    .await?;
    if newest == Some(id) {
        anyhow::bail!("key {key} is the active key; rotate to a new one first");
    }
    let users: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM app.leads
                   WHERE substring(email_ct FROM 2 FOR 4) = $1 OR substring(phone_ct FROM 2 FOR 4) = $1)
              + (SELECT count(*) FROM app.subject_requests WHERE substring(email_ct FROM 2 FOR 4) = $1)
              + (SELECT count(*) FROM app.vdp_attachments WHERE substring(content FROM 2 FOR 4) = $1)",
    )
    .bind(bytes)
    .fetch_one(pool)
    .await?;
    if users > 0 {
        anyhow::bail!(
            "key {key} still encrypts {users} value(s); run `leadgen keys rotate-data` again"
        );
    }
    let done = sqlx::query!(
        "UPDATE app.data_keys SET retired_at = now() WHERE id = $1 AND purpose = 'field' AND retired_at IS NULL",
        id
    )
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        anyhow::bail!("there is no unretired field key {key}");
    }
    Ok(())
}
