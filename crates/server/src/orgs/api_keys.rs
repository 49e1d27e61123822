//! API keys: created by admins (at `aal2`), shown once, stored as SHA-256, limited to scopes
//! within the API role's permissions, expiring after 90 days by default, rotated with an overlap,
//! revocable, with expiry notices to the organization's admins at 14, 7 and 1 days.
//!
//! A presented key is first checked for format and checksum ([`leadgen_crypto::apikey`]), so a
//! mistyped or invented key costs no database query. Revoked and expired keys get distinct 401
//! codes (`api_key_revoked`, `api_key_expired`); anything else is `api_key_invalid`. The API
//! role's rate-limit multiplier is applied by the perimeter (`rate-limits.json`).

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use leadgen_crypto::apikey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use super::permissions::{ApiKeyPrincipal, Member, Permission, Require, perm};
use crate::audit::{self, Entry, Meta};
use crate::auth::AuthState;
use crate::db::{Aal, Role, TenantTx};
use crate::http::error::{ApiJson, AppError};
use crate::http::openapi::{Missing, Refusals};
use crate::http::ts;
use crate::state::Core;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AuthState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
        .routes(routes!(rotate))
        .routes(routes!(notifications))
}

fn invalid(message: &str) -> AppError {
    AppError::Unauthenticated {
        code: "api_key_invalid",
        message: message.into(),
    }
}

/// Turns a presented key into the organization's API principal, or a 401 with a code.
pub async fn authenticate(state: &Core, key: &str, ip: Option<IpAddr>) -> Result<Member, AppError> {
    if let Err(e) = apikey::check(key) {
        metrics::counter!("api_key_rejected_total", "reason" => "format").increment(1);
        return Err(invalid(&e.to_string()));
    }
    metrics::counter!("api_key_lookups_total").increment(1);
    let found = sqlx::query!(
        r#"SELECT id AS "id!", org_id AS "org_id!", scopes AS "scopes!", expires_at AS "expires_at!", revoked_at
           FROM app.api_key_find($1)"#,
        apikey::hash(key)
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(|| invalid("unknown API key"))?;
    let now = state.clock.now();
    if found.revoked_at.is_some() {
        metrics::counter!("api_key_rejected_total", "reason" => "revoked").increment(1);
        return Err(AppError::Unauthenticated {
            code: "api_key_revoked",
            message: "this API key has been revoked".into(),
        });
    }
    if found.expires_at <= now {
        metrics::counter!("api_key_rejected_total", "reason" => "expired").increment(1);
        return Err(AppError::Unauthenticated {
            code: "api_key_expired",
            message: "this API key has expired; rotate it or create a new one".into(),
        });
    }
    sqlx::query!(
        "SELECT app.api_key_touch($1, $2, $3)",
        found.id,
        now,
        ip.map(sqlx::types::ipnetwork::IpNetwork::from)
    )
    .execute(&state.pool)
    .await?;
    Ok(Member {
        principal_id: found.id,
        org_id: found.org_id,
        role: Role::Api,
        aal: Aal::Aal1,
        api_key: Some(ApiKeyPrincipal {
            scopes: found
                .scopes
                .iter()
                .filter_map(|s| Permission::from_scope(s))
                .collect(),
        }),
    })
}

/// The scopes an API key may have: the API role's permissions.
fn api_scopes() -> Vec<Permission> {
    Permission::ALL
        .into_iter()
        .filter(|p| p.allows(Role::Api))
        .collect()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    /// Default: every permission of the API role.
    pub scopes: Option<Vec<String>>,
    pub expires_in_days: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api keys", request_body = NewKey,
    responses((status = 201, description = "The key, whose secret is shown this once; it expires after 90 days unless rotated", body = IssuedKey), Refusals))]
pub(crate) async fn create(
    State(state): State<AuthState>,
    admin: Require<perm::ApiKeyGeneration>,
    meta: Meta,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<Response, AppError> {
    let issued = issue(&state, &admin, &meta, &body).await?;
    Ok((StatusCode::CREATED, axum::Json(issued)).into_response())
}

/// A key's secret, in the one answer that carries it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedKey {
    pub id: Uuid,
    pub name: String,
    /// The secret: shown this once, stored only as a hash.
    pub key: String,
    pub scopes: Vec<&'static str>,
    pub expires_at: String,
    /// The key this one replaces (a rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
    /// When the replaced key stops working (a rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_key_expires_at: Option<String>,
    pub notice: &'static str,
}

const SHOWN_ONCE: &str = "This is the only time the key is shown. Store it in your secret manager.";

