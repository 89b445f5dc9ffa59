//! First-come coupons: campaigns (admin), issue (one Lua decision), and a user's coupons.

use chrono::{DateTime, Utc};

use crate::cache::coupon_claim::{self, ClaimOutcome, ClaimRequest};
use crate::cache::coupons::{self as hot, CampaignTerms, IssueOutcome, IssueRequest, IssuedCoupon};
use crate::cache::per_bucket::PerBucket;
use crate::cache::Cache;
use crate::config::RedisConfig;
use crate::domain::UserId;
use crate::error::AppError;
use crate::events::{at_millis, CouponStatus};
use crate::service::throttle::{self, Budget};
use crate::state::AppState;
use crate::store::coupons::{self as stored, CampaignRow};

/// A campaign with its live remaining quantity.
pub struct CampaignView {
    /// Stored terms.
    pub campaign: CampaignRow,
    /// Coupons left (Redis's count).
    pub remaining: i64,
}

/// A coupon issued now.
pub struct Issued {
    /// Id of the coupon just issued (the API's `userCouponId`), used to apply it to an order.
    pub user_coupon_id: i64,
    /// The campaign it was issued from.
    pub coupon_id: i64,
    /// When it stops being usable: issue time plus the campaign's valid days.
    pub expires_at: DateTime<Utc>,
}

/// A coupon a user holds, with its effective status.
pub struct HeldView {
    /// Id of the held coupon (the API's `userCouponId`).
    pub user_coupon_id: i64,
    /// The campaign it was issued from.
    pub coupon_id: i64,
    /// Display name of that campaign, read from MySQL; empty if the campaign is gone.
    pub name: String,
    /// AVAILABLE, RESERVED, USED or EXPIRED.
    pub status: String,
    /// When it stops being usable; an AVAILABLE coupon past it is reported as EXPIRED.
    pub expires_at: DateTime<Utc>,
}

fn terms(c: &CampaignRow) -> CampaignTerms {
    CampaignTerms {
        coupon_id: c.id,
        total: c.total_quantity,
        starts_ms: c.issue_starts_at.timestamp_millis(),
        ends_ms: c.issue_ends_at.timestamp_millis(),
        valid_ms: i64::from(c.valid_days) * 86_400_000,
    }
}

/// Creates a campaign in MySQL and loads it into Redis.
pub async fn create_campaign(state: &AppState, campaign: CampaignRow) -> Result<i64, AppError> {
    let id = stored::insert(&state.db, &campaign, state.clock.now()).await?;
    hot::load(&state.cache, &terms(&CampaignRow { id, ..campaign }), 0).await?;
    Ok(id)
}

/// Loads a campaign Redis does not hold, counting what MySQL has issued; unknown → 404.
async fn load_campaign(state: &AppState, coupon_id: i64) -> Result<CampaignRow, AppError> {
    let campaign = stored::find(&state.db, coupon_id)
        .await?
        .ok_or(AppError::CouponNotFound)?;
    let issued = stored::issued_count(&state.db, coupon_id).await?;
    hot::load(&state.cache, &terms(&campaign), issued).await?;
    Ok(campaign)
}

/// The newest campaigns with their remaining quantities.
pub async fn list(state: &AppState) -> Result<Vec<CampaignView>, AppError> {
    let campaigns = stored::list(&state.db, 100).await?;
    let ids: Vec<i64> = campaigns.iter().map(|c| c.id).collect();
    let counts = hot::issued_counts(&state.cache, &ids).await?;
    let mut views = Vec::with_capacity(campaigns.len());
    for (campaign, issued) in campaigns.into_iter().zip(counts) {
        let issued = match issued {
            Some(n) => n,
            None => {
                let stored = stored::issued_count(&state.db, campaign.id).await?;
                hot::load(&state.cache, &terms(&campaign), stored).await?
            }
        };
        let remaining = (campaign.total_quantity - issued).max(0);
        views.push(CampaignView {
            campaign,
            remaining,
        });
    }
    Ok(views)
}

/// Group commit of coupon-issue requests: concurrent requests share one call of
/// coupon_issue.lua (see [`crate::cache::batch`]).
pub type IssueBatcher = PerBucket<IssueRequest, IssueOutcome>;

/// Grants of issued coupons into their holders' buckets, gathered per bucket (coupon_grant.lua).
pub type GrantBatcher = PerBucket<IssuedCoupon, bool>;

/// Starts this instance's issue batchers (one per campaign bucket): concurrent issue requests
/// of one bucket become one coupon_issue.lua call.
pub fn issue_batcher(cache: &Cache, redis: &RedisConfig) -> IssueBatcher {
    PerBucket::on_cache(
        "coupon_issue.lua",
        cache,
        redis,
        |cache, _, requests| async move { hot::issue_all(&cache, &requests).await },
    )
}

/// Starts this instance's grant batchers (one per user bucket).
pub fn grant_batcher(cache: &Cache, redis: &RedisConfig) -> GrantBatcher {
    PerBucket::on_cache(
        "coupon_grant.lua",
        cache,
        redis,
        |cache, _, coupons| async move { hot::grant_all(&cache, &coupons).await },
    )
}

/// Group commit of whole coupon sagas, one coupon_claim.lua call per batch.
pub type ClaimBatcher = PerBucket<ClaimRequest, ClaimOutcome>;

/// Starts this instance's claim batchers (one per campaign bucket).
pub fn claim_batcher(cache: &Cache, redis: &RedisConfig) -> ClaimBatcher {
    PerBucket::on_cache(
        "coupon_claim.lua",
        cache,
        redis,
        |cache, _, requests| async move { coupon_claim::claim_all(&cache, &requests).await },
    )
}

