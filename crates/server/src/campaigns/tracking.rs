//! Opens and clicks, for campaigns that turn tracking on (it is off by default): a first-party
//! pixel (`/t/o/{token}`) at the foot of the HTML part and links rewritten to `/t/c/{token}`,
//! which records the click and redirects. Both are signed with the application key over the
//! message and (for a click) the link, so the redirect only ever goes where the campaign's own
//! HTML pointed: it is not an open redirect. No third-party service sees the recipient. Each
//! message's open and each of its links is counted once.

use std::sync::LazyLock;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use regex::Regex;
use secrecy::SecretString;
use uuid::Uuid;

use super::CampaignsState;
use super::public::{sign, signed};
use crate::http::AppError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

const OPEN: &[u8] = b"leadgen open v1\0";
const CLICK: &[u8] = b"leadgen click v1\0";

fn open_token(app_key: &SecretString, message: Uuid) -> String {
    format!(
        "{}.{}",
        B64.encode(message.as_bytes()),
        B64.encode(sign(app_key, OPEN, message, b""))
    )
}

fn click_token(app_key: &SecretString, message: Uuid, url: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(message.as_bytes()),
        B64.encode(url.as_bytes()),
        B64.encode(sign(app_key, CLICK, message, url.as_bytes()))
    )
}

static HREF: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r#"(?i)(<a\b[^>]*?\bhref=")(https?://[^"]+)(")"#).ok());

/// The HTML part with its links sent through the click counter (the unsubscribe link excepted)
/// and the open pixel at its foot.
#[must_use]
pub fn instrument(
    html: &str,
    site: &str,
    app_key: &SecretString,
    message: Uuid,
    unsubscribe: &str,
) -> String {
    let linked = match HREF.as_ref() {
        Some(re) => re
            .replace_all(html, |c: &regex::Captures<'_>| {
                // The sanitized HTML writes `&` in attributes as `&amp;`.
                let url = c[2].replace("&amp;", "&");
                if url == unsubscribe {
                    return c[0].to_string();
                }
                format!(
                    "{}{site}/t/c/{}{}",
                    &c[1],
                    click_token(app_key, message, &url),
                    &c[3]
                )
            })
            .into_owned(),
        None => html.to_string(),
    };
    let pixel = format!(
        "<img src=\"{site}/t/o/{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block\">",
        open_token(app_key, message)
    );
    match linked.rfind("</body>") {
        Some(i) => format!("{}{pixel}{}", &linked[..i], &linked[i..]),
        None => format!("{linked}{pixel}"),
    }
}

async fn track(state: &CampaignsState, message: Uuid, kind: &str, detail: Option<&str>) {
    let recorded = sqlx::query_scalar!(
        "SELECT app.campaign_track($1, $2, $3, $4)",
        message,
        kind,
        detail,
        state.clock.now()
    )
    .fetch_one(&state.pool)
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "recording a campaign {kind} failed");
    }
}

/// A transparent 1×1 GIF.
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// `GET /t/o/{token}`: counts the open, answers the pixel (never cached, so each open asks).
pub async fn opened(State(state): State<CampaignsState>, Path(token): Path<String>) -> Response {
    let message = token.split_once('.').and_then(|(id, t)| {
        let id = Uuid::from_slice(&B64.decode(id).ok()?).ok()?;
        let t = B64.decode(t).ok()?;
        signed(&state.app_key, OPEN, id, b"", &t).then_some(id)
    });
    if let Some(id) = message {
        track(&state, id, "opened", None).await;
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL.as_slice(),
    )
        .into_response()
}

/// `GET /t/c/{token}`: counts the click on that link and redirects to it.
pub async fn clicked(
    State(state): State<CampaignsState>,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    let mut parts = token.splitn(3, '.');
    let (Some(id), Some(url), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(AppError::NotFound);
    };
    let decode = |s: &str| B64.decode(s).map_err(|_| AppError::NotFound);
    let id = Uuid::from_slice(&decode(id)?).map_err(|_| AppError::NotFound)?;
    let url = String::from_utf8(decode(url)?).map_err(|_| AppError::NotFound)?;
    if !signed(&state.app_key, CLICK, id, url.as_bytes(), &decode(t)?) {
        return Err(AppError::NotFound);
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(AppError::NotFound);
    }
    track(&state, id, "clicked", Some(&url)).await;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url.as_str()),
            (header::CACHE_CONTROL, "no-store"),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_counted_except_the_unsubscribe_and_the_pixel_is_added() {
        let key = SecretString::from("k".repeat(40));
        let id = Uuid::now_v7();
        let html = "<p>Read <a href=\"https://example.com/a?x=1&amp;y=2\">this</a> or \
                    <a href=\"https://s.test/u/tok\">unsubscribe</a></p>";
        let out = instrument(html, "https://s.test", &key, id, "https://s.test/u/tok");
        assert!(out.contains("https://s.test/t/c/"), "{out}");
        assert!(out.contains("href=\"https://s.test/u/tok\""), "{out}");
        assert!(out.contains("https://s.test/t/o/"), "{out}");
        assert!(!out.contains("example.com/a"), "{out}");
        let tok = out
            .split("/t/c/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let url = B64.decode(tok.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(url, b"https://example.com/a?x=1&y=2");
    }
}
