//! Payment of an order from the prepaid balance: one script settles balance, order and coupon
//! together in the user's bucket; the products' buckets then commit the order's reservations.

use crate::cache::orders::{self as hot, PayCall, PayOutcome};
use crate::domain::{Caller, UserId};
use crate::error::AppError;
use crate::service::{orders, reservations, wallet};
use crate::state::AppState;
use crate::store;

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

/// Pays an order, once per idempotency key; a second payment of a paid order is refused.
pub async fn pay(
    state: &AppState,
    caller: Caller,
    order_id: &str,
    idempotency_key: Option<String>,
) -> Result<Paid, AppError> {
    let (caller, admin) = (caller.id, caller.is_admin());
    let Some(order) = hot::read(&state.cache, order_id).await? else {
        let stored = store::orders::find(&state.db, order_id)
            .await?
            .ok_or(AppError::OrderNotFound)?;
        if stored.order.user_id != caller.0 && !admin {
            return Err(AppError::Forbidden);
        }
        return Err(AppError::OrderNotPayable(stored.order.status));
    };
    if order.user_id != caller.0 && !admin {
        return Err(AppError::Forbidden);
    }
    let payer = UserId(order.user_id);
    let payment_id = uuid::Uuid::now_v7().to_string();
    let key = idempotency_key.unwrap_or_else(|| format!("auto-{payment_id}"));
    let call = PayCall {
        order: &order,
        user_id: payer.0,
        now_ms: state.clock.now_ms(),
        payment_id: &payment_id,
        idempotency_key: &key,
        coupon_id: orders::coupon_campaign(state, &order).await?,
    };
    let mut outcome = hot::pay(&state.cache, &call).await?;
    if outcome == PayOutcome::BalanceNotLoaded {
        wallet::balance(state, payer).await?;
        outcome = hot::pay(&state.cache, &call).await?;
    }
    let label = match &outcome {
        PayOutcome::Paid { replay: false, .. } => "paid",
        PayOutcome::Paid { replay: true, .. } => "replayed",
        PayOutcome::InsufficientBalance { .. } => "insufficient_balance",
        PayOutcome::NotPayable(_) => "not_payable",
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
            // Last step of the payment saga (also after a replay, which repairs a crash before
            // it); a failure leaves it to the reservation sweeper, and the payment stands.
            if let Err(e) = reservations::commit(state, &order.id, &order.items, paid_at_ms).await {
                tracing::warn!(order_id = %order.id, error = format!("{e:#}"),
                    "committing a paid order's stock failed; the sweeper will");
            }
            Ok(Paid {
                order_id: order.id,
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
        PayOutcome::NotFound => Err(AppError::OrderNotFound),
        PayOutcome::Forbidden => Err(AppError::Forbidden),
        PayOutcome::KeyReused => Err(AppError::IdempotencyKeyReused),
        PayOutcome::BalanceNotLoaded => {
            Err(anyhow::anyhow!("balance of user {} still not in Redis", payer.0).into())
        }
    }
}
