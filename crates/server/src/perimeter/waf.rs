//! The web application firewall in front of every route, driven by `waf-rules.json`:
//!
//! - `ip_rules`: addresses and networks to block or to allow (an allowed address skips attack
//!   inspection, never authentication), and the proxies trusted to say who the client is in
//!   `X-Forwarded-For`;
//! - `request_rules`: URI length (414), header count and size (431), content types of bodies (415),
//!   body size per route (413);
//! - `attack_protection`: the `leadgen-waf` engine (SQL injection, XSS, path traversal, command
//!   injection) over the path, query, headers, cookies and body.
//!
//! The file is checked at start with the JSON path of any mistake. Blocks are 403 with the request
//! id, a structured log line (rules, fields, client) and `blocked_requests_count`.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::types::ipnetwork::IpNetwork;

use super::Perimeter;
use crate::http::RequestId;
use crate::http::credentials::Credential;
use crate::http::error::ErrorBody;

/// The file shipped with LeadGen; an operator may point `perimeter.waf_rules_path` elsewhere.
pub const DEFAULT_RULES: &str = include_str!("../../../../config/waf-rules.json");

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRules {
    #[serde(default)]
    pub allow: Vec<IpNetwork>,
    #[serde(default)]
    pub block: Vec<IpNetwork>,
    #[serde(default)]
    pub trusted_proxies: Vec<IpNetwork>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// `/exact/path`, or a prefix ending in `*`.
    pub path: String,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Hand the body to the handler as a stream (large uploads such as lead imports) instead of
    /// buffering it: its size limit is enforced while it streams, its content type is checked,
    /// and attack inspection covers the path, query and headers but not the body, which the
    /// handler treats as data (parsed, validated and stored with bound parameters).
    #[serde(default)]
    pub stream_body: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestRules {
    pub max_uri_length: usize,
    pub max_header_count: usize,
    pub max_header_bytes: usize,
    /// Media types a request body may have (parameters such as `charset` are ignored).
    pub allowed_content_types: Vec<String>,
    #[serde(default)]
    pub routes: Vec<RouteRule>,
}

/// `api_security`: paths that need credentials before any handler runs, and what a credential
/// must look like.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSecurity {
    /// Path patterns (`/exact` or `/prefix*`) refused with 401 without a valid access token or
    /// a well-formed API key.
    #[serde(default)]
    pub require_authentication: Vec<String>,
    /// Path patterns inside `require_authentication` that anyone may call (the vulnerability
    /// report API: researchers have no account).
    #[serde(default)]
    pub allow_anonymous: Vec<String>,
    #[serde(default)]
    pub jwt_verification: JwtVerification,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtVerification {
    /// Signature algorithms accepted; LeadGen signs with HS256 only.
    #[serde(default = "d_algs")]
    pub allowed_algorithms: Vec<String>,
    /// Longest lifetime (`exp - iat`) a token may have.
    #[serde(default = "d_lifetime")]
    pub max_lifetime_secs: i64,
}

fn d_algs() -> Vec<String> {
    vec!["HS256".into()]
}
fn d_lifetime() -> i64 {
    3600
}

impl Default for JwtVerification {
    fn default() -> Self {
        Self {
            allowed_algorithms: d_algs(),
            max_lifetime_secs: d_lifetime(),
        }
    }
}

/// `content_security_policy`: the policy every response carries, directive by directive. When
/// the section is absent the policy of `http_headers.content_security_policy` (leadgen.toml)
/// applies; either way it must forbid inline and eval'd script and all framing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CspRules {
    pub directives: std::collections::BTreeMap<String, String>,
    /// Where browsers report violations (LeadGen receives them at `/csp-report`).
    #[serde(default)]
    pub report_uri: Option<String>,
}

/// `security_headers`: the other response headers the policy names. Absent fields keep the
/// values of leadgen.toml's `http_headers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default)]
    pub referrer_policy: Option<String>,
    #[serde(default)]
    pub permissions_policy: Option<String>,
}

/// Header values from the rules file, ready to send; `None` keeps the configured one.
pub type RuleHeaders = crate::http::HeaderOverrides;

/// Every directive of CSP Level 3 (and the reporting ones): anything else is a typo that a
/// browser would silently ignore, leaving the page less protected than the file says.
const CSP_DIRECTIVES: &[&str] = &[
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "img-src",
    "font-src",
    "connect-src",
    "media-src",
    "object-src",
    "frame-src",
    "child-src",
    "worker-src",
    "manifest-src",
    "base-uri",
    "form-action",
    "frame-ancestors",
    "sandbox",
    "upgrade-insecure-requests",
    "report-to",
];

