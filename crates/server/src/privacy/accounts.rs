//! Carrying out account deletions: `leadgen accounts purge` deletes the accounts whose grace
//! period has passed (nightly, with the retention timer), `leadgen accounts delete EMAIL --now`
//! lets an operator skip the wait.
//!
//! One account is one transaction on the maintenance connection, so a run killed at any point
//! leaves each account either whole (and deleted by the next run) or gone. Deleting an account:
//! - deletes the organizations the person is alone in, with everything in them;
//! - pseudonymises the person in every organization's audit trail ([`audit::pseudonymise`]):
//!   the chains still verify;
//! - deletes their private lists and segments and unassigns their leads;
//! - replaces their id by the same pseudonym wherever another row names them (note authors,
//!   list entries, campaign creators…), found by type: every `uuid` and `uuid[]` column of the
//!   schema except those the account's own rows hang on by foreign key;
//! - deletes invitations to their address, then the account itself, and with it (by foreign
//!   key) credentials, sessions, refresh tokens, second factors, recovery codes, single sign-on
//!   identities and memberships;
//! - mails the person that it is done.

use serde::Serialize;
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::maintenance;
use crate::audit;
use crate::leads::keys::{KeyStore, shred_deleted_organizations};
use crate::mail::{Mail, Mailer};

/// One account's deletion, as the report shows it (no personal data: the pseudonym only).
#[derive(Debug, Clone, Serialize)]
pub struct Deleted {
    pub pseudonym: Uuid,
    pub organizations_deleted: usize,
    pub audit_rows_pseudonymised: usize,
    pub references_replaced: u64,
}

/// An account that could not be deleted, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Blocked {
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub deleted: Vec<Deleted>,
    pub blocked: Vec<Blocked>,
    /// Organizations whose deletion an admin asked for, deleted after the grace period.
    pub organizations_deleted: Vec<Uuid>,
    /// Data keys of deleted organizations removed from the key store: every copy of their
    /// encrypted fields, backups included, is unreadable from now on.
    pub keys_destroyed: Vec<u32>,
}

