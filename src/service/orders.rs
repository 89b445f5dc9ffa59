//! Orders: create (reserve stock and coupon in one script), read, cancel.

use std::collections::HashSet;

use crate::cache::coupons as hot_coupons;
use crate::cache::orders::{self as hot, ReleaseMode, ReleaseOutcome, ReserveCall, ReserveOutcome};
use crate::domain::{Caller, UserId};
use crate::error::{AppError, FieldError};
use crate::events::{CouponRefusal, OrderLine, OrderStatus};
use crate::service::discount::Discount;
use crate::service::{catalog, reservations};
use crate::state::AppState;
use crate::store;

/// Most lines in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i64 = 100;

/// An order as clients see it: the engine's one order type.
pub use crate::domain::Order;

/// A requested line: (productId, quantity).
pub type RequestedLine = (i64, i64);

/// Checks the lines: 1–50, no duplicate product, quantity 1–100, positive ids.
pub fn validate_lines(lines: &[RequestedLine]) -> Result<(), AppError> {
    let mut errors = Vec::new();
    if lines.is_empty() || lines.len() > MAX_LINES {
        errors.push(FieldError::new("items", "must hold 1-50 lines"));
    }
    let mut seen = HashSet::new();
    for (i, (product_id, quantity)) in lines.iter().enumerate() {
        if *product_id <= 0 {
            errors.push(FieldError::new(
                format!("items[{i}].productId"),
                "must be a positive id",
            ));
        } else if !seen.insert(*product_id) {
            errors.push(FieldError::new(
                format!("items[{i}].productId"),
                "appears twice",
            ));
        }
        if !(1..=MAX_QUANTITY).contains(quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                "must be 1-100",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Prices the lines from the catalog (the pricing cache, see [`catalog::terms`]); an unknown
/// product → `PRODUCT_NOT_FOUND`.
async fn price(state: &AppState, lines: &[RequestedLine]) -> Result<Vec<OrderLine>, AppError> {
    let ids: Vec<i64> = lines.iter().map(|(id, _)| *id).collect();
    let terms = catalog::terms(state, &ids).await?;
    lines
        .iter()
        .zip(terms)
        .map(|((product_id, quantity), terms)| {
            let terms = terms.ok_or(AppError::ProductNotFound)?;
            Ok(OrderLine {
                product_id: *product_id,
                line_total: terms.price * quantity,
                name: terms.name,
                unit_price: terms.price,
                quantity: *quantity,
            })
        })
        .collect()
}

/// The coupon terms for an order: (userCouponId, couponId, minimum) and the discount.
async fn coupon_terms(
    state: &AppState,
    user: UserId,
    user_coupon_id: i64,
    subtotal: i64,
) -> Result<((i64, i64, i64), i64), AppError> {
    let owner = hot_coupons::owner_of(&state.cache, user.0, user_coupon_id)
        .await?
        .ok_or(AppError::InvalidCoupon(CouponRefusal::NotFound))?;
    if owner.user_id != user.0 {
        return Err(AppError::InvalidCoupon(CouponRefusal::NotYours));
    }
    let coupon_id = owner.coupon_id;
    if !owner.granted {
        repair_grant(state, user, coupon_id).await?;
    }
    let campaign = store::coupons::find(&state.db, coupon_id)
        .await?
        .ok_or(AppError::InvalidCoupon(CouponRefusal::NotFound))?;
    let terms = Discount::from_campaign(
        &campaign.discount_type,
        campaign.discount_value,
        campaign.max_discount,
    )
    .ok_or(AppError::InvalidCoupon(CouponRefusal::NotFound))?;
    Ok((
        (user_coupon_id, coupon_id, campaign.min_order_amount),
        terms.on(subtotal),
    ))
}

/// The grant step of the coupon saga, repeated: a coupon issued to the user whose grant a
/// crash cut off is put into the user's bucket now (nothing changes if it is there).
async fn repair_grant(state: &AppState, user: UserId, coupon_id: i64) -> Result<(), AppError> {
    if let Some(coupon) = hot_coupons::issued_to(&state.cache, coupon_id, user.0).await? {
        if hot_coupons::grant_all(&state.cache, &[coupon]).await?[0] {
            tracing::info!(
                coupon.user_coupon_id,
                "granted a coupon the user's bucket lacked"
            );
        }
    }
    Ok(())
}

/// Lines priced and a coupon's discount computed: the part of an order both [`quote`] and
/// [`create`] need, so the figures a shopper confirms are the ones the order gets.
struct Priced {
    items: Vec<OrderLine>,
    subtotal: i64,
    coupon: Option<(i64, i64, i64)>,
    discount: i64,
}

async fn priced(
    state: &AppState,
    user: UserId,
    lines: &[RequestedLine],
    user_coupon_id: Option<i64>,
) -> Result<Priced, AppError> {
    validate_lines(lines)?;
    let items = price(state, lines).await?;
    let subtotal: i64 = items.iter().map(|l| l.line_total).sum();
    let (coupon, discount) = match user_coupon_id {
        Some(id) => {
            let (coupon, discount) = coupon_terms(state, user, id, subtotal).await?;
            (Some(coupon), discount)
        }
        None => (None, 0),
    };
    Ok(Priced {
        items,
        subtotal,
        coupon,
        discount,
    })
}

/// What an order would cost now, before it is placed (the storefront's review step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// Priced lines.
    pub items: Vec<OrderLine>,
    /// Sum of the lines.
    pub subtotal: i64,
    /// The coupon's discount on the subtotal (0 without a coupon).
    pub discount: i64,
    /// subtotal − discount.
    pub total: i64,
    /// The coupon's minimum order amount, when a coupon is chosen (checked when placing).
    pub coupon_minimum: Option<i64>,
}

/// Prices lines and a coupon with the same rules as [`create`], reserving nothing. Stock and
/// the coupon's status are decided only when the order is placed.
pub async fn quote(
    state: &AppState,
    user: UserId,
    lines: &[RequestedLine],
    user_coupon_id: Option<i64>,
) -> Result<Quote, AppError> {
    let priced = priced(state, user, lines, user_coupon_id).await?;
    Ok(Quote {
        total: priced.subtotal - priced.discount,
        coupon_minimum: priced.coupon.map(|(_, _, minimum)| minimum),
        items: priced.items,
        subtotal: priced.subtotal,
        discount: priced.discount,
    })
}

/// Creates a PENDING order reserving stock (and the coupon), once per idempotency key.
pub async fn create(
    state: &AppState,
    user: UserId,
    lines: &[RequestedLine],
    user_coupon_id: Option<i64>,
    idempotency_key: Option<String>,
) -> Result<Order, AppError> {
    let Priced {
        items,
        subtotal,
        coupon,
        discount,
    } = priced(state, user, lines, user_coupon_id).await?;
    let key = idempotency_key.unwrap_or_else(|| format!("auto-{}", uuid::Uuid::new_v4().simple()));
    let now_ms = state.clock.now_ms();
    let expires_at_ms = now_ms + state.config.orders.ttl.as_millis() as i64;
    let mut call = ReserveCall {
        order_id: "",
        user_id: user.0,
        items: &items,
        subtotal,
        discount,
        coupon,
        now_ms,
        expires_at_ms,
        idempotency_key: &key,
    };
    let fingerprint = hot::fingerprint(&call);
    let order_id = state.cache.keys.order_id_for(user.0, &key, &fingerprint);
    call.order_id = &order_id;
    let result = match replay(state, user, &call).await? {
        Some(answer) => answer,
        None => match reserve(state, &call, expires_at_ms).await {
            Ok(Some(order)) => Ok(order),
            // The request's id is spent (its stock was given back, or the sweeper voided it):
            // this attempt starts afresh under a new id.
            Ok(None) => {
                let fresh = state.cache.keys.new_order_id(user.0);
                call.order_id = &fresh;
                match reserve(state, &call, expires_at_ms).await {
                    Ok(Some(order)) => Ok(order),
                    Ok(None) => Err(AppError::Unavailable),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    let label = match &result {
        Ok(_) => "reserved",
        Err(AppError::InsufficientStock { .. }) => "insufficient_stock",
        Err(AppError::InvalidCoupon(_)) => "invalid_coupon",
        Err(_) => "error",
    };
    metrics::counter!("orders_total", "result" => label).increment(1);
    result
}

/// A key that already made an order answers that order (or "reused with another request")
/// before any stock is held for the new one.
async fn replay(
    state: &AppState,
    user: UserId,
    call: &ReserveCall<'_>,
) -> Result<Option<Result<Order, AppError>>, AppError> {
    let Some((existing, fingerprint)) =
        hot::prior(&state.cache, user.0, call.idempotency_key).await?
    else {
        return Ok(None);
    };
    if fingerprint != hot::fingerprint(call) {
        return Ok(Some(Err(AppError::IdempotencyKeyReused)));
    }
    Ok(Some(find(state, &existing).await))
}

/// The order saga's steps: hold the stock in the products' buckets, then create the order and
/// reserve its coupon in the user's bucket; a refusal there gives the stock back. An unknown
/// outcome of the second step (a lost reply) keeps the stock held: the order may exist, and
/// the reservation sweeper resolves it either way after the deadline. `None`: the order id is
/// spent (its stock was given back before, or the sweeper voided it); nothing is held.
async fn reserve(
    state: &AppState,
    call: &ReserveCall<'_>,
    expires_at_ms: i64,
) -> Result<Option<Order>, AppError> {
    let due_ms = expires_at_ms + reservations::RESERVATION_GRACE_MS;
    let holding =
        reservations::hold(state, call.order_id, call.user_id, call.items, due_ms).await?;
    if holding == reservations::Holding::Spent {
        return Ok(None);
    }
    let refused = match hot::reserve(&state.cache, call).await? {
        ReserveOutcome::Reserved => return get_hot(state, call.order_id).await.map(Some),
        ReserveOutcome::Replayed(existing) => {
            // A replay of this very order (a re-send, or a retry under the request's own id)
            // keeps its stock; only stock held for an id that lost to another order goes back.
            if existing != call.order_id {
                give_back(state, call).await;
            }
            return get_hot(state, &existing).await.map(Some);
        }
        ReserveOutcome::InvalidCoupon(reason) => AppError::InvalidCoupon(reason),
        ReserveOutcome::KeyReused => AppError::IdempotencyKeyReused,
        ReserveOutcome::Voided => {
            give_back(state, call).await;
            return Ok(None);
        }
    };
    give_back(state, call).await;
    Err(refused)
}

/// The stock step after an order ended: its units go back. The order's end stands whatever
/// happens here; a failure leaves the units to the reservation sweeper.
async fn release_after_end(state: &AppState, order: &Order) {
    if let Err(e) = reservations::release(state, &order.id, &order.items).await {
        tracing::warn!(order_id = %order.id, error = format!("{e:#}"),
            "releasing an ended order's stock failed; the sweeper will");
    }
}

/// Releases the stock held for an order that was not created (the sweeper does it later if
/// this fails).
async fn give_back(state: &AppState, call: &ReserveCall<'_>) {
    if let Err(e) = reservations::release(state, call.order_id, call.items).await {
        tracing::warn!(
            order_id = call.order_id,
            error = format!("{e:#}"),
            "releasing a refused order's stock failed; the sweeper will"
        );
    }
}

async fn get_hot(state: &AppState, order_id: &str) -> Result<Order, AppError> {
    hot::read(&state.cache, order_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {order_id} missing right after reservation").into())
}

/// An order from Redis while it is hot, else from MySQL; no access check.
async fn find(state: &AppState, order_id: &str) -> Result<Order, AppError> {
    match hot::read(&state.cache, order_id).await? {
        Some(hot) => Ok(hot),
        None => store::orders::find(&state.db, order_id)
            .await?
            .map(|stored| stored.order)
            .ok_or(AppError::OrderNotFound),
    }
}

/// An order the caller may see (owner or admin): Redis first (freshest), then MySQL.
pub async fn get(state: &AppState, caller: Caller, order_id: &str) -> Result<Order, AppError> {
    let (caller, admin) = (caller.id, caller.is_admin());
    let order = find(state, order_id).await?;
    if order.user_id != caller.0 && !admin {
        return Err(AppError::Forbidden);
    }
    Ok(order)
}

/// The campaign id of an order's coupon (to address the coupon's key).
pub async fn coupon_campaign(state: &AppState, order: &Order) -> Result<Option<i64>, AppError> {
    match order.user_coupon_id {
        Some(id) => Ok(hot_coupons::owner_of(&state.cache, order.user_id, id)
            .await?
            .map(|owner| owner.coupon_id)),
        None => Ok(None),
    }
}

/// Cancels a PENDING order of the caller, releasing stock and coupon.
pub async fn cancel(state: &AppState, caller: Caller, order_id: &str) -> Result<Order, AppError> {
    let (by, caller, admin) = (caller, caller.id, caller.is_admin());
    let Some(order) = hot::read(&state.cache, order_id).await? else {
        let stored = get(state, by, order_id).await?;
        return Err(AppError::OrderNotCancellable(stored.status));
    };
    if order.user_id != caller.0 && !admin {
        return Err(AppError::Forbidden);
    }
    let coupon = coupon_campaign(state, &order).await?;
    let mode = ReleaseMode::Cancel {
        user_id: order.user_id,
    };
    match hot::release(&state.cache, &order, coupon, mode, state.clock.now_ms()).await? {
        ReleaseOutcome::Released(status @ OrderStatus::Expired) => {
            metrics::counter!("orders_ended_total", "status" => "EXPIRED").increment(1);
            release_after_end(state, &order).await;
            Err(AppError::OrderNotCancellable(status))
        }
        ReleaseOutcome::Released(_) => {
            metrics::counter!("orders_ended_total", "status" => "CANCELLED").increment(1);
            release_after_end(state, &order).await;
            get(state, by, order_id).await
        }
        ReleaseOutcome::NotPending(status) => Err(AppError::OrderNotCancellable(status)),
        ReleaseOutcome::Forbidden => Err(AppError::Forbidden),
        ReleaseOutcome::NotFound => Err(AppError::OrderNotFound),
        ReleaseOutcome::NotDue => Err(anyhow::anyhow!("cancel answered not-due").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_rules() {
        assert!(validate_lines(&[(1, 1)]).is_ok());
        assert!(validate_lines(&[]).is_err());
        assert!(
            validate_lines(&[(1, 1), (1, 2)]).is_err(),
            "duplicate product"
        );
        assert!(validate_lines(&[(1, 0)]).is_err());
        assert!(validate_lines(&[(1, 101)]).is_err());
        assert!(validate_lines(&[(0, 1)]).is_err());
        let fifty: Vec<RequestedLine> = (1..=50).map(|i| (i, 1)).collect();
        assert!(validate_lines(&fifty).is_ok());
        let fifty_one: Vec<RequestedLine> = (1..=51).map(|i| (i, 1)).collect();
        assert!(validate_lines(&fifty_one).is_err());
    }
}