/// Step 2 of the coupon saga: the coupon into its holder's bucket (nothing if it is there).
async fn grant(state: &AppState, coupon: IssuedCoupon) -> Result<(), AppError> {
    let bucket = state.cache.keys.of_user(coupon.user_id);
    state.coupon_grants.submit(bucket, coupon).await?;
    Ok(())
}

/// The saga as three calls: the user's budget, the issue, then (for a coupon issued now or held
/// before: a retry repairs a grant a crash cut off) the grant.
async fn issue_step_by_step(
    state: &AppState,
    user: UserId,
    request: IssueRequest,
) -> Result<IssueOutcome, AppError> {
    throttle::check_user(state, Budget::CouponIssue, user).await?;
    let bucket = state.cache.keys.of_campaign(request.coupon_id);
    let mut outcome = state.coupon_issues.submit(bucket, request.clone()).await?;
    if outcome == IssueOutcome::NotLoaded {
        load_campaign(state, request.coupon_id).await?;
        outcome = state.coupon_issues.submit(bucket, request).await?;
    }
    if let IssueOutcome::Issued { coupon, .. } | IssueOutcome::AlreadyIssued(coupon) = outcome {
        grant(state, coupon).await?;
    }
    Ok(outcome)
}

/// The saga as one call (coupon_claim.lua). The retry after loading the campaign re-sends the
/// same request, whose budget id the bucket has seen: it is not counted twice.
async fn issue_in_one_call(
    state: &AppState,
    user: UserId,
    request: IssueRequest,
) -> Result<IssueOutcome, AppError> {
    let bucket = state.cache.keys.of_campaign(request.coupon_id);
    let claim = ClaimRequest {
        budget: throttle::for_script(state, Budget::CouponIssue, user),
        issue: request,
    };
    let mut outcome = state.coupon_claims.submit(bucket, claim.clone()).await?;
    if outcome == ClaimOutcome::Decided(IssueOutcome::NotLoaded) {
        load_campaign(state, claim.issue.coupon_id).await?;
        outcome = state.coupon_claims.submit(bucket, claim).await?;
    }
    match outcome {
        ClaimOutcome::Decided(outcome) => Ok(outcome),
        ClaimOutcome::Throttled { retry_after_ms } => {
            Err(throttle::refused(Budget::CouponIssue, retry_after_ms))
        }
    }
}

/// Issues one coupon of a campaign to a user, within the user's coupon-issue budget
/// (`COUPON_ISSUE_*`, shared by every instance): one atomic decision in Redis (possibly in a
/// call shared with other users' requests, decided in arrival order), then the coupon in the
/// user's bucket — one call where Redis lets it reach both buckets, else one call per step.
pub async fn issue(state: &AppState, user: UserId, coupon_id: i64) -> Result<Issued, AppError> {
    let request = IssueRequest::new(
        coupon_id,
        user.0,
        uuid::Uuid::new_v4().to_string(),
        state.clock.now_ms(),
    );
    let keys = &state.cache.keys;
    let outcome = if state
        .cache
        .one_call(&[keys.of_campaign(coupon_id), keys.of_user(user.0)])
    {
        issue_in_one_call(state, user, request).await?
    } else {
        issue_step_by_step(state, user, request).await?
    };
    let label = match outcome {
        IssueOutcome::Issued { .. } => "issued",
        IssueOutcome::AlreadyIssued(_) => "already_issued",
        IssueOutcome::NotActive => "not_active",
        IssueOutcome::SoldOut => "sold_out",
        IssueOutcome::NotLoaded => "not_loaded",
    };
    metrics::counter!("coupon_issue_attempts_total", "result" => label).increment(1);
    match outcome {
        IssueOutcome::Issued { coupon, remaining } => {
            metrics::gauge!("coupon_remaining", "coupon" => coupon_id.to_string())
                .set(remaining as f64);
            Ok(Issued {
                user_coupon_id: coupon.user_coupon_id,
                coupon_id,
                expires_at: at_millis(coupon.expires_at_ms),
            })
        }
        IssueOutcome::AlreadyIssued(_) => Err(AppError::CouponAlreadyIssued),
        IssueOutcome::NotActive => Err(AppError::CouponNotActive),
        IssueOutcome::SoldOut => {
            metrics::gauge!("coupon_remaining", "coupon" => coupon_id.to_string()).set(0.0);
            Err(AppError::CouponSoldOut)
        }
        IssueOutcome::NotLoaded => Err(AppError::CouponNotFound),
    }
}

/// Every coupon a user holds, with EXPIRED for available coupons past their expiry.
pub async fn held(state: &AppState, user: UserId) -> Result<Vec<HeldView>, AppError> {
    let now_ms = state.clock.now_ms();
    let mut views = Vec::new();
    for coupon in hot::held_by(&state.cache, user.0).await? {
        let name = stored::find(&state.db, coupon.coupon_id)
            .await?
            .map(|c| c.name)
            .unwrap_or_default();
        let status = if coupon.status == CouponStatus::Available && now_ms >= coupon.expires_at_ms {
            "EXPIRED".to_owned()
        } else {
            coupon.status.to_string()
        };
        views.push(HeldView {
            user_coupon_id: coupon.id,
            coupon_id: coupon.coupon_id,
            name,
            status,
            expires_at: at_millis(coupon.expires_at_ms),
        });
    }
    Ok(views)
}
