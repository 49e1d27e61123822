//! The audit trail: append-only, one hash chain per organization.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and the row's canonical content (a
//! JSON rendering with sorted keys, integers for times), so editing, deleting or reordering a row
//! breaks the chain from there on. The application role may only INSERT and SELECT; `leadgen
//! audit verify` recomputes every chain and names the first broken link.
//!
//! Rows of hash version 2 (every row written now) commit to their personal fields (actor,
//! target, before, after, address, request id) through a digest over a random per-row salt and
//! those fields. Deleting an account replaces them with a pseudonym and drops the salt
//! ([`pseudonymise`]): the chain still verifies, the digest no longer confirms guesses, and the
//! pseudonymisation is itself a row of the chain naming the rows it changed. The organizations'
//! chains of version 1 (written before) are verified as they were.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::TenantTx;
use crate::http::RequestId;

/// Where an audited request came from.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            ip: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        })
    }
}

/// One audited action.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub target: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The content a row's hash covers.
pub struct Row<'a> {
    pub org_id: Uuid,
    pub seq: i64,
    pub at: OffsetDateTime,
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    pub ip: Option<IpAddr>,
    pub request_id: Option<&'a str>,
}

/// JSON with object keys sorted at every level, so the same content always hashes the same,
/// whatever order PostgreSQL's `jsonb` hands the keys back in.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The digest a version-2 row commits to in place of its personal fields:
/// `SHA-256(salt ‖ canonical personal fields)`.
#[must_use]
pub fn personal_digest(salt: &[u8], r: &Row<'_>) -> Vec<u8> {
    let content = serde_json::json!({
        "actor_id": r.actor_id.map(|u| u.to_string()),
        "target": r.target,
        "before": r.before,
        "after": r.after,
        "ip": r.ip.map(|i| i.to_string()),
        "request_id": r.request_id,
    });
    let mut text = String::new();
    canonical(&content, &mut text);
    let mut h = Sha256::new();
    h.update(salt);
    h.update(text.as_bytes());
    h.finalize().to_vec()
}

/// A version-2 row's hash: `SHA-256(prev_hash ‖ canonical content)`, the personal fields
/// represented by their digest.
#[must_use]
pub fn row_hash_v2(prev: &[u8], r: &Row<'_>, personal: &[u8]) -> Vec<u8> {
    let content = serde_json::json!({
        "v": 2,
        "org_id": r.org_id.to_string(),
        "seq": r.seq,
        "at_us": (r.at.unix_timestamp_nanos() / 1000) as i64,
        "action": r.action,
        "personal": hex::encode(personal),
    });
    let mut text = String::new();
    canonical(&content, &mut text);
    let mut h = Sha256::new();
    h.update(prev);
    h.update(text.as_bytes());
    h.finalize().to_vec()
}

/// A version-1 row's hash (the platform's chain, and organizations' rows written before
/// version 2): `SHA-256(prev_hash ‖ canonical content)`.
#[must_use]
pub fn row_hash(prev: &[u8], r: &Row<'_>) -> Vec<u8> {
    let content = serde_json::json!({
        "org_id": r.org_id.to_string(),
        "seq": r.seq,
        "at_us": (r.at.unix_timestamp_nanos() / 1000) as i64,
        "actor_id": r.actor_id.map(|u| u.to_string()),
        "action": r.action,
        "target": r.target,
        "before": r.before,
        "after": r.after,
        "ip": r.ip.map(|i| i.to_string()),
        "request_id": r.request_id,
    });
    let mut text = String::new();
    canonical(&content, &mut text);
    let mut h = Sha256::new();
    h.update(prev);
    h.update(text.as_bytes());
    h.finalize().to_vec()
}

