//! The payment saga's last step, taken from the stream: the paid orders among the events a
//! stream worker reads have their reservations committed in their products' buckets (the units
//! stay sold and count for the ranking in the paid hour), one `stock_settle.lua` call per bucket
//! for the whole batch (docs/ARCHITECTURE.md §4b).
//!
//! The request that paid does not wait for this step: `order.paid` is appended in the same
//! atomic call that pays, and an event stays in the stream until a worker has read it, so the
//! step is taken even when the paying instance dies right after paying; a worker that reads the
//! event again (a redelivery, a reclaim) commits nothing twice, since a reservation ends once.

use std::collections::BTreeMap;

use crate::cache::keys::Bucket;
use crate::cache::popular::hour_of;
use crate::cache::reservations::{self as held, Settle, SettleRequest};
use crate::cache::Cache;
use crate::events::{Envelope, Event, OrderStatus, ORDER_PAID};

/// Most reservations one `stock_settle.lua` call ends (a larger batch takes more calls, so
/// one call never holds Redis for long).
const MOST_PER_CALL: usize = 256;

/// Commits the reservations of every paid order among `envelopes`; returns how many ended now
/// (a reservation that had ended already, by an earlier read of the same event or by the
/// sweeper, counts as none).
///
/// A dependency failure (Redis unreachable, a failover) is returned, and the stream worker then
/// retries its whole step, so nothing is acknowledged without this step. Any other failure is
/// logged and left to the reservation sweeper, which commits a paid order's reservation at its
/// deadline: a refusal that would come back on every retry must not stop the stream.
pub async fn commit_paid(cache: &Cache, envelopes: &[Envelope]) -> anyhow::Result<usize> {
    let by_bucket = paid_by_bucket(cache, envelopes);
    let mut ended = 0;
    for (bucket, requests) in by_bucket {
        for chunk in requests.chunks(MOST_PER_CALL) {
            match held::settle_all(cache, bucket, chunk).await {
                Ok(outcomes) => ended += outcomes.into_iter().filter(|now| *now).count(),
                Err(e) if crate::dependency::is_dependency_failure(&e) => {
                    return Err(e.context("committing paid orders' reservations"));
                }
                Err(e) => tracing::warn!(%bucket, orders = chunk.len(), error = format!("{e:#}"),
                    "committing paid orders' reservations failed; the sweeper will"),
            }
        }
    }
    metrics::counter!("stock_reservations_committed_total").increment(ended as u64);
    Ok(ended)
}

/// The commit requests of the paid orders among `envelopes`, by product bucket, in stream
/// order. An event that does not decode is skipped here (the worker dead-letters it).
fn paid_by_bucket(cache: &Cache, envelopes: &[Envelope]) -> BTreeMap<Bucket, Vec<SettleRequest>> {
    let mut by_bucket: BTreeMap<Bucket, Vec<SettleRequest>> = BTreeMap::new();
    for envelope in envelopes.iter().filter(|e| e.event_type == ORDER_PAID) {
        let Ok(Event::Order(order)) = envelope.decode() else {
            continue;
        };
        if order.status != OrderStatus::Paid {
            continue;
        }
        let hour = hour_of(order.paid_at_ms.unwrap_or(envelope.occurred_at_ms));
        for (bucket, lines) in held::lines_by_bucket(&cache.keys, &order.items) {
            by_bucket.entry(bucket).or_default().push(SettleRequest {
                order_id: order.order_id.clone(),
                products: lines.iter().map(|(product, _)| *product).collect(),
                how: Settle::Commit { hour },
            });
        }
    }
    by_bucket
}
