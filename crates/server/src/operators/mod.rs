//! The operator console (`/operator`): the people who run the installation, a principal apart
//! from organization members.
//!
//! - Accounts come only from `leadgen operator add` ([`add`]): a strong password (bcrypt) and a
//!   TOTP factor from the start, optionally an IP allow-list. There is no sign-up.
//! - Sign-in checks password, code and address on the server; nothing about the password reaches
//!   the page but the form field. The session is an opaque token in its own `__Host-` cookie
//!   (SameSite=Strict), short (`operators.session_idle_secs` idle, `session_max_secs` in all),
//!   unaffected by the members' JWT keys and by `incident freeze-auth`.
//! - Every action needs a fresh TOTP code (each code works once), and goes through a definer
//!   function that checks the operator session in the database itself.

use std::net::IpAddr;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use sqlx::types::ipnetwork::IpNetwork;
use uuid::Uuid;

use crate::audit::{self, Entry, Meta};
use crate::auth::AuthState;
use crate::auth::service::Origin;
use crate::http::credentials::cookie_value;
use crate::web::{Assets, CsrfForm, csrf, render};

pub const COOKIE: &str = "__Host-lg_operator";
/// What a failed sign-in says, whatever failed: no hint about which part was wrong.
const SIGN_IN_FAILED: &str = "Invalid email, password or code, or not allowed from this address";