/// Appends `entry` to the organization's chain inside the caller's transaction, so the action
/// and its record commit together or not at all.
pub async fn record(
    tx: &mut TenantTx,
    now: OffsetDateTime,
    meta: &Meta,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    let ctx = tx.context();
    lock_chain(tx, ctx.org_id).await?;
    let tail = sqlx::query!(
        r#"SELECT seq AS "seq!", hash AS "hash!" FROM app.audit_tail($1)"#,
        ctx.org_id
    )
    .fetch_optional(&mut **tx)
    .await?;
    let (seq, prev) = tail.map_or((1, vec![0u8; 32]), |t| (t.seq + 1, t.hash));
    let row = Row {
        org_id: ctx.org_id,
        seq,
        at: stored_time(now),
        actor_id: Some(ctx.user_id),
        action: entry.action,
        target: entry.target.as_deref(),
        before: entry.before.as_ref(),
        after: entry.after.as_ref(),
        ip: meta.ip,
        request_id: meta.request_id.as_deref().map(|r| &r[..r.len().min(100)]),
    };
    append(tx, &row, prev).await?;
    tracing::info!(target: "leadgen::audit", action = entry.action, org_id = %ctx.org_id, actor = %ctx.user_id, seq, "audited");
    Ok(())
}

/// Appends `entry` to an organization's chain for a job no person did (the retention job),
/// on a maintenance connection: no actor, no address. The job's name is in `after.by`.
pub async fn record_system(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    now: OffsetDateTime,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    use sqlx::Row as _;
    lock_chain(&mut *conn, org_id).await?;
    // The maintenance role reads the chain itself (`audit_tail` is the server role's way in).
    let tail = sqlx::query(
        "SELECT seq, hash FROM app.audit_log WHERE org_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(org_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, prev): (i64, Vec<u8>) = match tail {
        Some(r) => (r.try_get::<i64, _>("seq")? + 1, r.try_get("hash")?),
        None => (1, vec![0u8; 32]),
    };
    let row = Row {
        org_id,
        seq,
        at: stored_time(now),
        actor_id: None,
        action: entry.action,
        target: entry.target.as_deref(),
        before: entry.before.as_ref(),
        after: entry.after.as_ref(),
        ip: None,
        request_id: None,
    };
    append(conn, &row, prev).await
}

/// PostgreSQL keeps microseconds; hash what will be read back.
fn stored_time(now: OffsetDateTime) -> OffsetDateTime {
    now.replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now)
}

