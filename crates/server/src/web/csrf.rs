//! CSRF protection for browser form posts, in two independent layers:
//!
//! 1. [`same_origin`] (middleware): a state-changing request that a browser could send on its
//!    own (it carries cookies, or has a form content type) must come from our own origin,
//!    judged by `Origin`, or `Referer` when a browser omits `Origin`.
//! 2. [`CsrfForm`] (extractor): a form post must carry a token that is the HMAC, under the
//!    application key, of a random value in the `__Host-csrf` cookie. A cross-site page can
//!    neither read that cookie nor set a `__Host-` cookie for our host, so it cannot forge the
//!    pair. Pages get their token from [`CsrfToken::issue`].

use axum::extract::{Form, FromRef, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::http::AppError;
use crate::http::credentials::cookie_value;
use crate::state::Core;

pub const COOKIE: &str = "__Host-csrf";
pub const FIELD: &str = "csrf_token";

/// HMAC over the cookie value, domain-separated so the application key's other uses never
/// produce a valid CSRF token. (HMAC takes keys of any length; `None` cannot happen in practice.)
fn mac(app_key: &str, cookie: &str) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(app_key.as_bytes()).ok()?;
    m.update(b"leadgen csrf v1\0");
    m.update(cookie.as_bytes());
    Some(m)
}

/// The token a form must echo for `cookie`.
#[must_use]
pub fn token_for(app_key: &str, cookie: &str) -> String {
    mac(app_key, cookie)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Constant-time check of `token` against `cookie`.
#[must_use]
pub fn verify(app_key: &str, cookie: &str, token: &str) -> bool {
    let Ok(raw) = hex::decode(token) else {
        return false;
    };
    cookie.len() == 64 && mac(app_key, cookie).is_some_and(|m| m.verify_slice(&raw).is_ok())
}

/// A token for a page that renders a form, with the cookie to set when the browser has none.
#[derive(Debug)]
pub struct CsrfToken {
    pub token: String,
    pub set_cookie: Option<HeaderValue>,
}

impl CsrfToken {
    pub fn issue(app_key: &str, headers: &HeaderMap) -> Self {
        if let Some(c) = cookie_value(headers, COOKIE)
            .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Self {
                token: token_for(app_key, c),
                set_cookie: None,
            };
        }
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let cookie = hex::encode(raw);
        let header = format!("{COOKIE}={cookie}; Path=/; Secure; HttpOnly; SameSite=Lax");
        Self {
            token: token_for(app_key, &cookie),
            set_cookie: HeaderValue::from_str(&header).ok(),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    csrf_token: String,
    #[serde(flatten)]
    fields: T,
}

/// A urlencoded form whose CSRF token has been checked.
pub struct CsrfForm<T>(pub T);

impl<S, T> FromRequest<S> for CsrfForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
    Core: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let cookie = cookie_value(req.headers(), COOKIE).map(str::to_string);
        let Form(envelope) = Form::<Envelope<T>>::from_request(req, state)
            .await
            .map_err(|e| AppError::BadRequest(format!("form: {}", e.body_text())))?;
        let core = Core::from_ref(state);
        let key = core.app_key.expose_secret();
        match cookie {
            Some(c) if verify(key, &c, &envelope.csrf_token) => Ok(Self(envelope.fields)),
            _ => Err(AppError::Forbidden(
                "the form's security token is missing or expired; reload the page and try again",
            )),
        }
    }
}

/// Refuses cross-site state changes that a browser could send with ambient credentials.
pub async fn same_origin(req: Request, next: Next) -> Response {
    // RFC 8058: a mail provider POSTs the one-click unsubscribe link from its own origin. The
    // link's signed token is the only credential it carries (no cookie is read there), so a
    // forged cross-site POST can do nothing the token's holder could not.
    // Capture forms (`/f/{key}`) are posted from the organization's own sites by design; their
    // handler checks the origin against the form's allow-list instead, and reads no cookie.
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || req.uri().path().starts_with("/u/")
        || req.uri().path().starts_with("/f/")
        || !browser_ambient(req.headers())
    {
        return next.run(req).await;
    }
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let expected = host.map(|h| format!("https://{h}"));
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            let referer = headers.get(header::REFERER)?.to_str().ok()?;
            let url = referer.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
            Some(url)
        });
    match (origin, expected) {
        (Some(o), Some(e)) if o.eq_ignore_ascii_case(&e) => next.run(req).await,
        _ => AppError::Forbidden("cross-site request refused").into_response(),
    }
}

