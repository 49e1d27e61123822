//! The web shell: server-rendered pages, content-hashed static assets and styled error pages.
//!
//! Pages carry no inline script or style, so the Content-Security-Policy can forbid both.

pub mod assets;
pub mod csrf;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::http::{AppError, RequestId};
use crate::startup::AppState;

pub use assets::Assets;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/static/{file}", get(assets::serve))
}

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing<'a> {
    assets: &'a Assets,
    version: &'static str,
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

async fn landing(State(state): State<AppState>) -> Result<Response, AppError> {
    let page = Landing {
        assets: assets::get(),
        version: state.version,
    };
    render(&page)
}

fn render(t: &impl Template) -> Result<Response, AppError> {
    let html = t
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("template: {e}")))?;
    Ok(Html(html).into_response())
}

/// A styled error page that shows the request id.
pub fn error_page(state: &AppState, status: StatusCode, message: &str, id: &RequestId) -> Response {
    let page = ErrorPage {
        assets: assets::get(),
        version: state.version,
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
