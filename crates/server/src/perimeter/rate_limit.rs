//! Per-endpoint rate limits from `rate-limits.json`.
//!
//! Every rule whose path pattern (and method list, if any) matches a request counts it, so a
//! specific rule (three early-access submissions an hour) and the catch-all per-IP ceiling both
//! apply. A rule is keyed by the client IP, or by the principal: the API key presented (its
//! SHA-256, with the API role's multiplier), else the user of a valid access token, else the IP.
//! A made-up API key gets a bucket of its own, but the per-IP ceiling still bounds it.
//!
//! Algorithms: a token bucket (GCRA, from the `governor` crate) allows bursts up to `burst` and
//! refills at `limit` per `period_secs`; a sliding window counts at most `limit` requests in any
//! `period_secs` (the weighted two-window estimate, which never lets a burst straddle a boundary
//! double the limit). Refusals are 429 with `Retry-After`; every limited response carries the
//! `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers of the narrowest rule.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter, clock::Clock as _, clock::DefaultClock};
use serde::Deserialize;

/// The file shipped with LeadGen; an operator may point `perimeter.rate_limits_path` elsewhere.
pub const DEFAULT_RULES: &str = include_str!("../../../../config/rate-limits.json");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub role_multipliers: HashMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `/exact/path`, or a prefix ending in `*` (`/api/v1/*`, `/*`).
    pub path: String,
    /// Empty: every method.
    #[serde(default)]
    pub methods: Vec<String>,
    pub key: KeyKind,
    pub algorithm: Algorithm,
    pub limit: u32,
    pub period_secs: u64,
    /// Token bucket only: requests allowed at once (default: `limit`).
    #[serde(default)]
    pub burst: Option<u32>,
    /// With a shared (Redis) backend that fails: `local` counts in this process instead;
    /// `closed` refuses (503), for endpoints such as sign-in where a gap would let guessing through.
    #[serde(default)]
    pub on_backend_failure: OnFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Local,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Ip,
    Principal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    TokenBucket,
    SlidingWindow,
}

/// The `rate_limiting` section of `waf-rules.json`. Per-endpoint limits live in
/// `rate-limits.json` (`perimeter.rate_limits_path`); this section sets what sits above them all:
/// the flood threshold per address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimiting {
    /// For people reading the file (the shipped one names `rate-limits.json` here).
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub ddos: Option<Ddos>,
    #[serde(default)]
    pub queue: Option<Queue>,
}

/// The queue policy: at most `max_in_flight` requests are handled at once by this instance;
/// the next ones are refused at once with 503 `overloaded` and `Retry-After`, instead of waiting
/// in a queue that would only make every request late. Health probes are never refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    pub max_in_flight: usize,
    /// Seconds a refused client is told to wait (default 1).
    #[serde(default = "d_retry")]
    pub retry_after_secs: u64,
}

fn d_retry() -> u64 {
    1
}

/// More than `requests` from one address within `window_secs`, refused or not, is a flood: the
/// address is refused for `block_secs` (429 `flood_blocked`) and a `ddos_attempt` event is raised
/// for the alert rules. Counted before the per-endpoint limits, so requests those limits already
/// refuse still count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ddos {
    pub requests: u32,
    pub window_secs: u64,
    pub block_secs: u64,
}

impl RateLimiting {
    /// # Errors
    /// The JSON path and reason of a threshold that makes no sense.
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(d) = &self.ddos
            && (d.requests < 10 || d.window_secs == 0 || d.block_secs == 0)
        {
            return Err((
                "rate_limiting.ddos".into(),
                "requests must be at least 10, window_secs and block_secs greater than 0".into(),
            ));
        }
        if let Some(q) = &self.queue
            && (q.max_in_flight < 8 || q.retry_after_secs == 0)
        {
            return Err((
                "rate_limiting.queue".into(),
                "max_in_flight must be at least 8 and retry_after_secs greater than 0".into(),
            ));
        }
        Ok(())
    }
}

/// A rules file that does not parse or makes no sense, with the JSON path of the problem.
#[derive(Debug, thiserror::Error)]
#[error("rate limits: {path}: {reason}")]
pub struct RulesError {
    pub path: String,
    pub reason: String,
}

