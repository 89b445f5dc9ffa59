//! Payment of an order from the prepaid balance: one script settles balance, order and coupon
//! together in the user's bucket and appends `order.paid`; the settlement worker then commits
//! the order's reservations in the products' buckets (settlement::stock_commit).

use crate::cache::orders::{self as hot, PayCall, PayOutcome};
use crate::domain::{Caller, UserId};
use crate::error::AppError;
use crate::service::throttle::{self, Budget};
use crate::service::{orders, wallet};
use crate::state::AppState;

/// A completed (or replayed) payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paid {
    /// The order that was paid.
    pub order_id: String,
    /// The payment's id (a UUIDv7); a replay of the same key reports the first payment's id.
    pub payment_id: String,
    /// Won paid.
    pub amount: i64,
    /// The payer's balance in won right after the payment (a replay reports the first value).
    pub balance: i64,
    /// When the order was paid, Unix ms.
    pub paid_at_ms: i64,
}

/// Pays an order, once per idempotency key; a second payment of a paid order is refused. Every
/// call counts against the caller's payment budget (`PAYMENT_RATE_*`, shared with charges and
/// by every instance): inside the payment's own script when the caller pays an order of its
/// own bucket, else by a check of its own first.
///
/// The caller's own order is paid without reading it first: the script checks the owner and
/// answers the order's lines, and names the order's coupon if the call did not (then a second
/// call carries it). Anyone else's order (an admin paying it, or a refusal) is read first.
pub async fn pay(
    state: &AppState,
    caller: Caller,
    order_id: &str,
    idempotency_key: Option<String>,
) -> Result<Paid, AppError> {
    let keys = &state.cache.keys;
    let own_bucket = keys.of_order(order_id) == Some(keys.of_user(caller.id.0));
    let (payer, coupon, budget) = if own_bucket && !caller.is_admin() {
        // The caller's budget is in the caller's bucket: the script takes it.
        let budget = throttle::for_script(state, Budget::Payments, caller.id);
        (caller.id, None, Some(budget))
    } else {
        throttle::check_user(state, Budget::Payments, caller.id).await?;
        let Some(order) = hot::read(&state.cache, order_id).await? else {
            return Err(not_in_redis(state, caller, order_id).await);
        };
        if order.user_id != caller.id.0 && !caller.is_admin() {
            return Err(AppError::Forbidden);
        }
        let coupon = coupon_of(state, order.user_id, order.user_coupon_id).await?;
        (UserId(order.user_id), coupon, None)
    };
    let payment_id = uuid::Uuid::now_v7().to_string();
    let key = idempotency_key.unwrap_or_else(|| format!("auto-{payment_id}"));
    let mut call = PayCall {
        order_id,
        user_id: payer.0,
        now_ms: state.clock.now_ms(),
        payment_id: &payment_id,
        idempotency_key: &key,
        coupon,
        budget,
    };
    let mut outcome = hot::pay(&state.cache, &call).await?;
    if let PayOutcome::CouponNeeded(user_coupon_id) = outcome {
        call.coupon = coupon_of(state, payer.0, Some(user_coupon_id)).await?;
        if call.coupon.is_none() {
            return Err(anyhow::anyhow!(
                "coupon {user_coupon_id} of order {order_id} has no campaign in Redis"
            )
            .into());
        }
        outcome = hot::pay(&state.cache, &call).await?;
    }
    if outcome == PayOutcome::BalanceNotLoaded {
        wallet::balance(state, payer).await?;
        outcome = hot::pay(&state.cache, &call).await?;
    }
    let label = match &outcome {
        PayOutcome::Paid { replay: false, .. } => "paid",
        PayOutcome::Paid { replay: true, .. } => "replayed",
        PayOutcome::InsufficientBalance { .. } => "insufficient_balance",
        PayOutcome::NotPayable(_) => "not_payable",
        PayOutcome::Throttled { .. } => "throttled",
        _ => "error",
    };
    metrics::counter!("payments_total", "result" => label).increment(1);
    match outcome {
        PayOutcome::Paid {
            payment_id,
            amount,
            balance,
            paid_at_ms,
            ..
        } => {
            // The saga's last step, the commit of the order's reservations in its products'
            // buckets, is the settlement worker's on reading `order.paid`
            // (settlement::stock_commit): the payer does not wait for it.
            Ok(Paid {
                order_id: order_id.to_owned(),
                payment_id,
                amount,
                balance,
                paid_at_ms,
            })
        }
        PayOutcome::InsufficientBalance { required, balance } => {
            Err(AppError::InsufficientBalance { required, balance })
        }
        PayOutcome::NotPayable(status) => Err(AppError::OrderNotPayable(status)),
        PayOutcome::NotFound => Err(not_in_redis(state, caller, order_id).await),
        PayOutcome::Forbidden => Err(AppError::Forbidden),
        PayOutcome::KeyReused => Err(AppError::IdempotencyKeyReused),
        PayOutcome::Throttled { retry_after_ms } => {
            Err(throttle::refused(Budget::Payments, retry_after_ms))
        }
        PayOutcome::BalanceNotLoaded | PayOutcome::CouponNeeded(_) => Err(anyhow::anyhow!(
            "paying order {order_id} of user {}: {outcome:?} after a retry",
            payer.0
        )
        .into()),
    }
}

/// The refusal for an order Redis does not hold: whose it is and how it ended, as a read of
/// the order says.
async fn not_in_redis(state: &AppState, caller: Caller, order_id: &str) -> AppError {
    match orders::get(state, caller, order_id).await {
        Ok(order) => AppError::OrderNotPayable(order.status),
        Err(refused) => refused,
    }
}

/// A user's coupon as (userCouponId, couponId); `None` without a coupon, or when Redis does not
/// know its campaign.
async fn coupon_of(
    state: &AppState,
    user_id: i64,
    user_coupon_id: Option<i64>,
) -> Result<Option<(i64, i64)>, AppError> {
    let Some(id) = user_coupon_id else {
        return Ok(None);
    };
    let campaign = orders::campaign_of(state, user_id, id).await?;
    Ok(campaign.map(|coupon_id| (id, coupon_id)))
}
