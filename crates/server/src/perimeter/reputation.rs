//! IP reputation: a score per client address that drops when the address misbehaves (a WAF block,
//! a failed sign-in, a rate-limit refusal) and recovers with time. Below the threshold the address
//! is refused at the edge for a cool-off period, whatever it asks for. Allow-listed addresses are
//! never scored.
//!
//! Settings are the optional `ip_reputation` section of `waf-rules.json`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What an address did wrong.
#[derive(Debug, Clone, Copy)]
pub enum Offence {
    WafBlock,
    AuthFailure,
    RateLimited,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Penalties {
    #[serde(default = "d_waf")]
    pub waf_block: f64,
    #[serde(default = "d_auth")]
    pub auth_failure: f64,
    #[serde(default = "d_rate")]
    pub rate_limited: f64,
}

fn d_waf() -> f64 {
    20.0
}
fn d_auth() -> f64 {
    5.0
}
fn d_rate() -> f64 {
    2.0
}

impl Default for Penalties {
    fn default() -> Self {
        Self {
            waf_block: d_waf(),
            auth_failure: d_auth(),
            rate_limited: d_rate(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReputationConfig {
    #[serde(default = "d_enabled")]
    pub enabled: bool,
    /// A score below this blocks the address (scores run from 0 to 100, new addresses at 100).
    #[serde(default = "d_threshold")]
    pub block_below: f64,
    /// Points regained per minute of good behaviour.
    #[serde(default = "d_recovery")]
    pub recovery_per_minute: f64,
    /// How long a blocked address stays blocked.
    #[serde(default = "d_cooloff")]
    pub cooloff_secs: u64,
    #[serde(default)]
    pub penalties: Penalties,
}

fn d_enabled() -> bool {
    true
}
fn d_threshold() -> f64 {
    20.0
}
fn d_recovery() -> f64 {
    2.0
}
fn d_cooloff() -> u64 {
    900
}

impl Default for ReputationConfig {
    fn default() -> Self {
        Self {
            enabled: d_enabled(),
            block_below: d_threshold(),
            recovery_per_minute: d_recovery(),
            cooloff_secs: d_cooloff(),
            penalties: Penalties::default(),
        }
    }
}

impl ReputationConfig {
    /// Range checks, with the JSON path of the first bad value.
    pub fn check(&self) -> Result<(), (String, String)> {
        let p = &self.penalties;
        for (path, v) in [
            ("ip_reputation.block_below", self.block_below),
            (
                "ip_reputation.recovery_per_minute",
                self.recovery_per_minute,
            ),
            ("ip_reputation.penalties.waf_block", p.waf_block),
            ("ip_reputation.penalties.auth_failure", p.auth_failure),
            ("ip_reputation.penalties.rate_limited", p.rate_limited),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err((path.into(), "must be between 0 and 100".into()));
            }
        }
        if self.cooloff_secs == 0 {
            return Err((
                "ip_reputation.cooloff_secs".into(),
                "must be greater than 0".into(),
            ));
        }
        Ok(())
    }
}

struct Entry {
    score: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

/// The scores of the addresses seen lately.
#[derive(Default)]
pub struct Reputation {
    entries: Mutex<HashMap<IpAddr, Entry>>,
    /// Blocks read from the shared backend (every instance's), refreshed each second.
    shared_blocks: Mutex<HashMap<IpAddr, Instant>>,
}

impl Reputation {
    fn recovered(cfg: &ReputationConfig, e: &Entry, now: Instant) -> f64 {
        let minutes = now.duration_since(e.at).as_secs_f64() / 60.0;
        (e.score + minutes * cfg.recovery_per_minute).min(100.0)
    }

    /// Seconds the address must still wait, when it is blocked.
    pub fn blocked_for(&self, cfg: &ReputationConfig, ip: IpAddr) -> Option<u64> {
        if !cfg.enabled {
            return None;
        }
        let now = Instant::now();
        let map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let local = map.get(&ip).and_then(|e| e.blocked_until);
        drop(map);
        let shared = self
            .shared_blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&ip)
            .copied();
        let until = local.into_iter().chain(shared).max()?;
        (until > now).then(|| until.duration_since(now).as_secs().max(1))
    }

    /// The cost of `offence` under `cfg`.
    #[must_use]
    pub fn cost(cfg: &ReputationConfig, offence: Offence) -> f64 {
        match offence {
            Offence::WafBlock => cfg.penalties.waf_block,
            Offence::AuthFailure => cfg.penalties.auth_failure,
            Offence::RateLimited => cfg.penalties.rate_limited,
        }
    }

    /// Replaces the shared blocks with what the backend holds now (address, seconds left).
    pub fn set_shared_blocks(&self, blocks: &[(IpAddr, u64)]) {
        let now = Instant::now();
        let fresh: HashMap<IpAddr, Instant> = blocks
            .iter()
            .map(|(ip, left)| (*ip, now + Duration::from_secs(*left)))
            .collect();
        *self
            .shared_blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }

    /// Records one shared block at once (the instance that caused it does not wait for the
    /// next refresh).
    pub fn add_shared_block(&self, ip: IpAddr, secs: u64) {
        self.shared_blocks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ip, Instant::now() + Duration::from_secs(secs));
    }

    /// Lowers the address's score; below the threshold it is blocked for the cool-off period.
    /// Returns whether this offence blocked it.
    pub fn penalize(&self, cfg: &ReputationConfig, ip: IpAddr, offence: Offence) -> bool {
        if !cfg.enabled {
            return false;
        }
        let cost = Self::cost(cfg, offence);
        let now = Instant::now();
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget addresses that have fully recovered, so the map stays small.
        if map.len() > 100_000 {
            map.retain(|_, e| {
                Self::recovered(cfg, e, now) < 100.0 || e.blocked_until.is_some_and(|u| u > now)
            });
        }
        let e = map.entry(ip).or_insert(Entry {
            score: 100.0,
            at: now,
            blocked_until: None,
        });
        let score = (Self::recovered(cfg, e, now) - cost).max(0.0);
        e.score = score;
        e.at = now;
        metrics::histogram!("ip_reputation_scores").record(score);
        if score < cfg.block_below && e.blocked_until.is_none_or(|u| u <= now) {
            e.blocked_until = Some(now + Duration::from_secs(cfg.cooloff_secs));
            // Blocked addresses start their recovery from the threshold once the cool-off ends.
            e.score = cfg.block_below;
            metrics::counter!("ip_reputation_blocks_total").increment(1);
            tracing::warn!(target: "leadgen::waf", client = %ip, score, cooloff_secs = cfg.cooloff_secs, "address blocked for its reputation");
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misbehaviour_blocks_and_good_addresses_are_untouched() {
        let cfg = ReputationConfig::default();
        let r = Reputation::default();
        let bad: IpAddr = "192.0.2.9".parse().unwrap();
        let good: IpAddr = "192.0.2.10".parse().unwrap();
        // 100 → 80 → 60 → 40 → 20: still at the threshold, not below it.
        for _ in 0..4 {
            r.penalize(&cfg, bad, Offence::WafBlock);
            assert!(r.blocked_for(&cfg, bad).is_none());
        }
        r.penalize(&cfg, bad, Offence::WafBlock);
        let wait = r.blocked_for(&cfg, bad).unwrap();
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(r.blocked_for(&cfg, good).is_none());
        // A few failed sign-ins do not block.
        for _ in 0..5 {
            r.penalize(&cfg, good, Offence::AuthFailure);
        }
        assert!(r.blocked_for(&cfg, good).is_none());
        let off = ReputationConfig {
            enabled: false,
            ..ReputationConfig::default()
        };
        assert!(r.blocked_for(&off, bad).is_none());
    }
}
