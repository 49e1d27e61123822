//! Flood detection (`rate_limiting.ddos` of `waf-rules.json`): more than `requests` from one
//! address within `window_secs` blocks that address for `block_secs`.
//!
//! Memory is constant per address — two counters, not a timestamp per request — because the
//! addresses that reach this code are exactly the ones sending the most: a list of instants
//! would let a flood from many addresses grow it without bound. The count is the weighted
//! two-window estimate (the previous window's count, scaled by how much of it still overlaps
//! the sliding window, plus the current one), the same estimate the sliding-window rate limits
//! use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::rate_limit::Ddos;

/// What one request meets.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// This request crossed the threshold: the block starts now.
    Crossed {
        retry_after: u64,
    },
    /// Already blocked.
    Blocked {
        retry_after: u64,
    },
}

#[derive(Clone, Copy)]
struct Counter {
    window: u64,
    current: u32,
    previous: u32,
}

/// Per-address counters and blocks.
pub struct Flood {
    epoch: Instant,
    /// The counters, and the window index of their last sweep.
    counters: Mutex<(HashMap<IpAddr, Counter>, u64)>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl Default for Flood {
    fn default() -> Self {
        Self::new(Instant::now())
    }
}

impl Flood {
    #[must_use]
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            counters: Mutex::default(),
            blocked: Mutex::default(),
        }
    }

    /// Counts one request of `ip` at `now`.
    pub fn observe(&self, ip: IpAddr, rule: &Ddos, now: Instant) -> Verdict {
        {
            let mut blocked = self
                .blocked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(until) = blocked.get(&ip).copied() {
                if until > now {
                    return Verdict::Blocked {
                        retry_after: until.duration_since(now).as_secs().max(1),
                    };
                }
                blocked.remove(&ip);
            }
        }
        let width = rule.window_secs.max(1);
        let elapsed = now.saturating_duration_since(self.epoch);
        let window = elapsed.as_secs() / width;
        let into = (elapsed.as_secs_f64() - (window * width) as f64) / width as f64;
        let mut guard = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (counters, swept) = &mut *guard;
        // Once per window, forget addresses idle for two windows.
        if *swept != window {
            *swept = window;
            counters.retain(|_, c| c.window + 1 >= window);
        }
        let c = counters.entry(ip).or_insert(Counter {
            window,
            current: 0,
            previous: 0,
        });
        if c.window != window {
            c.previous = if c.window + 1 == window { c.current } else { 0 };
            c.current = 0;
            c.window = window;
        }
        c.current = c.current.saturating_add(1);
        let estimate = f64::from(c.previous) * (1.0 - into) + f64::from(c.current);
        if estimate <= f64::from(rule.requests) {
            return Verdict::Allowed;
        }
        counters.remove(&ip);
        drop(guard);
        let until = now + Duration::from_secs(rule.block_secs);
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ip, until);
        Verdict::Crossed {
            retry_after: rule.block_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Ddos {
        Ddos {
            requests: 10,
            window_secs: 10,
            block_secs: 60,
        }
    }

    #[test]
    fn past_the_threshold_one_address_is_blocked_and_another_is_not() {
        let t0 = Instant::now();
        let f = Flood::new(t0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for i in 0..10 {
            assert_eq!(
                f.observe(a, &rule(), t0 + Duration::from_millis(i)),
                Verdict::Allowed
            );
        }
        assert_eq!(
            f.observe(a, &rule(), t0 + Duration::from_millis(20)),
            Verdict::Crossed { retry_after: 60 }
        );
        assert!(matches!(
            f.observe(a, &rule(), t0 + Duration::from_secs(30)),
            Verdict::Blocked { retry_after: 30 }
        ));
        assert_eq!(
            f.observe(b, &rule(), t0 + Duration::from_secs(30)),
            Verdict::Allowed
        );
        // After the block, the address starts afresh.
        assert_eq!(
            f.observe(a, &rule(), t0 + Duration::from_secs(61)),
            Verdict::Allowed
        );
    }

    #[test]
    fn a_steady_rate_under_the_threshold_never_trips_it() {
        let t0 = Instant::now();
        let f = Flood::new(t0);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        // 8 requests every 10 s, evenly spread, for five minutes (the estimate may run one
        // request over the true count at a window boundary, never more).
        for i in 0..240u64 {
            let at = t0 + Duration::from_millis(i * 10_000 / 8);
            assert_eq!(f.observe(a, &rule(), at), Verdict::Allowed, "request {i}");
        }
    }

    #[test]
    fn a_burst_straddling_a_window_boundary_is_caught() {
        let t0 = Instant::now();
        let f = Flood::new(t0);
        let a: IpAddr = "192.0.2.9".parse().unwrap();
        for i in 0..8 {
            assert_eq!(
                f.observe(a, &rule(), t0 + Duration::from_millis(9_500 + i)),
                Verdict::Allowed
            );
        }
        let mut crossed = false;
        for i in 0..8 {
            if f.observe(a, &rule(), t0 + Duration::from_millis(10_100 + i)) != Verdict::Allowed {
                crossed = true;
            }
        }
        assert!(crossed, "16 requests within a second exceed 10 per 10 s");
    }
}
