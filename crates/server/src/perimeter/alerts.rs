//! Alerts: threshold rules over the perimeter's security events, delivered to webhooks.
//!
//! The WAF, the IP reputation and the rate limiter report events here. A rule fires when its
//! event's count over the last `window_secs` reaches `threshold`; it then stays quiet for
//! `cooldown_secs` (one alert per incident, not one per request). Each alert goes to every
//! webhook: a Slack-compatible body (`{"text": …}`) or LeadGen's JSON, POSTed with up to three
//! attempts and a growing pause between them. Configured in the `monitoring` section of
//! `waf-rules.json`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Events alerts can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A request blocked by the WAF (attack rules, IP rules, reputation).
    BlockedRequest,
    /// An address blocked for its reputation.
    IpReputationBlock,
    /// A request refused by a rate limit.
    RateLimited,
    /// The shared rate-limit backend failed.
    RateLimitBackendFailure,
    /// An address or principal searched leads past the anomaly baseline.
    LeadSearchAnomaly,
    /// An address or principal exported leads past the anomaly baseline.
    LeadExportAnomaly,
    /// One address sent more requests than `rate_limiting.ddos` allows.
    DdosAttempt,
    /// A wrong second-factor code (TOTP or recovery code).
    MfaFailure,
    /// A card number was masked before it was stored (a note, a lead field, an import row).
    PanMasked,
    /// A vulnerability report still untriaged close to its acknowledgement deadline. Raised
    /// once per report by the disclosure programme, not counted by rules.
    VdpUntriaged,
    /// A data-subject request still open close to its legal deadline. Raised once per request
    /// by the privacy slice, not counted by rules.
    SubjectRequestDue,
    /// A dependency (Redis, the database) stopped answering. Raised once per outage, not
    /// counted by rules.
    DependencyUnavailable,
    /// A backup failed, is overdue, or the last restore proof failed or is overdue. Raised
    /// once per problem by the backup watch, not counted by rules.
    BackupProblem,
    /// An incident was opened (or a high one is still unacknowledged). Raised by the incidents
    /// slice, routed by severity.
    Incident,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Slack,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub format: Format,
    /// Incident severities (`low`, `medium`, `high`) this webhook hears of; empty: all. Other
    /// alerts go to every webhook.
    #[serde(default)]
    pub severities: Vec<Severity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub event: Event,
    pub threshold: u32,
    pub window_secs: u64,
    #[serde(default = "d_cooldown")]
    pub cooldown_secs: u64,
}

fn d_cooldown() -> u64 {
    900
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    #[serde(default)]
    pub alerts: Vec<AlertRule>,
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Baselines for lead searches and exports.
    #[serde(default)]
    pub anomalies: super::anomaly::AnomalyRules,
}

