//! The whole coupon saga in one call (coupon_claim.lua): the user's coupon-issue budget, the
//! first-come issue in the campaign's bucket and the grant into the user's bucket, where Redis
//! lets one script touch both buckets ([`super::Cache::one_call`]). Elsewhere the same steps are
//! three calls: [`super::ratelimit`], [`super::coupons`] and [`super::user_coupons`].

use super::call::{self, Reply, ScriptCall};
use super::coupons::{issue_outcome, name_holder, IssueOutcome, IssueRequest};
use super::keys::Bucket;
use super::ratelimit::TakeRequest;
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// One request of the saga: the issue request and what it takes from the user's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// Who asks for which campaign, with its ids fixed before the first send.
    pub issue: IssueRequest,
    /// The request against the user's coupon-issue budget (a key in the user's bucket).
    pub budget: TakeRequest,
}

/// What coupon_claim.lua decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// Over the user's budget: nothing was issued.
    Throttled {
        /// Milliseconds until the next request is allowed.
        retry_after_ms: u64,
    },
    /// Within the budget: the issue's outcome (an issued or held coupon is in the user's
    /// bucket too).
    Decided(IssueOutcome),
}

/// One call of coupon_claim.lua: the requests, decided one after another in this order.
pub struct ClaimCall<'a> {
    /// The deployment's bucket count (the script makes ids `n × B + bucket`).
    pub buckets: u16,
    /// The campaigns' bucket.
    pub bucket: Bucket,
    /// At least one request, every campaign of `bucket`.
    pub requests: &'a [ClaimRequest],
}

impl ScriptCall for ClaimCall<'_> {
    type Outcome = Vec<ClaimOutcome>;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.coupon_claim
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let mut keys = Vec::with_capacity(3 + 6 * self.requests.len());
        keys.extend([
            k.user_coupon_seq(self.bucket),
            k.events(self.bucket),
            k.coupon_owners(self.bucket),
        ]);
        for r in self.requests {
            let (coupon_id, user_id) = (r.issue.coupon_id, r.issue.user_id);
            keys.extend([
                k.coupon(coupon_id),
                k.coupon_users(coupon_id),
                r.budget.key.clone(),
                k.user_coupon_index(k.of_user(user_id)),
                k.user_coupon(coupon_id, user_id),
                k.user_coupons(user_id),
            ]);
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.requests.is_empty(), "a claim call needs a request");
        let mut args = Vec::with_capacity(2 + 8 * self.requests.len());
        args.extend([self.buckets.to_string(), self.bucket.0.to_string()]);
        for r in self.requests {
            let (issue, budget) = (&r.issue, &r.budget);
            args.extend([
                issue.user_id.to_string(),
                issue.request_id.clone(),
                issue.now_ms.to_string(),
                issue.event_id.clone(),
                issue.coupon_id.to_string(),
                budget.rate.interval_us.to_string(),
                budget.rate.burst.to_string(),
                budget.request_id.clone(),
            ]);
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<Vec<ClaimOutcome>> {
        reply
            .rows(5)?
            .map(|at| match reply.int(at)? {
                -9 => Ok(ClaimOutcome::Throttled {
                    retry_after_ms: reply.int(at + 1)?.max(1) as u64,
                }),
                _ => Ok(ClaimOutcome::Decided(issue_outcome(&reply, at)?)),
            })
            .collect()
    }
}

/// Decides `requests` (campaigns of one bucket) in one call of coupon_claim.lua, in their order;
/// one outcome per request. The caller has made sure Redis allows the call
/// ([`Cache::one_call`]).
pub async fn claim_all(
    cache: &Cache,
    requests: &[ClaimRequest],
) -> anyhow::Result<Vec<ClaimOutcome>> {
    let first = requests.first().map_or(0, |r| r.issue.coupon_id);
    let bucket = cache.keys.of_campaign(first);
    anyhow::ensure!(
        requests.iter().all(|r| {
            let user = cache.keys.of_user(r.issue.user_id);
            cache.keys.of_campaign(r.issue.coupon_id) == bucket && cache.one_call(&[bucket, user])
        }),
        "one coupon_claim.lua call decides campaigns of one bucket, for users Redis lets it reach"
    );
    let call = ClaimCall {
        buckets: cache.keys.bucket_count(),
        bucket,
        requests,
    };
    let mut outcomes = call::run_each(cache, &call, requests.len()).await?;
    for (outcome, request) in outcomes.iter_mut().zip(requests) {
        if let ClaimOutcome::Decided(issue) = outcome {
            name_holder(issue, &request.issue);
        }
    }
    Ok(outcomes)
}
