//! Coupon campaigns in their buckets: terms, the first-come issue script (step 1 of the coupon
//! saga) and the holders it recorded; the holders' side is in [`super::user_coupons`].

use fred::prelude::*;

use super::call::{self, Reply, ScriptCall};
use super::keys::Bucket;
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

pub use super::user_coupons::{
    grant_all, held_by, owner_of, GrantCall, HeldCoupon, IssuedCoupon, Owner,
};

/// A campaign's terms as the issue script needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignTerms {
    /// The campaign (MySQL `coupons.id`), also its key's id.
    pub coupon_id: i64,
    /// Coupons in total.
    pub total: i64,
    /// Issue window start, Unix ms (inclusive).
    pub starts_ms: i64,
    /// Issue window end, Unix ms (exclusive).
    pub ends_ms: i64,
    /// Validity after issue, ms.
    pub valid_ms: i64,
}

/// One load of a campaign's terms (coupon_load.lua); the reply is the issued count held.
pub struct LoadCall<'a> {
    /// The terms to hold.
    pub terms: &'a CampaignTerms,
    /// Issued count to start from when Redis does not know the campaign yet.
    pub issued_if_new: i64,
}

impl ScriptCall for LoadCall<'_> {
    type Outcome = i64;
    // A cache of MySQL's campaign terms: lost in a failover, it is loaded again.
    const REPLICATED: bool = false;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.coupon_load
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        vec![k.coupon(self.terms.coupon_id)]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok([
            self.terms.total,
            self.terms.starts_ms,
            self.terms.ends_ms,
            self.terms.valid_ms,
            self.issued_if_new,
        ]
        .iter()
        .map(i64::to_string)
        .collect())
    }

    fn decode(reply: Reply) -> anyhow::Result<i64> {
        reply.int(0)
    }
}

/// Loads a campaign into Redis (terms overwritten, issued count kept if present, else
/// `issued_if_new`); returns the issued count held.
pub async fn load(cache: &Cache, terms: &CampaignTerms, issued_if_new: i64) -> anyhow::Result<i64> {
    call::run(
        cache,
        &LoadCall {
            terms,
            issued_if_new,
        },
    )
    .await
}

/// What coupon_issue.lua decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Issued now (or a replay of this very request).
    Issued {
        /// The coupon, to grant into the holder's bucket.
        coupon: IssuedCoupon,
        /// Coupons still to issue after this one (for the answer and the gauge).
        remaining: i64,
    },
    /// The user already holds one (given, so a retry can repair a grant a crash cut off).
    AlreadyIssued(IssuedCoupon),
    /// Outside the issue window.
    NotActive,
    /// Every coupon of the campaign is issued: the first-come event is over.
    SoldOut,
    /// Redis does not hold the campaign.
    NotLoaded,
}

/// One first-come issue request: who asks for which campaign, with the ids fixed before the
/// first send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// The campaign (MySQL `coupons.id`) the coupon belongs to.
    pub coupon_id: i64,
    /// The user asking for a coupon (at most one per campaign).
    pub user_id: i64,
    /// Request id (a re-send answers the first success).
    pub request_id: String,
    /// Decision time, Unix ms.
    pub now_ms: i64,
    /// Event id of `coupon.issued`, should this request win a coupon.
    pub event_id: String,
}

impl IssueRequest {
    /// A request of `user_id` for `coupon_id` at `now_ms`, with a fresh event id.
    pub fn new(coupon_id: i64, user_id: i64, request_id: String, now_ms: i64) -> Self {
        Self {
            coupon_id,
            user_id,
            request_id,
            now_ms,
            event_id: uuid::Uuid::now_v7().to_string(),
        }
    }
}

/// One call of coupon_issue.lua: the requests, decided one after another in this order.
pub struct IssueCall<'a> {
    /// The deployment's bucket count (the script makes ids `n × B + bucket`).
    pub buckets: u16,
    /// The campaigns' bucket.
    pub bucket: Bucket,
    /// At least one request.
    pub requests: &'a [IssueRequest],
}

impl ScriptCall for IssueCall<'_> {
    type Outcome = Vec<IssueOutcome>;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.coupon_issue
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let mut keys = Vec::with_capacity(3 + 2 * self.requests.len());
        let bucket = k.of_campaign(self.requests.first().map_or(0, |r| r.coupon_id));
        keys.extend([
            k.user_coupon_seq(bucket),
            k.events(bucket),
            k.coupon_owners(bucket),
        ]);
        for r in self.requests {
            keys.extend([k.coupon(r.coupon_id), k.coupon_users(r.coupon_id)]);
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.requests.is_empty(), "an issue call needs a request");
        let mut args = Vec::with_capacity(2 + 5 * self.requests.len());
        args.extend([self.buckets.to_string(), self.bucket.0.to_string()]);
        for r in self.requests {
            args.extend([
                r.user_id.to_string(),
                r.request_id.clone(),
                r.now_ms.to_string(),
                r.event_id.clone(),
                r.coupon_id.to_string(),
            ]);
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<Vec<IssueOutcome>> {
        reply.rows(5)?.map(|at| issue_outcome(&reply, at)).collect()
    }
}