impl CspRules {
    /// The header value, or the JSON path and reason of the first problem.
    fn header(&self) -> Result<axum::http::HeaderValue, (String, String)> {
        let mut policy = Vec::new();
        for (name, value) in &self.directives {
            let at = format!("content_security_policy.directives.{name}");
            if !CSP_DIRECTIVES.contains(&name.as_str()) {
                return Err((at, "not a Content-Security-Policy directive".into()));
            }
            if value
                .bytes()
                .any(|b| b == b';' || b == b',' || !(0x20..0x7f).contains(&b))
            {
                return Err((at, "sources are printable ASCII without ';' or ','".into()));
            }
            let value = value.trim();
            policy.push(if value.is_empty() {
                name.clone()
            } else {
                format!("{name} {value}")
            });
        }
        if let Some(uri) = &self.report_uri {
            let ok = (uri.starts_with('/') || uri.starts_with("https://"))
                && !uri
                    .bytes()
                    .any(|b| b == b';' || b == b',' || !(0x21..0x7f).contains(&b));
            if !ok {
                return Err((
                    "content_security_policy.report_uri".into(),
                    "must be a path on this server or an https URL, without spaces".into(),
                ));
            }
            policy.push(format!("report-uri {uri}"));
        }
        let policy = policy.join("; ");
        crate::config::check_csp(&policy)
            .map_err(|r| ("content_security_policy.directives".to_owned(), r))?;
        axum::http::HeaderValue::from_str(&policy)
            .map_err(|e| ("content_security_policy".to_owned(), e.to_string()))
    }
}