impl Monitoring {
    /// Range and URL checks, with the JSON path of the first bad value.
    pub fn check(&self) -> Result<(), (String, String)> {
        self.anomalies.check()?;
        for (i, a) in self.alerts.iter().enumerate() {
            if a.name.is_empty() || a.threshold == 0 || a.window_secs == 0 {
                return Err((
                    format!("monitoring.alerts[{i}]"),
                    "needs a name, a threshold and a window greater than 0".into(),
                ));
            }
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let ok = url::Url::parse(&w.url)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if !ok {
                return Err((
                    format!("monitoring.webhooks[{i}].url"),
                    "must be an http or https URL".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Recent events and when each rule last fired.
#[derive(Default)]
pub struct Alerts {
    events: Mutex<HashMap<Event, VecDeque<Instant>>>,
    fired: Mutex<HashMap<String, Instant>>,
}

/// An alert ready to send.
#[derive(Debug, Clone)]
pub struct Fired {
    pub rule: String,
    pub event: Event,
    pub count: usize,
    pub window_secs: u64,
    /// What happened, when it is more than a count (one alert about one thing).
    pub detail: Option<String>,
}

impl Alerts {
    /// Counts one event.
    pub fn record(&self, event: Event) {
        let mut map = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = map.entry(event).or_default();
        q.push_back(Instant::now());
        // Bounded: an alert never needs more than a day, or a million events, of history.
        while q.len() > 1_000_000
            || q.front()
                .is_some_and(|t| t.elapsed() > Duration::from_secs(86_400))
        {
            q.pop_front();
        }
    }

    /// The rules that fire now (and start their cooldown).
    pub fn due(&self, rules: &[AlertRule]) -> Vec<Fired> {
        let now = Instant::now();
        let events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut fired = self
            .fired
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::new();
        for r in rules {
            let window = Duration::from_secs(r.window_secs);
            let count = events.get(&r.event).map_or(0, |q| {
                q.iter()
                    .filter(|t| now.duration_since(**t) <= window)
                    .count()
            });
            let quiet = fired
                .get(&r.name)
                .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(r.cooldown_secs));
            if count >= r.threshold as usize && quiet {
                fired.insert(r.name.clone(), now);
                out.push(Fired {
                    rule: r.name.clone(),
                    event: r.event,
                    count,
                    window_secs: r.window_secs,
                    detail: None,
                });
            }
        }
        out
    }
}

fn body(f: &Fired, format: Format, at: &str) -> serde_json::Value {
    let text = f.detail.as_ref().map_or_else(
        || {
            format!(
                "LeadGen alert \"{}\": {} {:?} events in the last {} s",
                f.rule, f.count, f.event, f.window_secs
            )
        },
        |d| format!("LeadGen alert \"{}\": {d}", f.rule),
    );
    match format {
        Format::Slack => serde_json::json!({ "text": text }),
        Format::Json => serde_json::json!({
            "source": "leadgen", "alert": f.rule, "event": f.event_name(), "count": f.count,
            "window_secs": f.window_secs, "at": at, "message": text,
        }),
    }
}

impl Fired {
    fn event_name(&self) -> &'static str {
        match self.event {
            Event::BlockedRequest => "blocked_request",
            Event::IpReputationBlock => "ip_reputation_block",
            Event::RateLimited => "rate_limited",
            Event::RateLimitBackendFailure => "rate_limit_backend_failure",
            Event::LeadSearchAnomaly => "lead_search_anomaly",
            Event::LeadExportAnomaly => "lead_export_anomaly",
            Event::DdosAttempt => "ddos_attempt",
            Event::MfaFailure => "mfa_failure",
            Event::VdpUntriaged => "vdp_untriaged",
            Event::SubjectRequestDue => "subject_request_due",
            Event::DependencyUnavailable => "dependency_unavailable",
            Event::BackupProblem => "backup_problem",
            Event::Incident => "incident",
            Event::PanMasked => "pan_masked",
        }
    }
}

/// Sends one alert to one webhook: up to three attempts, 1 s then 2 s apart.
pub async fn deliver(http: &reqwest::Client, hook: &Webhook, f: &Fired, at: &str) -> bool {
    let payload = body(f, hook.format, at);
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        match http.post(&hook.url).json(&payload).send().await {
            Ok(r) if r.status().is_success() => {
                metrics::counter!("alerts_sent_total", "alert" => f.rule.clone()).increment(1);
                tracing::info!(alert = %f.rule, attempt, "alert delivered");
                return true;
            }
            Ok(r) => {
                tracing::warn!(alert = %f.rule, status = %r.status(), attempt, "alert webhook refused")
            }
            Err(e) => {
                tracing::warn!(alert = %f.rule, error = %e, attempt, "alert webhook unreachable")
            }
        }
    }
    metrics::counter!("alerts_failed_total", "alert" => f.rule.clone()).increment(1);
    tracing::error!(alert = %f.rule, "alert not delivered after 3 attempts");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_fires_once_per_cooldown() {
        let a = Alerts::default();
        let rules = vec![AlertRule {
            name: "blocks".into(),
            event: Event::BlockedRequest,
            threshold: 3,
            window_secs: 60,
            cooldown_secs: 600,
        }];
        a.record(Event::BlockedRequest);
        a.record(Event::BlockedRequest);
        assert!(a.due(&rules).is_empty());
        a.record(Event::RateLimited);
        assert!(a.due(&rules).is_empty(), "other events do not count");
        a.record(Event::BlockedRequest);
        let fired = a.due(&rules);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].count, 3);
        a.record(Event::BlockedRequest);
        assert!(a.due(&rules).is_empty(), "cooldown");
        let slack = body(&fired[0], Format::Slack, "now");
        assert!(slack["text"].as_str().unwrap().contains("blocks"));
    }
}
