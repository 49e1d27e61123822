//! Rate-limit state shared by every server instance, in Redis (`perimeter.redis_url`).
//!
//! Each check is one Lua script run atomically in Redis, with Redis's own clock (`TIME`), so
//! instances with drifting clocks still share one limit. Token buckets are GCRA (one key holding
//! the theoretical arrival time); sliding windows are two counters, the current and the previous
//! window, weighted like the in-process ones. A Redis that does not answer within 250 ms counts
//! as failed; the caller then applies the rule's `on_backend_failure`.

use std::time::Duration;

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

pub struct Shared {
    client: redis::Client,
    prefix: String,
    conn: Mutex<Option<ConnectionManager>>,
    gcra: redis::Script,
    window: redis::Script,
}

impl Shared {
    /// A backend for `url`; connects on first use, so a Redis that starts later is picked up.
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: prefix.to_string(),
            conn: Mutex::new(None),
            gcra: redis::Script::new(GCRA),
            window: redis::Script::new(WINDOW),
        })
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
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

    /// (allowed, remaining, reset seconds, retry-after seconds), as the in-process stores answer.
    pub async fn check(
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
            Ok(Err(e)) => {
                // Reconnect next time.
                *self.conn.lock().await = None;
                return Err(e.into());
            }
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
