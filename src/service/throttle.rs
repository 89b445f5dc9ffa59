//! Abuse budgets that hold across instances (Redis, `lua/rate_gcra.lua`), behind the cheap
//! in-process limiters of [`crate::http::ratelimit`].
//!
//! Each budget is one bucket per subject (user, account, account and client, or IP) in Redis,
//! so N instances together accept what one would. When Redis cannot be asked, the check
//! **fails open**: the request goes on under the in-process limiters alone (per instance, as
//! before), and `rate_limit_global_unavailable_total` counts it. Money paths need Redis for the
//! operation itself, so they answer 503 right after; log-in and sign-up keep working on their
//! per-instance budgets rather than locking everyone out while Redis is away.

use crate::cache::keys::Bucket;
use crate::cache::per_bucket::PerBucket;
use crate::cache::ratelimit::{self as buckets, Rate, TakeRequest, Verdict};
use crate::cache::Cache;
use crate::config::{Config, RedisConfig};
use crate::domain::UserId;
use crate::error::AppError;
use crate::state::AppState;

/// A budget enforced across instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Log-in attempts per (account, client IP): `LOGIN_ATTEMPTS_PER_MINUTE`.
    LoginPerClient,
    /// Log-in attempts per account over all clients: `LOGIN_ACCOUNT_ATTEMPTS_PER_MINUTE`.
    LoginPerAccount,
    /// Sign-up and log-in requests per client IP: `AUTH_RATE_PER_SECOND` / `AUTH_RATE_BURST`.
    Anonymous,
    /// Coupon issue requests per user: `COUPON_ISSUE_PER_SECOND` / `COUPON_ISSUE_BURST`.
    CouponIssue,
    /// Order creation per user: `ORDER_RATE_PER_SECOND` / `ORDER_RATE_BURST`.
    Orders,
    /// Payments and charges per user: `PAYMENT_RATE_PER_SECOND` / `PAYMENT_RATE_BURST`.
    Payments,
}

impl Budget {
    /// The name in the bucket's key and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Budget::LoginPerClient => "login-client",
            Budget::LoginPerAccount => "login-account",
            Budget::Anonymous => "anon",
            Budget::CouponIssue => "coupon-issue",
            Budget::Orders => "orders",
            Budget::Payments => "payments",
        }
    }

    /// The configured rate.
    pub fn rate(self, config: &Config) -> Rate {
        match self {
            Budget::LoginPerClient => Rate::per_minute(config.limits.login_attempts_per_minute),
            Budget::LoginPerAccount => {
                Rate::per_minute(config.limits.login_account_attempts_per_minute)
            }
            Budget::Anonymous => Rate::per_second(
                config.limits.auth_rate_per_second,
                config.limits.auth_rate_burst,
            ),
            Budget::CouponIssue => Rate::per_second(
                config.limits.coupon_issue_per_second,
                config.limits.coupon_issue_burst,
            ),
            Budget::Orders => Rate::per_second(
                config.limits.order_rate_per_second,
                config.limits.order_rate_burst,
            ),
            Budget::Payments => Rate::per_second(
                config.limits.payment_rate_per_second,
                config.limits.payment_rate_burst,
            ),
        }
    }
}

/// Group commit of budget checks: concurrent checks share one call of rate_gcra.lua (see
/// [`crate::cache::batch`]).
pub type RateBatcher = PerBucket<TakeRequest, Verdict>;

/// The batcher `REDIS_BATCH_MAX` and `REDIS_BATCHES_IN_FLIGHT` ask for (with batches of one,
/// each check is a call of its own).
pub fn rate_batcher(cache: &Cache, redis: &RedisConfig) -> RateBatcher {
    PerBucket::on_cache(
        "rate_gcra.lua",
        cache,
        redis,
        |cache, _, requests| async move { buckets::take_all(&cache, &requests).await },
    )
}

/// Counts one request of `subject` against `budget`; over budget → `429 RATE_LIMITED` with the
/// wait. Redis unreachable → allowed (see the module doc).
pub async fn check(state: &AppState, budget: Budget, subject: &str) -> Result<(), AppError> {
    let key = state.cache.keys.rate(budget.name(), subject);
    let bucket = state.cache.keys.of_subject(subject);
    take(state, budget, key, bucket).await
}

/// [`check`] for a user: the bucket lives in the user's own Redis bucket
/// ([`crate::cache::Keys::user_rate`]), where a script of the user's can also take from it
/// ([`for_script`]).
pub async fn check_user(state: &AppState, budget: Budget, user: UserId) -> Result<(), AppError> {
    let key = state.cache.keys.user_rate(budget.name(), user.0);
    let bucket = state.cache.keys.of_user(user.0);
    take(state, budget, key, bucket).await
}

/// The request a script of `user`'s takes from `user`'s `budget` in the same call (instead of
/// a call of its own before it); a refusal it reports goes through [`refused`].
pub fn for_script(state: &AppState, budget: Budget, user: UserId) -> TakeRequest {
    let key = state.cache.keys.user_rate(budget.name(), user.0);
    request(state, budget, key)
}

/// One request of this call against the bucket `key` of `budget` (its id made once, so a
/// re-sent call does not count twice).
fn request(state: &AppState, budget: Budget, key: String) -> TakeRequest {
    TakeRequest {
        key,
        rate: budget.rate(&state.config),
        request_id: uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// The answer to a request over `budget`: `429 RATE_LIMITED`, to retry after the wait.
pub fn refused(budget: Budget, retry_after_ms: u64) -> AppError {
    metrics::counter!("rate_limited_global_total", "budget" => budget.name()).increment(1);
    AppError::RateLimited {
        retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
    }
}

async fn take(
    state: &AppState,
    budget: Budget,
    key: String,
    bucket: Bucket,
) -> Result<(), AppError> {
    match state
        .rate_checks
        .submit(bucket, request(state, budget, key))
        .await
    {
        Ok(Verdict::Allowed { .. }) => Ok(()),
        Ok(Verdict::Refused { retry_after_ms }) => Err(refused(budget, retry_after_ms)),
        Err(error) => {
            metrics::counter!("rate_limit_global_unavailable_total", "budget" => budget.name())
                .increment(1);
            tracing::warn!(budget = budget.name(), error = %format!("{error:#}"),
                "global rate limit not checked (Redis unavailable); local limits only");
            Ok(())
        }
    }
}
