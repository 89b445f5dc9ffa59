//! The expiry sweeper: ends unpaid orders past their deadline, releasing coupon and stock, and
//! resolves the stock reservations whose time is up ([`reservations::sweep_once`]).
//! Any number of instances run it at once; order_release.lua lets exactly one win per order,
//! and a payment racing the sweeper is decided the same way.

use std::time::Duration;

use futures::StreamExt;
use rand::seq::SliceRandom;

use tokio_util::sync::CancellationToken;

use crate::cache::orders::{self as hot, ReleaseMode, ReleaseOutcome};
use crate::events::OrderStatus;
use crate::service::{orders, reservations};
use crate::state::AppState;

/// Orders examined per sweep.
const SWEEP_BATCH: i64 = 200;
/// Releases one sweep runs at once (each is one script call; the batch would otherwise take one
/// round trip per order in turn, and a backlog after an outage would drain slowly).
const SWEEP_CONCURRENCY: usize = 16;

/// One sweep: ends the due pending orders of every bucket (in random order, so concurrent
/// sweepers of other instances mostly pick different orders), then resolves the product
/// buckets' due reservations. Returns how many orders it ended.
pub async fn sweep_once(state: &AppState) -> anyhow::Result<usize> {
    let now_ms = state.clock.now_ms();
    let mut due = hot::due(&state.cache, now_ms, SWEEP_BATCH).await?;
    due.shuffle(&mut rand::rng());
    let outcomes: Vec<anyhow::Result<bool>> = futures::stream::iter(due)
        .map(|order_id| expire_one(state, order_id, now_ms))
        .buffer_unordered(SWEEP_CONCURRENCY)
        .collect()
        .await;
    let mut ended = 0;
    for outcome in outcomes {
        match outcome {
            Ok(true) => ended += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "expiring an order failed"),
        }
    }
    metrics::gauge!("orders_pending").set(hot::pending_count(&state.cache).await? as f64);
    reservations::sweep_once(state).await?;
    Ok(ended)
}

/// Expires one due order, then releases its stock in the product buckets (also for an order a
/// crash left ended with its stock still held).
async fn expire_one(state: &AppState, order_id: String, now_ms: i64) -> anyhow::Result<bool> {
    let Some(order) = hot::read(&state.cache, &order_id).await? else {
        if let Some(bucket) = state.cache.keys.of_order(&order_id) {
            let _: i64 = fred::prelude::SortedSetsInterface::zrem(
                state.cache.client(),
                state.cache.keys.order_deadlines(bucket),
                &order_id,
            )
            .await?;
        }
        return Ok(false);
    };
    let coupon = orders::coupon_campaign(state, &order)
        .await
        .map_err(|e| anyhow::anyhow!("coupon lookup failed: {e}"))?;
    let outcome = hot::release(&state.cache, &order, coupon, ReleaseMode::Expire, now_ms).await?;
    match outcome {
        ReleaseOutcome::Released(_) => {
            metrics::counter!("orders_ended_total", "status" => "EXPIRED").increment(1);
            reservations::release(state, &order.id, &order.items).await?;
            Ok(true)
        }
        ReleaseOutcome::NotPending(OrderStatus::Expired | OrderStatus::Cancelled) => {
            reservations::release(state, &order.id, &order.items).await?;
            Ok(false)
        }
        _ => Ok(false),
    }
}

/// Sweeps every `every` until shutdown.
pub async fn run(state: AppState, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = sweep_once(&state).await {
                    tracing::warn!(error = format!("{e:#}"), "expiry sweep failed");
                }
            }
        }
    }
}
