//! Applies a batch of events to MySQL in one transaction, skipping events already applied.

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

use crate::events::{at_millis, BalanceCharged, Envelope, Event, OrderSnapshot};
use crate::store::ledger::{self, Postings};
use crate::store::{coupons, events, orders, outbox, products, wallet};

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
    let mut outcome = BatchOutcome::default();
    let mut postings = Postings::default();
    let mut tx = db.begin().await?;
    for envelope in batch {
        let event = envelope.decode()?;
        if !events::mark_applied(&mut tx, envelope, now).await? {
            outcome.duplicates += 1;
            continue;
        }
        apply_one(&mut tx, envelope, &event, &mut postings).await?;
        outcome.applied += 1;
    }
    ledger::write(&mut tx, &postings, now).await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn apply_one(
    tx: &mut MySqlConnection,
    envelope: &Envelope,
    event: &Event,
    postings: &mut Postings,
) -> anyhow::Result<()> {
    match event {
        Event::BalanceCharged(charged) => apply_charge(tx, envelope, charged, postings).await,
        Event::CouponIssued(c) => {
            let (issued, expires) = (at_millis(c.issued_at_ms), at_millis(c.expires_at_ms));
            coupons::insert_user_coupon(
                tx,
                c.user_coupon_id,
                c.coupon_id,
                c.user_id,
                issued,
                expires,
            )
            .await
        }
        Event::Order(order) => apply_order(tx, envelope, order, postings).await,
        Event::StockAdded(added) => {
            products::add_stock(tx, added.product_id, added.units, envelope.occurred_at()).await
        }
    }
}

/// Writes the order's new state; a payment also moves the money (user → revenue), records the
/// payment and the units sold.
async fn apply_order(
    tx: &mut MySqlConnection,
    envelope: &Envelope,
    order: &OrderSnapshot,
    postings: &mut Postings,
) -> anyhow::Result<()> {
    orders::upsert(tx, order).await?;
    let paid_at = order.paid_at_ms.map(at_millis);
    if let Some(coupon) = &order.coupon {
        let used_at = if coupon.status == "USED" {
            paid_at
        } else {
            None
        };
        coupons::upsert_state(tx, coupon, used_at).await?;
    }
    if order.status == "PAID" {
        let (Some(paid_at), Some(payment_id)) = (paid_at, order.payment_id.as_deref()) else {
            anyhow::bail!("paid order {} without payment data", order.order_id);
        };
        orders::insert_payment(tx, payment_id, order, paid_at).await?;
        let body =
            crate::delivery::order_paid_body(&envelope.event_id, envelope.occurred_at_ms, order);
        outbox::enqueue(
            tx,
            &envelope.event_id,
            "order.paid",
            &body.to_string(),
            Utc::now(),
        )
        .await?;
        orders::record_sales(tx, &order.items, paid_at).await?;
        let user = ledger::user_account(order.user_id);
        postings.transfer(&envelope.event_id, &user, ledger::REVENUE, order.total);
    }
    Ok(())
}

async fn apply_charge(
    tx: &mut MySqlConnection,
    envelope: &Envelope,
    charged: &BalanceCharged,
    postings: &mut Postings,
) -> anyhow::Result<()> {
    wallet::insert_charge(
        tx,
        &envelope.event_id,
        charged.user_id,
        charged.amount,
        charged.balance_after,
        envelope.occurred_at(),
    )
    .await?;
    let user = ledger::user_account(charged.user_id);
    postings.transfer(&envelope.event_id, ledger::CASH_IN, &user, charged.amount);
    Ok(())
}
