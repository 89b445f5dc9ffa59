//! The stock side of the order saga (docs/ARCHITECTURE.md §4b): an order's units are held in
//! each product bucket before the order exists, and end there after the order's own bucket has
//! decided — committed once it is paid (by the settlement worker, settlement::stock_commit),
//! released once it ended unpaid. A reservation whose order never appeared, or whose last step
//! a crash cut off, is resolved by [`sweep_once`] when its time is up: the order's deadline
//! plus [`RESERVATION_GRACE_MS`].

use futures::future::join_all;

use crate::cache::keys::Bucket;
use crate::cache::per_bucket::PerBucket;
use crate::cache::reservations::SettleRequest;
use crate::cache::reservations::{self as held, Fate, HoldRequest, ReserveOutcome, Settle};
use crate::cache::{Cache, Keys};
use crate::config::RedisConfig;
use crate::error::AppError;
use crate::events::{OrderLine, OrderStatus};
use crate::service::catalog;
use crate::state::AppState;
use crate::store;

/// How long after an order's deadline its reservations wait before the sweeper resolves them.
/// Any value is safe: a reservation whose order is still PENDING waits for the expiry sweep,
/// and an order that was never created is voided before its stock goes back (a late creation
/// step is refused and retried under a fresh id). Short, so that a crash between the saga's
/// steps holds stock for at most the order TTL plus this plus one sweep interval.
pub const RESERVATION_GRACE_MS: i64 = 1_000;
/// Reservations resolved per bucket and sweep.
const SWEEP_BATCH: i64 = 200;

/// Group commit of stock holds, per product bucket (stock_reserve.lua).
pub type HoldBatcher = PerBucket<HoldRequest, ReserveOutcome>;
/// Group commit of reservation ends, per product bucket (stock_settle.lua).
pub type SettleBatcher = PerBucket<SettleRequest, bool>;

/// Starts this instance's hold batchers: concurrent orders' holds in one product bucket become
/// one stock_reserve.lua call.
pub fn hold_batcher(cache: &Cache, redis: &RedisConfig) -> HoldBatcher {
    PerBucket::on_cache(
        "stock_reserve.lua",
        cache,
        redis,
        |cache, _, requests| async move { held::hold_all(&cache, &requests).await },
    )
}

/// Starts this instance's settle batchers (one per product bucket).
pub fn settle_batcher(cache: &Cache, redis: &RedisConfig) -> SettleBatcher {
    PerBucket::on_cache(
        "stock_settle.lua",
        cache,
        redis,
        |cache, bucket, requests| async move { held::settle_all(&cache, bucket, &requests).await },
    )
}

/// Step 1 of order creation: holds every line's units in its product bucket, resolved at
/// `due_ms` if nothing else ends them. A refusal (not enough stock) or a failure releases
/// whatever was held and is returned; the refusal named is that of the earliest line. An id
/// whose reservation ended before holds nothing ([`Holding::Spent`]).
pub async fn hold(
    state: &AppState,
    order_id: &str,
    user_id: i64,
    items: &[OrderLine],
    due_ms: i64,
) -> Result<Holding, AppError> {
    let holds = hold_requests(&state.cache.keys, order_id, user_id, items, due_ms);
    let outcomes = join_all(holds.into_iter().map(|hold| hold_one(state, hold))).await;
    after_holds(state, order_id, items, outcomes).await
}

/// An order's holds, one per product bucket, its lines in line order within each.
pub fn hold_requests(
    keys: &Keys,
    order_id: &str,
    user_id: i64,
    items: &[OrderLine],
    due_ms: i64,
) -> Vec<HoldRequest> {
    held::lines_by_bucket(keys, items)
        .into_values()
        .map(|lines| HoldRequest {
            order_id: order_id.to_owned(),
            user_id,
            due_ms,
            lines,
        })
        .collect()
}