impl RulesFile {
    /// Parses and checks a rules file.
    ///
    /// # Errors
    /// The first problem, with its JSON path (`rules[2].limit`).
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: Self = serde_path_to_error::deserialize(de).map_err(|e| RulesError {
            path: e.path().to_string(),
            reason: e.inner().to_string(),
        })?;
        let err = |path: String, reason: &str| RulesError {
            path,
            reason: reason.into(),
        };
        for (i, r) in file.rules.iter().enumerate() {
            if r.name.is_empty() {
                return Err(err(format!("rules[{i}].name"), "must not be empty"));
            }
            if !super::valid_pattern(&r.path) {
                return Err(err(
                    format!("rules[{i}].path"),
                    "must start with / and may only end in *",
                ));
            }
            if r.limit == 0 || r.period_secs == 0 {
                return Err(err(
                    format!("rules[{i}].limit"),
                    "limit and period_secs must be greater than 0",
                ));
            }
            if r.burst == Some(0) {
                return Err(err(format!("rules[{i}].burst"), "must be greater than 0"));
            }
            if r.burst.is_some() && r.algorithm == Algorithm::SlidingWindow {
                return Err(err(
                    format!("rules[{i}].burst"),
                    "only token_bucket rules have a burst",
                ));
            }
            for (j, m) in r.methods.iter().enumerate() {
                if !leadgen_waf::method_allowed(m) {
                    return Err(err(
                        format!("rules[{i}].methods[{j}]"),
                        "not an HTTP method LeadGen serves",
                    ));
                }
            }
        }
        for (role, m) in &file.role_multipliers {
            if !matches!(role.as_str(), "admin" | "manager" | "user" | "api") || *m == 0 {
                return Err(err(
                    format!("role_multipliers.{role}"),
                    "roles are admin, manager, user and api; multipliers at least 1",
                ));
            }
        }
        Ok(file)
    }

    /// The multiplier of a role (1 when none is set).
    #[must_use]
    pub fn multiplier(&self, role: &str) -> u32 {
        self.role_multipliers.get(role).copied().unwrap_or(1)
    }
}

impl Rule {
    fn matches(&self, method: &str, path: &str) -> bool {
        super::path_matches(&self.path, path)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

/// Who a request counts against.
#[derive(Debug, Clone)]
pub struct Subject {
    pub ip: String,
    /// `key:<sha256 prefix>`, `user:<uuid>`, or none.
    pub principal: Option<String>,
    /// Multiplier of the principal's role (the API role's for API keys).
    pub multiplier: u32,
}

/// What the limiter decided, with the narrowest matching rule's numbers for the headers.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    /// Refused because the shared backend failed on a fail-closed rule.
    pub unavailable: bool,
    pub rule: Option<String>,
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
    pub retry_after_secs: u64,
}

type Bucket = RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// Sliding-window counters of one rule: key → (window start, previous count, current count).
struct Window {
    counts: Mutex<HashMap<String, (Instant, u32, u32)>>,
}

enum Store {
    /// One bucket per multiplier in use (governor's quota is per limiter).
    Bucket(Mutex<HashMap<u32, std::sync::Arc<Bucket>>>),
    Window(Window),
}

pub struct Limiter {
    pub file: RulesFile,
    stores: Vec<Store>,
    clock: DefaultClock,
    shared: Option<super::shared::Shared>,
}

fn quota(rule: &Rule, multiplier: u32) -> Quota {
    let limit = rule.limit.saturating_mul(multiplier).max(1);
    let burst = rule
        .burst
        .unwrap_or(rule.limit)
        .saturating_mul(multiplier)
        .max(1);
    let per = Duration::from_secs(rule.period_secs) / limit;
    let per = if per.is_zero() {
        Duration::from_nanos(1)
    } else {
        per
    };
    Quota::with_period(per)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

impl Limiter {
    /// The shared (Redis) backend, when configured.
    #[must_use]
    pub fn shared(&self) -> Option<&super::shared::Shared> {
        self.shared.as_ref()
    }

    /// Limits shared by every instance through Redis (`perimeter.redis_url`).
    #[must_use]
    pub fn with_shared(mut self, shared: super::shared::Shared) -> Self {
        self.shared = Some(shared);
        self
    }

    #[must_use]
    pub fn new(file: RulesFile) -> Self {
        let stores = file
            .rules
            .iter()
            .map(|r| match r.algorithm {
                Algorithm::TokenBucket => Store::Bucket(Mutex::new(HashMap::new())),
                Algorithm::SlidingWindow => Store::Window(Window {
                    counts: Mutex::new(HashMap::new()),
                }),
            })
            .collect();
        Self {
            file,
            stores,
            clock: DefaultClock::default(),
            shared: None,
        }
    }

    /// Counts a request against every matching rule.
    pub async fn check(&self, method: &str, path: &str, who: &Subject) -> Decision {
        let mut decision = Decision {
            allowed: true,
            unavailable: false,
            rule: None,
            limit: 0,
            remaining: 0,
            reset_secs: 0,
            retry_after_secs: 0,
        };
        for (rule, store) in self.file.rules.iter().zip(&self.stores) {
            if !rule.matches(method, path) {
                continue;
            }
            let (key, mult) = match (rule.key, &who.principal) {
                (KeyKind::Principal, Some(p)) => (p.clone(), who.multiplier),
                _ => (format!("ip:{}", who.ip), 1),
            };
            let limit = rule.limit.saturating_mul(mult);
            let shared = match &self.shared {
                Some(sh) => Some(sh.check(rule, mult, &key).await),
                None => None,
            };
            let (ok, remaining, reset, retry) = match shared {
                Some(Ok(answer)) => answer,
                Some(Err(e)) if rule.on_backend_failure == OnFailure::Closed => {
                    metrics::counter!("rate_limit_backend_errors_total").increment(1);
                    tracing::error!(rule = %rule.name, error = %e, "shared rate-limit backend failed; refusing (fail closed)");
                    decision.allowed = false;
                    decision.unavailable = true;
                    decision.rule = Some(rule.name.clone());
                    decision.retry_after_secs = 5;
                    break;
                }
                Some(Err(e)) => {
                    metrics::counter!("rate_limit_backend_errors_total").increment(1);
                    tracing::warn!(rule = %rule.name, error = %e, "shared rate-limit backend failed; counting locally");
                    self.local(store, rule, mult, limit, &key)
                }
                None => self.local(store, rule, mult, limit, &key),
            };
            // The first matching rule (the narrowest, by file order) speaks in the headers, unless
            // a later one refuses.
            if decision.rule.is_none() || (!ok && decision.allowed) {
                decision.rule = Some(rule.name.clone());
                decision.limit = limit;
                decision.remaining = remaining;
                decision.reset_secs = reset;
            }
            if !ok {
                decision.allowed = false;
                decision.retry_after_secs = decision.retry_after_secs.max(retry);
                metrics::counter!("rate_limited_requests_total", "rule" => rule.name.clone())
                    .increment(1);
                break;
            }
        }
        decision
    }

    fn local(
        &self,
        store: &Store,
        rule: &Rule,
        mult: u32,
        limit: u32,
        key: &String,
    ) -> (bool, u32, u64, u64) {
        match store {
            Store::Bucket(buckets) => self.bucket(buckets, rule, mult, key),
            Store::Window(w) => window(w, rule, limit, key),
        }
    }

    fn bucket(
        &self,
        buckets: &Mutex<HashMap<u32, std::sync::Arc<Bucket>>>,
        rule: &Rule,
        mult: u32,
        key: &String,
    ) -> (bool, u32, u64, u64) {
        let limiter = {
            let mut map = buckets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            map.entry(mult)
                .or_insert_with(|| {
                    std::sync::Arc::new(
                        RateLimiter::keyed(quota(rule, mult))
                            .with_middleware::<StateInformationMiddleware>(),
                    )
                })
                .clone()
        };
        match limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let reset = rule.period_secs;
                (true, remaining, reset, 0)
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                (false, 0, wait.as_secs() + 1, wait.as_secs() + 1)
            }
        }
    }

