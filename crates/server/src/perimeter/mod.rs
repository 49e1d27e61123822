//! The perimeter: what every request passes before any handler: the WAF's edge rules
//! (`waf-rules.json`: client address, IP lists, URI and header limits), per-endpoint rate limits
//! (`rate-limits.json`), then the WAF's body rules and attack inspection.

pub mod alerts;
pub mod anomaly;
pub mod controls;
pub mod flood;
pub mod rate_limit;
pub mod reputation;
pub mod shared;
pub mod waf;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::http::credentials::Credential;
use crate::http::error::ErrorBody;
use rate_limit::{Decision, Subject};

/// What the perimeter's layers and workers share: the rules (replaced when their files change),
/// the limiter, the reputation of client addresses, the alert and anomaly counters.
#[derive(Clone)]
pub struct Perimeter {
    pub config: Arc<Config>,
    pub clock: SharedClock,
    /// Per-endpoint rate limits.
    pub limits: Arc<rate_limit::Limiter>,
    /// The web application firewall's rules (replaced when their file changes).
    pub waf: Arc<waf::Rules>,
    /// Client addresses' reputation (kept across rule reloads).
    pub reputation: Arc<reputation::Reputation>,
    /// Recent security events, for the alert rules.
    pub alerts: Arc<alerts::Alerts>,
    /// Lead searches and exports per address and principal, for anomaly detection.
    pub anomalies: Arc<anomaly::Anomalies>,
    pub flood: Arc<flood::Flood>,
    /// Requests past the perimeter's rate limits and not yet answered (`rate_limiting.queue`).
    pub in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// What open incidents enforce: blocked networks, frozen authentication.
    pub controls: Arc<controls::Controls>,
}

impl Perimeter {
    /// The perimeter of a configuration: its rules files loaded and checked, the limiter shared
    /// through Redis when `perimeter.redis_url` is set.
    pub fn new(config: Arc<Config>, clock: SharedClock) -> anyhow::Result<Self> {
        let waf = Arc::new(waf::Rules::new(load_waf(&config)?));
        let limits = rate_limit::Limiter::new(load_rate_limits(&config)?);
        let url = secrecy::ExposeSecret::expose_secret(&config.perimeter.redis_url);
        let limits = Arc::new(if url.is_empty() {
            limits
        } else {
            limits.with_shared(shared::Shared::new(url, &config.perimeter.redis_prefix)?)
        });
        Ok(Self {
            config,
            clock,
            limits,
            waf,
            reputation: Arc::default(),
            alerts: Arc::default(),
            anomalies: Arc::default(),
            flood: Arc::default(),
            in_flight: Arc::default(),
            controls: Arc::default(),
        })
    }
}

/// The response headers the rules file sets over leadgen.toml's (`content_security_policy`,
/// `security_headers`), as the current rules have them.
impl crate::http::HeaderPolicy for waf::Rules {
    fn overrides(&self) -> crate::http::HeaderOverrides {
        self.get().map(|w| w.headers.clone()).unwrap_or_default()
    }
}

/// Checks the files the configuration names (`perimeter.waf_rules_path`,
/// `perimeter.rate_limits_path`), for `leadgen configtest` and a start.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    load_waf(config)?;
    load_rate_limits(config)?;
    Ok(())
}

