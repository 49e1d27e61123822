//! The perimeter: what every request passes before any handler: the WAF's edge rules
//! (`waf-rules.json`: client address, IP lists, URI and header limits), per-endpoint rate limits
//! (`rate-limits.json`), then the WAF's body rules and attack inspection.

pub mod alerts;
pub mod anomaly;
pub mod flood;
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
use rate_limit::{Decision, Subject};

/// The credential a request carries, checked once at the edge (an access token's signature and
/// claims; an API key's format) and kept in the request for the layers behind it. The route's
/// extractor still checks the session or looks the key up.
#[derive(Debug, Clone)]
pub enum Credential {
    /// An API key; `digest` names it without the secret, `well_formed` is its checksum verdict.
    ApiKey {
        digest: String,
        well_formed: bool,
    },
    /// A valid access token.
    User {
        sub: uuid::Uuid,
        lifetime_secs: i64,
    },
    None,
}

impl Credential {
    #[must_use]
    pub fn of(state: &AppState, headers: &axum::http::HeaderMap) -> Self {
        match crate::auth::Presented::from_headers(headers) {
            crate::auth::Presented::ApiKey(k) => Self::ApiKey {
                digest: hex::encode(&Sha256::digest(k.as_bytes())[..12]),
                well_formed: leadgen_crypto::apikey::check(k).is_ok(),
            },
            crate::auth::Presented::Token(t) => state
                .auth
                .verify_access(t, state.clock.now().unix_timestamp())
                .map_or(Self::None, |c| Self::User {
                    sub: c.sub,
                    lifetime_secs: c.exp - c.iat,
                }),
            crate::auth::Presented::None => Self::None,
        }
    }
}

/// Who the request counts against: a well-formed API key (with the API role's multiplier), else
/// the user of a valid access token, else nobody but its address.
fn subject(state: &AppState, req: &Request) -> Subject {
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let credential = req
        .extensions()
        .get::<Credential>()
        .cloned()
        .unwrap_or_else(|| Credential::of(state, req.headers()));
    match credential {
        Credential::ApiKey {
            digest,
            well_formed: true,
        } => Subject {
            ip,
            principal: Some(format!("key:{digest}")),
            multiplier: state.limits.file.multiplier("api"),
        },
        Credential::User { sub, .. } => Subject {
            ip,
            principal: Some(format!("user:{sub}")),
            multiplier: 1,
        },
        _ => Subject {
            ip,
            principal: None,
            multiplier: 1,
        },
    }
}

/// Whether a path pattern (`/exact`, or a prefix ending in `*`) matches `path`.
#[must_use]
pub fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == pattern,
    }
}

/// Whether a path pattern is well formed: starts with `/`, and a `*` only at the end.
#[must_use]
pub fn valid_pattern(pattern: &str) -> bool {
    pattern.starts_with('/') && !pattern[..pattern.len() - 1].contains('*')
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
    if let Some(res) = flood_guard(&state, &req, &who) {
        return res;
    }
    let _slot = match take_slot(&state, req.uri().path()) {
        Ok(slot) => slot,
        Err(retry_after) => return overloaded(retry_after),
    };
    let decision = state
        .limits
        .check(req.method().as_str(), req.uri().path(), &who)
        .await;
    if decision.unavailable {
        state.alerts.record(alerts::Event::RateLimitBackendFailure);
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily unavailable; try again shortly".into(),
            "rate_limit_unavailable",
            5,
        );
    }
    if !decision.allowed {
        state.alerts.record(alerts::Event::RateLimited);
        penalize(&state, &req, reputation::Offence::RateLimited);
        let rule = decision.rule.clone().unwrap_or_default();
        tracing::info!(rule = %rule, retry_after = decision.retry_after_secs, "rate limited");
        let mut res = refusal(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests ({rule}); try again in {} seconds",
                decision.retry_after_secs
            ),
            "rate_limited",
            decision.retry_after_secs,
        );
        headers_for(&decision, &mut res);
        return res;
    }
    let mut res = next.run(req).await;
    headers_for(&decision, &mut res);
    res
}

/// Lead searches and exports past their baseline (`monitoring.anomalies`): the address or
/// principal is throttled for a while, and an alert event is raised.
pub async fn anomaly_guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != http::Method::GET {
        return next.run(req).await;
    }
    let Some(waf) = state.waf.get() else {
        return next.run(req).await;
    };
    let Some((kind, rule)) = waf.monitoring.anomalies.classify(req.uri().path()) else {
        return next.run(req).await;
    };
    let who = subject(&state, &req);
    let mut keys = vec![format!("ip:{}", who.ip)];
    keys.extend(who.principal.clone());
    let verdict = state
        .anomalies
        .observe(kind, rule, &keys, std::time::Instant::now());
    let retry_after = match verdict {
        anomaly::Verdict::Allowed => return next.run(req).await,
        anomaly::Verdict::Crossed { key, retry_after } => {
            state.alerts.record(match kind {
                anomaly::Kind::Search => alerts::Event::LeadSearchAnomaly,
                anomaly::Kind::Export => alerts::Event::LeadExportAnomaly,
            });
            metrics::counter!("lead_access_anomalies_total", "kind" => kind.as_str()).increment(1);
            tracing::warn!(
                target: "leadgen::waf",
                kind = kind.as_str(),
                key = %key,
                baseline = rule.baseline,
                window_secs = rule.window_secs,
                "lead access past its baseline; throttled"
            );
            retry_after
        }
        anomaly::Verdict::Throttled { retry_after } => retry_after,
    };
    refusal(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "unusually many lead {}es from this client; try again in {retry_after} seconds",
            kind.as_str()
        ),
        "anomaly_throttled",
        retry_after,
    )
}