    /// Drops state of keys not seen for a while (called periodically).
    pub fn forget_idle(&self) {
        for (rule, store) in self.file.rules.iter().zip(&self.stores) {
            match store {
                Store::Bucket(b) => {
                    let map = b.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    for l in map.values() {
                        l.retain_recent();
                    }
                }
                Store::Window(w) => {
                    let period = Duration::from_secs(rule.period_secs);
                    let mut map = w
                        .counts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    map.retain(|_, (start, _, _)| start.elapsed() < period * 2);
                }
            }
        }
    }
}

/// Sliding-window counter: the previous window's count weighted by how much of it still lies
/// inside the last `period`, plus the current window's count.
fn window(w: &Window, rule: &Rule, limit: u32, key: &str) -> (bool, u32, u64, u64) {
    let period = Duration::from_secs(rule.period_secs);
    let now = Instant::now();
    let mut map = w
        .counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = map.entry(key.to_string()).or_insert((now, 0, 0));
    // Move the window forward.
    let mut elapsed = now.duration_since(entry.0);
    if elapsed >= period * 2 {
        *entry = (now, 0, 0);
        elapsed = Duration::ZERO;
    } else if elapsed >= period {
        *entry = (entry.0 + period, entry.2, 0);
        elapsed = now.duration_since(entry.0);
    }
    let weight = 1.0 - elapsed.as_secs_f64() / period.as_secs_f64();
    let estimate = f64::from(entry.1) * weight + f64::from(entry.2);
    let reset = (period - elapsed).as_secs().max(1);
    if estimate + 1.0 > f64::from(limit) {
        // When the current window alone is full, wait for it to end; otherwise for the previous
        // window's weight to fall enough.
        let retry = if entry.2 >= limit || entry.1 == 0 {
            reset
        } else {
            let excess = estimate + 1.0 - f64::from(limit);
            let secs = excess / f64::from(entry.1) * period.as_secs_f64();
            (secs.ceil() as u64).clamp(1, reset)
        };
        return (false, 0, reset, retry);
    }
    entry.2 += 1;
    let remaining = (f64::from(limit) - estimate - 1.0).max(0.0) as u32;
    (true, remaining, reset, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(ip: &str) -> Subject {
        Subject {
            ip: ip.into(),
            principal: None,
            multiplier: 1,
        }
    }

    #[test]
    fn the_shipped_rules_parse_and_hold_the_early_access_rule() {
        let f = RulesFile::parse(DEFAULT_RULES).unwrap();
        let ea = f.rules.iter().find(|r| r.name == "early-access").unwrap();
        assert_eq!((ea.limit, ea.period_secs, ea.key), (3, 3600, KeyKind::Ip));
        assert_eq!(f.multiplier("api"), 5);
    }

    #[test]
    fn bad_files_name_the_json_path() {
        let cases = [
            (
                r#"{"rules": [{"name": "x", "path": "/a", "key": "ip", "algorithm": "token_bucket", "limit": 0, "period_secs": 1}]}"#,
                "rules[0].limit",
            ),
            (
                r#"{"rules": [{"name": "x", "path": "/a", "key": "ip", "algorithm": "leaky", "limit": 1, "period_secs": 1}]}"#,
                "rules[0].algorithm",
            ),
            (
                r#"{"rules": [{"name": "x", "path": "/a", "key": "ip", "algorithm": "token_bucket", "limit": 1, "period_secs": 1, "colour": 1}]}"#,
                "rules[0]",
            ),
            (
                r#"{"rules": [{"name": "x", "path": "/a*b", "key": "ip", "algorithm": "token_bucket", "limit": 1, "period_secs": 1}]}"#,
                "rules[0].path",
            ),
            (
                r#"{"rules": [{"name": "x", "path": "/a", "methods": ["TRACE"], "key": "ip", "algorithm": "token_bucket", "limit": 1, "period_secs": 1}]}"#,
                "rules[0].methods[0]",
            ),
            (
                r#"{"rules": [], "role_multipliers": {"root": 2}}"#,
                "role_multipliers.root",
            ),
        ];
        for (text, path) in cases {
            let e = RulesFile::parse(text).unwrap_err();
            assert!(e.path.starts_with(path), "{path}: {e}");
        }
    }

    #[tokio::test]
    async fn sliding_window_allows_exactly_the_limit() {
        let f = RulesFile::parse(DEFAULT_RULES).unwrap();
        let l = Limiter::new(f);
        for i in 0..3 {
            let d = l
                .check("POST", "/early-access", &subject("192.0.2.1"))
                .await;
            assert!(d.allowed, "submission {i}");
            assert_eq!(d.rule.as_deref(), Some("early-access"));
        }
        let d = l
            .check("POST", "/early-access", &subject("192.0.2.1"))
            .await;
        assert!(!d.allowed);
        assert!(d.retry_after_secs > 0 && d.retry_after_secs <= 3600);
        // Another address is not affected; GET is not counted by the rule.
        assert!(
            l.check("POST", "/early-access", &subject("192.0.2.2"))
                .await
                .allowed
        );
        assert_eq!(
            l.check("GET", "/early-access", &subject("192.0.2.1"))
                .await
                .rule
                .as_deref(),
            Some("default")
        );
    }

    #[tokio::test]
    async fn principals_get_their_multiplier_and_the_ip_ceiling_still_holds() {
        let f = RulesFile::parse(
            r#"{"rules": [
                {"name": "api", "path": "/api/v1/*", "key": "principal", "algorithm": "token_bucket", "limit": 2, "period_secs": 60},
                {"name": "ceiling", "path": "/*", "key": "ip", "algorithm": "token_bucket", "limit": 12, "period_secs": 60}
            ], "role_multipliers": {"api": 5}}"#,
        )
        .unwrap();
        let l = Limiter::new(f);
        let user = Subject {
            ip: "198.51.100.1".into(),
            principal: Some("user:u1".into()),
            multiplier: 1,
        };
        let key = Subject {
            ip: "198.51.100.2".into(),
            principal: Some("key:k1".into()),
            multiplier: 5,
        };
        let mut count = 0;
        while count < 20 && l.check("GET", "/api/v1/org", &user).await.allowed {
            count += 1;
        }
        let user_count = count;
        let mut count = 0;
        while count < 20 && l.check("GET", "/api/v1/org", &key).await.allowed {
            count += 1;
        }
        let key_count = count;
        assert_eq!(user_count, 2);
        assert_eq!(key_count, 10);
        // Many made-up keys from one address: the per-IP ceiling stops them.
        let mut allowed = 0;
        for i in 0..40 {
            let s = Subject {
                ip: "198.51.100.3".into(),
                principal: Some(format!("key:fake{i}")),
                multiplier: 5,
            };
            if l.check("GET", "/api/v1/org", &s).await.allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 12);
    }
}