/// The operator's rules file at `path`, or `shipped` when no path is set.
fn read_rules<T, E: std::fmt::Display>(
    key: &str,
    path: &std::path::Path,
    shipped: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    let rule = |reason: String| ConfigError::Rule {
        path: key.into(),
        reason,
    };
    if path.as_os_str().is_empty() {
        return parse(shipped).map_err(|e| rule(format!("the shipped rules: {e}")));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| rule(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|e| rule(format!("{}: {e}", path.display())))
}

/// The WAF rules: the operator's file, or the shipped one.
pub fn load_waf(config: &Config) -> Result<waf::Waf, ConfigError> {
    read_rules(
        "perimeter.waf_rules_path",
        &config.perimeter.waf_rules_path,
        waf::DEFAULT_RULES,
        waf::Waf::parse,
    )
}

/// The rate-limit rules: the operator's file, or the shipped one.
pub fn load_rate_limits(config: &Config) -> Result<rate_limit::RulesFile, ConfigError> {
    read_rules(
        "perimeter.rate_limits_path",
        &config.perimeter.rate_limits_path,
        rate_limit::DEFAULT_RULES,
        rate_limit::RulesFile::parse,
    )
}

/// Who the request counts against: a well-formed API key (with the API role's multiplier), else
/// the user of a valid access token, else nobody but its address.
/// The credential is the identity layer's verdict, left in the request's extensions.
fn subject(state: &Perimeter, req: &Request) -> Subject {
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let credential = req.extensions().get::<Credential>();
    let principal = credential.and_then(Credential::principal);
    let multiplier = match credential {
        Some(Credential::ApiKey {
            well_formed: true, ..
        }) => state.limits.file.multiplier("api"),
        _ => 1,
    };
    Subject {
        ip,
        principal,
        multiplier,
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
pub async fn rate_limit(State(state): State<Perimeter>, req: Request, next: Next) -> Response {
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
pub async fn anomaly_guard(State(state): State<Perimeter>, req: Request, next: Next) -> Response {
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

/// One request being handled, counted in [`Perimeter::in_flight`] until dropped.
pub struct Slot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// `rate_limiting.queue` of `waf-rules.json`: past `max_in_flight` requests at once, the next is
/// refused (503 `overloaded`). Health probes always get through, so an orchestrator does not
/// restart an instance for being busy.
fn take_slot(state: &Perimeter, path: &str) -> Result<Option<Slot>, u64> {
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
fn flood_guard(state: &Perimeter, req: &Request, who: &Subject) -> Option<Response> {
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
pub fn penalize(state: &Perimeter, req: &Request, offence: reputation::Offence) {
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
/// Counts a security event raised outside the perimeter (a wrong second-factor code) for the
/// alert rules of `waf-rules.json`.
pub fn record_event(state: &Perimeter, event: alerts::Event) {
    state.alerts.record(event);
}

pub fn penalize_ip(state: &Perimeter, ip: std::net::IpAddr, offence: reputation::Offence) {
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
/// That call also probes Redis when its circuit is open, so shared limits come back after an
/// outage without waiting for traffic; the outage itself raises the `redis-unavailable` alert
/// once.
pub async fn reputation_sync(state: Perimeter) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut was_open = false;
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
        let open = shared.breaker().is_open();
        if open && !was_open {
            announce(
                &state,
                "redis-unavailable",
                alerts::Event::DependencyUnavailable,
                "Redis (perimeter.redis_url) does not answer: rate limits apply their \
                 on_backend_failure and IP reputation is scored per instance until it is back"
                    .into(),
            );
        }
        was_open = open;
    }
}

/// Sends one alert about one thing (not a threshold over counted events) to every configured
/// webhook, in the background; the same formats and retries as the rules' alerts.
pub fn announce(state: &Perimeter, rule: &str, event: alerts::Event, detail: String) {
    send(state, rule, event, None, detail);
}

/// Like [`announce`], for an incident of `severity`: only webhooks that take that severity (or
/// name none) get it.
pub fn announce_severity(
    state: &Perimeter,
    rule: &str,
    event: alerts::Event,
    severity: &str,
    detail: String,
) {
    send(
        state,
        rule,
        event,
        alerts::Severity::parse(severity),
        detail,
    );
}

fn send(
    state: &Perimeter,
    rule: &str,
    event: alerts::Event,
    severity: Option<alerts::Severity>,
    detail: String,
) {
    let Some(waf) = state.waf.get() else { return };
    let fired = alerts::Fired {
        rule: rule.to_string(),
        event,
        count: 1,
        window_secs: 0,
        detail: Some(detail),
    };
    let at = state
        .clock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    tracing::warn!(target: "leadgen::alerts", alert = %rule, "alert raised");
    let http = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alert not sent: no HTTP client");
            return;
        }
    };
    for hook in waf.monitoring.webhooks.clone() {
        if let Some(severity) = severity
            && !hook.severities.is_empty()
            && !hook.severities.contains(&severity)
        {
            continue;
        }
        let (http, f, at) = (http.clone(), fired.clone(), at.clone());
        tokio::spawn(async move { alerts::deliver(&http, &hook, &f, &at).await });
    }
}

/// Checks the alert rules every second and delivers what fires to the configured webhooks.
pub async fn alert_loop(state: Perimeter) {
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
    // Card numbers the data slices masked (`pci`), turned into events as they grow.
    let mut masked_seen = crate::pci::masked_total();
    loop {
        tick.tick().await;
        let masked = crate::pci::masked_total();
        for _ in 0..masked.saturating_sub(masked_seen).min(10_000) {
            state.alerts.record(alerts::Event::PanMasked);
        }
        masked_seen = masked;
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
