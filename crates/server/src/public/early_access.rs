//! The early-access list: a form on the landing page, confirmed by a mailed link (double
//! opt-in), with an unsubscribe link in every mail it sends; and the operator's commands that
//! list, export and invite (`leadgen waitlist …`).
//!
//! The answer to a post is the same page whatever happened: a new address, one already listed,
//! one already confirmed, or a post a bot trap caught. The mail goes out after the answer, so
//! the time to answer does not tell a new address from a listed one either. Trapped posts are
//! counted per reason (`app.early_access_spam`, and the `early_access_spam_total` metric) and
//! stored nowhere else. The `early-access` rule of `rate-limits.json` allows three posts an hour
//! per address.
//!
//! Links are signed with the application key, not stored: the confirmation link carries the
//! row's id and its expiry, the unsubscribe link the id alone (it never expires).

use std::collections::HashMap;
use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PublicState;
use super::site::{EarlyAccessForm, html, landing_page};
use crate::auth::EmailAddress;
use crate::http::AppError;
use crate::leads::export::cell;
use crate::mail::{Mail, Mailer};
use crate::web::assets::{self, Assets};
use crate::web::trap;

/// The form's purpose in its stamp (`web::trap`).
pub const PURPOSE: &str = "early-access";
const CONFIRM: &[u8] = b"leadgen early-access confirm v1\0";
const UNSUBSCRIBE: &[u8] = b"leadgen early-access unsubscribe v1\0";
const MAX_NAME: usize = 200;

fn tag(app_key: &SecretString, purpose: &[u8], body: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(app_key.expose_secret().as_bytes()) {
        m.update(purpose);
        m.update(body);
        out.copy_from_slice(&m.finalize().into_bytes()[..16]);
    }
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The token of a confirmation link: the id, the expiry (unix seconds), and a MAC over both.
#[must_use]
pub fn confirm_token(app_key: &SecretString, id: Uuid, expires: OffsetDateTime) -> String {
    let mut body = id.as_bytes().to_vec();
    body.extend_from_slice(&expires.unix_timestamp().to_be_bytes());
    format!(
        "{}.{}",
        b64().encode(&body),
        b64().encode(tag(app_key, CONFIRM, &body))
    )
}

/// The row a confirmation token names, when its MAC holds and it has not expired.
fn confirm_id(app_key: &SecretString, token: &str, now: OffsetDateTime) -> Option<Uuid> {
    let (body, given) = token.split_once('.')?;
    let body = b64().decode(body).ok()?;
    let given = b64().decode(given).ok()?;
    let genuine: bool =
        subtle::ConstantTimeEq::ct_eq(given.as_slice(), &tag(app_key, CONFIRM, &body)[..]).into();
    if !genuine || body.len() != 24 {
        return None;
    }
    let id = Uuid::from_slice(&body[..16]).ok()?;
    let expires = i64::from_be_bytes(body[16..].try_into().ok()?);
    (now.unix_timestamp() < expires).then_some(id)
}

/// The token of the unsubscribe link of every mail to row `id`.
#[must_use]
pub fn unsubscribe_token(app_key: &SecretString, id: Uuid) -> String {
    format!(
        "{}.{}",
        b64().encode(id.as_bytes()),
        b64().encode(tag(app_key, UNSUBSCRIBE, id.as_bytes()))
    )
}

fn unsubscribe_id(app_key: &SecretString, token: &str) -> Option<Uuid> {
    let (id, given) = token.split_once('.')?;
    let id = Uuid::from_slice(&b64().decode(id).ok()?).ok()?;
    let given = b64().decode(given).ok()?;
    let genuine: bool = subtle::ConstantTimeEq::ct_eq(
        given.as_slice(),
        &tag(app_key, UNSUBSCRIBE, id.as_bytes())[..],
    )
    .into();
    genuine.then_some(id)
}

fn footer(site: &str, app_key: &SecretString, id: Uuid) -> String {
    format!(
        "\n--\nYou get this mail because this address was entered in the early-access form at \
         {site}/.\nTo leave the list and get no more mail from it: {site}/early-access/unsubscribe/{}\n",
        unsubscribe_token(app_key, id)
    )
}

fn confirmation_mail(state: &PublicState, id: Uuid, to: &str, now: OffsetDateTime) -> Mail {
    let site = state.config.site_url();
    let expires = now + time::Duration::hours(state.config.public.early_access_confirm_ttl_hours);
    let token = confirm_token(&state.app_key, id, expires);
    Mail {
        to: to.to_string(),
        subject: "Confirm your place on the LeadGen early-access list".into(),
        text: format!(
            "Someone, probably you, asked to join the LeadGen early-access list with this \
             address.\n\nTo confirm, open this link and press the button:\n{site}/early-access/confirm/{token}\n\n\
             The link works for {} hours. If you did not ask, ignore this mail: without a \
             confirmation you will get nothing more from us.\n{}",
            state.config.public.early_access_confirm_ttl_hours,
            footer(&site, &state.app_key, id)
        ),
    }
}

#[derive(Template)]
#[template(path = "early_access.html")]
struct Notice<'a> {
    assets: &'a Assets,
    version: &'static str,
    /// `thanks`, `confirm`, `confirmed`, `unsubscribe`, `unsubscribed` or `invalid`.
    step: &'a str,
    token: &'a str,
}

