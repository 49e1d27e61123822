//! Middleware applied to every request: request ids, the access log and metrics, security
//! headers, error pages and the method rule.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ErrorBody, ErrorCode, json_error, wants_json};
use super::{HeaderPolicy, RequestId, SecurityHeaders};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request a fresh id (a client-supplied one is not trusted into our logs) and
/// echoes it in the response.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(X_REQUEST_ID, v.clone());
        let mut res = next.run(req).await;
        res.headers_mut().insert(X_REQUEST_ID, v);
        return res;
    }
    next.run(req).await
}

/// Where authentication records who is behind a request, for the access log line.
#[derive(Debug, Clone, Default)]
pub struct PrincipalSlot(std::sync::Arc<std::sync::Mutex<String>>);

impl PrincipalSlot {
    pub fn set(&self, id: String) {
        if let Ok(mut s) = self.0.lock() {
            *s = id;
        }
    }

    fn get(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// One JSON log line and one metrics sample per request.
pub async fn access_log(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let slot = PrincipalSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let res = next.run(req).await;
    let latency = start.elapsed();
    let status = res.status().as_u16();
    let principal = slot.get();
    let error_code = res.extensions().get::<ErrorCode>().map(|c| c.0.as_str());
    tracing::info!(
        target: "leadgen::access",
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id = %id,
        principal = %principal,
        error_code,
        "request"
    );
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(latency.as_secs_f64());
    res
}

/// Security headers on every response, whatever produced it.
///
/// The rules file (`content_security_policy`, `security_headers` of `waf-rules.json`) wins over
/// leadgen.toml's `http_headers`, and a valid change to it applies without a restart.
pub async fn security_headers(
    State((h, rules)): State<(Arc<SecurityHeaders>, Arc<dyn HeaderPolicy>)>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let from_rules = rules.overrides();
    let headers = res.headers_mut();
    headers.insert(header::STRICT_TRANSPORT_SECURITY, h.hsts.clone());
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        from_rules.csp.unwrap_or_else(|| h.csp.clone()),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A page that shows a secret link may only make the policy stricter (`no-referrer`).
    if headers
        .get(header::REFERRER_POLICY)
        .is_none_or(|v| v != "no-referrer")
    {
        headers.insert(
            header::REFERRER_POLICY,
            from_rules.referrer.unwrap_or_else(|| h.referrer.clone()),
        );
    }
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        from_rules
            .permissions
            .unwrap_or_else(|| h.permissions.clone()),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Renders the HTML page of an error (status, its stable code if any, message, request id); the
/// web shell provides it.
pub type ErrorPageRenderer =
    Arc<dyn Fn(StatusCode, Option<&str>, &str, &RequestId) -> Response + Send + Sync>;

/// Which error contract a path speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    /// `/api/…` and the operators' `/operator/api/…`: LeadGen's JSON error, whatever the
    /// `Accept` header.
    Api,
    /// `/auth/v1/…`: GoTrue's error shape (the modern one when the client asks for it).
    Auth { modern: bool },
    /// Pages: a styled page, or LeadGen's JSON error for a client that asks for JSON.
    Page,
}

impl Surface {
    fn of(path: &str, headers: &http::HeaderMap) -> Surface {
        if path == "/api" || path.starts_with("/api/") || path.starts_with("/operator/api/") {
            Surface::Api
        } else if path == "/auth/v1" || path.starts_with("/auth/v1/") {
            Surface::Auth {
                modern: crate::http::error::modern_api_version(headers),
            }
        } else {
            Surface::Page
        }
    }
}

/// Turns error responses into the contract of their path: every error under `/api/` and
/// `/auth/v1/` is JSON in the documented shape whatever the `Accept` header, including the bodiless
/// ones (timeouts, body limits, method and route misses) and extractor rejections that came with a
/// plain-text body; pages get a styled page that shows the request id.
pub async fn error_pages(
    State(render): State<ErrorPageRenderer>,
    req: Request,
    next: Next,
) -> Response {
    let surface = Surface::of(req.uri().path(), req.headers());
    let json = wants_json(req.headers());
    let id = req
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or(RequestId(String::new()));
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let has_body = res.headers().contains_key(header::CONTENT_TYPE);
    let explicit = res.extensions().get::<ErrorBody>().cloned();
    let mut message = None;
    let mut gotrue_code: Option<String> = None;
    let res = if has_body && explicit.is_none() {
        // A handler's own error body: kept when it already speaks its path's contract.
        let json_body = crate::http::error::is_json_media(res.headers());
        if surface == Surface::Page || (json_body && surface != Surface::Api) {
            return res;
        }
        let (parts, body) = res.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .unwrap_or_default();
        if json_body {
            // Under /api/, an identity error raised in GoTrue's shape (an endpoint that needs a
            // signed-in user) is said again in LeadGen's.
            let v: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            let gotrue = v.as_ref().and_then(|v| {
                Some((
                    v.get("error_code")?.as_str()?.to_owned(),
                    v.get("msg")?.as_str()?.to_owned(),
                ))
            });
            match gotrue {
                Some((c, m)) => {
                    gotrue_code = Some(c);
                    message = Some(m);
                }
                None => {
                    // A handler's own LeadGen-shaped body: its code still goes to the log line.
                    let code = v
                        .as_ref()
                        .and_then(|v| v["error"]["code"].as_str())
                        .map(|c| ErrorCode(c.to_owned()));
                    let mut res = Response::from_parts(parts, axum::body::Body::from(bytes));
                    if let Some(c) = code {
                        res.extensions_mut().insert(c);
                    }
                    return res;
                }
            }
        } else {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            if !text.is_empty() {
                message = Some(text);
            }
        }
        Response::from_parts(parts, axum::body::Body::empty())
    } else {
        res
    };
    let code = explicit
        .as_ref()
        .and_then(|b| b.1)
        .or(gotrue_code.as_deref());
    let message = explicit.map(|b| b.0).or(message).unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    });
    let matched = res.extensions().get::<MatchedPath>().cloned();
    let keep: Vec<(HeaderName, HeaderValue)> = [
        header::ALLOW,
        header::RETRY_AFTER,
        header::WWW_AUTHENTICATE,
        HeaderName::from_static("ratelimit-limit"),
        HeaderName::from_static("ratelimit-remaining"),
        HeaderName::from_static("ratelimit-reset"),
    ]
    .into_iter()
    .filter_map(|n| res.headers().get(&n).cloned().map(|v| (n, v)))
    .collect();
    let mut out = match surface {
        Surface::Api => json_error(status, code, &message, &id),
        Surface::Auth { modern } => {
            crate::http::error::gotrue_error(status, code, &message, modern, &id)
        }
        Surface::Page if json => json_error(status, code, &message, &id),
        Surface::Page => render(status, code, &message, &id),
    };
    for (n, v) in keep {
        out.headers_mut().insert(n, v);
    }
    if let Some(m) = matched {
        out.extensions_mut().insert(m);
    }
    if let Some(c) = code {
        out.extensions_mut().insert(ErrorCode(c.to_owned()));
    }
    out
}

/// While the server drains for shutdown, asks HTTP/1 clients to close the connection after this
/// response (HTTP/2 has GOAWAY for that, sent by the connection itself).
pub async fn drain_close(
    State(draining): State<Arc<std::sync::atomic::AtomicBool>>,
    req: Request,
    next: Next,
) -> Response {
    let http1 = req.version() <= http::Version::HTTP_11;
    let mut res = next.run(req).await;
    if http1 && draining.load(std::sync::atomic::Ordering::Relaxed) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A handler panic becomes a bodiless 500 (rendered by [`error_pages`] with the request id); the
/// panic message is logged, never sent.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Methods outside LeadGen's set (TRACE, CONNECT, WebDAV…) are refused before routing.
pub async fn method_filter(req: Request, next: Next) -> Response {
    if leadgen_waf::method_allowed(req.method().as_str()) {
        return next.run(req).await;
    }
    let allow = HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
    let mut res = StatusCode::METHOD_NOT_ALLOWED.into_response();
    res.headers_mut().insert(header::ALLOW, allow);
    res
}