/// One writer per organization's chain at a time, until the transaction ends.
async fn lock_chain(conn: &mut sqlx::PgConnection, org_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7100))",
        org_id.to_string()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Hashes `row` onto `prev` (the chain's last hash) and appends it to its organization's chain,
/// as a version-2 row.
async fn append(
    conn: &mut sqlx::PgConnection,
    row: &Row<'_>,
    prev: Vec<u8>,
) -> Result<(), sqlx::Error> {
    use rand::RngCore as _;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let personal = personal_digest(&salt, row);
    let hash = row_hash_v2(&prev, row, &personal);
    sqlx::query!(
        "INSERT INTO app.audit_log (org_id, seq, at, actor_id, action, target, before, after, ip, request_id,
                                    prev_hash, hash, hash_version, personal_sha256, personal_salt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 2, $13, $14)",
        row.org_id,
        row.seq,
        row.at,
        row.actor_id,
        row.action,
        row.target,
        row.before,
        row.after,
        row.ip.map(sqlx::types::ipnetwork::IpNetwork::from),
        row.request_id,
        prev,
        hash,
        personal,
        &salt[..]
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The platform's chain: actions that belong to no organization (a vulnerability report
/// received, an operator's triage). The same hash as an organization's rows, with the nil id as
/// its organization and the actor named in `after.by`, since operators are not users.
pub const PLATFORM: Uuid = Uuid::nil();

/// Appends `entry`, done by `actor`, to the platform's chain inside the caller's transaction.
pub async fn record_platform(
    conn: &mut sqlx::PgConnection,
    now: OffsetDateTime,
    meta: &Meta,
    actor: &str,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    let at = stored_time(now);
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtextextended('platform', 7100))")
        .execute(&mut *conn)
        .await?;
    let tail =
        sqlx::query!(r#"SELECT seq AS "seq!", hash AS "hash!" FROM app.platform_audit_tail()"#)
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev) = tail.map_or((1, vec![0u8; 32]), |t| (t.seq + 1, t.hash));
    let mut after = match entry.after {
        Some(Value::Object(m)) => m,
        Some(other) => serde_json::Map::from_iter([("value".to_string(), other)]),
        None => serde_json::Map::new(),
    };
    after.insert(
        "by".into(),
        Value::String(actor.chars().take(100).collect()),
    );
    let after = Value::Object(after);
    let request_id = meta.request_id.as_deref().map(|r| &r[..r.len().min(100)]);
    let row = Row {
        org_id: PLATFORM,
        seq,
        at,
        actor_id: None,
        action: entry.action,
        target: entry.target.as_deref(),
        before: entry.before.as_ref(),
        after: Some(&after),
        ip: meta.ip,
        request_id,
    };
    let hash = row_hash(&prev, &row);
    sqlx::query!(
        "INSERT INTO app.platform_audit (seq, at, action, target, before, after, ip, request_id, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        seq,
        at,
        entry.action,
        row.target,
        row.before,
        after,
        meta.ip.map(sqlx::types::ipnetwork::IpNetwork::from),
        request_id,
        prev,
        hash
    )
    .execute(&mut *conn)
    .await?;
    tracing::info!(target: "leadgen::audit", action = entry.action, actor, seq, "audited (platform)");
    Ok(())
}

/// The first broken link found by [`verify`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Broken {
    pub org_id: Uuid,
    pub id: i64,
    pub seq: i64,
    pub reason: &'static str,
}

/// A stored link of a chain, as verification reads it.
struct ChainRow {
    id: i64,
    org_id: Uuid,
    seq: i64,
    at: OffsetDateTime,
    actor_id: Option<Uuid>,
    action: String,
    target: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    ip: Option<sqlx::types::ipnetwork::IpNetwork>,
    request_id: Option<String>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    hash_version: i16,
    personal_sha256: Option<Vec<u8>>,
    personal_salt: Option<Vec<u8>>,
}

/// Summary of a verification run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub organizations: usize,
    pub rows: usize,
    pub broken: Option<Broken>,
}