/// The outcome in the five elements of `reply` from `at` on (`{status, userCouponId,
/// issuedAtMs, expiresAtMs, remaining}`, lib/coupon_issue.lua); the coupon's campaign and holder
/// are the caller's to fill in.
pub(super) fn issue_outcome(reply: &Reply, at: usize) -> anyhow::Result<IssueOutcome> {
    let coupon = || -> anyhow::Result<IssuedCoupon> {
        Ok(IssuedCoupon {
            user_coupon_id: reply.int(at + 1)?,
            coupon_id: 0,
            user_id: 0,
            issued_at_ms: reply.int(at + 2)?,
            expires_at_ms: reply.int(at + 3)?,
        })
    };
    Ok(match reply.int(at)? {
        1 => IssueOutcome::Issued {
            coupon: coupon()?,
            remaining: reply.int(at + 4)?,
        },
        -1 => IssueOutcome::AlreadyIssued(coupon()?),
        -2 => IssueOutcome::NotActive,
        -3 => IssueOutcome::SoldOut,
        -4 => IssueOutcome::NotLoaded,
        _ => return Err(reply.unknown_status()),
    })
}

/// Fills in an issued or held coupon's campaign and holder from the request it answers.
pub(super) fn name_holder(outcome: &mut IssueOutcome, request: &IssueRequest) {
    if let IssueOutcome::Issued { coupon, .. } | IssueOutcome::AlreadyIssued(coupon) = outcome {
        coupon.coupon_id = request.coupon_id;
        coupon.user_id = request.user_id;
    }
}

/// Decides `requests` in one call of coupon_issue.lua, in their order; one outcome per request.
pub async fn issue_all(
    cache: &Cache,
    requests: &[IssueRequest],
) -> anyhow::Result<Vec<IssueOutcome>> {
    let first = requests.first().map_or(0, |r| r.coupon_id);
    let bucket = cache.keys.of_campaign(first);
    anyhow::ensure!(
        requests
            .iter()
            .all(|r| cache.keys.of_campaign(r.coupon_id) == bucket),
        "one coupon_issue.lua call decides campaigns of one bucket"
    );
    let call = IssueCall {
        requests,
        buckets: cache.keys.bucket_count(),
        bucket,
    };
    let mut outcomes = call::run_each(cache, &call, requests.len()).await?;
    for (outcome, request) in outcomes.iter_mut().zip(requests) {
        name_holder(outcome, request);
    }
    Ok(outcomes)
}

/// Issues a coupon to one user (coupon_issue.lua) and grants it into the user's bucket
/// (coupon_grant.lua): both steps of the saga, one request at a time.
pub async fn issue(
    cache: &Cache,
    coupon_id: i64,
    user_id: i64,
    request_id: &str,
    now_ms: i64,
) -> anyhow::Result<IssueOutcome> {
    let request = IssueRequest::new(coupon_id, user_id, request_id.to_owned(), now_ms);
    let outcome = issue_all(cache, std::slice::from_ref(&request))
        .await?
        .remove(0);
    if let IssueOutcome::Issued { coupon, .. } | IssueOutcome::AlreadyIssued(coupon) = outcome {
        grant_all(cache, &[coupon]).await?;
    }
    Ok(outcome)
}

/// Issued counts of many campaigns (`None` where Redis does not hold the campaign), in one
/// round trip (a pipeline of HGETs).
pub async fn issued_counts(cache: &Cache, coupon_ids: &[i64]) -> anyhow::Result<Vec<Option<i64>>> {
    match coupon_ids {
        [] => Ok(Vec::new()),
        [one] => {
            let issued: Option<i64> = cache
                .client()
                .hget(cache.keys.coupon(*one), "issued")
                .await?;
            Ok(vec![issued])
        }
        many => {
            let pipeline = cache.client().pipeline();
            for id in many {
                let () = pipeline.hget(cache.keys.coupon(*id), "issued").await?;
            }
            let replies: Vec<Value> = pipeline.all().await?;
            replies
                .into_iter()
                .map(|reply| Ok(reply.convert::<Option<i64>>()?))
                .collect()
        }
    }
}

/// The coupon of `user_id` from campaign `coupon_id` as the campaign's bucket recorded it at
/// issue (to repair a grant a crash cut off); `None` if the user holds none.
pub async fn issued_to(
    cache: &Cache,
    coupon_id: i64,
    user_id: i64,
) -> anyhow::Result<Option<IssuedCoupon>> {
    let held: Option<String> = cache
        .client()
        .hget(cache.keys.coupon_users(coupon_id), user_id)
        .await?;
    let Some(held) = held else {
        return Ok(None);
    };
    let mut parts = held.split('|');
    let mut number = || -> anyhow::Result<i64> {
        parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| {
            anyhow::anyhow!("damaged holder record of campaign {coupon_id}: {held:?}")
        })
    };
    Ok(Some(IssuedCoupon {
        user_coupon_id: number()?,
        coupon_id,
        user_id,
        issued_at_ms: number()?,
        expires_at_ms: number()?,
    }))
}
