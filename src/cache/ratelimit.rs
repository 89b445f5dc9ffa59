//! Budgets shared by every instance: `lua/rate_gcra.lua` takes one request (or a batch of them)
//! per call.

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

/// One request against one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeRequest {
    /// The bucket's key (a [`super::Keys::rate`] key).
    pub key: String,
    /// The budget.
    pub rate: Rate,
    /// Made once per request, so a re-sent call is answered without counting twice.
    pub request_id: String,
}

/// One call of rate_gcra.lua: the requests, taken one after another in this order.
pub struct TakeCall<'a> {
    /// At least one request.
    pub requests: &'a [TakeRequest],
}

impl ScriptCall for TakeCall<'_> {
    type Outcome = Vec<Verdict>;
    // A rate budget: a failover that forgets some spending costs nothing.
    const REPLICATED: bool = false;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.rate_gcra
    }

    fn keys(&self, _: &Keys) -> Vec<String> {
        self.requests.iter().map(|r| r.key.clone()).collect()
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.requests.is_empty(), "a rate call needs a request");
        let mut args = Vec::with_capacity(3 * self.requests.len());
        for r in self.requests {
            args.extend([
                r.rate.interval_us.to_string(),
                r.rate.burst.to_string(),
                r.request_id.clone(),
            ]);
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<Vec<Verdict>> {
        reply
            .rows(3)?
            .map(|at| {
                Ok(match reply.int(at)? {
                    1 => Verdict::Allowed {
                        remaining: reply.int(at + 2)?.max(0) as u64,
                    },
                    0 => Verdict::Refused {
                        retry_after_ms: reply.int(at + 1)?.max(1) as u64,
                    },
                    _ => return Err(reply.unknown_status()),
                })
            })
            .collect()
    }
}

/// Takes `requests` in one call of rate_gcra.lua, in their order; one verdict per request.
pub async fn take_all(cache: &Cache, requests: &[TakeRequest]) -> anyhow::Result<Vec<Verdict>> {
    let slot = requests.first().map(|r| super::keys::slot(&r.key));
    anyhow::ensure!(
        requests
            .iter()
            .all(|r| Some(super::keys::slot(&r.key)) == slot),
        "one rate_gcra.lua call takes from buckets of one key slot"
    );
    call::run_each(cache, &TakeCall { requests }, requests.len()).await
}

/// Takes one request from the bucket `key` (a [`super::Keys::rate`] key). `request_id` is made
/// once per request, so a re-sent call is answered without counting twice.
pub async fn take(
    cache: &Cache,
    key: String,
    rate: Rate,
    request_id: &str,
) -> anyhow::Result<Verdict> {
    let request = TakeRequest {
        key,
        rate,
        request_id: request_id.to_owned(),
    };
    let mut verdicts = take_all(cache, std::slice::from_ref(&request)).await?;
    Ok(verdicts.remove(0))
}
