//! The HTTP plumbing shared by every capability: the error type and its mapping, request ids,
//! the generic middleware (access log, security headers, error bodies, method rule), the
//! extractors for JSON and query strings, the reading of credentials, the shared parts of the
//! OpenAPI document, and the plain-HTTP redirect service.
//!
//! It knows no slice: the assembler (`startup::routes`) stacks these layers with the slices'
//! own (identity, perimeter) around the slices' routes.

pub mod credentials;
pub mod error;
pub mod middleware;
pub mod openapi;
pub mod wire;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};

use crate::config::Config;

pub use error::{AppError, database_unavailable};
pub use wire::ts;

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

/// Header values a rules file may set over the configured ones (the perimeter's
/// `waf-rules.json`), read for every response so a reloaded file applies at once.
#[derive(Debug, Clone, Default)]
pub struct HeaderOverrides {
    pub csp: Option<HeaderValue>,
    pub referrer: Option<HeaderValue>,
    pub permissions: Option<HeaderValue>,
}

/// Where [`middleware::security_headers`] reads the current [`HeaderOverrides`].
pub trait HeaderPolicy: Send + Sync {
    fn overrides(&self) -> HeaderOverrides;
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

/// The 404 of every path no route matches.
pub async fn fallback() -> AppError {
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

    #[test]
    fn host_names_are_parsed_and_junk_refused() {
        assert_eq!(host_name("localhost:8080"), Some("localhost"));
        assert_eq!(host_name("example.com"), Some("example.com"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("evil.com/@x"), None);
        assert_eq!(host_name(""), None);
    }
}