impl HeaderRules {
    fn headers(&self) -> Result<RuleHeaders, (String, String)> {
        // Policies that send the full URL (with lead ids and search terms) to other sites are
        // refused, as are unknown tokens.
        const REFERRER: &[&str] = &[
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin",
            "origin",
        ];
        let referrer = match &self.referrer_policy {
            Some(r) if !REFERRER.contains(&r.as_str()) => {
                return Err((
                    "security_headers.referrer_policy".into(),
                    format!("must be one of {}", REFERRER.join(", ")),
                ));
            }
            Some(r) => Some(
                axum::http::HeaderValue::from_str(r)
                    .map_err(|e| ("security_headers.referrer_policy".to_owned(), e.to_string()))?,
            ),
            None => None,
        };
        let permissions = match &self.permissions_policy {
            Some(p) => Some(axum::http::HeaderValue::from_str(p).map_err(|e| {
                (
                    "security_headers.permissions_policy".to_owned(),
                    e.to_string(),
                )
            })?),
            None => None,
        };
        Ok(RuleHeaders {
            csp: None,
            referrer,
            permissions,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    ip_rules: IpRules,
    #[serde(default)]
    ip_reputation: super::reputation::ReputationConfig,
    #[serde(default)]
    monitoring: super::alerts::Monitoring,
    #[serde(default)]
    api_security: ApiSecurity,
    request_rules: RequestRules,
    attack_protection: serde_json::Value,
    #[serde(default)]
    content_security_policy: Option<CspRules>,
    #[serde(default)]
    security_headers: HeaderRules,
    #[serde(default)]
    rate_limiting: Option<super::rate_limit::RateLimiting>,
}

/// The rules in force, replaced whole when the file changes (see [`Rules::watch`]).
#[derive(Default)]
pub struct Rules {
    current: std::sync::RwLock<Option<std::sync::Arc<Waf>>>,
}

impl Rules {
    #[must_use]
    pub fn new(waf: Waf) -> Self {
        Self {
            current: std::sync::RwLock::new(Some(std::sync::Arc::new(waf))),
        }
    }

    /// The rules for one request.
    #[must_use]
    pub fn get(&self) -> Option<std::sync::Arc<Waf>> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Re-reads `path` when it changes: valid rules replace the current ones at once; invalid
    /// ones are refused with an error log and a metric, and the current rules stay.
    pub async fn watch(
        self: std::sync::Arc<Self>,
        path: std::path::PathBuf,
        every: std::time::Duration,
    ) {
        let stamp = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut last = stamp(&path);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = stamp(&path);
            if now == last {
                continue;
            }
            last = now;
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| Waf::parse(&t).map_err(|e| e.to_string()));
            match loaded {
                Ok(waf) => {
                    if let Ok(mut g) = self.current.write() {
                        *g = Some(std::sync::Arc::new(waf));
                    }
                    metrics::counter!("waf_rules_reloads_total", "result" => "ok").increment(1);
                    tracing::info!(target: "leadgen::waf", file = %path.display(), "WAF rules reloaded");
                }
                Err(e) => {
                    metrics::counter!("waf_rules_reloads_total", "result" => "refused")
                        .increment(1);
                    tracing::error!(target: "leadgen::waf", file = %path.display(), error = %e, "WAF rules changed but are invalid; keeping the current rules");
                }
            }
        }
    }
}

/// One version of the rules.
pub struct Waf {
    pub ip: IpRules,
    pub reputation: super::reputation::ReputationConfig,
    pub monitoring: super::alerts::Monitoring,
    pub api_security: ApiSecurity,
    pub requests: RequestRules,
    pub engine: leadgen_waf::Engine,
    /// Response headers the rules file sets (see [`CspRules`], [`HeaderRules`]).
    pub headers: RuleHeaders,
    /// The `rate_limiting` section: which limits file applies and the DDoS thresholds.
    pub rate_limiting: super::rate_limit::RateLimiting,
}

/// A rules file that does not parse or makes no sense, with the JSON path of the problem.
#[derive(Debug, thiserror::Error)]
#[error("WAF rules: {path}: {reason}")]
pub struct RulesError {
    pub path: String,
    pub reason: String,
}

impl Waf {
    /// Parses and checks a rules file.
    ///
    /// # Errors
    /// The first problem, with its JSON path (`request_rules.max_uri_length`,
    /// `attack_protection.sqli.paranoia`).
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: RulesFile = serde_path_to_error::deserialize(de).map_err(|e| RulesError {
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })?;
        file.ip_reputation
            .check()
            .and_then(|()| file.monitoring.check())
            .map_err(|(path, reason)| RulesError { path, reason })?;
        let r = &file.request_rules;
        let err = |path: &str, reason: &str| RulesError {
            path: path.into(),
            reason: reason.into(),
        };
        if r.max_uri_length < 256 {
            return Err(err("request_rules.max_uri_length", "must be at least 256"));
        }
        if r.max_header_count < 16 || r.max_header_bytes < 4096 {
            return Err(err(
                "request_rules.max_header_count",
                "at least 16 headers and 4096 header bytes must be allowed",
            ));
        }
        for (i, route) in r.routes.iter().enumerate() {
            if !super::valid_pattern(&route.path) {
                return Err(err(
                    &format!("request_rules.routes[{i}].path"),
                    "must start with / and may only end in *",
                ));
            }
        }
        for (i, p) in file.api_security.require_authentication.iter().enumerate() {
            if !super::valid_pattern(p) {
                return Err(err(
                    &format!("api_security.require_authentication[{i}]"),
                    "must start with / and may only end in *",
                ));
            }
        }
        for (i, p) in file.api_security.allow_anonymous.iter().enumerate() {
            if !super::valid_pattern(p) {
                return Err(err(
                    &format!("api_security.allow_anonymous[{i}]"),
                    "must start with / and may only end in *",
                ));
            }
        }
        let jwt = &file.api_security.jwt_verification;
        for (i, a) in jwt.allowed_algorithms.iter().enumerate() {
            if a != "HS256" {
                return Err(err(
                    &format!("api_security.jwt_verification.allowed_algorithms[{i}]"),
                    "LeadGen signs access tokens with HS256 only; list it and nothing else",
                ));
            }
        }
        if jwt.allowed_algorithms.is_empty() || jwt.max_lifetime_secs < 60 {
            return Err(err(
                "api_security.jwt_verification",
                "needs HS256 in allowed_algorithms and a max_lifetime_secs of at least 60",
            ));
        }
        let engine = leadgen_waf::AttackProtection::from_json(&file.attack_protection.to_string())
            .and_then(leadgen_waf::Engine::new)
            .map_err(|e| RulesError {
                path: format!("attack_protection{}", e.path),
                reason: e.reason,
            })?;
        let mut headers = file
            .security_headers
            .headers()
            .map_err(|(path, reason)| RulesError { path, reason })?;
        if let Some(csp) = &file.content_security_policy {
            headers.csp = Some(
                csp.header()
                    .map_err(|(path, reason)| RulesError { path, reason })?,
            );
        }
        let rate_limiting = file.rate_limiting.unwrap_or_default();
        rate_limiting
            .check()
            .map_err(|(path, reason)| RulesError { path, reason })?;
        Ok(Self {
            headers,
            rate_limiting,
            ip: file.ip_rules,
            reputation: file.ip_reputation,
            monitoring: file.monitoring,
            api_security: file.api_security,
            requests: file.request_rules,
            engine,
        })
    }

