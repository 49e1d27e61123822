//! The web shell every page is built with: rendering, CSRF protection, the session cookies, the
//! signed-in browser, content-hashed static assets, bot traps for public forms and styled error
//! pages.
//!
//! Pages carry no inline script or style, so the Content-Security-Policy can forbid both. This
//! module knows no slice; slices' pages use it.

pub mod assets;
pub mod cookies;
pub mod csrf;
pub mod page;
pub mod shell;
pub mod time;
pub mod trap;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::http::RequestId;
use crate::http::middleware::ErrorPageRenderer;
use crate::state::Core;

pub use assets::Assets;
pub use csrf::CsrfForm;
pub use page::{SignedIn, csrf, render};
pub use shell::{Section, Shell};
pub use time::When;

pub fn routes() -> Router<Core> {
    Router::new()
        .route("/static/{file}", get(assets::serve))
        // Browsers ask for `/favicon.ico` on pages that name no icon (security.txt, say).
        .route(
            "/favicon.ico",
            get(|| async { axum::response::Redirect::permanent(&assets::get().icon) }),
        )
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    status: u16,
    message: &'a str,
    request_id: &'a str,
}

/// The renderer of the error-page middleware: styled pages that show the request id.
#[must_use]
pub fn error_pages(version: &'static str) -> ErrorPageRenderer {
    Arc::new(move |status, code, message, id| {
        let mut res = error_page(version, status, message, id);
        // A member without a second factor is led to set one up, with the reason.
        if code == Some("insufficient_aal") {
            res = mfa_needed_page(version, status, message, id);
        }
        res
    })
}

#[derive(Template)]
#[template(path = "mfa_needed.html")]
struct MfaNeededPage<'a> {
    assets: &'a Assets,
    version: &'static str,
    status: u16,
    message: &'a str,
    request_id: &'a str,
}

/// The 403 of an action that needs a second factor: why, and the way to the enrolment page.
fn mfa_needed_page(
    version: &'static str,
    status: StatusCode,
    message: &str,
    id: &RequestId,
) -> Response {
    let page = MfaNeededPage {
        assets: assets::get(),
        version,
        status: status.as_u16(),
        message,
        request_id: &id.0,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => error_page(version, status, message, id),
    }
}

/// A styled error page that shows the request id.
pub fn error_page(
    version: &'static str,
    status: StatusCode,
    message: &str,
    id: &RequestId,
) -> Response {
    let page = ErrorPage {
        assets: assets::get(),
        version,
        status: status.as_u16(),
        message,
        request_id: &id.0,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            let mut res = (status, format!("{status}\nrequest id: {}\n", id.0)).into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            res
        }
    }
}