/// Creates a key (admins at aal2); audited. The answer is the only place its secret appears.
pub async fn issue(
    state: &Core,
    Require(member, _): &Require<perm::ApiKeyGeneration>,
    meta: &Meta,
    body: &NewKey,
) -> Result<IssuedKey, AppError> {
    let name = body.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "name: 1 to 100 characters, no control characters".into(),
        ));
    }
    let allowed = api_scopes();
    let scopes: Vec<Permission> = match &body.scopes {
        None => allowed.clone(),
        Some(list) => {
            let mut out = Vec::new();
            for s in list {
                let p = Permission::from_scope(s)
                    .filter(|p| allowed.contains(p))
                    .ok_or_else(|| {
                        AppError::BadRequest(format!(
                            "scopes: {s:?} is not one of the API role's permissions ({})",
                            allowed
                                .iter()
                                .map(|p| p.scope())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            if out.is_empty() {
                return Err(AppError::BadRequest("scopes: at least one".into()));
            }
            out
        }
    };
    let cfg = &state.config.api_keys;
    let days = body.expires_in_days.unwrap_or(cfg.default_ttl_days);
    if days < 1 || days > cfg.max_ttl_days {
        return Err(AppError::BadRequest(format!(
            "expires_in_days: between 1 and {}",
            cfg.max_ttl_days
        )));
    }
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let (id, key, expires_at) = insert_key(
        &mut tx,
        member,
        &name,
        &scopes,
        now,
        now + time::Duration::days(days),
    )
    .await?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "api_key.create",
            target: Some(format!("api_key:{id}")),
            before: None,
            after: Some(json!({ "name": name, "scopes": scope_names(&scopes), "expires_at": ts(expires_at) })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedKey {
        id,
        name,
        key,
        scopes: scope_names(&scopes),
        expires_at: ts(expires_at),
        replaces: None,
        old_key_expires_at: None,
        notice: SHOWN_ONCE,
    })
}

fn scope_names(scopes: &[Permission]) -> Vec<&'static str> {
    scopes.iter().map(|p| p.scope()).collect()
}

pub(crate) async fn insert_key(
    tx: &mut TenantTx,
    member: &Member,
    name: &str,
    scopes: &[Permission],
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<(Uuid, String, OffsetDateTime), AppError> {
    let id = Uuid::now_v7();
    let key = apikey::generate();
    let scope_list: Vec<String> = scope_names(scopes).into_iter().map(String::from).collect();
    sqlx::query!(
        "INSERT INTO app.api_keys (id, org_id, name, key_hash, display, scopes, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        member.org_id,
        name,
        apikey::hash(&key),
        apikey::display_prefix(&key),
        &scope_list,
        member.principal_id,
        now,
        expires_at
    )
    .execute(&mut **tx)
    .await?;
    Ok((id, key, expires_at))
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api keys",
    responses((status = 200, description = "The organization's keys (never their secrets)", body = Vec<KeyRow>), Refusals))]
pub(crate) async fn list(
    State(state): State<AuthState>,
    admin: Require<perm::ApiKeyGeneration>,
) -> Result<axum::Json<Vec<KeyRow>>, AppError> {
    Ok(axum::Json(all(&state, &admin).await?))
}

/// An API key as its organization's admins see it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyRow {
    pub id: Uuid,
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_by: Option<Uuid>,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub created_at: time::OffsetDateTime,
    #[serde(serialize_with = "time::serde::rfc3339::serialize")]
    pub expires_at: time::OffsetDateTime,
    #[serde(serialize_with = "time::serde::rfc3339::option::serialize")]
    pub revoked_at: Option<time::OffsetDateTime>,
    #[serde(serialize_with = "time::serde::rfc3339::option::serialize")]
    pub last_used_at: Option<time::OffsetDateTime>,
    pub last_used_ip: Option<String>,
    pub replaced_by: Option<Uuid>,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
}

/// The organization's keys, oldest first (admins).
pub async fn all(
    state: &Core,
    Require(member, _): &Require<perm::ApiKeyGeneration>,
) -> Result<Vec<KeyRow>, AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT id, name, display, scopes, created_by, created_at, expires_at, revoked_at,
                last_used_at, host(last_used_ip) AS last_used_ip, replaced_by
         FROM app.api_keys WHERE org_id = $1 ORDER BY created_at, id",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let status = if r.revoked_at.is_some() {
                "revoked"
            } else if r.expires_at <= now {
                "expired"
            } else {
                "active"
            };
            KeyRow {
                id: r.id,
                name: r.name,
                prefix: r.display,
                scopes: r.scopes,
                created_by: r.created_by,
                created_at: r.created_at,
                expires_at: r.expires_at,
                revoked_at: r.revoked_at,
                last_used_at: r.last_used_at,
                last_used_ip: r.last_used_ip,
                replaced_by: r.replaced_by,
                status,
            }
        })
        .collect())
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api keys", params(("id" = Uuid, Path, description = "The API key")),
    responses((status = 204, description = "Revoked at once; audited"), Missing, Refusals))]