/// Recomputes the chains of every organization (or one) with a connection that can read them
/// all (the maintenance role).
pub async fn verify(pool: &sqlx::PgPool, org: Option<Uuid>) -> Result<Report, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE leadgen_maintenance")
        .execute(&mut *tx)
        .await?;
    let mut rows = sqlx::query_as!(
        ChainRow,
        r#"SELECT id, org_id, seq, at, actor_id, action, target, before, after, ip, request_id, prev_hash, hash,
                  hash_version, personal_sha256, personal_salt
           FROM app.audit_log WHERE ($1::uuid IS NULL OR org_id = $1) ORDER BY org_id, seq"#,
        org
    )
    .fetch_all(&mut *tx)
    .await?;
    // The platform's chain (nil id, so first), checked with the organizations' unless one
    // organization was asked for.
    if org.is_none() || org == Some(PLATFORM) {
        let platform = sqlx::query_as!(
            ChainRow,
            r#"SELECT id, '00000000-0000-0000-0000-000000000000'::uuid AS "org_id!", seq, at,
                      NULL::uuid AS actor_id, action, target, before, after, ip, request_id,
                      prev_hash, hash, 1::smallint AS "hash_version!", NULL::bytea AS personal_sha256,
                      NULL::bytea AS personal_salt
               FROM app.platform_audit ORDER BY seq"#
        )
        .fetch_all(&mut *tx)
        .await?;
        rows.splice(0..0, platform);
    }
    // Where chains whose oldest rows were removed by retention start.
    let anchors: std::collections::HashMap<Uuid, (i64, Vec<u8>)> = sqlx::query_as::<
        _,
        (Uuid, i64, Vec<u8>),
    >(
        "SELECT org_id, seq, hash FROM app.audit_anchors WHERE ($1::uuid IS NULL OR org_id = $1)",
    )
    .bind(org)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(o, seq, hash)| (o, (seq, hash)))
    .collect();
    tx.rollback().await?;
    let mut report = Report {
        organizations: 0,
        rows: rows.len(),
        broken: None,
    };
    // The rows each organization's chain declares pseudonymised (by a later row of the chain,
    // itself verified below).
    let declared: std::collections::HashSet<(Uuid, i64)> = rows
        .iter()
        .filter(|r| r.action == PSEUDONYMISED)
        .flat_map(|r| {
            r.after
                .as_ref()
                .and_then(|a| a.get("seqs"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .map(move |seq| (r.org_id, seq))
        })
        .collect();
    // The anchors each chain declares (by a row of it, verified below): (org, seq, hash).
    let declared_anchors: std::collections::HashSet<(Uuid, i64, String)> = rows
        .iter()
        .filter(|r| r.action == PURGED)
        .filter_map(|r| {
            let a = r.after.as_ref()?;
            Some((
                r.org_id,
                a.get("up_to_seq")?.as_i64()?,
                a.get("hash")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let mut current: Option<Uuid> = None;
    let mut expect_seq = 1;
    let mut prev = vec![0u8; 32];
    for r in &rows {
        if current != Some(r.org_id) {
            current = Some(r.org_id);
            if r.org_id != PLATFORM {
                report.organizations += 1;
            }
            expect_seq = 1;
            prev = vec![0u8; 32];
            if let Some((seq, hash)) = anchors.get(&r.org_id) {
                // The anchor must be one the chain itself declares.
                if !declared_anchors.contains(&(r.org_id, *seq, hex::encode(hash))) {
                    report.broken = Some(Broken {
                        org_id: r.org_id,
                        id: r.id,
                        seq: r.seq,
                        reason: "the chain starts after removed rows that no row of it declares",
                    });
                    return Ok(report);
                }
                expect_seq = seq + 1;
                prev.clone_from(hash);
            }
        }
        let row = Row {
            org_id: r.org_id,
            seq: r.seq,
            at: r.at,
            actor_id: r.actor_id,
            action: &r.action,
            target: r.target.as_deref(),
            before: r.before.as_ref(),
            after: r.after.as_ref(),
            ip: r.ip.map(|n| n.ip()),
            request_id: r.request_id.as_deref(),
        };
        let reason = if r.seq != expect_seq {
            Some("a row is missing before this one (sequence gap)")
        } else if r.prev_hash != prev {
            Some("the link to the previous row does not match")
        } else if r.hash_version == 1 {
            (row_hash(&prev, &row) != r.hash)
                .then_some("the row's content does not match its hash (altered)")
        } else {
            match (&r.personal_sha256, &r.personal_salt) {
                (None, _) => Some("a version-2 row without its personal digest"),
                (Some(d), _) if row_hash_v2(&prev, &row, d) != r.hash => {
                    Some("the row's content does not match its hash (altered)")
                }
                (Some(d), Some(salt)) if &personal_digest(salt, &row) != d => {
                    Some("the row's personal fields do not match their digest (altered)")
                }
                (Some(_), None) if !declared.contains(&(r.org_id, r.seq)) => Some(
                    "the row's personal fields were replaced without a pseudonymisation record",
                ),
                _ => None,
            }
        };
        if let Some(reason) = reason {
            report.broken = Some(Broken {
                org_id: r.org_id,
                id: r.id,
                seq: r.seq,
                reason,
            });
            return Ok(report);
        }
        prev.clone_from(&r.hash);
        expect_seq += 1;
    }
    Ok(report)
}

/// What [`upgrade`] did in one organization's chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Upgraded {
    pub org_id: Uuid,
    pub rows: usize,
    /// The chain's last hash before, for anyone who kept it elsewhere.
    pub old_head: String,
}

/// The action of the row that records a chain's move to version 2.
pub const UPGRADED: &str = "audit.upgraded";

/// Re-hashes every organization chain that still has version-1 rows as version 2, so that a
/// deleted member's personal fields can be erased from it (`leadgen audit upgrade`). Each chain
/// is verified first and left alone when broken; the move is one transaction per organization,
/// under the chain's lock, and ends with a row recording the old head hash. Needs the
/// migration connection: nothing else may rewrite hashes.
pub async fn upgrade(pool: &sqlx::PgPool) -> Result<Vec<Upgraded>, anyhow::Error> {
    let orgs: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT org_id FROM app.audit_log WHERE hash_version = 1 ORDER BY org_id",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for org in orgs {
        let report = verify(pool, Some(org)).await?;
        if let Some(b) = report.broken {
            anyhow::bail!(
                "organization {org}: the chain is broken at seq {} ({}); not upgraded",
                b.seq,
                b.reason
            );
        }
        let mut tx = pool.begin().await?;
        lock_chain(&mut tx, org).await?;
        let rows = sqlx::query_as!(
            ChainRow,
            r#"SELECT id, org_id, seq, at, actor_id, action, target, before, after, ip, request_id,
                      prev_hash, hash, hash_version, personal_sha256, personal_salt
               FROM app.audit_log WHERE org_id = $1 ORDER BY seq"#,
            org
        )
        .fetch_all(&mut *tx)
        .await?;
        let anchor: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT hash FROM app.audit_anchors WHERE org_id = $1")
                .bind(org)
                .fetch_optional(&mut *tx)
                .await?;
        let old_head = rows
            .last()
            .map(|r| hex::encode(&r.hash))
            .unwrap_or_default();
        // An anchor's hash is what the remaining rows link to; it stays as it is.
        let mut prev = anchor.unwrap_or_else(|| vec![0u8; 32]);
        for r in &rows {
            use rand::RngCore as _;
            let row = Row {
                org_id: r.org_id,
                seq: r.seq,
                at: r.at,
                actor_id: r.actor_id,
                action: &r.action,
                target: r.target.as_deref(),
                before: r.before.as_ref(),
                after: r.after.as_ref(),
                ip: r.ip.map(|n| n.ip()),
                request_id: r.request_id.as_deref(),
            };
            let (personal, salt) = match (&r.personal_sha256, &r.personal_salt, r.hash_version) {
                (Some(d), salt, 2) => (d.clone(), salt.clone()),
                _ => {
                    let mut salt = [0u8; 16];
                    rand::rng().fill_bytes(&mut salt);
                    (personal_digest(&salt, &row), Some(salt.to_vec()))
                }
            };
            let hash = row_hash_v2(&prev, &row, &personal);
            sqlx::query(
                "UPDATE app.audit_log SET hash_version = 2, personal_sha256 = $2, personal_salt = $3,
                    prev_hash = $4, hash = $5 WHERE id = $1",
            )
            .bind(r.id)
            .bind(&personal)
            .bind(&salt)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *tx)
            .await?;
            prev = hash;
        }
        record_system(
            &mut tx,
            org,
            OffsetDateTime::now_utc(),
            Entry {
                action: UPGRADED,
                target: None,
                before: None,
                after: Some(serde_json::json!({
                    "by": "leadgen audit upgrade", "rows": rows.len(), "old_head": old_head,
                })),
            },
        )
        .await?;
        tx.commit().await?;
        out.push(Upgraded {
            org_id: org,
            rows: rows.len(),
            old_head,
        });
    }
    Ok(out)
}

/// The action of the row that declares the rows before an anchor removed.
pub const PURGED: &str = "audit.purged";

/// Removes an organization's audit rows written before `before` (with `dry`, only counts
/// them), on a maintenance connection inside the caller's transaction. The chain then starts
/// from an anchor (the last removed row's sequence number and hash) that a new row of the
/// chain declares, so `verify` still checks every row that is left. How many rows go.
pub async fn purge_before(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    before: OffsetDateTime,
    now: OffsetDateTime,
    dry: bool,
) -> Result<u64, sqlx::Error> {
    use sqlx::Row as _;
    lock_chain(&mut *conn, org_id).await?;
    let last = sqlx::query(
        "SELECT seq, hash FROM app.audit_log WHERE org_id = $1 AND at < $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(before)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(last) = last else { return Ok(0) };
    let (seq, hash): (i64, Vec<u8>) = (last.try_get("seq")?, last.try_get("hash")?);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.audit_log WHERE org_id = $1 AND seq <= $2")
            .bind(org_id)
            .bind(seq)
            .fetch_one(&mut *conn)
            .await?;
    if dry {
        return Ok(u64::try_from(rows).unwrap_or(0));
    }
    // Declared first: the declaration links to the chain's tail, which may be the last row to go.
    record_system(
        &mut *conn,
        org_id,
        now,
        Entry {
            action: PURGED,
            target: None,
            before: None,
            after: Some(serde_json::json!({
                "by": "retention", "up_to_seq": seq, "hash": hex::encode(&hash), "rows": rows,
                "before": (before.unix_timestamp_nanos() / 1000) as i64,
            })),
        },
    )
    .await?;
    sqlx::query("DELETE FROM app.audit_log WHERE org_id = $1 AND seq <= $2")
        .bind(org_id)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO app.audit_anchors (org_id, seq, hash, purged_rows, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash,
             purged_rows = app.audit_anchors.purged_rows + excluded.purged_rows,
             updated_at = excluded.updated_at",
    )
    .bind(org_id)
    .bind(seq)
    .bind(&hash)
    .bind(rows)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// The action of the row that declares other rows of its chain pseudonymised.
pub const PSEUDONYMISED: &str = "account.pseudonymised";

/// A value with `person`'s email address (any case) replaced by `[erased]` and their id by the
/// pseudonym, at every level.
fn scrub(v: &Value, email: &str, person: &str, pseudonym: &str) -> Value {
    match v {
        Value::String(s) if s.eq_ignore_ascii_case(email) => Value::String("[erased]".into()),
        Value::String(s) => {
            Value::String(replace_ignore_case(s, email, "[erased]").replace(person, pseudonym))
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| scrub(x, email, person, pseudonym))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), scrub(x, email, person, pseudonym)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn replace_ignore_case(s: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return s.to_string();
    }
    let (lower, n) = (s.to_ascii_lowercase(), needle.to_ascii_lowercase());
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    while let Some(i) = lower[at..].find(&n) {
        out.push_str(&s[at..at + i]);
        out.push_str(with);
        at += i + n.len();
    }
    out.push_str(&s[at..]);
    out
}

/// What [`pseudonymise`] changed in one organization's chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pseudonymised {
    pub org_id: Uuid,
    pub rows: usize,
}

/// Replaces a deleted account's personal data in every organization's audit trail, on a
/// maintenance connection inside the caller's transaction: its id becomes `pseudonym` (actor,
/// target and values), its email address `[erased]`, and the addresses and request ids of its
/// own requests are removed. Each chain gets a row declaring which rows changed. Fails, changing
/// nothing, when a row to change is of hash version 1 (it cannot be changed without breaking its
/// chain).
pub async fn pseudonymise(
    conn: &mut sqlx::PgConnection,
    person: Uuid,
    email: &str,
    pseudonym: Uuid,
    now: OffsetDateTime,
) -> Result<Vec<Pseudonymised>, anyhow::Error> {
    struct Found {
        id: i64,
        org_id: Uuid,
        seq: i64,
        hash_version: i16,
        actor_id: Option<Uuid>,
        target: Option<String>,
        before: Option<Value>,
        after: Option<Value>,
        ip: Option<sqlx::types::ipnetwork::IpNetwork>,
        request_id: Option<String>,
    }
    let id_text = person.to_string();
    let like_email = format!(
        "%{}%",
        email
            .to_ascii_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let like_id = format!("%{id_text}%");
    let rows = sqlx::query_as!(
        Found,
        "SELECT id, org_id, seq, hash_version, actor_id, target, before, after, ip, request_id
         FROM app.audit_log
         WHERE actor_id = $1 OR target LIKE $3
            OR lower(before::text) LIKE $2 OR lower(after::text) LIKE $2
            OR before::text LIKE $3 OR after::text LIKE $3
         ORDER BY org_id, seq
         FOR UPDATE",
        person,
        like_email,
        like_id
    )
    .fetch_all(&mut *conn)
    .await?;
    if let Some(old) = rows.iter().find(|r| r.hash_version == 1) {
        anyhow::bail!(
            "audit row {} of organization {} predates erasable audit rows (hash version 1); \
             run `leadgen audit upgrade` first, which re-hashes verified chains so their \
             personal fields can be erased",
            old.seq,
            old.org_id
        );
    }
    let (pseudo_text, mut out) = (pseudonym.to_string(), Vec::<Pseudonymised>::new());
    let mut by_org: Vec<(Uuid, Vec<i64>)> = Vec::new();
    for r in &rows {
        let own = r.actor_id == Some(person);
        let s = |v: &Option<Value>| v.as_ref().map(|v| scrub(v, email, &id_text, &pseudo_text));
        sqlx::query!(
            "UPDATE app.audit_log SET actor_id = $2, target = $3, before = $4, after = $5, ip = $6,
                request_id = $7, personal_salt = NULL, pseudonymised_at = $8
             WHERE id = $1",
            r.id,
            if own { Some(pseudonym) } else { r.actor_id },
            r.target
                .as_deref()
                .map(|t| replace_ignore_case(t, email, "[erased]").replace(&id_text, &pseudo_text)),
            s(&r.before),
            s(&r.after),
            if own { None } else { r.ip },
            if own { None } else { r.request_id.clone() },
            now
        )
        .execute(&mut *conn)
        .await?;
        match by_org.last_mut() {
            Some((org, seqs)) if *org == r.org_id => seqs.push(r.seq),
            _ => by_org.push((r.org_id, vec![r.seq])),
        }
    }
    for (org, seqs) in by_org {
        record_system(
            conn,
            org,
            now,
            Entry {
                action: PSEUDONYMISED,
                target: None,
                before: None,
                after: Some(serde_json::json!({
                    "by": "account deletion", "pseudonym": pseudo_text, "seqs": seqs,
                })),
            },
        )
        .await?;
        out.push(Pseudonymised {
            org_id: org,
            rows: seqs.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod erase_tests {
    use super::*;

    #[test]
    fn scrubbing_replaces_the_address_in_any_case_and_the_id_everywhere() {
        let v = serde_json::json!({
            "email": "Ada@Example.com",
            "note": "invited ada@example.COM as user",
            "member": "member:11111111-2222-3333-4444-555555555555",
            "list": ["x", "ADA@EXAMPLE.COM"],
            "n": 3,
        });
        let out = scrub(
            &v,
            "ada@example.com",
            "11111111-2222-3333-4444-555555555555",
            "p",
        );
        assert_eq!(
            out,
            serde_json::json!({
                "email": "[erased]",
                "note": "invited [erased] as user",
                "member": "member:p",
                "list": ["x", "[erased]"],
                "n": 3,
            })
        );
    }
}