fn totp_aad(id: Uuid) -> Vec<u8> {
    format!("app.operators.totp_sealed:{id}").into_bytes()
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new operator account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Added {
    pub id: Uuid,
    /// For the authenticator app, shown once.
    pub otpauth_uri: String,
    pub secret_base32: String,
}

/// Creates an operator (`leadgen operator add`): the password must meet the policy and be at
/// least 14 characters; the TOTP secret is sealed under the server's sealing key.
///
/// # Errors
/// A weak password, a malformed address or network, an existing operator, or the database's.
pub async fn add(
    pool: &PgPool,
    seal_key: &[u8],
    email: &str,
    password: &str,
    allow_ips: &[String],
    bcrypt_cost: u32,
    now: time::OffsetDateTime,
) -> anyhow::Result<Added> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() < 3 || email.len() > 320 {
        anyhow::bail!("`{email}` is not an email address");
    }
    if password.chars().count() < 14 {
        anyhow::bail!("an operator password needs at least 14 characters");
    }
    leadgen_crypto::password::check_policy(password, &[&email])
        .map_err(|e| anyhow::anyhow!("weak password: {e}"))?;
    let nets = allow_ips
        .iter()
        .map(|n| {
            crate::perimeter::controls::parse_network(n)
                .map_err(|e| anyhow::anyhow!("--allow-ip: {e}"))
        })
        .collect::<anyhow::Result<Vec<IpNetwork>>>()?;
    let id = Uuid::now_v7();
    let secret = leadgen_crypto::totp::new_secret();
    let sealed = leadgen_crypto::seal::seal(seal_key, &secret, &totp_aad(id))?;
    let hash = {
        let password = password.to_string();
        tokio::task::spawn_blocking(move || leadgen_crypto::password::hash(&password, bcrypt_cost))
            .await??
    };
    let inserted = sqlx::query!(
        "INSERT INTO app.operators (id, email, password_hash, totp_sealed, allow_ips, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
        id,
        email,
        hash,
        sealed,
        &nets,
        now
    )
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 0 {
        anyhow::bail!("an operator with the address {email} exists already");
    }
    let mut tx = pool.begin().await?;
    audit::record_platform(
        &mut tx,
        now,
        &Meta {
            ip: None,
            request_id: None,
        },
        "leadgen operator add",
        Entry {
            action: "operator.add",
            target: Some(format!("operator:{email}")),
            before: None,
            after: Some(serde_json::json!({ "allow_ips": allow_ips })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Added {
        id,
        otpauth_uri: leadgen_crypto::totp::otpauth_uri(&secret, "LeadGen operators", &email),
        secret_base32: leadgen_crypto::totp::secret_base32(&secret),
    })
}

fn allowed(nets: &[IpNetwork], ip: Option<IpAddr>) -> bool {
    nets.is_empty() || ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
}

/// Checks `code` against the sealed secret and spends its step: each code works once.
async fn spend_code(
    state: &AuthState,
    operator: Uuid,
    sealed: &[u8],
    code: &str,
) -> Result<bool, sqlx::Error> {
    let Ok(secret) = leadgen_crypto::seal::open(state.auth.seal_key(), sealed, &totp_aad(operator))
    else {
        tracing::error!(%operator, "an operator's TOTP secret does not open");
        return Ok(false);
    };
    let now = state.core.clock.now().unix_timestamp();
    let Some(step) = leadgen_crypto::totp::matching_step(&secret, code.trim(), now) else {
        return Ok(false);
    };
    sqlx::query_scalar!(r#"SELECT app.op_use_step($1, $2) AS "ok!""#, operator, step)
        .fetch_one(&state.core.pool)
        .await
}

/// A signed-in operator: a live console session from an allowed address.
pub struct Operator {
    pub id: Uuid,
    pub email: String,
    totp_sealed: Vec<u8>,
    token_hash: Vec<u8>,
}

impl FromRequestParts<AuthState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AuthState,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/operator/login").into_response();
        let Some(token) = cookie_value(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        let hash = token_hash(token);
        let idle = i32::try_from(state.config.operators.session_idle_secs).unwrap_or(900);
        let row = sqlx::query!(
            r#"SELECT operator_id AS "id!", email AS "email!", totp_sealed AS "totp_sealed!",
                      allow_ips AS "allow_ips!" FROM app.op_session($1, $2, $3)"#,
            hash,
            state.core.clock.now(),
            idle
        )
        .fetch_optional(&state.core.pool)
        .await
        .map_err(|e| crate::http::AppError::from(e).into_response())?;
        let Some(row) = row else {
            return Err(to_login());
        };
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if !allowed(&row.allow_ips, ip) {
            tracing::warn!(target: "leadgen::audit", operator = %row.email, "operator session used from an address outside its allow-list");
            return Err(to_login());
        }
        Ok(Self {
            id: row.id,
            email: row.email,
            totp_sealed: row.totp_sealed,
            token_hash: hash,
        })
    }
}

pub fn routes() -> Router<AuthState> {
    Router::new()
        .route("/operator", get(console))
        .route("/operator/login", get(login_page).post(login))
        .route("/operator/logout", post(logout))
        .route("/operator/block", post(block))
        .route("/operator/unblock", post(unblock))
}

#[derive(Template)]
#[template(path = "operator_login.html")]
struct LoginPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    email: String,
    error: Option<&'static str>,
}

async fn login_page(State(state): State<AuthState>, headers: HeaderMap) -> Response {
    let token = csrf(&state.core, &headers);
    let page = LoginPage {
        assets: crate::web::assets::get(),
        version: state.core.version,
        csrf: token.token.clone(),
        email: String::new(),
        error: None,
    };
    no_store(render(&page, StatusCode::OK, &token))
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    code: String,
}

async fn login(
    State(state): State<AuthState>,
    headers: HeaderMap,
    origin: Origin,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    match sign_in(&state, &form, &origin).await {
        Ok(Some(cookie)) => {
            let mut res = Redirect::to("/operator").into_response();
            res.headers_mut().append(header::SET_COOKIE, cookie);
            no_store(res)
        }
        Ok(None) => {
            if let Some(ip) = origin.ip {
                crate::perimeter::penalize_ip(
                    &state.perimeter,
                    ip,
                    crate::perimeter::reputation::Offence::AuthFailure,
                );
            }
            tracing::warn!(target: "leadgen::audit", action = "operator_sign_in_failed", "operator sign-in failed");
            let token = csrf(&state.core, &headers);
            let page = LoginPage {
                assets: crate::web::assets::get(),
                version: state.core.version,
                csrf: token.token.clone(),
                email: form.email,
                error: Some(SIGN_IN_FAILED),
            };
            no_store(render(&page, StatusCode::UNAUTHORIZED, &token))
        }
        Err(e) => crate::http::AppError::from(e).into_response(),
    }
}

/// Password, address and code, in that order, all on the server; the session cookie when all
/// pass.
async fn sign_in(
    state: &AuthState,
    form: &LoginForm,
    origin: &Origin,
) -> Result<Option<HeaderValue>, sqlx::Error> {
    let found = sqlx::query!(
        r#"SELECT id AS "id!", password_hash AS "password_hash!", totp_sealed AS "totp_sealed!",
                  allow_ips AS "allow_ips!" FROM app.op_login_lookup($1)"#,
        form.email.trim()
    )
    .fetch_optional(&state.core.pool)
    .await?;
    let cost = state.config.auth.bcrypt_cost;
    let hash = found.as_ref().map_or_else(
        || leadgen_crypto::password::decoy_hash(cost),
        |f| f.password_hash.clone(),
    );
    let password = form.password.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || leadgen_crypto::password::verify(&password, &hash))
            .await
            .unwrap_or(false);
    let Some(found) = found.filter(|_| password_ok) else {
        return Ok(None);
    };
    if !allowed(&found.allow_ips, origin.ip) {
        return Ok(None);
    }
    if !spend_code(state, found.id, &found.totp_sealed, &form.code).await? {
        return Ok(None);
    }
    let now = state.core.clock.now();
    let token = crate::auth::tokens::random_token();
    let max = i64::from(state.config.operators.session_max_secs);
    let mut tx = state.core.pool.begin().await?;
    sqlx::query!(
        "SELECT app.op_session_start($1, $2, $3, $4, $5, $6)",
        found.id,
        Uuid::now_v7(),
        token_hash(&token),
        now,
        now + time::Duration::seconds(max),
        origin.ip.map(IpNetwork::from)
    )
    .execute(&mut *tx)
    .await?;
    audit::record_platform(
        &mut tx,
        now,
        &Meta {
            ip: origin.ip,
            request_id: None,
        },
        &format!("operator:{}", form.email.trim().to_lowercase()),
        Entry {
            action: "operator.sign_in",
            target: None,
            before: None,
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max}"
    ))
    .ok())
}