pub(crate) async fn revoke(
    State(state): State<AuthState>,
    admin: Require<perm::ApiKeyGeneration>,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, AppError> {
    withdraw(&state, &admin, &meta, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes key `id` at once (admins at aal2); audited.
pub async fn withdraw(
    state: &Core,
    Require(member, _): &Require<perm::ApiKeyGeneration>,
    meta: &Meta,
    id: Uuid,
) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let name = sqlx::query_scalar!(
        "UPDATE app.api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING name",
        id,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "api_key.revoke",
            target: Some(format!("api_key:{id}")),
            before: Some(json!({ "name": name, "status": "active" })),
            after: Some(json!({ "status": "revoked" })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Issues a successor with the same name and scopes; the old key keeps working for the overlap
/// window (default 7 days), then stops everywhere.
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/rotate", tag = "api keys", params(("id" = Uuid, Path, description = "The API key")),
    responses((status = 201, description = "A new secret for the key; the old one keeps working for the overlap window", body = IssuedKey), Missing, Refusals))]
pub(crate) async fn rotate(
    State(state): State<AuthState>,
    admin: Require<perm::ApiKeyGeneration>,
    meta: Meta,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let issued = succeed(&state, &admin, &meta, id).await?;
    Ok((StatusCode::CREATED, axum::Json(issued)).into_response())
}

/// Issues a successor to key `id` (admins at aal2); the old key works for the overlap window.
pub async fn succeed(
    state: &Core,
    Require(member, _): &Require<perm::ApiKeyGeneration>,
    meta: &Meta,
    id: Uuid,
) -> Result<IssuedKey, AppError> {
    let now = state.clock.now();
    let cfg = &state.config.api_keys;
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let old = sqlx::query!(
        "SELECT name, scopes, expires_at, revoked_at, replaced_by FROM app.api_keys WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if old.revoked_at.is_some() || old.replaced_by.is_some() || old.expires_at <= now {
        return Err(AppError::Conflict(
            "only an active key that has not been rotated yet can be rotated".into(),
        ));
    }
    let scopes: Vec<Permission> = old
        .scopes
        .iter()
        .filter_map(|s| Permission::from_scope(s))
        .collect();
    let (new_id, key, expires_at) = insert_key(
        &mut tx,
        member,
        &old.name,
        &scopes,
        now,
        now + time::Duration::days(cfg.default_ttl_days),
    )
    .await?;
    let old_until = old
        .expires_at
        .min(now + time::Duration::days(cfg.rotation_overlap_days));
    sqlx::query!(
        "UPDATE app.api_keys SET replaced_by = $2, expires_at = $3 WHERE id = $1",
        id,
        new_id,
        old_until
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        now,
        meta,
        Entry {
            action: "api_key.rotate",
            target: Some(format!("api_key:{id}")),
            before: Some(json!({ "expires_at": ts(old.expires_at) })),
            after: Some(json!({ "expires_at": ts(old_until), "replaced_by": new_id })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedKey {
        id: new_id,
        name: old.name,
        key,
        scopes: scope_names(&scopes),
        expires_at: ts(expires_at),
        replaces: Some(id),
        old_key_expires_at: Some(ts(old_until)),
        notice: SHOWN_ONCE,
    })
}

/// In-app notifications for the member (admins also see admin notices).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "api keys",
    responses((status = 200, description = "The caller's notifications (key expiry notices)", body = Vec<Object>), Refusals))]
pub(crate) async fn notifications(
    State(state): State<AuthState>,
    member: Member,
) -> Result<axum::Json<Value>, AppError> {
    let mut tx = TenantTx::begin(&state.pool, member.context()).await?;
    let rows = sqlx::query!(
        "SELECT id, kind, message, created_at FROM app.notifications
         WHERE org_id = $1 ORDER BY created_at DESC, id LIMIT 100",
        member.org_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(axum::Json(Value::Array(
        rows.into_iter()
            .map(|r| json!({ "id": r.id, "kind": r.kind, "message": r.message, "created_at": ts(r.created_at) }))
            .collect(),
    )))
}

/// Sends the expiry notices that are due: a mail to each admin and an in-app notice, once per
/// key and threshold. Returns how many keys were notified.
pub async fn send_expiry_notices(state: &Core) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let due = sqlx::query!(
        r#"SELECT id AS "id!", org_id AS "org_id!", name AS "name!", display AS "display!",
                  expires_at AS "expires_at!", days AS "days!"
           FROM app.api_keys_due_notice($1)"#,
        now
    )
    .fetch_all(&state.pool)
    .await?;
    for k in &due {
        let when = if k.days == 1 {
            "within a day".to_string()
        } else {
            format!("in {} days or less", k.days)
        };
        let message = format!(
            "API key \"{}\" ({}…) expires {when}, on {}. Rotate it (API keys page, or POST /api/v1/api-keys/{}/rotate) \
             and give its successor to the integration that uses it. Reference: {}.",
            k.name,
            k.display,
            ts(k.expires_at),
            k.id,
            k.id
        );
        super::tell_admins(
            state,
            k.org_id,
            "api_key_expiry",
            &format!("LeadGen API key \"{}\" expires {when}", k.name),
            &message,
            now,
        )
        .await?;
        sqlx::query!("SELECT app.api_key_notified($1, $2)", k.id, k.days)
            .execute(&state.pool)
            .await?;
        tracing::info!(target: "leadgen::audit", action = "api_key_expiry_notice", key_id = %k.id, org_id = %k.org_id, days = k.days, "API key expiry notice sent");
    }
    Ok(due.len())
}
