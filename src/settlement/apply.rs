//! Applies a batch of events to MySQL in one transaction, skipping events already applied.
//!
//! The batch is first aggregated into a [`Plan`], then written with a fixed, small number of
//! statements: multi-row inserts for the per-event rows, and one statement per table of shared
//! rows (products, sales hours, accounts) with the summed changes, in key order and at the end
//! of the transaction. A batch is about a dozen round trips whatever its size.

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

use super::plan::Plan;
use crate::events::Envelope;
use crate::store::{coupons, events, ledger, orders, outbox, products, wallet};

/// What a committed batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events applied now.
    pub applied: usize,
    /// Events skipped because they had been applied before (redeliveries).
    pub duplicates: usize,
}

/// Applies every event of `batch` in one transaction, or none of them.
pub async fn apply_batch(
    db: &MySqlPool,
    batch: &[Envelope],
    now: DateTime<Utc>,
) -> anyhow::Result<BatchOutcome> {
    Ok(counted(&apply_all(db, batch, now).await?))
}

/// Applies several streams' batches in one transaction, or none of them (the settlement's group
/// commit: one commit for what every bucket's stream had ready); one outcome per batch.
pub async fn apply_merged(
    db: &MySqlPool,
    batches: &[Vec<Envelope>],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<BatchOutcome>> {
    let fresh = apply_all(db, &batches.concat(), now).await?;
    let mut at = 0;
    Ok(batches
        .iter()
        .map(|batch| {
            let part = &fresh[at..at + batch.len()];
            at += batch.len();
            counted(part)
        })
        .collect())
}

/// Applied and duplicate counts from per-event freshness.
fn counted(fresh: &[bool]) -> BatchOutcome {
    let applied = fresh.iter().filter(|f| **f).count();
    BatchOutcome {
        applied,
        duplicates: fresh.len() - applied,
    }
}

/// The one transaction: marks the events applied, then writes the plan of the fresh ones;
/// returns, per event, whether it was applied now (`false`: applied before).
async fn apply_all(
    db: &MySqlPool,
    batch: &[Envelope],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<bool>> {
    let decoded = batch
        .iter()
        .map(|envelope| envelope.decode())
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = db.begin().await?;
    let fresh = events::mark_applied(&mut tx, batch, now).await?;
    let mut plan = Plan::default();
    for ((envelope, event), fresh) in batch.iter().zip(decoded).zip(&fresh) {
        if *fresh {
            plan.add(envelope, event)?;
        }
    }
    write(&mut tx, &plan, now).await?;
    tx.commit().await?;
    Ok(fresh)
}

/// Writes a plan: per-event rows first, shared rows last (see the module doc).
async fn write(
    tx: &mut sqlx::MySqlConnection,
    plan: &Plan,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    wallet::insert_charges(tx, &plan.charges).await?;
    coupons::insert_issued(tx, &plan.issued).await?;

    // Only the newest snapshot of each order and coupon: an older one would lose anyway.
    let mut order_rows: Vec<_> = plan.orders.iter().collect();
    order_rows.sort_by(|a, b| (&a.order_id, b.version).cmp(&(&b.order_id, a.version)));
    order_rows.dedup_by(|later, kept| later.order_id == kept.order_id);
    orders::upsert(tx, &order_rows).await?;

    let mut states: Vec<_> = plan.coupon_states.iter().map(|(c, at)| (c, *at)).collect();
    states.sort_by_key(|(c, _)| (c.user_coupon_id, std::cmp::Reverse(c.version)));
    states.dedup_by_key(|(c, _)| c.user_coupon_id);
    coupons::upsert_states(tx, &states).await?;
    let held: Vec<(i64, i64, i64)> = plan
        .issued
        .iter()
        .map(|c| (c.user_coupon_id, c.coupon_id, c.user_id))
        .chain(
            states
                .iter()
                .map(|(c, _)| (c.user_coupon_id, c.coupon_id, c.user_id)),
        )
        .collect();
    coupons::ensure_held(tx, &held).await?;

    orders::insert_payments(tx, &plan.payments).await?;
    outbox::enqueue(tx, &plan.outbox, Utc::now()).await?;

    products::apply_deltas(tx, &plan.products).await?;
    orders::add_sales(tx, &plan.sales).await?;
    ledger::write(tx, &plan.postings, now).await?;
    Ok(())
}
