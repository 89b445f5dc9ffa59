//! The expiry sweeper: ends unpaid orders past their deadline, releasing stock and coupon.
//! Any number of instances run it at once; order_release.lua lets exactly one win per order,
//! and a payment racing the sweeper is decided the same way.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cache::orders::{self as hot, ReleaseMode, ReleaseOutcome};
use crate::service::orders;
use crate::state::AppState;

/// Orders examined per sweep.
const SWEEP_BATCH: i64 = 200;

/// Expires every due order once; returns how many this call ended.
pub async fn sweep_once(state: &AppState) -> anyhow::Result<usize> {
    let now_ms = state.clock.now_ms();
    let mut ended = 0;
    for order_id in hot::due(&state.cache, now_ms, SWEEP_BATCH).await? {
        let Some(order) = hot::read(&state.cache, &order_id).await? else {
            let _: i64 = fred::prelude::SortedSetsInterface::zrem(
                state.cache.client(),
                state.cache.keys.order_deadlines(),
                &order_id,
            )
            .await?;
            continue;
        };
        let coupon = orders::coupon_campaign(state, &order)
            .await
            .map_err(|e| anyhow::anyhow!("coupon lookup failed: {e}"))?;
        let outcome =
            hot::release(&state.cache, &order, coupon, ReleaseMode::Expire, now_ms).await?;
        if let ReleaseOutcome::Released(_) = outcome {
            ended += 1;
            metrics::counter!("orders_ended_total", "status" => "EXPIRED").increment(1);
        }
    }
    metrics::gauge!("orders_pending").set(hot::pending_count(&state.cache).await? as f64);
    Ok(ended)
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