fn notice(state: &PublicState, step: &str, token: &str, status: StatusCode) -> Response {
    let page = Notice {
        assets: assets::get(),
        version: state.version,
        step,
        token,
    };
    html(&page, status)
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map_or("", |v| v.trim())
}

/// `POST /early-access`: the form's post. Every outcome but a person's typing mistake answers
/// the same "check your inbox" page.
pub async fn submit(
    State(state): State<PublicState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    if !state.config.public.early_access {
        return Err(AppError::NotFound);
    }
    let rules = trap::Rules {
        min_fill: time::Duration::seconds(state.config.public.early_access_min_fill_secs),
        ..trap::Rules::default()
    };
    let verdict = trap::check(
        &state.app_key,
        PURPOSE,
        form.get(trap::STAMP_FIELD).map(String::as_str),
        form.get(trap::HONEYPOT_FIELD).map(String::as_str),
        now,
        rules,
    );
    if let Some(reason) = verdict.spam_reason() {
        metrics::counter!("early_access_spam_total", "reason" => reason).increment(1);
        sqlx::query!("SELECT app.early_access_spam_add($1, $2)", reason, now)
            .execute(&state.pool)
            .await?;
        return Ok(notice(&state, "thanks", "", StatusCode::OK));
    }
    let (name, company) = (field(&form, "name"), field(&form, "company"));
    let Ok(email) = EmailAddress::parse(field(&form, "email")) else {
        let problem = "Enter an email address like name@example.com.";
        return Ok(again(&state, &form, problem.into(), now));
    };
    if name.chars().count() > MAX_NAME || company.chars().count() > MAX_NAME {
        let problem = format!("Name and company can have at most {MAX_NAME} characters.");
        return Ok(again(&state, &form, problem, now));
    }
    let user_agent: Option<String> = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    // A card number typed into the name or company is masked before it is stored.
    let masked = |s: &str| {
        let mut s = s.to_string();
        let n = crate::pci::mask_in_place(&mut s);
        crate::pci::record_masked("early_access", n);
        s
    };
    let (name, company) = (masked(name), masked(company));
    let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let row = sqlx::query!(
        r#"SELECT id AS "id!", mail AS "mail!" FROM app.early_access_submit($1, $2, $3, $4, $5, $6, $7, $8)"#,
        Uuid::now_v7(),
        email.as_str(),
        none_if_empty(&name),
        none_if_empty(&company),
        sqlx::types::ipnetwork::IpNetwork::from(peer.ip()),
        user_agent,
        now,
        i32::try_from(state.config.public.early_access_resend_after_secs).unwrap_or(i32::MAX)
    )
    .fetch_one(&state.pool)
    .await?;
    if row.mail == "confirm" {
        let mail = confirmation_mail(&state, row.id, email.as_str(), now);
        let mailer = state.mailer.clone();
        // After the answer: its timing must not tell a new address from a listed one. A mail
        // that fails is sent again when the person posts again after the resend wait.
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&mail, now).await {
                tracing::warn!(error = %e, "early-access confirmation mail failed");
            }
        });
    }
    Ok(notice(&state, "thanks", "", StatusCode::OK))
}

