//! The campaign links that work without signing in: one-click unsubscribe and the confirmation
//! of a sender address.
//!
//! One-click unsubscribe (RFC 8058) and the page behind the link. Every campaign message carries
//! `List-Unsubscribe` (https and mailto) and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`:
//! a POST to the link unsubscribes at once, with no confirmation step and no sign-in; a GET shows
//! the page with its one button. The link's token is the message's id signed with the
//! application key, so it names one recipient of one campaign and cannot be forged or guessed.
//! The address joins the organization's suppression list within the request.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use super::CampaignsState;
use crate::http::AppError;
use crate::web::assets::{self, Assets};

pub fn routes() -> Router<CampaignsState> {
    Router::new()
        .route("/u/{token}", get(page).post(one_click))
        .route(
            "/senders/verify/{token}",
            get(sender_page).post(sender_confirm),
        )
        .route("/t/o/{token}", get(super::tracking::opened))
        .route("/t/c/{token}", get(super::tracking::clicked))
}

/// Links in campaign mail are signed the same way: an HMAC-SHA-256 with the application key over
/// the link's purpose, the message and what else the link carries, cut to 16 bytes.
pub(super) fn sign(
    app_key: &SecretString,
    purpose: &[u8],
    message: Uuid,
    extra: &[u8],
) -> [u8; 16] {
    let mut tag = [0u8; 16];
    if let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(app_key.expose_secret().as_bytes()) {
        m.update(purpose);
        m.update(message.as_bytes());
        m.update(extra);
        tag.copy_from_slice(&m.finalize().into_bytes()[..16]);
    }
    tag
}

/// Whether `given` is the signature of that link (in constant time).
pub(super) fn signed(
    app_key: &SecretString,
    purpose: &[u8],
    message: Uuid,
    extra: &[u8],
    given: &[u8],
) -> bool {
    subtle::ConstantTimeEq::ct_eq(given, sign(app_key, purpose, message, extra).as_slice()).into()
}

const UNSUBSCRIBE: &[u8] = b"leadgen unsubscribe v1\0";

/// The token of `message`'s unsubscribe link: its id and a MAC over it. Compact (45
/// characters), so `unsubscribe+<token>@domain` stays within the 64 characters a mailbox's
/// local part may have.
#[must_use]
pub fn token(app_key: &SecretString, message: Uuid) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}",
        b64.encode(message.as_bytes()),
        b64.encode(sign(app_key, UNSUBSCRIBE, message, b""))
    )
}

/// The message a token names, when its MAC holds.
#[must_use]
pub fn verify(app_key: &SecretString, token: &str) -> Option<Uuid> {
    let (id, tag) = token.split_once('.')?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let id = Uuid::from_slice(&b64.decode(id).ok()?).ok()?;
    let tag = b64.decode(tag).ok()?;
    signed(app_key, UNSUBSCRIBE, id, b"", &tag).then_some(id)
}

#[derive(askama::Template)]
#[template(path = "unsubscribe.html")]
struct Page<'a> {
    assets: &'a Assets,
    version: &'static str,
    org: &'a str,
    token: &'a str,
    done: bool,
}

fn show(state: &CampaignsState, org: &str, token: &str, done: bool) -> Response {
    let page = Page {
        assets: assets::get(),
        version: state.version,
        org,
        token,
        done,
    };
    match askama::Template::render(&page) {
        Ok(html) => (StatusCode::OK, axum::response::Html(html)).into_response(),
        Err(e) => AppError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

async fn page(
    State(state): State<CampaignsState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let id = verify(&state.app_key, &token).ok_or(AppError::NotFound)?;
    let row = sqlx::query!(
        r#"SELECT org_name AS "org_name!", suppressed AS "suppressed!"
           FROM app.campaign_message_owner($1)"#,
        id
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    Ok(show(&state, &row.org_name, &token, row.suppressed))
}

/// Unsubscribes `message`'s address; the organization's name.
pub async fn unsubscribe(state: &CampaignsState, message: Uuid) -> Result<String, AppError> {
    let row = sqlx::query!(
        r#"SELECT org_name AS "org_name!", newly AS "newly!" FROM app.campaign_unsubscribe($1, $2)"#,
        message,
        state.clock.now()
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    if row.newly {
        metrics::counter!("campaign_unsubscribes_total").increment(1);
    }
    Ok(row.org_name)
}

/// RFC 8058: the receiver's POST (body `List-Unsubscribe=One-Click`) or the page's button.
/// Answers 200 at once; repeating it changes nothing.
async fn one_click(
    State(state): State<CampaignsState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let id = verify(&state.app_key, &token).ok_or(AppError::NotFound)?;
    let org = unsubscribe(&state, id).await?;
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        Ok(show(&state, &org, &token, true))
    } else {
        Ok((StatusCode::OK, "unsubscribed\n").into_response())
    }
}

#[derive(askama::Template)]
#[template(path = "sender_verify.html")]
struct SenderPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    token: &'a str,
    address: Option<String>,
}

fn sender_show(state: &CampaignsState, token: &str, address: Option<String>) -> Response {
    let page = SenderPage {
        assets: assets::get(),
        version: state.version,
        token,
        address,
    };
    match askama::Template::render(&page) {
        Ok(html) => (StatusCode::OK, axum::response::Html(html)).into_response(),
        Err(e) => AppError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

/// The link mailed to a new sender address: a page with one button (a GET changes nothing, so
/// mail scanners that open links confirm nothing).
async fn sender_page(Path(token): Path<String>, State(state): State<CampaignsState>) -> Response {
    sender_show(&state, &token, None)
}

async fn sender_confirm(
    State(state): State<CampaignsState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let (id, secret) = token.split_once('.').ok_or(AppError::NotFound)?;
    let id = Uuid::try_parse(id).map_err(|_| AppError::NotFound)?;
    let hash = <Sha256 as sha2::Digest>::digest(secret.as_bytes()).to_vec();
    let address = sqlx::query_scalar!(
        "SELECT app.sender_verify($1, $2, $3)",
        id,
        hash,
        state.clock.now()
    )
    .fetch_one(&state.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    Ok(sender_show(&state, &token, Some(address)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_message_and_nothing_else() {
        let key = SecretString::from("k".repeat(40));
        let id = Uuid::now_v7();
        let t = token(&key, id);
        assert_eq!(verify(&key, &t), Some(id));
        // Another message's id with this tag, another key, a cut tag: refused.
        let other = Uuid::now_v7();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged = format!(
            "{}.{}",
            b64.encode(other.as_bytes()),
            t.split_once('.').unwrap().1
        );
        assert_eq!(verify(&key, &forged), None);
        assert_eq!(verify(&SecretString::from("j".repeat(40)), &t), None);
        assert_eq!(verify(&key, &t[..t.len() - 2]), None);
    }
}
