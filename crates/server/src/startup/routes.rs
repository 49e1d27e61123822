//! The application's routes and the middleware every request passes through, assembled from the
//! slices, each router given its slice's own state; and the OpenAPI document their documented
//! routes make.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use crate::http::{self, HeaderPolicy, middleware, openapi};
use crate::{auth, campaigns, companies, forms, leads, ops, orgs, perimeter, privacy, public, web};

/// The application router with the full middleware stack.
pub fn app(state: &AppState) -> Router {
    let (api, doc) = api(state);
    let routes = Router::new()
        .merge(web::routes().with_state(state.core.clone()))
        .merge(public::routes().with_state(state.public.clone()))
        .merge(ops::routes().with_state(state.core.clone()))
        .merge(api)
        .merge(openapi::document_route(&doc))
        .merge(pages(state))
        // Links in campaign mail and the report webhook: no sign-in, their own credentials.
        .merge(campaigns::public::routes().with_state(state.campaigns.clone()))
        .merge(campaigns::reports::routes().with_state(state.campaigns.clone()))
        // Capture forms posted from the organizations' own sites: no sign-in, their own origin
        // allow-list.
        .merge(forms::public::routes().with_state(state.forms.clone()))
        .fallback(http::fallback);
    with_middleware(routes, state)
}

/// Every documented JSON route, and the document they make.
pub fn api(state: &AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (a, l) = (&state.auth, &state.leads);
    let routes = OpenApiRouter::with_openapi(openapi::base())
        .merge(auth::api::routes().with_state(a.clone()))
        .merge(orgs::api::routes().with_state(a.clone()))
        .merge(orgs::api_keys::routes().with_state(a.clone()))
        .merge(orgs::invitations::routes().with_state(a.clone()))
        .merge(orgs::groups::routes().with_state(a.clone()))
        .merge(leads::api::routes().with_state(l.clone()))
        .merge(leads::export_jobs::routes().with_state(l.clone()))
        .merge(leads::segments::routes().with_state(l.clone()))
        .merge(leads::reads::routes().with_state(l.clone()))
        .merge(leads::lists::routes().with_state(l.clone()))
        .merge(leads::timeline::routes().with_state(l.clone()))
        .merge(leads::merge::routes().with_state(l.clone()))
        .merge(leads::scoring::routes().with_state(l.clone()))
        .merge(leads::import::api::routes().with_state(l.clone()))
        .merge(companies::api::routes().with_state(l.clone()))
        .merge(privacy::requests::routes().with_state(l.clone()))
        .merge(privacy::ccpa::routes().with_state(l.clone()))
        .merge(campaigns::api::routes().with_state(state.campaigns.clone()))
        .merge(forms::api::routes().with_state(state.forms.clone()))
        .merge(public::vdp::api::routes().with_state(state.public.clone()));
    let (router, mut doc) = routes.split_for_parts();
    openapi::complete(&mut doc);
    (router, doc)
}

/// The pages, with an expired access cookie renewed from the refresh cookie in front of them.
fn pages(state: &AppState) -> Router {
    let (a, l) = (&state.auth, &state.leads);
    Router::new()
        .merge(auth::pages::routes().with_state(a.clone()))
        .merge(orgs::pages::routes().with_state(a.clone()))
        .merge(leads::pages::routes().with_state(l.clone()))
        .merge(leads::lists_page::routes().with_state(l.clone()))
        .merge(leads::scoring::page_routes().with_state(l.clone()))
        .merge(leads::import::page::routes().with_state(l.clone()))
        .merge(companies::pages::routes().with_state(l.clone()))
        .merge(campaigns::pages::routes().with_state(state.campaigns.clone()))
        .merge(forms::pages::routes().with_state(state.forms.clone()))
        .route_layer(from_fn_with_state(a.clone(), auth::pages::refresh_cookies))
        // The operator console: its own session cookie, none of the members' cookies.
        .merge(crate::operators::routes().with_state(a.clone()))
}

/// Wraps `routes` in the middleware every request passes through.
pub fn with_middleware(routes: Router, state: &AppState) -> Router {
    let server = &state.core.config.server;
    let policy: Arc<dyn HeaderPolicy> = state.perimeter.waf.clone();
    let headers = (Arc::new(state.headers.clone()), policy);
    let p = &state.perimeter;
    // Outermost first: request id, then logging, then headers and error pages; then who the
    // client is (the credential, read and verified once), the perimeter's rules and limits, and
    // the request rules closest to the handlers.
    routes.layer(
        ServiceBuilder::new()
            .layer(from_fn(middleware::request_id))
            .layer(from_fn_with_state(
                state.draining.clone(),
                middleware::drain_close,
            ))
            .layer(from_fn(middleware::access_log))
            .layer(from_fn_with_state(headers, middleware::security_headers))
            .layer(from_fn_with_state(
                web::error_pages(state.core.version),
                middleware::error_pages,
            ))
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(from_fn(middleware::method_filter))
            .layer(from_fn_with_state(
                state.core.database.clone(),
                crate::ops::database::gate,
            ))
            .layer(from_fn_with_state(state.auth.clone(), auth::authenticate))
            .layer(from_fn_with_state(p.clone(), perimeter::waf::edge))
            .layer(from_fn_with_state(p.clone(), perimeter::rate_limit))
            .layer(from_fn_with_state(p.clone(), perimeter::anomaly_guard))
            .layer(from_fn_with_state(p.clone(), perimeter::waf::inspect))
            .layer(from_fn(web::csrf::same_origin))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(server.request_timeout_secs),
            ))
            .layer(DefaultBodyLimit::max(server.max_body_bytes)),
    )
}

#[cfg(test)]
mod tests {
    /// A handler that panics yields the styled 500 page with the request id, not a dropped
    /// connection, and the server keeps serving.
    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_page() {
        use axum::body::Body;
        use axum::routing::get;
        use tower::ServiceExt;

        let state = super::AppState::for_tests(&"k".repeat(32));
        async fn boom() -> &'static str {
            panic!("handler bug with jane@acme.io")
        }
        let routes = axum::Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "ok" }));
        let app = super::with_middleware(routes, &state);
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
}
