//! `leadgen keys rotate-data` and `leadgen keys retire-data`: moving every encrypted lead field
//! to a new data key, online and resumably, then retiring the old key.
//!
//! Rotation walks the leads in id order in small batches, each its own transaction, and
//! re-encrypts the fields whose ciphertext names an older key. Rows already moved are skipped,
//! so a run that stops half way is finished by running it again (it continues under the same new
//! key rather than adding another). Servers pick the new key up within a minute and encrypt new
//! values with it; a second run after that catches rows they wrote meanwhile.

use leadgen_crypto::field::{DataKey, KeyRing, MasterKey};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::keys::{FIELD, field_ring, lead_place};

#[derive(Debug, Serialize)]
pub struct RotateReport {
    pub key_id: u32,
    pub new_key: bool,
    pub scanned: u64,
    pub reencrypted: u64,
}

/// Whether any lead field is still encrypted under a key other than `key`.
async fn behind(pool: &PgPool, key: u32) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM app.leads
             WHERE substring(email_ct FROM 2 FOR 4) <> $1 OR substring(phone_ct FROM 2 FOR 4) <> $1) AS "x!""#,
        &key.to_be_bytes()[..]
    )
    .fetch_one(pool)
    .await
}

/// Re-encrypts every lead field under the newest key, adding one first unless a previous run
/// is still under way. `pool` must reach every organization (the maintenance connection).
pub async fn rotate(pool: &PgPool, master: &MasterKey, batch: i64) -> anyhow::Result<RotateReport> {
    let current = field_ring(pool, master)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no data key yet: start the server once first"))?;
    let newest = current.active_id();
    let (ring, key_id, new_key) = if behind(pool, newest).await? {
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
    let mut report = RotateReport {
        key_id,
        new_key,
        scanned: 0,
        reencrypted: 0,
    };
    // In key order, (org_id, id), so each batch starts with an index lookup.
    let mut after = (Uuid::nil(), Uuid::nil());
    loop {
        let mut tx = pool.begin().await?;
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
            let move_one =
                |col: &'static str, ct: Option<Vec<u8>>| -> anyhow::Result<Option<Vec<u8>>> {
                    let Some(ct) = ct else { return Ok(None) };
                    if KeyRing::key_id_of(&ct) == Some(key_id) {
                        return Ok(None);
                    }
                    let place = lead_place(col, r.org_id, r.id);
                    let plain = ring
                        .decrypt(&ct, &place)
                        .map_err(|e| anyhow::anyhow!("lead {} {col}: {e}", r.id))?;
                    Ok(Some(ring.encrypt(&plain, &place)))
                };
            let email = move_one("email", r.email_ct)?;
            let phone = move_one("phone", r.phone_ct)?;
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
    Ok(report)
}

/// Retires a field key that no ciphertext uses any more; refuses the newest key.
pub async fn retire(pool: &PgPool, key: u32) -> anyhow::Result<()> {
    let newest: Option<i32> = sqlx::query_scalar!(
        "SELECT max(id) FROM app.data_keys WHERE purpose = 'field' AND retired_at IS NULL"
    )
    .fetch_one(pool)
    .await?;
    let id = i32::try_from(key)?;
    if newest == Some(id) {
        anyhow::bail!("key {key} is the active key; rotate to a new one first");
    }
    let users: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM app.leads
           WHERE substring(email_ct FROM 2 FOR 4) = $1 OR substring(phone_ct FROM 2 FOR 4) = $1"#,
        &key.to_be_bytes()[..]
    )
    .fetch_one(pool)
    .await?;
    if users > 0 {
        anyhow::bail!(
            "key {key} still encrypts fields of {users} lead(s); run `leadgen keys rotate-data` again"
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
