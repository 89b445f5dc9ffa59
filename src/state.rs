//! Shared application state handed to every handler.

use std::ops::Deref;
use std::sync::Arc;

use sqlx::MySqlPool;

use crate::auth::TokenKeys;
use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;

/// Handle to everything a request may need. One `Arc`: axum clones the state for every
/// extractor and every `from_fn_with_state` layer of every request, so a clone must be one
/// reference-count bump, not one per field (the bench measured 2.5–7 % of CPU in field-wise
/// clones and drops).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares; reached through `Deref` (`state.db`, `state.cache`, …).
pub struct Shared {
    /// MySQL pool (source of truth).
    pub db: MySqlPool,
    /// Redis hot path.
    pub cache: Cache,
    /// Group commit of coupon-issue requests (with `REDIS_BATCH_MAX=1`, one script call per
    /// request).
    pub coupon_issues: crate::service::coupons::IssueBatcher,
    /// Group commit of coupon grants into their holders' buckets (step 2 of the coupon saga).
    pub coupon_grants: crate::service::coupons::GrantBatcher,
    /// Group commit of whole coupon sagas (budget, issue, grant) where one call may do them.
    pub coupon_claims: crate::service::coupons::ClaimBatcher,
    /// Group commit of stock holds per product bucket (step 1 of the order saga).
    pub stock_holds: crate::service::reservations::HoldBatcher,
    /// Group commit of reservation ends per product bucket (commit or release).
    pub stock_settles: crate::service::reservations::SettleBatcher,
    /// Group commit of shared rate-budget checks (likewise).
    pub rate_checks: crate::service::throttle::RateBatcher,
    /// Token issuing and verification.
    pub tokens: Arc<TokenKeys>,
    /// Replaceable time source.
    pub clock: Clock,
    /// Process configuration.
    pub config: Arc<Config>,
    /// Login attempts per account (the id the e-mail resolved to), on this instance.
    pub login_attempts: Arc<crate::local::AttemptLimiter>,
    /// This instance's copy of users' token generations (`SESSION_CACHE_MS`, or
    /// `SESSION_FEED_TRUST_MS` while the log-out feed vouches for it).
    pub generations: Arc<crate::local::Generations>,
    /// This instance's cache of the popular-products ranking.
    pub popular: Arc<crate::local::Memo<crate::domain::Ranking>>,
    /// The JSON body of the ranking `popular` holds, rendered once per ranking.
    pub popular_body: crate::local::Rendered<crate::domain::Ranking>,
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