async fn logout(
    State(state): State<AuthState>,
    operator: Operator,
    CsrfForm(_): CsrfForm<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    let _ = sqlx::query!(
        "SELECT app.op_session_end($1, $2)",
        operator.token_hash,
        state.core.clock.now()
    )
    .execute(&state.core.pool)
    .await;
    let mut res = Redirect::to("/operator/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

struct IncidentView {
    id: i64,
    severity: String,
    summary: String,
    opened: String,
    timeline: Vec<String>,
}

struct BlockView {
    network: String,
    until: String,
    incident: i64,
}

struct RunView {
    what: String,
    when: String,
    ok: bool,
    detail: String,
}

#[derive(Template)]
#[template(path = "operator.html")]
struct ConsolePage<'a> {
    assets: &'a Assets,
    version: &'static str,
    csrf: String,
    email: String,
    msg: Option<String>,
    error: Option<String>,
    database_up: bool,
    redis: String,
    auth_frozen: bool,
    incidents: Vec<IncidentView>,
    blocks: Vec<BlockView>,
    backups: Vec<RunView>,
    proofs: Vec<RunView>,
    vdp_untriaged: i64,
    waitlist: i64,
}

fn text(v: &serde_json::Value, key: &str) -> String {
    match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn console(
    State(state): State<AuthState>,
    headers: HeaderMap,
    operator: Operator,
    Query(notice): Query<Notice>,
) -> Response {
    let overview: serde_json::Value = match sqlx::query_scalar!(
        r#"SELECT app.op_overview($1, $2) AS "o!""#,
        operator.token_hash,
        state.core.clock.now()
    )
    .fetch_one(&state.core.pool)
    .await
    {
        Ok(v) => v,
        Err(e) => return crate::http::AppError::from(e).into_response(),
    };
    let list = |k: &str| overview[k].as_array().cloned().unwrap_or_default();
    let incidents = list("incidents")
        .iter()
        .map(|i| IncidentView {
            id: i["id"].as_i64().unwrap_or_default(),
            severity: text(i, "severity"),
            summary: text(i, "summary"),
            opened: format!("{} by {}", text(i, "opened_at"), text(i, "opened_by")),
            timeline: i["timeline"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    format!(
                        "{} {} {} {}",
                        text(e, "at"),
                        text(e, "actor"),
                        text(e, "action"),
                        e["detail"]
                    )
                })
                .collect(),
        })
        .collect();
    let blocks = list("blocks")
        .iter()
        .map(|b| BlockView {
            network: text(b, "network"),
            until: text(b, "until"),
            incident: b["incident"].as_i64().unwrap_or_default(),
        })
        .collect();
    let backups = list("backups")
        .iter()
        .map(|r| RunView {
            what: format!("{} {}", text(r, "kind"), text(r, "label")),
            when: text(r, "started_at"),
            ok: r["ok"].as_bool().unwrap_or(false),
            detail: text(r, "error"),
        })
        .collect();
    let proofs = list("proofs")
        .iter()
        .map(|r| RunView {
            what: text(r, "label"),
            when: text(r, "finished_at"),
            ok: r["ok"].as_bool().unwrap_or(false),
            detail: text(r, "problem"),
        })
        .collect();
    let redis =
        if secrecy::ExposeSecret::expose_secret(&state.config.perimeter.redis_url).is_empty() {
            "not configured (limits are per instance)".to_string()
        } else if state
            .perimeter
            .limits
            .shared()
            .is_some_and(|s| !s.breaker().is_open())
        {
            "answering".to_string()
        } else {
            "unavailable: the circuit breaker is open".to_string()
        };
    let token = csrf(&state.core, &headers);
    let page = ConsolePage {
        assets: crate::web::assets::get(),
        version: state.core.version,
        csrf: token.token.clone(),
        email: operator.email,
        msg: notice.msg,
        error: notice.error,
        database_up: state.core.database.is_up(),
        redis,
        auth_frozen: overview["auth_frozen"].as_bool().unwrap_or(false),
        incidents,
        blocks,
        backups,
        proofs,
        vdp_untriaged: overview["vdp_untriaged"].as_i64().unwrap_or_default(),
        waitlist: overview["waitlist"].as_i64().unwrap_or_default(),
    };
    no_store(render(&page, StatusCode::OK, &token))
}

/// An action's fresh code, spent; the page to go back to when it is wrong or used.
async fn require_code(state: &AuthState, operator: &Operator, code: &str) -> Result<(), Response> {
    match spend_code(state, operator.id, &operator.totp_sealed, code).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(back(
            "error",
            "that code is wrong or used already; wait for the next one",
        )),
        Err(e) => Err(crate::http::AppError::from(e).into_response()),
    }
}