/// The landing page again with what the person typed and what to correct (a fresh stamp: the
/// time already spent counts as filling).
fn again(
    state: &PublicState,
    form: &HashMap<String, String>,
    error: String,
    now: OffsetDateTime,
) -> Response {
    let form = EarlyAccessForm {
        stamp: trap::stamp(
            &state.app_key,
            PURPOSE,
            now - time::Duration::seconds(state.config.public.early_access_min_fill_secs),
        ),
        email: field(form, "email").to_string(),
        name: field(form, "name").to_string(),
        company: field(form, "company").to_string(),
        error: Some(error),
    };
    html(&landing_page(state, Some(form)), StatusCode::BAD_REQUEST)
}

/// The mailed link: a page with one button, since mail scanners open links (a GET changes
/// nothing).
pub async fn confirm_page(State(state): State<PublicState>, Path(token): Path<String>) -> Response {
    if confirm_id(&state.app_key, &token, state.clock.now()).is_none() {
        return notice(&state, "invalid", "", StatusCode::NOT_FOUND);
    }
    notice(&state, "confirm", &token, StatusCode::OK)
}

pub async fn confirm(
    State(state): State<PublicState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let now = state.clock.now();
    let Some(id) = confirm_id(&state.app_key, &token, now) else {
        return Ok(notice(&state, "invalid", "", StatusCode::NOT_FOUND));
    };
    let status = sqlx::query_scalar!("SELECT app.early_access_confirm($1, $2)", id, now)
        .fetch_one(&state.pool)
        .await?;
    Ok(match status.as_deref() {
        Some("confirmed") => notice(&state, "confirmed", "", StatusCode::OK),
        // Unsubscribed stays unsubscribed: an old confirmation link does not undo it.
        Some(_) => notice(&state, "unsubscribed", "", StatusCode::OK),
        None => notice(&state, "invalid", "", StatusCode::NOT_FOUND),
    })
}

pub async fn unsubscribe_page(
    State(state): State<PublicState>,
    Path(token): Path<String>,
) -> Response {
    if unsubscribe_id(&state.app_key, &token).is_none() {
        return notice(&state, "invalid", "", StatusCode::NOT_FOUND);
    }
    notice(&state, "unsubscribe", &token, StatusCode::OK)
}

/// The page's button, or a mail client's one-click post: off the list at once.
pub async fn unsubscribe(
    State(state): State<PublicState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let Some(id) = unsubscribe_id(&state.app_key, &token) else {
        return Ok(notice(&state, "invalid", "", StatusCode::NOT_FOUND));
    };
    let found = sqlx::query_scalar!(
        r#"SELECT app.early_access_unsubscribe($1, $2) AS "found!""#,
        id,
        state.clock.now()
    )
    .fetch_one(&state.pool)
    .await?;
    if !found {
        return Ok(notice(&state, "invalid", "", StatusCode::NOT_FOUND));
    }
    Ok(notice(&state, "unsubscribed", "", StatusCode::OK))
}

/// One address of the list, as the operator's commands show it.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub confirmed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub invited_at: Option<OffsetDateTime>,
}

/// The whole list, oldest first, and the trapped posts per reason.
pub async fn list(pool: &PgPool) -> Result<(Vec<Entry>, Vec<(String, i64)>), sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id!", email AS "email!", name, company, status AS "status!",
                  created_at AS "created_at!", confirmed_at, invited_at
           FROM app.early_access_list()"#
    )
    .fetch_all(pool)
    .await?;
    let entries = rows
        .into_iter()
        .map(|r| Entry {
            id: r.id,
            email: r.email,
            name: r.name,
            company: r.company,
            status: r.status,
            created_at: r.created_at,
            confirmed_at: r.confirmed_at,
            invited_at: r.invited_at,
        })
        .collect();
    let spam = sqlx::query!(
        r#"SELECT reason AS "reason!", posts AS "posts!" FROM app.early_access_spam_counts()"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.reason, r.posts))
    .collect();
    Ok((entries, spam))
}

