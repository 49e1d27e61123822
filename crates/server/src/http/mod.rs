//! The HTTP edge shared by every capability: the middleware stack, error mapping and the
//! plain-HTTP redirect service.

pub mod error;
pub mod middleware;
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::startup::AppState;

pub use error::AppError;

/// The id of one request, set before anything else runs and echoed in `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Security headers computed once from configuration.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    pub hsts: HeaderValue,
    pub csp: HeaderValue,
    pub referrer: HeaderValue,
    pub permissions: HeaderValue,
}

impl SecurityHeaders {
    pub fn from_config(config: &Config) -> Result<Self, http::header::InvalidHeaderValue> {
        let h = &config.http_headers;
        let mut hsts = format!("max-age={}", h.hsts_max_age_secs);
        if h.hsts_include_subdomains {
            hsts.push_str("; includeSubDomains");
        }
        if h.hsts_preload {
            hsts.push_str("; preload");
        }
        Ok(Self {
            hsts: HeaderValue::from_str(&hsts)?,
            csp: HeaderValue::from_str(&h.content_security_policy)?,
            referrer: HeaderValue::from_str(&h.referrer_policy)?,
            permissions: HeaderValue::from_str(&h.permissions_policy)?,
        })
    }
}

/// The application router with the full middleware stack.
pub fn app_router(state: AppState) -> Router {
    let (api, doc) = openapi::api_routes();
    let routes = Router::new()
        .merge(crate::web::routes())
        .merge(crate::ops::routes())
        .merge(api)
        .merge(openapi::document_route(&doc))
        .merge(crate::auth::pages::router(&state))
        .merge(crate::leads::pages::routes())
        .merge(crate::leads::scoring::page_routes())
        .merge(crate::leads::import::page::routes())
        .merge(crate::companies::pages::routes())
        .fallback(fallback);
    with_middleware(routes, state)
}

/// Wraps `routes` in the middleware every request passes through.
pub fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let config = state.config.clone();
    let headers = (Arc::new(state.headers.clone()), state.waf.clone());
    let routes = routes.with_state(state.clone());
    // Outermost first: request id, then logging, then headers and error pages, then the
    // request rules and limits closest to the handlers.
    routes.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::from_fn(middleware::request_id))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::drain_close,
            ))
            .layer(axum::middleware::from_fn(middleware::access_log))
            .layer(axum::middleware::from_fn_with_state(
                headers,
                middleware::security_headers,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                middleware::error_pages,
            ))
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(axum::middleware::from_fn(middleware::method_filter))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::perimeter::waf::edge,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::perimeter::rate_limit,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::perimeter::anomaly_guard,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::perimeter::waf::inspect,
            ))
            .layer(axum::middleware::from_fn(crate::web::csrf::same_origin))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(config.server.request_timeout_secs),
            ))
            .layer(DefaultBodyLimit::max(config.server.max_body_bytes)),
    )
}

async fn fallback() -> AppError {
    AppError::NotFound
}

/// The plain-HTTP listener's whole behaviour: a permanent redirect (308 keeps the method and
/// body) to the same host and path over HTTPS.
pub fn redirect_router(https_port: u16) -> Router {
    Router::new()
        .fallback(move |headers: http::HeaderMap, uri: Uri| async move {
            let host = headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .or_else(|| uri.authority().map(|a| a.to_string()));
            redirect_to_https(host, &uri, https_port)
        })
        // Router layers wrap outward: the last one added runs first.
        .layer(axum::middleware::from_fn(middleware::access_log))
        .layer(axum::middleware::from_fn(middleware::request_id))
}

fn redirect_to_https(host: Option<String>, uri: &Uri, https_port: u16) -> Response {
    // Only the host name of the Host header is kept; the port is ours. A missing or malformed
    // Host gets a 400 rather than a redirect to somewhere we made up.
    let Some(name) = host.as_deref().and_then(host_name) else {
        return (StatusCode::BAD_REQUEST, "missing or invalid Host header").into_response();
    };
    let authority = if https_port == 443 {
        name.to_string()
    } else {
        format!("{name}:{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Redirect::permanent(&format!("https://{authority}{path}")).into_response()
}

/// The host part of a Host header value (without port), if it is a plausible host name or IP.
fn host_name(host: &str) -> Option<&str> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        &host[..rest.find(']')? + 2]
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::host_name;

    /// A handler that panics yields the styled 500 page with the request id, not a dropped
    /// connection, and the server keeps serving.
    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_page() {
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;

        let state = crate::startup::AppState::for_tests(&"k".repeat(32));
        async fn boom() -> &'static str {
            panic!("handler bug with jane@acme.io")
        }
        let routes = axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }));
        let app = super::with_middleware(routes, state);
        let req = |p: &str| {
            http::Request::builder()
                .uri(p)
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap()
        };
        let res = app.clone().oneshot(req("/boom")).await.unwrap();
        assert_eq!(res.status(), 500);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(res.headers().contains_key("content-security-policy"));
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let html = String::from_utf8_lossy(&body);
        assert!(html.contains("500") && html.contains(&id), "{html}");
        assert!(
            !html.contains("jane@acme.io") && !html.contains("handler bug"),
            "panic text must not reach the client"
        );
        let res = app.oneshot(req("/fine")).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    #[test]
    fn host_names_are_parsed_and_junk_refused() {
        assert_eq!(host_name("localhost:8080"), Some("localhost"));
        assert_eq!(host_name("example.com"), Some("example.com"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("evil.com/@x"), None);
        assert_eq!(host_name(""), None);
    }
}
