//! The browser session's cookies: `__Host-` names (Secure, Path=/, no Domain, so no other host
//! can set or read them), HttpOnly, SameSite=Lax.

use axum::http::{HeaderValue, header};
use axum::response::Response;

pub use crate::http::credentials::{ACCESS_COOKIE, REFRESH_COOKIE, cookie_value};

/// A `Set-Cookie` value for a session cookie that lives `max_age` seconds (0 clears it).
#[must_use]
pub fn set_cookie(name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    ))
    .ok()
}

/// `Set-Cookie` values that end the browser's session.
#[must_use]
pub fn clear_session() -> Vec<HeaderValue> {
    [
        set_cookie(ACCESS_COOKIE, "", 0),
        set_cookie(REFRESH_COOKIE, "", 0),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `res` with `cookies` appended as `Set-Cookie` headers.
#[must_use]
pub fn with_cookies(mut res: Response, cookies: Vec<HeaderValue>) -> Response {
    for c in cookies {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}
