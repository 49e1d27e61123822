//! Rate-limit state shared by every server instance, in Redis (`perimeter.redis_url`).
//!
//! Each check is one Lua script run atomically in Redis, with Redis's own clock (`TIME`), so
//! instances with drifting clocks still share one limit. Token buckets are GCRA (one key holding
//! the theoretical arrival time); sliding windows are two counters, the current and the previous
//! window, weighted like the in-process ones. A Redis that does not answer within 250 ms counts
//! as failed; the caller then applies the rule's `on_backend_failure`.
//!
//! A circuit breaker stands in front of Redis: once a call fails, calls fail at once, without a
//! connection attempt or a timeout, for a cool-off (half a second, doubling up to five); then
//! a single call probes and, when it succeeds, the breaker closes. So a Redis outage costs each
//! request nothing: the caller applies the rule's `on_backend_failure` straight away, and the
//! shared limits come back by themselves.
//!
//! IP reputation is shared the same way: each offence is one script that lowers the address's
//! score (recovered with Redis's clock since the last offence) and, below the threshold, records
//! a block in one sorted set that every instance reads each second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

use super::rate_limit::{Algorithm, Rule};

const TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA. KEYS[1] = bucket; ARGV = emission interval (µs), burst. Returns {allowed, remaining,
/// retry_after_µs, reset_µs}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if now < allow_at then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
local remaining = math.floor((now - allow_at) / interval)
return {1, remaining, 0, new_tat - now}
";

/// Sliding window. KEYS[1] = counter prefix; ARGV = period (µs), limit. Same answer shape.
const WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local idx = math.floor(now / period)
local elapsed = now - idx * period
local cur_key = KEYS[1] .. ':' .. idx
local prev = tonumber(redis.call('GET', KEYS[1] .. ':' .. (idx - 1)) or 0)
local cur = tonumber(redis.call('GET', cur_key) or 0)
local estimate = prev * (1 - elapsed / period) + cur
local reset = period - elapsed
if estimate + 1 > limit then
  local retry = reset
  if cur < limit and prev > 0 then
    retry = math.min(reset, math.ceil((estimate + 1 - limit) / prev * period))
  end
  return {0, 0, retry, reset}
end
redis.call('INCR', cur_key)
redis.call('PEXPIRE', cur_key, math.ceil(period * 2 / 1000))
return {1, math.floor(limit - estimate - 1), 0, reset}
";

/// Reputation. KEYS[1] = the address's score hash, KEYS[2] = the blocked set; ARGV = address,
/// cost, recovery per minute, block-below threshold, cool-off (s). Returns {blocked, score ×
/// 1000}: `blocked` is the cool-off when this offence blocked the address, else 0.
const REPUTATION: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ip, cost, recovery = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local below, cooloff = tonumber(ARGV[4]), tonumber(ARGV[5])
local score = tonumber(redis.call('HGET', KEYS[1], 's') or 100)
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
score = math.min(100, score + (now - at) / 60000000 * recovery)
score = math.max(0, score - cost)
local until_at = tonumber(redis.call('ZSCORE', KEYS[2], ip) or 0)
local blocked = 0
if score < below and until_at <= now then
  score = below
  blocked = cooloff
  redis.call('ZADD', KEYS[2], now + cooloff * 1000000, ip)
end
redis.call('HSET', KEYS[1], 's', score, 'at', now)
local idle = cooloff
if recovery > 0 then idle = idle + math.ceil((100 - score) / recovery * 60) end
redis.call('EXPIRE', KEYS[1], idle + 60)
return {blocked, math.floor(score * 1000)}
";

/// The blocks in force. KEYS[1] = the blocked set. Returns {address, seconds left, …}.
const BLOCKED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local rows = redis.call('ZRANGE', KEYS[1], 0, 99999, 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = math.ceil((tonumber(rows[i + 1]) - now) / 1000000)
end
return out
";

/// The breaker's first and longest cool-off.
const FIRST_COOL_OFF: Duration = Duration::from_millis(500);
const MAX_COOL_OFF: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct BreakerState {
    /// Open until then; `None` when closed.
    open_until: Option<Instant>,
    cool_off: Duration,
    /// A call is probing a half-open breaker; the others still fail at once.
    probing: bool,
}

/// The circuit breaker in front of Redis.
#[derive(Debug)]
pub struct Breaker {
    state: std::sync::Mutex<BreakerState>,
    /// Mirrors "open" for readers that must not take the lock (the health page, alerts).
    open: AtomicBool,
}

/// Refused by the open breaker: Redis failed recently and is not asked again yet.
#[derive(Debug, thiserror::Error)]
#[error("Redis is unavailable (circuit open since a recent failure)")]
pub struct CircuitOpen;

impl Breaker {
    fn new() -> Self {
        Self {
            state: std::sync::Mutex::new(BreakerState {
                open_until: None,
                cool_off: FIRST_COOL_OFF,
                probing: false,
            }),
            open: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a call may go to Redis now: always when closed; when open, only once the
    /// cool-off is over, and then only one call at a time (the probe).
    fn admit(&self, now: Instant) -> Result<(), CircuitOpen> {
        let mut s = self.lock();
        match s.open_until {
            None => Ok(()),
            Some(until) if now >= until && !s.probing => {
                s.probing = true;
                Ok(())
            }
            Some(_) => {
                metrics::counter!("redis_circuit_short_circuits_total").increment(1);
                Err(CircuitOpen)
            }
        }
    }

    fn succeeded(&self) {
        let mut s = self.lock();
        if s.open_until.take().is_some() {
            tracing::info!(target: "leadgen::waf", "Redis answers again; shared limits are back");
            metrics::gauge!("redis_circuit_open").set(0.0);
        }
        s.cool_off = FIRST_COOL_OFF;
        s.probing = false;
        self.open.store(false, Ordering::Relaxed);
    }

    fn failed(&self, now: Instant) {
        let mut s = self.lock();
        if s.open_until.is_none() {
            tracing::warn!(target: "leadgen::waf", "Redis failed; the circuit is open and each rule applies its on_backend_failure");
            metrics::counter!("redis_circuit_trips_total").increment(1);
            metrics::gauge!("redis_circuit_open").set(1.0);
        }
        s.open_until = Some(now + s.cool_off);
        s.cool_off = (s.cool_off * 2).min(MAX_COOL_OFF);
        s.probing = false;
        self.open.store(true, Ordering::Relaxed);
    }

    /// Whether the breaker is open (Redis failed and has not answered since).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }
}

pub struct Shared {
    client: redis::Client,
    breaker: Breaker,
    prefix: String,
    conn: Mutex<Option<ConnectionManager>>,
    gcra: redis::Script,
    window: redis::Script,
    reputation: redis::Script,
    blocked: redis::Script,
}

impl Shared {
    /// A backend for `url`; connects on first use, so a Redis that starts later is picked up.
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            breaker: Breaker::new(),
            prefix: prefix.to_string(),
            conn: Mutex::new(None),
            gcra: redis::Script::new(GCRA),
            window: redis::Script::new(WINDOW),
            reputation: redis::Script::new(REPUTATION),
            blocked: redis::Script::new(BLOCKED),
        })
    }

    #[must_use]
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs one call to Redis through the breaker: refused at once while it is open; a failure
    /// opens it and drops the connection, so the probe starts afresh.
    async fn guarded<T, F>(&self, call: F) -> anyhow::Result<T>
    where
        F: Future<Output = anyhow::Result<T>>,
    {
        self.breaker.admit(Instant::now())?;
        match call.await {
            Ok(v) => {
                self.breaker.succeeded();
                Ok(v)
            }
            Err(e) => {
                self.breaker.failed(Instant::now());
                *self.conn.lock().await = None;
                Err(e)
            }
        }
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        // Calls that queued here while another one found Redis gone do not each try again.
        {
            let s = self.breaker.lock();
            if s.open_until.is_some() && !s.probing {
                return Err(CircuitOpen.into());
            }
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_number_of_retries(1);
        let c = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting to Redis timed out"))??;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Lowers the shared score of `ip` by `cost`. Returns the cool-off (seconds) when this
    /// offence blocked the address, and its new score.
    pub async fn penalize(
        &self,
        ip: std::net::IpAddr,
        cost: f64,
        cfg: &super::reputation::ReputationConfig,
    ) -> anyhow::Result<(Option<u64>, f64)> {
        self.guarded(self.penalize_now(ip, cost, cfg)).await
    }

    async fn penalize_now(
        &self,
        ip: std::net::IpAddr,
        cost: f64,
        cfg: &super::reputation::ReputationConfig,
    ) -> anyhow::Result<(Option<u64>, f64)> {
        let mut conn = self.connection().await?;
        let mut invocation = self.reputation.prepare_invoke();
        invocation
            .key(format!("{}:rep:{ip}", self.prefix))
            .key(format!("{}:rep:blocked", self.prefix))
            .arg(ip.to_string())
            .arg(cost)
            .arg(cfg.recovery_per_minute)
            .arg(cfg.block_below)
            .arg(cfg.cooloff_secs);
        let call = invocation.invoke_async::<Vec<i64>>(&mut conn);
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(v)) if v.len() == 2 => {
                let blocked = u64::try_from(v[0]).ok().filter(|s| *s > 0);
                Ok((blocked, v[1] as f64 / 1000.0))
            }
            Ok(Ok(v)) => anyhow::bail!("unexpected answer from the reputation script: {v:?}"),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => anyhow::bail!("Redis did not answer within {TIMEOUT:?}"),
        }
    }

    /// The addresses blocked for their reputation by any instance, with the seconds left.
    pub async fn blocked(&self) -> anyhow::Result<Vec<(std::net::IpAddr, u64)>> {
        self.guarded(self.blocked_now()).await
    }

    async fn blocked_now(&self) -> anyhow::Result<Vec<(std::net::IpAddr, u64)>> {
        let mut conn = self.connection().await?;
        let mut invocation = self.blocked.prepare_invoke();
        invocation.key(format!("{}:rep:blocked", self.prefix));
        let call = invocation.invoke_async::<Vec<redis::Value>>(&mut conn);
        let rows = match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("Redis did not answer within {TIMEOUT:?}"),
        };
        let mut out = Vec::with_capacity(rows.len() / 2);
        for pair in rows.chunks_exact(2) {
            let ip: String = redis::from_redis_value(&pair[0])?;
            let left: i64 = redis::from_redis_value(&pair[1])?;
            if let (Ok(ip), Ok(left)) = (ip.parse(), u64::try_from(left)) {
                out.push((ip, left.max(1)));
            }
        }
        Ok(out)
    }

    /// (allowed, remaining, reset seconds, retry-after seconds), as the in-process stores answer.
    pub async fn check(
        &self,
        rule: &Rule,
        multiplier: u32,
        key: &str,
    ) -> anyhow::Result<(bool, u32, u64, u64)> {
        self.guarded(self.check_now(rule, multiplier, key)).await
    }

    async fn check_now(
        &self,
        rule: &Rule,
        multiplier: u32,
        key: &str,
    ) -> anyhow::Result<(bool, u32, u64, u64)> {
        let mut conn = self.connection().await?;
        let limit = u64::from(rule.limit.saturating_mul(multiplier).max(1));
        let period_us = rule.period_secs.saturating_mul(1_000_000);
        let redis_key = format!("{}:rl:{}:{key}", self.prefix, rule.name);
        let call = async {
            match rule.algorithm {
                Algorithm::TokenBucket => {
                    let burst = u64::from(
                        rule.burst
                            .unwrap_or(rule.limit)
                            .saturating_mul(multiplier)
                            .max(1),
                    );
                    self.gcra
                        .key(&redis_key)
                        .arg((period_us / limit).max(1))
                        .arg(burst)
                        .invoke_async::<Vec<i64>>(&mut conn)
                        .await
                }
                Algorithm::SlidingWindow => {
                    self.window
                        .key(&redis_key)
                        .arg(period_us)
                        .arg(limit)
                        .invoke_async::<Vec<i64>>(&mut conn)
                        .await
                }
            }
        };
        let answer = match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(v)) if v.len() == 4 => v,
            Ok(Ok(v)) => anyhow::bail!("unexpected answer from the rate-limit script: {v:?}"),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => anyhow::bail!("Redis did not answer within {TIMEOUT:?}"),
        };
        let secs = |us: i64| u64::try_from(us).unwrap_or(0).div_ceil(1_000_000);
        Ok((
            answer[0] == 1,
            u32::try_from(answer[1].max(0)).unwrap_or(u32::MAX),
            secs(answer[3]).max(1),
            secs(answer[2]).max(u64::from(answer[0] != 1)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_on_a_failure_lets_one_probe_through_and_closes_on_success() {
        let b = Breaker::new();
        let t0 = Instant::now();
        assert!(b.admit(t0).is_ok());
        b.failed(t0);
        assert!(b.is_open());
        // Within the cool-off every call is refused at once.
        assert!(b.admit(t0 + Duration::from_millis(100)).is_err());
        // After it, one call probes; the others are still refused while it runs.
        let later = t0 + FIRST_COOL_OFF;
        assert!(b.admit(later).is_ok());
        assert!(b.admit(later).is_err());
        // The probe fails: open again for twice as long.
        b.failed(later);
        assert!(b.admit(later + FIRST_COOL_OFF).is_err());
        assert!(b.admit(later + FIRST_COOL_OFF * 2).is_ok());
        b.succeeded();
        assert!(!b.is_open());
        assert!(b.admit(later + FIRST_COOL_OFF * 2).is_ok());
    }

    #[test]
    fn the_cool_off_grows_to_its_ceiling() {
        let b = Breaker::new();
        let mut t = Instant::now();
        for _ in 0..10 {
            b.failed(t);
            t += MAX_COOL_OFF;
        }
        assert_eq!(b.lock().cool_off, MAX_COOL_OFF);
        b.succeeded();
        assert_eq!(b.lock().cool_off, FIRST_COOL_OFF);
    }
}
