//! Budgets shared by every instance: one call of `lua/rate_gcra.lua` per request and budget.

use super::call::{self, Reply, ScriptCall};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// A budget: one request every `interval_us` microseconds on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Emission interval in microseconds (1e6 / requests per second), at least 1.
    pub interval_us: u64,
    /// Requests allowed at once, at least 1.
    pub burst: u32,
}

impl Rate {
    /// `per_second` sustained requests, bursts of `burst`.
    pub fn per_second(per_second: u64, burst: u32) -> Self {
        Self {
            interval_us: (1_000_000 / per_second.max(1)).max(1),
            burst: burst.max(1),
        }
    }

    /// `per_minute` sustained requests, bursts of the same size.
    pub fn per_minute(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            interval_us: (60_000_000 / u64::from(per_minute)).max(1),
            burst: per_minute,
        }
    }
}

/// The answer of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; `remaining` more would be allowed right now.
    Allowed {
        /// Requests still allowed at once.
        remaining: u64,
    },
    /// Over budget; nothing counted.
    Refused {
        /// Milliseconds until the next request is allowed.
        retry_after_ms: u64,
    },
}

/// One request against one bucket (rate_gcra.lua).
pub struct TakeCall<'a> {
    /// The bucket's key (a [`super::Keys::rate`] key; one key, so one slot).
    pub key: String,
    /// The budget.
    pub rate: Rate,
    /// Made once per request, so a re-sent call is answered without counting twice.
    pub request_id: &'a str,
}

impl ScriptCall for TakeCall<'_> {
    type Outcome = Verdict;
    // A rate budget: a failover that forgets some spending costs nothing.
    const REPLICATED: bool = false;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.rate_gcra
    }

    fn keys(&self, _: &Keys) -> Vec<String> {
        vec![self.key.clone()]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            self.rate.interval_us.to_string(),
            self.rate.burst.to_string(),
            self.request_id.to_owned(),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<Verdict> {
        Ok(match reply.int(0)? {
            1 => Verdict::Allowed {
                remaining: reply.int(2)?.max(0) as u64,
            },
            0 => Verdict::Refused {
                retry_after_ms: reply.int(1)?.max(1) as u64,
            },
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Takes one request from the bucket `key` (a [`super::Keys::rate`] key). `request_id` is made
/// once per request, so a re-sent call is answered without counting twice.
pub async fn take(
    cache: &Cache,
    key: String,
    rate: Rate,
    request_id: &str,
) -> anyhow::Result<Verdict> {
    call::run(
        cache,
        &TakeCall {
            key,
            rate,
            request_id,
        },
    )
    .await
}