/// What an order's holds (one outcome per product bucket, in [`hold_requests`]'s order) come
/// to: [`Holding::Held`] when every bucket held; otherwise the order's units are released in
/// the buckets that may hold them (those that held, and those whose answer was lost), and the
/// refusal of the earliest line, a failure, or [`Holding::Spent`] is returned.
pub async fn after_holds(
    state: &AppState,
    order_id: &str,
    items: &[OrderLine],
    outcomes: Vec<Result<ReserveOutcome, AppError>>,
) -> Result<Holding, AppError> {
    let maybe_held: Vec<bool> = outcomes
        .iter()
        .map(|outcome| matches!(outcome, Ok(ReserveOutcome::Held) | Err(_)))
        .collect();
    let mut refusal: Option<(usize, AppError)> = None;
    let mut failure: Option<AppError> = None;
    let mut spent = false;
    for outcome in outcomes {
        match outcome {
            Ok(ReserveOutcome::Held) => {}
            Ok(ReserveOutcome::Spent) => spent = true,
            Ok(ReserveOutcome::InsufficientStock {
                product_id,
                requested,
                available,
            }) => {
                let at = items
                    .iter()
                    .position(|l| l.product_id == product_id)
                    .unwrap_or(usize::MAX);
                if refusal.as_ref().is_none_or(|(first, _)| at < *first) {
                    let error = AppError::InsufficientStock {
                        product_id,
                        requested,
                        available,
                    };
                    refusal = Some((at, error));
                }
            }
            Ok(ReserveOutcome::StockNotLoaded(id)) => {
                failure = Some(anyhow::anyhow!("stock of product {id} still not in Redis").into());
            }
            Err(e) => failure = Some(e),
        }
    }
    let error = failure.or(refusal.map(|(_, e)| e));
    if error.is_none() && !spent {
        return Ok(Holding::Held);
    }
    // A bucket that answered "not enough stock" or "ended before" holds nothing of this id (a
    // hold that held answers "held" to any re-send), so only the others have units to give back.
    let to_release = lines_maybe_held(&state.cache.keys, items, &maybe_held);
    if !to_release.is_empty() {
        if let Err(e) = release(state, order_id, &to_release).await {
            // The sweeper releases them at their due time.
            tracing::warn!(
                order_id,
                error = format!("{e:#}"),
                "releasing a refused order's stock failed"
            );
        }
    }
    match error {
        Some(error) => Err(error),
        None => Ok(Holding::Spent),
    }
}

/// The lines of the buckets whose hold outcome leaves units held under the order's id, or may
/// (`maybe_held`, one flag per bucket in [`hold_requests`]'s order: held, or unknown because
/// the call failed). All of them if the flags do not match the buckets.
fn lines_maybe_held(keys: &Keys, items: &[OrderLine], maybe_held: &[bool]) -> Vec<OrderLine> {
    let buckets: Vec<Bucket> = held::lines_by_bucket(keys, items).into_keys().collect();
    if buckets.len() != maybe_held.len() {
        return items.to_vec();
    }
    let held: Vec<Bucket> = buckets
        .into_iter()
        .zip(maybe_held)
        .filter(|(_, maybe)| **maybe)
        .map(|(bucket, _)| bucket)
        .collect();
    items
        .iter()
        .filter(|line| held.contains(&keys.of_product(line.product_id)))
        .cloned()
        .collect()
}

/// What step 1 of order creation left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Every line's units are held under the order id.
    Held,
    /// The order id's reservations ended before (a retry of a request whose stock was given
    /// back): nothing is held, and the order must be made under a new id.
    Spent,
}

/// Holds the lines of one product bucket, loading their stock into Redis first if needed.
async fn hold_one(state: &AppState, request: HoldRequest) -> Result<ReserveOutcome, AppError> {
    let bucket = request.bucket(&state.cache.keys);
    let outcome = state.stock_holds.submit(bucket, request.clone()).await?;
    if let ReserveOutcome::StockNotLoaded(_) = outcome {
        let ids: Vec<i64> = request.lines.iter().map(|(id, _)| *id).collect();
        load_stock(state, &ids).await?;
        return Ok(state.stock_holds.submit(bucket, request).await?);
    }
    Ok(outcome)
}