fn back(key: &str, text: &str) -> Response {
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, text)
        .finish();
    Redirect::to(&format!("/operator?{q}")).into_response()
}

#[derive(Deserialize)]
struct BlockForm {
    ip: String,
    /// A number, but a string here: the CSRF envelope flattens the form, and a flattened
    /// urlencoded form has no numbers.
    minutes: String,
    /// An open incident's number, or empty for a new low-severity one.
    #[serde(default)]
    incident: String,
    code: String,
}

async fn block(
    State(state): State<AuthState>,
    operator: Operator,
    origin: Origin,
    CsrfForm(form): CsrfForm<BlockForm>,
) -> Response {
    let network = match crate::perimeter::controls::parse_network(&form.ip) {
        Ok(n) => n,
        Err(e) => return back("error", &e),
    };
    let minutes = match form.minutes.trim().parse::<i64>() {
        Ok(m) if (1..=525_600).contains(&m) => m,
        _ => return back("error", "a block lasts from 1 minute to 365 days"),
    };
    let incident = match form.incident.trim() {
        "" => None,
        n => match n.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return back("error", "the incident must be a number"),
        },
    };
    if let Err(refused) = require_code(&state, &operator, &form.code).await {
        return refused;
    }
    let now = state.core.clock.now();
    let until = now + time::Duration::minutes(minutes);
    let done = async {
        let mut tx = state.core.pool.begin().await?;
        let id: i64 = sqlx::query_scalar!(
            r#"SELECT app.op_block($1, $2, $3, $4::inet::cidr, $5) AS "id!""#,
            operator.token_hash,
            now,
            incident,
            network,
            until
        )
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, &operator, &origin, id, "block", &network).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(id)
    }
    .await;
    match done {
        Ok(id) => back(
            "msg",
            &format!("{network} blocked on every instance until {until} (incident {id})"),
        ),
        Err(e) => back("error", &format!("not blocked: {}", db_message(&e))),
    }
}

#[derive(Deserialize)]
struct UnblockForm {
    network: String,
    code: String,
}

async fn unblock(
    State(state): State<AuthState>,
    operator: Operator,
    origin: Origin,
    CsrfForm(form): CsrfForm<UnblockForm>,
) -> Response {
    let network = match crate::perimeter::controls::parse_network(&form.network) {
        Ok(n) => n,
        Err(e) => return back("error", &e),
    };
    if let Err(refused) = require_code(&state, &operator, &form.code).await {
        return refused;
    }
    let now = state.core.clock.now();
    let done = async {
        let mut tx = state.core.pool.begin().await?;
        let n: i32 = sqlx::query_scalar!(
            r#"SELECT app.op_unblock($1, $2, $3::inet::cidr) AS "n!""#,
            operator.token_hash,
            now,
            network
        )
        .fetch_one(&mut *tx)
        .await?;
        if n > 0 {
            record(&mut tx, &operator, &origin, 0, "unblock", &network).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    }
    .await;
    match done {
        Ok(0) => back("error", &format!("{network} is not blocked")),
        Ok(_) => back("msg", &format!("{network} unblocked")),
        Err(e) => back("error", &format!("not unblocked: {}", db_message(&e))),
    }
}

/// The platform audit entry of a console action.
async fn record(
    tx: &mut sqlx::PgConnection,
    operator: &Operator,
    origin: &Origin,
    incident: i64,
    action: &str,
    network: &IpNetwork,
) -> Result<(), sqlx::Error> {
    audit::record_platform(
        tx,
        time::OffsetDateTime::now_utc(),
        &Meta {
            ip: origin.ip,
            request_id: None,
        },
        &format!("operator:{}", operator.email),
        Entry {
            action: &format!("incident.{action}"),
            target: (incident > 0).then(|| format!("incident:{incident}")),
            before: None,
            after: Some(serde_json::json!({ "network": network.to_string(), "via": "console" })),
        },
    )
    .await
}

fn db_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("22023") => d.message().to_string(),
        other => {
            tracing::error!(error = %other, "an operator console action failed");
            format!("the database refused it ({other})")
        }
    }
}