/// The list as CSV, every cell a person typed neutralised against formula injection.
pub fn to_csv(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let rfc = |t: &Option<OffsetDateTime>| {
        t.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "email",
        "name",
        "company",
        "status",
        "created_at",
        "confirmed_at",
        "invited_at",
    ])?;
    for e in entries {
        w.write_record([
            cell(&e.email),
            cell(e.name.as_deref().unwrap_or("")),
            cell(e.company.as_deref().unwrap_or("")),
            e.status.clone(),
            rfc(&Some(e.created_at)),
            rfc(&e.confirmed_at),
            rfc(&e.invited_at),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// Invites confirmed addresses that were not invited yet (all of them, or those in `only`):
/// mails each a sign-up link and marks it invited. Returns the addresses invited.
pub async fn invite(
    pool: &PgPool,
    mailer: &Mailer,
    app_key: &SecretString,
    site: &str,
    only: &[String],
    limit: Option<usize>,
    now: OffsetDateTime,
) -> anyhow::Result<Vec<String>> {
    let (entries, _) = list(pool).await?;
    let wanted: Vec<String> = only.iter().map(|e| e.trim().to_lowercase()).collect();
    let mut invited = Vec::new();
    for e in entries.iter().filter(|e| {
        e.status == "confirmed"
            && e.invited_at.is_none()
            && (wanted.is_empty() || wanted.contains(&e.email))
    }) {
        if limit.is_some_and(|n| invited.len() >= n) {
            break;
        }
        let mail = Mail {
            to: e.email.clone(),
            subject: "Your LeadGen account is ready to be created".into(),
            text: format!(
                "Hello{},\n\nYou asked for early access to LeadGen, and your place has come up. \
                 Create your account here:\n{site}/signup\n\nUse this address ({}) to sign up.\n{}",
                e.name
                    .as_deref()
                    .map(|n| format!(" {n}"))
                    .unwrap_or_default(),
                e.email,
                footer(site, app_key, e.id)
            ),
        };
        mailer.send(&mail, now).await?;
        let marked = sqlx::query_scalar!(
            r#"SELECT app.early_access_invite($1, $2) AS "marked!""#,
            e.id,
            now
        )
        .fetch_one(pool)
        .await?;
        if marked {
            invited.push(e.email.clone());
        }
    }
    Ok(invited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_their_row_until_they_expire() {
        let key = SecretString::from("k".repeat(40));
        let id = Uuid::now_v7();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let t = confirm_token(&key, id, now + time::Duration::hours(48));
        assert_eq!(confirm_id(&key, &t, now), Some(id));
        assert_eq!(confirm_id(&key, &t, now + time::Duration::hours(49)), None);
        assert_eq!(
            confirm_id(&SecretString::from("j".repeat(40)), &t, now),
            None
        );
        // The unsubscribe token is not a confirmation token, nor the other way round.
        let u = unsubscribe_token(&key, id);
        assert_eq!(unsubscribe_id(&key, &u), Some(id));
        assert_eq!(confirm_id(&key, &u, now), None);
        assert_eq!(unsubscribe_id(&key, &t), None);
    }

    #[test]
    fn csv_cells_cannot_run_formulas() {
        let e = Entry {
            id: Uuid::now_v7(),
            email: "a@example.com".into(),
            name: Some("=HYPERLINK(\"http://x\")".into()),
            company: Some("@SUM(1+1)".into()),
            status: "confirmed".into(),
            created_at: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            confirmed_at: None,
            invited_at: None,
        };
        let csv = String::from_utf8(to_csv(&[e]).unwrap()).unwrap();
        assert!(csv.contains("'=HYPERLINK"), "{csv}");
        assert!(csv.contains("'@SUM"), "{csv}");
    }
}