    fn max_body(&self, path: &str, default: usize) -> usize {
        self.route(path)
            .and_then(|r| r.max_body_bytes)
            .unwrap_or(default)
    }

    fn route(&self, path: &str) -> Option<&RouteRule> {
        self.requests
            .routes
            .iter()
            .find(|r| super::path_matches(&r.path, path))
    }

    fn streams(&self, path: &str) -> bool {
        self.route(path).is_some_and(|r| r.stream_body)
    }
}

fn in_any(list: &[IpNetwork], ip: IpAddr) -> bool {
    list.iter().any(|n| n.contains(ip))
}

/// The client: the peer, or — when the peer is a trusted proxy — the nearest address in
/// `X-Forwarded-For` that is not itself a trusted proxy.
fn client_ip(waf: &Waf, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    if !in_any(&waf.ip.trusted_proxies, peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    chain
        .into_iter()
        .rev()
        .find(|ip| !in_any(&waf.ip.trusted_proxies, *ip))
        .unwrap_or(peer)
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    let mut res = status.into_response();
    res.extensions_mut().insert(ErrorBody(message, Some(code)));
    res
}

fn blocked(state: &Perimeter, rule: &str, class: &'static str, action: &'static str) {
    state.alerts.record(super::alerts::Event::BlockedRequest);
    metrics::counter!("blocked_requests_count", "rule" => rule.to_string(), "class" => class, "action" => action)
        .increment(1);
}

/// Edge rules that need no body: who the client is, IP lists, URI and header limits. Rewrites
/// the connection info to the real client, so rate limits and logs see it.
pub async fn edge(State(state): State<Perimeter>, mut req: Request, next: Next) -> Response {
    let Some(waf) = state.waf.get() else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer {
        let client = client_ip(&waf, peer.ip(), req.headers());
        if client != peer.ip() {
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
        // An incident's block wins over the allow list: it is an operator's decision about
        // this address now, not a standing rule.
        if let Some(until) = state.controls.blocked(client, state.clock.now()) {
            blocked(&state, "incident_block", "ip", "block");
            tracing::warn!(target: "leadgen::waf", client = %client, rule = "incident_block", "request from an address blocked in an incident");
            let wait = (until - state.clock.now()).whole_seconds().max(1);
            let mut res = refuse(
                StatusCode::FORBIDDEN,
                "incident_block",
                "requests from this address are blocked".into(),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return res;
        }
        if !in_any(&waf.ip.allow, client)
            && let Some(wait) = state.reputation.blocked_for(&waf.reputation, client)
        {
            blocked(&state, "ip_reputation", "ip", "block");
            let mut res = refuse(
                StatusCode::FORBIDDEN,
                "ip_reputation",
                format!("this address is blocked for {wait} more seconds after repeated abuse"),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return res;
        }
        if in_any(&waf.ip.block, client) && !in_any(&waf.ip.allow, client) {
            blocked(&state, "ip_rules.block", "ip", "block");
            tracing::warn!(target: "leadgen::waf", client = %client, rule = "ip_rules.block", "request from a blocked address");
            return refuse(
                StatusCode::FORBIDDEN,
                "waf_blocked",
                "requests from this address are blocked".into(),
            );
        }
    }
    // The identity layer in front has verified the credential once; its verdict is here. A
    // presented API key goes on to the extractor, which refuses a malformed one from its
    // checksum alone (no lookup) with a precise code.
    let has_credential = match req.extensions().get::<Credential>() {
        Some(Credential::ApiKey { .. }) => true,
        Some(Credential::Token { lifetime_secs, .. }) => {
            *lifetime_secs <= waf.api_security.jwt_verification.max_lifetime_secs
        }
        Some(Credential::Rejected { .. } | Credential::None) | None => false,
    };
    let path = req.uri().path();
    if !has_credential
        && waf
            .api_security
            .require_authentication
            .iter()
            .any(|p| super::path_matches(p, path))
        && !waf
            .api_security
            .allow_anonymous
            .iter()
            .any(|p| super::path_matches(p, path))
    {
        // Counted, but not an attack: no alert event, no reputation penalty.
        metrics::counter!("blocked_requests_count", "rule" => "api_security.require_authentication", "class" => "auth", "action" => "unauthenticated")
            .increment(1);
        let mut res = refuse(
            StatusCode::UNAUTHORIZED,
            "authentication_required",
            "this path needs a valid access token or API key".into(),
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"leadgen\""),
        );
        return res;
    }
    let r = &waf.requests;
    let uri_len = req.uri().to_string().len();
    if uri_len > r.max_uri_length {
        blocked(&state, "request_rules.max_uri_length", "request", "block");
        return refuse(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the URI has {uri_len} characters; at most {} are accepted",
                r.max_uri_length
            ),
        );
    }
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > r.max_header_count || header_bytes > r.max_header_bytes {
        blocked(&state, "request_rules.max_headers", "request", "block");
        return refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "{} headers, {header_bytes} bytes; at most {} headers and {} bytes are accepted",
                headers.len(),
                r.max_header_count,
                r.max_header_bytes
            ),
        );
    }
    next.run(req).await
}