/// Whether a browser could have sent this request on its own from another site: it carries
/// cookies, or uses a content type an HTML form can produce.
fn browser_ambient(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::COOKIE) {
        return true;
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    ct.starts_with("application/x-www-form-urlencoded")
        || ct.starts_with("multipart/form-data")
        || ct.starts_with("text/plain")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-key-0123456789abcdef0123456789abcdef";

    #[test]
    fn tokens_verify_only_for_their_cookie_and_key() {
        let h = HeaderMap::new();
        let issued = CsrfToken::issue(KEY, &h);
        let set = issued.set_cookie.unwrap();
        let set = set.to_str().unwrap();
        assert!(
            set.starts_with("__Host-csrf=")
                && set.contains("Secure")
                && set.contains("HttpOnly")
                && set.contains("Path=/")
        );
        let cookie = &set["__Host-csrf=".len()..set.find(';').unwrap()];
        assert!(verify(KEY, cookie, &issued.token));
        assert!(!verify(
            "another-key-0123456789abcdef0123456789",
            cookie,
            &issued.token
        ));
        let other = "0".repeat(64);
        assert!(!verify(KEY, &other, &issued.token));
        assert!(!verify(KEY, cookie, ""));
        assert!(!verify(KEY, cookie, "zz"));

        // A browser that has the cookie keeps it, and gets the same token.
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {COOKIE}={cookie}")).unwrap(),
        );
        let again = CsrfToken::issue(KEY, &h);
        assert!(again.set_cookie.is_none());
        assert_eq!(again.token, issued.token);
    }

    /// The extractor through a real router: only a post with the cookie's token gets through.
    #[tokio::test]
    async fn csrf_form_accepts_only_the_matching_token() {
        use axum::body::Body;
        use tower::ServiceExt;

        #[derive(Deserialize)]
        struct Note {
            text: String,
        }
        let state = crate::state::Core::for_tests(KEY);
        let app = axum::Router::new()
            .route(
                "/notes",
                axum::routing::post(|CsrfForm(note): CsrfForm<Note>| async move { note.text }),
            )
            .with_state(state);
        let issued = CsrfToken::issue(KEY, &HeaderMap::new());
        let set = issued.set_cookie.unwrap();
        let cookie = set.to_str().unwrap().split(';').next().unwrap().to_string();
        let post = |cookie: Option<&str>, body: String| {
            let mut b = Request::builder()
                .method("POST")
                .uri("/notes")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(c) = cookie {
                b = b.header(header::COOKIE, c);
            }
            b.body(Body::from(body)).unwrap()
        };
        let ok = app
            .clone()
            .oneshot(post(
                Some(&cookie),
                format!("text=hello&csrf_token={}", issued.token),
            ))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let bad = app
            .clone()
            .oneshot(post(Some(&cookie), "text=hello&csrf_token=00".into()))
            .await
            .unwrap();
        assert_eq!(bad.status(), 403);
        let no_cookie = app
            .clone()
            .oneshot(post(
                None,
                format!("text=hello&csrf_token={}", issued.token),
            ))
            .await
            .unwrap();
        assert_eq!(no_cookie.status(), 403);
        let missing = app
            .oneshot(post(Some(&cookie), "text=hello".into()))
            .await
            .unwrap();
        assert_eq!(missing.status(), 400);
    }

    #[test]
    fn ambient_requests_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(
            !browser_ambient(&h),
            "JSON without cookies needs CORS, so it is not ambient"
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert!(browser_ambient(&h));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("x=y"));
        assert!(browser_ambient(&h));
    }
}
