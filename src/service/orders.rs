//! Orders: create (the order saga: stock held in the products' buckets, then the order and its
//! coupon in the user's bucket), read, cancel.

use crate::cache::coupons as hot_coupons;
use crate::cache::order_place::{self, PlaceCall, PlaceOutcome};
use crate::cache::orders::{self as hot, ReleaseMode, ReleaseOutcome, ReserveCall, ReserveOutcome};
use crate::cache::ratelimit::TakeRequest;
use crate::cache::reservations::ReserveOutcome as HoldOutcome;
use crate::domain::{Caller, UserId};
use crate::error::AppError;
use crate::events::OrderStatus;
use crate::service::order_pricing::{priced, Priced};
use crate::service::reservations;
use crate::service::throttle::{self, Budget};
use crate::state::AppState;
use crate::store;

pub use crate::service::order_pricing::{
    quote, validate_lines, Quote, RequestedLine, MAX_LINES, MAX_QUANTITY,
};

/// An order as clients see it: the engine's one order type.
pub use crate::domain::Order;

/// Creates a PENDING order reserving stock (and the coupon), once per idempotency key, within
/// the user's order budget (`ORDER_RATE_*`, shared by every instance).
pub async fn create(
    state: &AppState,
    user: UserId,
    lines: &[RequestedLine],
    user_coupon_id: Option<i64>,
    idempotency_key: Option<String>,
) -> Result<Order, AppError> {
    let keys = &state.cache.keys;
    let mut buckets = vec![keys.of_user(user.0)];
    buckets.extend(lines.iter().map(|(product, _)| keys.of_product(*product)));
    // Where one call may do the whole saga (order_place.lua), it takes the budget too;
    // elsewhere the budget is a check of its own before anything else.
    let budget = if state.cache.one_call(&buckets) {
        Some(throttle::for_script(state, Budget::Orders, user))
    } else {
        throttle::check_user(state, Budget::Orders, user).await?;
        None
    };
    let Priced {
        items,
        subtotal,
        coupon,
        discount,
    } = match priced(state, user, lines, user_coupon_id).await {
        Ok(priced) => priced,
        Err(refused) => {
            count_outside_the_call(state, user, &budget).await?;
            return Err(refused);
        }
    };
    // Without a client key the request cannot be a retry: no replay to look for, and its first
    // attempt is this one (two Redis round trips saved).
    let client_key = idempotency_key.is_some();
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
    let order_id;
    let prior = if client_key {
        replay(state, user, &call).await?
    } else {
        None
    };
    let result = match prior {
        Some(answer) => {
            count_outside_the_call(state, user, &budget).await?;
            answer
        }
        None => {
            order_id = if client_key {
                let fingerprint = hot::fingerprint(&call);
                hot::attempt_id(&state.cache, user.0, &key, &fingerprint).await?
            } else {
                state.cache.keys.new_order_id(user.0)
            };
            call.order_id = &order_id;
            let budget = budget.as_ref();
            match reserve(state, &call, expires_at_ms, budget).await {
                Ok(Some(order)) => Ok(order),
                // The request's id is spent (its stock was given back, or the sweeper voided
                // it): this attempt starts afresh under a new id.
                Ok(None) => {
                    let fresh = state.cache.keys.new_order_id(user.0);
                    call.order_id = &fresh;
                    // The same budget request again: counted once.
                    match reserve(state, &call, expires_at_ms, budget).await {
                        Ok(Some(order)) => Ok(order),
                        Ok(None) => Err(AppError::Unavailable),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    let label = match &result {
        Ok(_) => "reserved",
        Err(AppError::InsufficientStock { .. }) => "insufficient_stock",
        Err(AppError::InvalidCoupon(_)) => "invalid_coupon",
        Err(AppError::RateLimited { .. }) => "throttled",
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

/// Counts an order request that is answered before order_place.lua (which would have counted
/// it) against the user's order budget, so that every request counts as on the other path.
async fn count_outside_the_call(
    state: &AppState,
    user: UserId,
    budget: &Option<TakeRequest>,
) -> Result<(), AppError> {
    match budget {
        Some(_) => throttle::check_user(state, Budget::Orders, user).await,
        None => Ok(()),
    }
}

/// The order saga's steps: hold the stock in the products' buckets, then create the order and
/// reserve its coupon in the user's bucket; a refusal there gives the stock back. With `budget`
/// the steps are one call that takes the budget first (order_place.lua), else one call each.
/// An unknown outcome of the second step (a lost reply) keeps the stock held: the order may
/// exist, and the reservation sweeper resolves it either way after the deadline. `None`: the
/// order id is spent (its stock was given back before, or the sweeper voided it); nothing is
/// held.
async fn reserve(
    state: &AppState,
    call: &ReserveCall<'_>,
    expires_at_ms: i64,
    budget: Option<&TakeRequest>,
) -> Result<Option<Order>, AppError> {
    let due_ms = expires_at_ms + reservations::RESERVATION_GRACE_MS;
    let ordered = match budget {
        Some(budget) => match place(state, call, due_ms, budget).await? {
            Some(ordered) => ordered,
            None => return Ok(None),
        },
        None => {
            let holding =
                reservations::hold(state, call.order_id, call.user_id, call.items, due_ms).await?;
            if holding == reservations::Holding::Spent {
                return Ok(None);
            }
            hot::reserve(&state.cache, call).await?
        }
    };
    let refused = match ordered {
        ReserveOutcome::Reserved => return Ok(Some(call.created_order())),
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

/// Budget, holds and order step in one call (order_place.lua), loading missing stock and
/// calling again once. A bucket that did not hold is answered as after separate holds (every
/// bucket's units of the order released; the earliest line's refusal). `None`: the id is spent.
async fn place(
    state: &AppState,
    call: &ReserveCall<'_>,
    due_ms: i64,
    budget: &TakeRequest,
) -> Result<Option<ReserveOutcome>, AppError> {
    let keys = &state.cache.keys;
    let holds = reservations::hold_requests(keys, call.order_id, call.user_id, call.items, due_ms);
    let placing = PlaceCall {
        order: call,
        holds: &holds,
        budget,
    };
    let mut outcome = order_place::place(&state.cache, &placing).await?;
    if let PlaceOutcome::NotHeld(held) = &outcome {
        if held
            .iter()
            .any(|hold| matches!(hold, HoldOutcome::StockNotLoaded(_)))
        {
            let ids: Vec<i64> = call.items.iter().map(|line| line.product_id).collect();
            reservations::load_stock(state, &ids).await?;
            outcome = order_place::place(&state.cache, &placing).await?;
        }
    }
    match outcome {
        PlaceOutcome::Ordered(ordered) => Ok(Some(ordered)),
        PlaceOutcome::Throttled { retry_after_ms } => {
            Err(throttle::refused(Budget::Orders, retry_after_ms))
        }
        PlaceOutcome::NotHeld(held) => {
            let held = held.into_iter().map(Ok).collect();
            match reservations::after_holds(state, call.order_id, call.items, held).await? {
                reservations::Holding::Spent => Ok(None),
                reservations::Holding::Held => {
                    Err(anyhow::anyhow!("order_place.lua refused holds that all held").into())
                }
            }
        }
    }
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
        Some(id) => campaign_of(state, order.user_id, id).await,
        None => Ok(None),
    }
}

/// The campaign id of a user's coupon; `None` when Redis does not know the coupon.
pub async fn campaign_of(
    state: &AppState,
    user_id: i64,
    user_coupon_id: i64,
) -> Result<Option<i64>, AppError> {
    Ok(hot_coupons::owner_of(&state.cache, user_id, user_coupon_id)
        .await?
        .map(|owner| owner.coupon_id))
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