/// Body rules and attack inspection. An allow-listed client skips the inspection (it still needs
/// to authenticate like anyone else).
pub async fn inspect(State(state): State<Perimeter>, req: Request, next: Next) -> Response {
    let Some(waf) = state.waf.get() else {
        return next.run(req).await;
    };
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = waf.max_body(parts.uri.path(), state.config.server.max_body_bytes);
    let streamed = waf.streams(parts.uri.path());
    let (has_body, bytes, streaming) = if streamed {
        // Declared too large: refused before a byte is read.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {limit} bytes"),
            );
        }
        let has_body = declared != Some(0)
            && (declared.is_some() || parts.headers.contains_key(header::TRANSFER_ENCODING));
        (
            has_body,
            axum::body::Bytes::new(),
            Some(Body::new(http_body_util::Limited::new(body, limit))),
        )
    } else {
        match axum::body::to_bytes(body, limit).await {
            Ok(b) => (!b.is_empty(), b, None),
            Err(_) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is larger than {limit} bytes"),
                );
            }
        }
    };
    if has_body {
        let media = content_type.as_deref().map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let allowed = media.as_deref().is_some_and(|m| {
            waf.requests
                .allowed_content_types
                .iter()
                .any(|a| a.eq_ignore_ascii_case(m))
        });
        if !allowed {
            blocked(
                &state,
                "request_rules.allowed_content_types",
                "request",
                "block",
            );
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "a body of type {} is not accepted",
                    media.as_deref().unwrap_or("(none)")
                ),
            );
        }
    }
    let trusted = client.is_some_and(|c| in_any(&waf.ip.allow, c));
    if !trusted {
        let started = Instant::now();
        let header_pairs: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let verdict = waf.engine.inspect(&leadgen_waf::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &header_pairs,
            content_type: content_type.as_deref(),
            body: &bytes,
        });
        metrics::histogram!("waf_inspection_seconds").record(started.elapsed().as_secs_f64());
        for m in &verdict.matches {
            let action = if m.excluded {
                "excluded"
            } else {
                match verdict.action {
                    leadgen_waf::Action::Block => "block",
                    leadgen_waf::Action::Warn => "warn",
                    leadgen_waf::Action::Allow => "log",
                }
            };
            metrics::counter!("waf_rule_hits_total", "rule" => m.rule, "action" => action)
                .increment(1);
        }
        if verdict.action != leadgen_waf::Action::Allow {
            let rules: Vec<String> = verdict
                .matches
                .iter()
                .filter(|m| !m.excluded)
                .map(|m| format!("{} at {}", m.rule, m.location))
                .collect();
            let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
            let first = verdict.matches.iter().find(|m| !m.excluded);
            let (rule, class) = first.map_or(("", ""), |m| (m.rule, m.class.as_str()));
            if verdict.action == leadgen_waf::Action::Block {
                blocked(&state, rule, class, "block");
                if let Some(ip) = client {
                    super::penalize_ip(&state, ip, super::reputation::Offence::WafBlock);
                }
                tracing::warn!(target: "leadgen::waf", client = ?client, request_id = ?request_id, score = verdict.score, rules = ?rules, "request blocked");
                return refuse(
                    StatusCode::FORBIDDEN,
                    "waf_blocked",
                    format!("the request was blocked by the web application firewall ({rule})"),
                );
            }
            tracing::warn!(target: "leadgen::waf", client = ?client, request_id = ?request_id, score = verdict.score, rules = ?rules, "request would be blocked (warn mode)");
        }
    }
    let body = streaming.unwrap_or_else(|| Body::from(bytes));
    next.run(Request::from_parts(parts, body)).await
}