/// Loads the stock of these products into Redis (a hold found it missing), not the whole
/// catalog's.
pub async fn load_stock(state: &AppState, product_ids: &[i64]) -> Result<(), AppError> {
    catalog::with_stock(
        state,
        store::products::find_many(&state.db, product_ids).await?,
    )
    .await?;
    Ok(())
}

/// Last step of an expiry or cancel (or of a refused creation): the order's units go back to
/// stock in every product bucket. Safe to repeat.
pub async fn release(state: &AppState, order_id: &str, items: &[OrderLine]) -> anyhow::Result<()> {
    settle_all(state, order_id, items, Settle::Release).await
}

async fn settle_all(
    state: &AppState,
    order_id: &str,
    items: &[OrderLine],
    how: Settle,
) -> anyhow::Result<()> {
    let buckets = held::lines_by_bucket(&state.cache.keys, items);
    let outcomes = join_all(buckets.iter().map(|(bucket, lines)| {
        let request = SettleRequest {
            order_id: order_id.to_owned(),
            products: lines.iter().map(|(id, _)| *id).collect(),
            how,
        };
        state.stock_settles.submit(*bucket, request)
    }))
    .await;
    for outcome in outcomes {
        outcome?;
    }
    Ok(())
}

/// Resolves the reservations whose time is up in every product bucket: committed when their
/// order was paid, released when it ended unpaid or was never created (it is voided first, so
/// it cannot appear afterwards). Returns how many ended.
pub async fn sweep_once(state: &AppState) -> anyhow::Result<usize> {
    let now_ms = state.clock.now_ms();
    let mut ended = 0;
    for (bucket, order_id) in held::due(&state.cache, now_ms, SWEEP_BATCH).await? {
        match resolve(state, bucket, &order_id).await {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(
                order_id,
                error = format!("{e:#}"),
                "resolving a reservation failed"
            ),
        }
    }
    metrics::gauge!("stock_reservations_live").set(held::live_count(&state.cache).await? as f64);
    Ok(ended)
}

/// Resolves one due reservation of `bucket`.
async fn resolve(state: &AppState, bucket: Bucket, order_id: &str) -> anyhow::Result<bool> {
    let Some(reservation) = held::read(&state.cache, bucket, order_id).await? else {
        // Ended already: only the deadline entry is left, which settling removes.
        let request = SettleRequest {
            order_id: order_id.to_owned(),
            products: Vec::new(),
            how: Settle::Release,
        };
        return state.stock_settles.submit(bucket, request).await;
    };
    let fate = match state.cache.keys.of_order(order_id) {
        Some(order_bucket) => held::fate(&state.cache, order_bucket, order_id).await?,
        None => Fate::Voided,
    };
    let how = match fate {
        Fate::Exists {
            status: OrderStatus::Paid,
            paid_at_ms,
        } => Settle::Commit {
            hour: crate::cache::popular::hour_of(
                paid_at_ms.unwrap_or_else(|| state.clock.now_ms()),
            ),
        },
        Fate::Exists {
            status: OrderStatus::Pending,
            ..
        } => {
            // Its bucket has not ended it yet: the expiry sweep does (the order is past its
            // deadline), and a later sweep here follows.
            return Ok(false);
        }
        Fate::Exists { .. } | Fate::Voided => Settle::Release,
    };
    let request = SettleRequest {
        order_id: order_id.to_owned(),
        products: reservation.lines.iter().map(|(id, _)| *id).collect(),
        how,
    };
    let ended = state.stock_settles.submit(bucket, request).await?;
    if ended {
        let outcome = if matches!(how, Settle::Commit { .. }) {
            "committed"
        } else {
            "released"
        };
        metrics::counter!("stock_reservations_swept_total", "outcome" => outcome).increment(1);
    }
    Ok(ended)
}
