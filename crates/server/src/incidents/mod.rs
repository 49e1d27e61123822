//! Incident response: an incident with a severity and a timeline, and the actions the Security
//! Policy's playbook names (isolate traffic at the WAF, restrict token issuance, roll
//! credentials), each recorded on the timeline and in the platform's audit chain.
//!
//! An action is a database change committed with a `NOTIFY` on [`CHANNEL`]. Every server
//! instance listens ([`watch`]) and, on the notification, reloads what it enforces (blocked
//! networks, frozen authentication, JWT keys) into memory, so an action takes effect everywhere
//! within a second while requests never query incident state. Each instance also reloads every
//! [`RELOAD_SECS`], so a notification lost with a dropped connection delays an action by at most
//! that long.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::types::ipnetwork::IpNetwork;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Entry, Meta};
use crate::auth::AuthState;
use crate::perimeter::alerts::Event;

/// The notification channel of incident actions.
pub const CHANNEL: &str = "leadgen_incidents";
/// How often each instance re-reads incident state without a notification.
pub const RELOAD_SECS: u64 = 2;
/// A high-severity incident not acknowledged is announced again this long after the last time.
pub const REALERT_SECS: i32 = 15 * 60;

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("incident {0} does not exist")]
    Unknown(i64),
    #[error("incident {0} is resolved; open a new one")]
    Resolved(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Whose sessions an incident revokes.
#[derive(Debug, Clone)]
pub enum Scope {
    User(String),
    Org(Uuid),
    Everyone,
}

/// Parses an address or network to block (see [`crate::perimeter::controls::parse_network`]).
///
/// # Errors
/// What is wrong with it.
pub fn parse_network(text: &str) -> Result<IpNetwork, IncidentError> {
    crate::perimeter::controls::parse_network(text).map_err(IncidentError::Invalid)
}

/// Opens an incident and returns its id. Its alert goes out from a server instance within a
/// second or two.
///
/// # Errors
/// The database's.
pub async fn open(
    pool: &PgPool,
    severity: Severity,
    summary: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<i64, IncidentError> {
    let summary = summary.trim();
    if summary.is_empty() || summary.chars().count() > 2000 {
        return Err(IncidentError::Invalid(
            "the summary must be 1 to 2000 characters".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar!(
        "INSERT INTO app.incidents (severity, summary, opened_by, opened_at)
         VALUES ($1, $2, $3, $4) RETURNING id",
        severity.as_str(),
        summary,
        actor,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    record(
        &mut tx,
        id,
        actor,
        now,
        "open",
        json!({ "severity": severity.as_str(), "summary": summary }),
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Appends an action to the incident's timeline and to the platform audit chain, and tells
/// every instance, all in the caller's transaction (so it is announced only if it commits).
async fn record(
    tx: &mut sqlx::PgConnection,
    id: i64,
    actor: &str,
    now: OffsetDateTime,
    action: &str,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO app.incident_events (incident_id, at, actor, action, detail)
         VALUES ($1, $2, $3, $4, $5)",
        id,
        now,
        actor,
        action,
        detail
    )
    .execute(&mut *tx)
    .await?;
    let mut after = detail;
    after["incident"] = json!(id);
    audit::record_platform(
        tx,
        now,
        &Meta {
            ip: None,
            request_id: None,
        },
        actor,
        Entry {
            action: &format!("incident.{action}"),
            target: Some(format!("incident:{id}")),
            before: None,
            after: Some(after),
        },
    )
    .await?;
    sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Starts an action's transaction on an incident that exists and is open.
async fn begin_on(
    pool: &PgPool,
    id: i64,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, IncidentError> {
    let mut tx = pool.begin().await?;
    let resolved = sqlx::query_scalar!(
        "SELECT resolved_at FROM app.incidents WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(IncidentError::Unknown(id))?;
    if resolved.is_some() {
        return Err(IncidentError::Resolved(id));
    }
    Ok(tx)
}

/// Refuses requests from `network` at the edge of every instance until `until`.
///
/// # Errors
/// Unknown or resolved incident, a time in the past, or the database's.
pub async fn block(
    pool: &PgPool,
    id: i64,
    network: IpNetwork,
    until: OffsetDateTime,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), IncidentError> {
    if until <= now {
        return Err(IncidentError::Invalid("a block must last a while".into()));
    }
    let mut tx = begin_on(pool, id).await?;
    sqlx::query!(
        "INSERT INTO app.incident_blocks (incident_id, network, created_at, until)
         VALUES ($1, $2, $3, $4)",
        id,
        network,
        now,
        until
    )
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        id,
        actor,
        now,
        "block",
        json!({ "network": network.to_string(), "until": until.unix_timestamp() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Lifts every active block of exactly `network` (from any incident). Returns how many.
///
/// # Errors
/// Unknown incident, nothing to lift, or the database's.
pub async fn unblock(
    pool: &PgPool,
    id: i64,
    network: IpNetwork,
    actor: &str,
    now: OffsetDateTime,
) -> Result<u64, IncidentError> {
    let mut tx = begin_on(pool, id).await?;
    let lifted = sqlx::query!(
        "UPDATE app.incident_blocks SET lifted_at = $2
         WHERE network = $1 AND lifted_at IS NULL AND until > $2",
        network,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if lifted == 0 {
        return Err(IncidentError::Invalid(format!("{network} is not blocked")));
    }
    record(
        &mut tx,
        id,
        actor,
        now,
        "unblock",
        json!({ "network": network.to_string(), "blocks": lifted }),
    )
    .await?;
    tx.commit().await?;
    Ok(lifted)
}

/// Ends sessions (their refresh tokens and the access tokens they issued stop at once).
/// Returns how many.
///
/// # Errors
/// Unknown incident, user or organization, or the database's.
pub async fn revoke_sessions(
    pool: &PgPool,
    id: i64,
    scope: &Scope,
    actor: &str,
    now: OffsetDateTime,
) -> Result<u64, IncidentError> {
    let mut tx = begin_on(pool, id).await?;
    let (revoked, detail) = match scope {
        Scope::User(email) => {
            let email = email.trim().to_lowercase();
            let user = sqlx::query_scalar!("SELECT id FROM app.users WHERE email = $1", email)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    IncidentError::Invalid(format!("no user has the address {email}"))
                })?;
            let n = sqlx::query!(
                "UPDATE app.sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                user,
                now
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            (n, json!({ "user": user }))
        }
        Scope::Org(org) => {
            org_exists(&mut tx, *org).await?;
            let n = sqlx::query!(
                "UPDATE app.sessions SET revoked_at = $2
                 WHERE revoked_at IS NULL
                   AND user_id IN (SELECT m.user_id FROM app.memberships m WHERE m.org_id = $1)",
                org,
                now
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            (n, json!({ "org": org }))
        }
        Scope::Everyone => {
            let n = sqlx::query!(
                "UPDATE app.sessions SET revoked_at = $1 WHERE revoked_at IS NULL",
                now
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            (n, json!({ "everyone": true }))
        }
    };
    let mut detail = detail;
    detail["sessions"] = json!(revoked);
    record(&mut tx, id, actor, now, "revoke-sessions", detail).await?;
    tx.commit().await?;
    Ok(revoked)
}

async fn org_exists(tx: &mut sqlx::PgConnection, org: Uuid) -> Result<(), IncidentError> {
    let exists = sqlx::query_scalar!(
        "SELECT EXISTS (SELECT 1 FROM app.organizations WHERE id = $1) AS \"e!\"",
        org
    )
    .fetch_one(&mut *tx)
    .await?;
    if exists {
        Ok(())
    } else {
        Err(IncidentError::Invalid(format!(
            "no organization has the id {org}"
        )))
    }
}

/// Freezes (or thaws) authentication everywhere: no sign-in, no token refresh, no access
/// token accepted, until thawed.
///
/// # Errors
/// Unknown or resolved incident, or the database's.
pub async fn set_frozen(
    pool: &PgPool,
    id: i64,
    frozen: bool,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), IncidentError> {
    let mut tx = begin_on(pool, id).await?;
    sqlx::query!(
        "UPDATE app.incident_controls SET auth_frozen = $1, frozen_by = $2, changed_at = $3",
        frozen,
        frozen.then_some(id),
        now
    )
    .execute(&mut *tx)
    .await?;
    let action = if frozen { "freeze-auth" } else { "thaw-auth" };
    record(&mut tx, id, actor, now, action, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes every API key of an organization; its admins create new ones. Returns how many.
///
/// # Errors
/// Unknown incident or organization, or the database's.
pub async fn revoke_org_api_keys(
    pool: &PgPool,
    id: i64,
    org: Uuid,
    actor: &str,
    now: OffsetDateTime,
) -> Result<u64, IncidentError> {
    let mut tx = begin_on(pool, id).await?;
    org_exists(&mut tx, org).await?;
    let n = sqlx::query!(
        "UPDATE app.api_keys SET revoked_at = $2 WHERE org_id = $1 AND revoked_at IS NULL",
        org,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    record(
        &mut tx,
        id,
        actor,
        now,
        "rotate",
        json!({ "what": "org-api-keys", "org": org, "revoked": n }),
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// Records a rotation done elsewhere (JWT or data keys) on the timeline, and announces it.
///
/// # Errors
/// Unknown or resolved incident, or the database's.
pub async fn record_rotation(
    pool: &PgPool,
    id: i64,
    detail: Value,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), IncidentError> {
    let mut tx = begin_on(pool, id).await?;
    record(&mut tx, id, actor, now, "rotate", detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Checks that an incident can take an action, before doing work outside the database.
///
/// # Errors
/// Unknown or resolved incident.
pub async fn ensure_open(pool: &PgPool, id: i64) -> Result<(), IncidentError> {
    begin_on(pool, id).await?.rollback().await?;
    Ok(())
}

/// Acknowledges the incident: a high-severity one stops re-alerting.
///
/// # Errors
/// Unknown or resolved incident, or the database's.
pub async fn acknowledge(
    pool: &PgPool,
    id: i64,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), IncidentError> {
    let mut tx = begin_on(pool, id).await?;
    sqlx::query!(
        "UPDATE app.incidents SET acknowledged_at = coalesce(acknowledged_at, $2),
             acknowledged_by = coalesce(acknowledged_by, $3)
         WHERE id = $1",
        id,
        now,
        actor
    )
    .execute(&mut *tx)
    .await?;
    record(&mut tx, id, actor, now, "acknowledge", json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Resolves the incident with its summary. Blocks it set stay until they end (lift them with
/// `unblock` first if they should not); frozen authentication it set is thawed.
///
/// # Errors
/// Unknown or resolved incident, an empty summary, or the database's.
pub async fn resolve(
    pool: &PgPool,
    id: i64,
    summary: &str,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(), IncidentError> {
    let summary = summary.trim();
    if summary.is_empty() || summary.chars().count() > 4000 {
        return Err(IncidentError::Invalid(
            "a resolution needs a summary of 1 to 4000 characters".into(),
        ));
    }
    let mut tx = begin_on(pool, id).await?;
    sqlx::query!(
        "UPDATE app.incidents SET resolved_at = $2, resolution = $3 WHERE id = $1",
        id,
        now,
        summary
    )
    .execute(&mut *tx)
    .await?;
    let thawed = sqlx::query!(
        "UPDATE app.incident_controls SET auth_frozen = false, frozen_by = NULL, changed_at = $2
         WHERE frozen_by = $1",
        id,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    record(
        &mut tx,
        id,
        actor,
        now,
        "resolve",
        json!({ "summary": summary, "thawed_auth": thawed > 0 }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// An incident with its timeline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Incident {
    pub id: i64,
    pub severity: String,
    pub summary: String,
    pub opened_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub resolved_at: Option<OffsetDateTime>,
    pub resolution: Option<String>,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TimelineEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub detail: Value,
}

/// Incidents, newest first, each with its timeline (open ones only unless `all`).
///
/// # Errors
/// The database's.
pub async fn list(pool: &PgPool, all: bool) -> Result<Vec<Incident>, IncidentError> {
    let rows = sqlx::query!(
        "SELECT id, severity, summary, opened_by, opened_at, acknowledged_at, resolved_at,
                resolution
         FROM app.incidents WHERE $1 OR resolved_at IS NULL ORDER BY id DESC LIMIT 200",
        all
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let timeline = sqlx::query_as!(
            TimelineEntry,
            "SELECT at, actor, action, detail FROM app.incident_events
             WHERE incident_id = $1 ORDER BY at, id",
            r.id
        )
        .fetch_all(pool)
        .await?;
        out.push(Incident {
            id: r.id,
            severity: r.severity,
            summary: r.summary,
            opened_by: r.opened_by,
            opened_at: r.opened_at,
            acknowledged_at: r.acknowledged_at,
            resolved_at: r.resolved_at,
            resolution: r.resolution,
            timeline,
        });
    }
    Ok(out)
}

/// Loads what incidents enforce into this instance's perimeter.
async fn load(state: &AuthState) -> Result<(), sqlx::Error> {
    let now = state.core.clock.now();
    let rows = sqlx::query!(
        r#"SELECT network, until, auth_frozen AS "auth_frozen!" FROM app.incident_state($1)"#,
        now
    )
    .fetch_all(&state.core.pool)
    .await?;
    let frozen = rows.first().is_some_and(|r| r.auth_frozen);
    let blocks = rows
        .into_iter()
        .filter_map(|r| Some((r.network?, r.until?)))
        .collect();
    state.perimeter.controls.set(blocks, frozen);
    Ok(())
}

/// Sends the incident alerts that are due, routed by severity. One instance claims each.
async fn alert(state: &AuthState) -> Result<(), sqlx::Error> {
    let now = state.core.clock.now();
    let due = sqlx::query!(
        r#"SELECT id AS "id!", severity AS "severity!", summary AS "summary!",
                  opened_by AS "opened_by!", alerts_sent AS "alerts_sent!"
           FROM app.incident_alerts_due($1, $2)"#,
        now,
        REALERT_SECS
    )
    .fetch_all(&state.core.pool)
    .await?;
    for i in due {
        let again = if i.alerts_sent > 1 {
            format!(
                " (reminder {}: not acknowledged; `leadgen incident ack {}`)",
                i.alerts_sent - 1,
                i.id
            )
        } else {
            String::new()
        };
        crate::perimeter::announce_severity(
            &state.perimeter,
            "incident",
            Event::Incident,
            &i.severity,
            format!(
                "{} severity incident {} opened by {}: {}{again}",
                i.severity, i.id, i.opened_by, i.summary
            ),
        );
    }
    Ok(())
}

/// Keeps this instance's incident state current: on each notification and every
/// [`RELOAD_SECS`], reloads blocks and the freeze, reloads the JWT keys after a rotation, and
/// sends due alerts.
pub async fn watch(state: AuthState) {
    let mut tick = tokio::time::interval(Duration::from_secs(RELOAD_SECS));
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&state.core.pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "listening for incident actions");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "connecting to listen for incident actions");
                None
            }
        };
        loop {
            let notified = match listener.as_mut() {
                Some(l) => tokio::select! {
                    n = l.recv() => match n {
                        Ok(_) => true,
                        // The connection dropped: reconnect after this round.
                        Err(_) => { listener = None; true }
                    },
                    _ = tick.tick() => false,
                },
                None => {
                    tick.tick().await;
                    false
                }
            };
            if let Err(e) = load(&state).await {
                tracing::debug!(error = %e, "loading incident state");
            }
            if notified {
                // A rotation revokes keys; a reload is cheap, so every action triggers one.
                let now = state.core.clock.now();
                if let Err(e) = state.auth.reload(&state.core.pool, now).await {
                    tracing::warn!(error = %format!("{e:#}"), "reloading JWT keys after an incident action");
                }
            }
            if let Err(e) = alert(&state).await {
                tracing::debug!(error = %e, "sending incident alerts");
            }
            if listener.is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_parsed_strictly() {
        assert_eq!(
            parse_network("203.0.113.7").unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert!(parse_network("203.0.113.0/24").is_ok());
        assert!(parse_network("2001:db8::/32").is_ok());
        let e = parse_network("203.0.113.7/24").unwrap_err().to_string();
        assert!(e.contains("did you mean 203.0.113.0/24"), "{e}");
        assert!(parse_network("203.0.113.300").is_err());
        assert!(parse_network("0.0.0.0/0").is_err());
        assert!(parse_network("example.com").is_err());
    }
}
