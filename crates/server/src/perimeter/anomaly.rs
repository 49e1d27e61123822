//! Anomaly detection on lead searches and exports (Security Policy: "repeated lead searches from
//! one IP address"). Each search or export counts against both the client address and the
//! principal (user or API key). Past the rule's baseline within its window, that address or
//! principal is throttled for `throttle_secs` (429 `anomaly_throttled`), a warning is logged and an
//! event is raised for the alert rules (`lead_search_anomaly`, `lead_export_anomaly`).
//!
//! The baseline is a fixed number per window, set in `monitoring.anomalies` of `waf-rules.json`:
//! what a person working a list does in that time, far below what scraping the database takes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRule {
    /// For people reading the file.
    #[serde(default)]
    pub description: String,
    /// Path patterns (`/exact` or `/prefix*`) of GET requests that count.
    pub paths: Vec<String>,
    /// Requests allowed per window, per address and per principal.
    pub baseline: u32,
    pub window_secs: u64,
    /// How long an address or principal past the baseline is refused.
    pub throttle_secs: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRules {
    #[serde(default)]
    pub searches: Option<AnomalyRule>,
    #[serde(default)]
    pub exports: Option<AnomalyRule>,
}

impl AnomalyRules {
    pub fn check(&self) -> Result<(), (String, String)> {
        for (name, rule) in [("searches", &self.searches), ("exports", &self.exports)] {
            let Some(r) = rule else { continue };
            let at = format!("monitoring.anomalies.{name}");
            if r.baseline == 0 || r.window_secs == 0 || r.throttle_secs == 0 {
                return Err((
                    at,
                    "baseline, window_secs and throttle_secs must be greater than 0".into(),
                ));
            }
            if let Some((i, p)) = r
                .paths
                .iter()
                .enumerate()
                .find(|(_, p)| !super::valid_pattern(p))
            {
                return Err((
                    format!("{at}.paths[{i}]"),
                    format!("{p:?} is not /exact or /prefix*"),
                ));
            }
        }
        Ok(())
    }

    /// The rule a GET of `path` counts against.
    #[must_use]
    pub fn classify(&self, path: &str) -> Option<(Kind, &AnomalyRule)> {
        let matches = |r: &&AnomalyRule| r.paths.iter().any(|p| super::path_matches(p, path));
        // Exports first: their paths may sit under the searches' prefix.
        if let Some(r) = self.exports.as_ref().filter(matches) {
            return Some((Kind::Export, r));
        }
        self.searches
            .as_ref()
            .filter(matches)
            .map(|r| (Kind::Search, r))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Search,
    Export,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::Export => "export",
        }
    }
}

/// What one request meets.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// This request crossed the baseline for `key`: throttling starts now.
    Crossed {
        key: String,
        retry_after: u64,
    },
    /// Already throttled.
    Throttled {
        retry_after: u64,
    },
}

/// Recent requests and current throttles, per (kind, key).
#[derive(Default)]
pub struct Anomalies {
    seen: Mutex<HashMap<(Kind, String), VecDeque<Instant>>>,
    throttled: Mutex<HashMap<(Kind, String), Instant>>,
}

impl Anomalies {
    /// Counts a request of `kind` against each key (the address, the principal).
    pub fn observe(
        &self,
        kind: Kind,
        rule: &AnomalyRule,
        keys: &[String],
        now: Instant,
    ) -> Verdict {
        let mut throttled = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        throttled.retain(|_, until| *until > now);
        if let Some(until) = keys
            .iter()
            .filter_map(|k| throttled.get(&(kind, k.clone())))
            .max()
        {
            return Verdict::Throttled {
                retry_after: until.duration_since(now).as_secs().max(1),
            };
        }
        let window = Duration::from_secs(rule.window_secs);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Keys idle for a whole window are forgotten, so memory follows active clients only.
        seen.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        let mut crossed = Vec::new();
        for k in keys {
            let q = seen.entry((kind, k.clone())).or_default();
            q.push_back(now);
            while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
                q.pop_front();
            }
            if q.len() > rule.baseline as usize {
                crossed.push(k.clone());
            }
        }
        if crossed.is_empty() {
            return Verdict::Allowed;
        }
        // Every key past its baseline is throttled: the address and, when it too, the principal.
        let until = now + Duration::from_secs(rule.throttle_secs);
        for k in &crossed {
            seen.remove(&(kind, k.clone()));
            throttled.insert((kind, k.clone()), until);
        }
        Verdict::Crossed {
            key: crossed.join(", "),
            retry_after: rule.throttle_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_baseline_a_key_is_throttled_for_its_time_and_others_are_not() {
        let rule = AnomalyRule {
            description: String::new(),
            paths: vec!["/api/v1/leads*".into()],
            baseline: 3,
            window_secs: 60,
            throttle_secs: 30,
        };
        let a = Anomalies::default();
        let t0 = Instant::now();
        let keys = ["ip:10.0.0.1".to_string(), "user:u1".to_string()];
        for i in 0..3 {
            assert_eq!(
                a.observe(Kind::Search, &rule, &keys, t0 + Duration::from_secs(i)),
                Verdict::Allowed
            );
        }
        assert!(matches!(
            a.observe(Kind::Search, &rule, &keys, t0 + Duration::from_secs(3)),
            Verdict::Crossed { .. }
        ));
        assert!(matches!(
            a.observe(Kind::Search, &rule, &keys, t0 + Duration::from_secs(10)),
            Verdict::Throttled { retry_after: 23 }
        ));
        // Another user from another address is unaffected; exports count apart.
        let other = ["ip:10.0.0.2".to_string(), "user:u2".to_string()];
        assert_eq!(
            a.observe(Kind::Search, &rule, &other, t0 + Duration::from_secs(10)),
            Verdict::Allowed
        );
        assert_eq!(
            a.observe(Kind::Export, &rule, &keys, t0 + Duration::from_secs(10)),
            Verdict::Allowed
        );
        // After the throttle, a fresh window.
        assert_eq!(
            a.observe(Kind::Search, &rule, &keys, t0 + Duration::from_secs(40)),
            Verdict::Allowed
        );
        // Spread out below the baseline per window: never throttled.
        let b = Anomalies::default();
        for i in 0..20 {
            assert_eq!(
                b.observe(Kind::Search, &rule, &keys, t0 + Duration::from_secs(i * 30)),
                Verdict::Allowed
            );
        }
    }
}
