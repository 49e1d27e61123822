//! The perimeter: what every request passes before any handler: the WAF's edge rules
//! (`waf-rules.json`: client address, IP lists, URI and header limits), per-endpoint rate limits
//! (`rate-limits.json`), then the WAF's body rules and attack inspection.

pub mod alerts;
pub mod rate_limit;
pub mod reputation;
pub mod shared;
pub mod waf;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::http::error::ErrorBody;
use crate::startup::AppState;
use crate::web::csrf::cookie_value;
use rate_limit::{Decision, Subject};

/// Who the request counts against: the API key it presents (well-formed ones only), else the
/// user of a valid access token (header or cookie), else nobody but its address.
fn subject(state: &AppState, req: &Request) -> Subject {
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let headers = req.headers();
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let key = bearer
        .filter(|t| t.starts_with("lg_"))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    if let Some(k) = key.filter(|k| leadgen_crypto::apikey::check(k).is_ok()) {
        let digest = Sha256::digest(k.as_bytes());
        return Subject {
            ip,
            principal: Some(format!("key:{}", hex::encode(&digest[..12]))),
            multiplier: state.limits.file.multiplier("api"),
        };
    }
    let token = bearer
        .filter(|t| !t.starts_with("lg_"))
        .or_else(|| cookie_value(headers, crate::auth::pages::ACCESS_COOKIE));
    let now = state.clock.now().unix_timestamp();
    let principal = token
        .and_then(|t| state.auth.verify_access(t, now).ok())
        .map(|c| format!("user:{}", c.sub));
    Subject {
        ip,
        principal,
        multiplier: 1,
    }
}

fn headers_for(d: &Decision, res: &mut Response) {
    if d.rule.is_none() {
        return;
    }
    let h = res.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset_secs.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// Counts the request against the rate limits; over a limit it gets 429 with `Retry-After`.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let who = subject(&state, &req);
    let decision = state
        .limits
        .check(req.method().as_str(), req.uri().path(), &who)
        .await;
    if decision.unavailable {
        state.alerts.record(alerts::Event::RateLimitBackendFailure);
        let mut res = StatusCode::SERVICE_UNAVAILABLE.into_response();
        res.extensions_mut().insert(ErrorBody(
            "temporarily unavailable; try again shortly".into(),
            Some("rate_limit_unavailable"),
        ));
        res.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        return res;
    }
    if !decision.allowed {
        state.alerts.record(alerts::Event::RateLimited);
        penalize(&state, &req, reputation::Offence::RateLimited);
        let rule = decision.rule.clone().unwrap_or_default();
        tracing::info!(rule = %rule, retry_after = decision.retry_after_secs, "rate limited");
        let mut res = StatusCode::TOO_MANY_REQUESTS.into_response();
        res.extensions_mut().insert(ErrorBody(
            format!(
                "too many requests ({rule}); try again in {} seconds",
                decision.retry_after_secs
            ),
            Some("rate_limited"),
        ));
        if let Ok(v) = HeaderValue::from_str(&decision.retry_after_secs.to_string()) {
            res.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        headers_for(&decision, &mut res);
        return res;
    }
    let mut res = next.run(req).await;
    headers_for(&decision, &mut res);
    res
}

/// Lowers the reputation of the request's client address (not of allow-listed ones).
pub fn penalize(state: &AppState, req: &Request, offence: reputation::Offence) {
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip {
        penalize_ip(state, ip, offence);
    }
}

/// Lowers the reputation of `ip` (not of allow-listed addresses).
pub fn penalize_ip(state: &AppState, ip: std::net::IpAddr, offence: reputation::Offence) {
    if let Some(waf) = state.waf.get()
        && !waf.ip.allow.iter().any(|n| n.contains(ip))
        && state.reputation.penalize(&waf.reputation, ip, offence)
    {
        state.alerts.record(alerts::Event::IpReputationBlock);
    }
}

/// Checks the alert rules every second and delivers what fires to the configured webhooks.
pub async fn alert_loop(state: AppState) {
    let http = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alerts disabled: no HTTP client");
            return;
        }
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(waf) = state.waf.get() else { continue };
        let fired = state.alerts.due(&waf.monitoring.alerts);
        if fired.is_empty() {
            continue;
        }
        let at = state
            .clock
            .now()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        for f in fired {
            tracing::warn!(target: "leadgen::waf", alert = %f.rule, count = f.count, "alert fired");
            for hook in waf.monitoring.webhooks.clone() {
                let (http, f, at) = (http.clone(), f.clone(), at.clone());
                tokio::spawn(async move { alerts::deliver(&http, &hook, &f, &at).await });
            }
        }
    }
}
