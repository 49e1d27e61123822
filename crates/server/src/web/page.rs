//! What every page handler uses: rendering a template with its CSRF cookie, the CSRF token for
//! its forms, and [`SignedIn`], the signed-in browser (or a trip to the sign-in page).

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::ExposeSecret;

use super::csrf::CsrfToken;
use crate::http::AppError;
use crate::state::Core;

/// Renders `t` with `status`, setting the CSRF cookie when the browser had none.
pub fn render(t: &impl Template, status: StatusCode, csrf: &CsrfToken) -> Response {
    match t.render() {
        Ok(html) => {
            let mut res = (status, Html(html)).into_response();
            if let Some(c) = &csrf.set_cookie {
                res.headers_mut().append(header::SET_COOKIE, c.clone());
            }
            res
        }
        Err(e) => AppError::Internal(anyhow::anyhow!("template: {e}")).into_response(),
    }
}

/// The CSRF token for the forms of a page rendered for this request.
#[must_use]
pub fn csrf(core: &Core, headers: &HeaderMap) -> CsrfToken {
    CsrfToken::issue(core.app_key.expose_secret(), headers)
}

/// A signed-in browser: `U` (the identity's user) extracted exactly as the API extracts it, but
/// a request without a live session is sent to the sign-in page instead of answered 401.
pub struct SignedIn<U>(pub U);

impl<S: Send + Sync, U: FromRequestParts<S>> FromRequestParts<S> for SignedIn<U> {
    type Rejection = Redirect;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        U::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|_| Redirect::to("/login"))
    }
}