/// Deletes every account whose deletion was due at `now`.
pub async fn purge(
    pool: &sqlx::PgPool,
    mailer: &Mailer,
    store: &KeyStore,
    now: OffsetDateTime,
) -> anyhow::Result<Report> {
    let due: Vec<(Uuid, String)> = {
        let mut tx = maintenance(pool).await?;
        let rows = sqlx::query_as(
            "SELECT id, email FROM app.users WHERE deletion_due_at <= $1 ORDER BY deletion_due_at, id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows
    };
    let mut report = Report::default();
    for (id, email) in due {
        run_one(pool, mailer, id, &email, now, &mut report).await?;
    }
    report.organizations_deleted = purge_organizations(pool, now).await?;
    // Organizations went with their accounts or after their grace period: their keys go now.
    report.keys_destroyed = shred_deleted_organizations(pool, store).await?;
    Ok(report)
}

/// Deletes the organizations whose deletion was due at `now`, each in its own transaction, with
/// every row that hangs on them (leads, imports, campaigns, forms, its audit chain…); the
/// retention run removes their files. Their members' accounts stay.
async fn purge_organizations(
    pool: &sqlx::PgPool,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<Uuid>> {
    let due: Vec<Uuid> = {
        let mut tx = maintenance(pool).await?;
        let ids = sqlx::query_scalar(
            "SELECT id FROM app.organizations WHERE deletion_due_at <= $1 ORDER BY deletion_due_at, id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        ids
    };
    let mut deleted = Vec::new();
    for org in due {
        let mut tx = maintenance(pool).await?;
        // Still due: an admin may have cancelled since.
        let n =
            sqlx::query("DELETE FROM app.organizations WHERE id = $1 AND deletion_due_at <= $2")
                .bind(org)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        if n == 1 {
            tracing::info!(target: "leadgen::audit", action = "organization_deleted", org_id = %org, "organization deleted");
            metrics::counter!("organizations_deleted_total").increment(1);
            deleted.push(org);
        }
    }
    Ok(deleted)
}

/// Deletes the account of `email` now, whatever its grace period (an operator's decision).
pub async fn delete_now(
    pool: &sqlx::PgPool,
    mailer: &Mailer,
    store: &KeyStore,
    email: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Report> {
    let found: Option<(Uuid, String)> = {
        let mut tx = maintenance(pool).await?;
        let row = sqlx::query_as("SELECT id, email FROM app.users WHERE lower(email) = lower($1)")
            .bind(email.trim())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row
    };
    let Some((id, email)) = found else {
        anyhow::bail!("no account has this email address");
    };
    let mut report = Report::default();
    run_one(pool, mailer, id, &email, now, &mut report).await?;
    report.keys_destroyed = shred_deleted_organizations(pool, store).await?;
    Ok(report)
}

async fn run_one(
    pool: &sqlx::PgPool,
    mailer: &Mailer,
    id: Uuid,
    email: &str,
    now: OffsetDateTime,
    report: &mut Report,
) -> anyhow::Result<()> {
    let pseudonym = Uuid::new_v4();
    let mut tx = maintenance(pool).await?;
    match delete_account(&mut tx, id, email, pseudonym, now).await? {
        Ok(done) => {
            tx.commit().await?;
            mailer
                .send(
                    &Mail {
                        to: email.to_string(),
                        subject: "Your LeadGen account is deleted".into(),
                        text: "Your LeadGen account is deleted, as you asked: your sign-in, \
                               sessions and second factors are gone, the organizations only you \
                               belonged to are deleted, and your name and address are removed \
                               from the audit trails of the others, which keep a pseudonym.\n"
                            .into(),
                    },
                    now,
                )
                .await?;
            metrics::counter!("accounts_deleted_total").increment(1);
            report.deleted.push(done);
        }
        Err(reason) => {
            tx.rollback().await?;
            report.blocked.push(Blocked { reason });
        }
    }
    Ok(())
}

/// The deletion itself, inside `tx`. The inner `Err` is a reason to leave the account for now
/// (the person became the last admin of an organization with members since asking).
async fn delete_account(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    id: Uuid,
    email: &str,
    pseudonym: Uuid,
    now: OffsetDateTime,
) -> anyhow::Result<Result<Deleted, String>> {
    // The account is locked for the run: a sign-in that would cancel waits, or wins.
    let still: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM app.users WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    if still.is_none() {
        return Ok(Err("the account no longer exists".into()));
    }
    let orgs: Vec<(Uuid, String, bool, i64, i64)> = sqlx::query_as(
        "SELECT o.id, o.name, m.role = 'admin',
                (SELECT count(*) FROM app.memberships x WHERE x.org_id = o.id),
                (SELECT count(*) FROM app.memberships x
                 WHERE x.org_id = o.id AND x.role = 'admin' AND x.user_id <> m.user_id)
         FROM app.memberships m JOIN app.organizations o ON o.id = m.org_id
         WHERE m.user_id = $1 ORDER BY o.id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    if let Some((org, ..)) = orgs
        .iter()
        .find(|(_, _, admin, members, admins)| *admin && *admins == 0 && *members > 1)
    {
        return Ok(Err(format!(
            "the account is the last admin of organization {org}, which has other members"
        )));
    }
    let alone: Vec<Uuid> = orgs
        .iter()
        .filter(|(_, _, _, members, _)| *members == 1)
        .map(|(o, ..)| *o)
        .collect();
    sqlx::query("DELETE FROM app.organizations WHERE id = ANY($1)")
        .bind(&alone)
        .execute(&mut **tx)
        .await?;
    let trail = audit::pseudonymise(tx, id, email, pseudonym, now).await?;

    // What was theirs alone, and their leads back to nobody.
    sqlx::query("DELETE FROM app.lead_lists WHERE owner_id = $1 AND NOT shared")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM app.segments WHERE owner_id = $1 AND NOT shared")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE app.leads SET owner_id = NULL WHERE owner_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM app.invitations WHERE lower(email) = lower($1)")
        .bind(email)
        .execute(&mut **tx)
        .await?;

    // Every other mention of the id, found by type. Columns whose rows hang on the account by
    // foreign key go with it (cascade) or are cleared (set null) by the database.
    let columns = sqlx::query(
        "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type = 'ARRAY' AS arr
         FROM information_schema.columns c
         JOIN information_schema.tables tb
           ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name AND tb.table_type = 'BASE TABLE'
         WHERE c.table_schema = 'app' AND c.udt_name IN ('uuid', '_uuid')
           AND NOT (c.table_name = 'users' AND c.column_name = 'id')
           AND c.table_name <> 'audit_log'
           AND has_column_privilege(format('app.%I', c.table_name), c.column_name, 'UPDATE')
           AND NOT EXISTS (
               SELECT 1 FROM pg_constraint k
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
               WHERE k.contype = 'f' AND k.confrelid = 'app.users'::regclass
                 AND k.conrelid = ('app.' || quote_ident(c.table_name))::regclass
                 AND a.attname = c.column_name)
         ORDER BY 1, 2",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut replaced = 0u64;
    for col in &columns {
        let (table, column, array): (String, String, bool) =
            (col.try_get("t")?, col.try_get("c")?, col.try_get("arr")?);
        // Names from the catalogue, quoted; the values are bound.
        let sql = if array {
            format!(
                "UPDATE app.\"{table}\" SET \"{column}\" = array_replace(\"{column}\", $1, $2) \
                 WHERE $1 = ANY (\"{column}\")"
            )
        } else {
            format!("UPDATE app.\"{table}\" SET \"{column}\" = $2 WHERE \"{column}\" = $1")
        };
        replaced += sqlx::query(&sql)
            .bind(id)
            .bind(pseudonym)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    sqlx::query("DELETE FROM app.users WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    tracing::info!(target: "leadgen::audit", action = "account_deleted", pseudonym = %pseudonym, organizations_deleted = alone.len(), "account deleted");
    Ok(Ok(Deleted {
        pseudonym,
        organizations_deleted: alone.len(),
        audit_rows_pseudonymised: trail.iter().map(|t| t.rows).sum(),
        references_replaced: replaced,
    }))
}