/// A refusal at the perimeter: the error body (code, message) and when to come back.
fn refusal(status: StatusCode, message: String, code: &'static str, retry_after: u64) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(ErrorBody(message, Some(code)));
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        res.headers_mut().insert(http::header::RETRY_AFTER, v);
    }
    res
}

/// One request being handled, counted in [`AppState::in_flight`] until dropped.
pub struct Slot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// `rate_limiting.queue` of `waf-rules.json`: past `max_in_flight` requests at once, the next is
/// refused (503 `overloaded`). Health probes always get through, so an orchestrator does not
/// restart an instance for being busy.
fn take_slot(state: &AppState, path: &str) -> Result<Option<Slot>, u64> {
    use std::sync::atomic::Ordering;
    let Some(queue) = state.waf.get().and_then(|w| w.rate_limiting.queue.clone()) else {
        return Ok(None);
    };
    if path == "/healthz" || path == "/readyz" {
        return Ok(None);
    }
    let before = state.in_flight.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(state.in_flight.clone());
    if before < queue.max_in_flight {
        return Ok(Some(slot));
    }
    metrics::counter!("overload_refusals_total").increment(1);
    Err(queue.retry_after_secs)
}

fn overloaded(retry_after: u64) -> Response {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is handling as many requests as it may; try again shortly".into(),
        "overloaded",
        retry_after,
    )
}

/// `rate_limiting.ddos` of `waf-rules.json`: an address past the flood threshold is refused for
/// a while, whatever it asks for. Allow-listed addresses are exempt (monitoring probes, the
/// operator's own load tests).
fn flood_guard(state: &AppState, req: &Request, who: &Subject) -> Option<Response> {
    let waf = state.waf.get()?;
    let rule = waf.rate_limiting.ddos.as_ref()?;
    let ip = who.ip.parse::<std::net::IpAddr>().ok()?;
    if waf.ip.allow.iter().any(|n| n.contains(ip)) {
        return None;
    }
    let retry_after = match state.flood.observe(ip, rule, std::time::Instant::now()) {
        flood::Verdict::Allowed => return None,
        flood::Verdict::Crossed { retry_after } => {
            state.alerts.record(alerts::Event::DdosAttempt);
            metrics::counter!("ddos_attempts_total").increment(1);
            penalize(state, req, reputation::Offence::RateLimited);
            tracing::warn!(
                target: "leadgen::waf",
                client_ip = %ip,
                requests = rule.requests,
                window_secs = rule.window_secs,
                "request flood from one address; blocked"
            );
            retry_after
        }
        flood::Verdict::Blocked { retry_after } => retry_after,
    };
    Some(refusal(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many requests from this address; try again in {retry_after} seconds"),
        "flood_blocked",
        retry_after,
    ))
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
///
/// With a shared backend (`perimeter.redis_url`) the score lives in Redis, so an address that
/// misbehaves across several instances is judged on all of it, and its block reaches every
/// instance within a second ([`reputation_sync`]). When Redis fails, this instance scores the
/// address itself.
pub fn penalize_ip(state: &AppState, ip: std::net::IpAddr, offence: reputation::Offence) {
    let Some(waf) = state.waf.get() else { return };
    if !waf.reputation.enabled || waf.ip.allow.iter().any(|n| n.contains(ip)) {
        return;
    }
    if state.limits.shared().is_none() {
        if state.reputation.penalize(&waf.reputation, ip, offence) {
            state.alerts.record(alerts::Event::IpReputationBlock);
        }
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        let Some(shared) = state.limits.shared() else {
            return;
        };
        let cfg = &waf.reputation;
        match shared
            .penalize(ip, reputation::Reputation::cost(cfg, offence), cfg)
            .await
        {
            Ok((blocked, score)) => {
                metrics::histogram!("ip_reputation_scores").record(score);
                if let Some(secs) = blocked {
                    state.reputation.add_shared_block(ip, secs);
                    state.alerts.record(alerts::Event::IpReputationBlock);
                    metrics::counter!("ip_reputation_blocks_total").increment(1);
                    tracing::warn!(target: "leadgen::waf", client = %ip, score, cooloff_secs = secs, "address blocked for its reputation (shared)");
                }
            }
            Err(e) => {
                metrics::counter!("rate_limit_backend_errors_total").increment(1);
                tracing::warn!(target: "leadgen::waf", error = %e, "shared reputation unavailable; scoring locally");
                if state.reputation.penalize(cfg, ip, offence) {
                    state.alerts.record(alerts::Event::IpReputationBlock);
                }
            }
        }
    });
}

/// Reads the blocks of every instance from the shared backend each second.
pub async fn reputation_sync(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(shared) = state.limits.shared() else {
            return;
        };
        match shared.blocked().await {
            Ok(blocks) => state.reputation.set_shared_blocks(&blocks),
            Err(e) => {
                tracing::debug!(target: "leadgen::waf", error = %e, "shared reputation blocks not refreshed");
            }
        }
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
