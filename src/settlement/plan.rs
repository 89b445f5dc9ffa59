//! Turns a batch of decoded events into the set of writes one transaction makes.
//!
//! The plan aggregates before anything touches MySQL: units sold and stocked are summed per
//! product, sales per (product, hour) and ledger postings per account, so a batch of 1,000
//! paid orders of one hot product updates that product row once, not 1,000 times. Rows that
//! every batch touches (products, sales, accounts) are written last and in key order, so two
//! workers never wait on each other in opposite orders (no deadlock) and hold those locks only
//! for the end of the transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::events::{at_millis, CouponIssued, CouponState, Envelope, Event};
use crate::events::{CouponStatus, OrderSnapshot, OrderStatus, ORDER_PAID};
use crate::store::ledger::{self, Postings};
use crate::store::orders::{hour_start, PaymentRow};
use crate::store::outbox::NewDelivery;
use crate::store::products::ProductDelta;
use crate::store::wallet::ChargeRow;

/// Every write of one batch, aggregated.
#[derive(Debug, Default)]
pub struct Plan {
    /// Charges, in event order.
    pub charges: Vec<ChargeRow>,
    /// Issued coupons, in event order.
    pub issued: Vec<CouponIssued>,
    /// Order snapshots, in event order.
    pub orders: Vec<OrderSnapshot>,
    /// Coupon states carried by order events, with the use time of a used one.
    pub coupon_states: Vec<(CouponState, Option<DateTime<Utc>>)>,
    /// Payments of paid orders.
    pub payments: Vec<PaymentRow>,
    /// Deliveries to the external platform.
    pub outbox: Vec<NewDelivery>,
    /// Per product, in id order.
    pub products: BTreeMap<i64, ProductDelta>,
    /// Units sold per (product, UTC hour), in key order.
    pub sales: BTreeMap<(i64, DateTime<Utc>), i64>,
    /// Ledger postings (written per account in code order).
    pub postings: Postings,
}

impl Plan {
    /// Adds one fresh (never applied) event.
    pub fn add(&mut self, envelope: &Envelope, event: Event) -> anyhow::Result<()> {
        match event {
            Event::BalanceCharged(charged) => {
                let user = ledger::user_account(charged.user_id);
                self.postings
                    .transfer(&envelope.event_id, ledger::CASH_IN, &user, charged.amount);
                self.charges.push(ChargeRow {
                    event_id: envelope.event_id.clone(),
                    user_id: charged.user_id,
                    amount: charged.amount,
                    balance_after: charged.balance_after,
                    charged_at: envelope.occurred_at(),
                });
            }
            Event::CouponIssued(issued) => self.issued.push(issued),
            Event::StockAdded(added) => {
                let at = envelope.occurred_at();
                let delta = self.products.entry(added.product_id).or_default();
                delta.stocked += added.units;
                delta.restocked_at = delta.restocked_at.max(Some(at));
            }
            Event::Order(order) => self.add_order(envelope, *order)?,
        }
        Ok(())
    }

    /// An order's new state; a payment also moves the money (user → revenue), records the
    /// payment, the units sold and the delivery.
    fn add_order(&mut self, envelope: &Envelope, order: OrderSnapshot) -> anyhow::Result<()> {
        let paid_at = order.paid_at_ms.map(at_millis);
        if order.status == OrderStatus::Paid {
            let (Some(paid_at), Some(payment_id)) = (paid_at, order.payment_id.as_deref()) else {
                anyhow::bail!("paid order {} without payment data", order.order_id);
            };
            self.payments.push(PaymentRow {
                payment_id: payment_id.to_owned(),
                order_id: order.order_id.clone(),
                user_id: order.user_id,
                amount: order.total,
                paid_at,
            });
            let body = crate::delivery::order_paid_body(
                &envelope.event_id,
                envelope.occurred_at_ms,
                &order,
            );
            self.outbox.push(NewDelivery {
                event_id: envelope.event_id.clone(),
                event_type: ORDER_PAID,
                body: body.to_string(),
            });
            let hour = hour_start(paid_at);
            for line in &order.items {
                self.products.entry(line.product_id).or_default().sold += line.quantity;
                *self.sales.entry((line.product_id, hour)).or_insert(0) += line.quantity;
            }
            let user = ledger::user_account(order.user_id);
            self.postings
                .transfer(&envelope.event_id, &user, ledger::REVENUE, order.total);
        }
        if let Some(coupon) = &order.coupon {
            let used_at = if coupon.status == CouponStatus::Used {
                paid_at
            } else {
                None
            };
            self.coupon_states.push((coupon.clone(), used_at));
        }
        self.orders.push(order);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrderLine;

    fn envelope(id: u32, at_ms: i64) -> Envelope {
        Envelope {
            stream_id: format!("{id}-0"),
            event_id: format!("0190a3f0-0000-7000-8000-{id:012}"),
            event_type: String::new(),
            version: 1,
            occurred_at_ms: at_ms,
            data: String::new(),
        }
    }

    fn paid(order_id: &str, user_id: i64, lines: &[(i64, i64)], paid_at_ms: i64) -> Event {
        let items: Vec<OrderLine> = lines
            .iter()
            .map(|(product_id, quantity)| OrderLine {
                product_id: *product_id,
                name: format!("p{product_id}"),
                unit_price: 1_000,
                quantity: *quantity,
                line_total: 1_000 * quantity,
            })
            .collect();
        let subtotal = items.iter().map(|l| l.line_total).sum();
        Event::Order(Box::new(OrderSnapshot {
            order_id: order_id.into(),
            user_id,
            status: OrderStatus::Paid,
            items,
            subtotal,
            discount: 0,
            total: subtotal,
            created_at_ms: paid_at_ms - 1_000,
            expires_at_ms: paid_at_ms + 600_000,
            paid_at_ms: Some(paid_at_ms),
            payment_id: Some(format!("pay-{order_id}")),
            balance_after: Some(0),
            ended_at_ms: None,
            version: 2,
            coupon: None,
        }))
    }

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn paid_orders_of_one_product_become_one_product_delta_and_one_sales_row_per_hour() {
        let mut plan = Plan::default();
        let t = 1_700_000_000_000 / HOUR_MS * HOUR_MS;
        plan.add(&envelope(1, t), paid("a", 1, &[(7, 2), (3, 1)], t + 10))
            .expect("first");
        plan.add(&envelope(2, t), paid("b", 2, &[(7, 5)], t + 20))
            .expect("second");
        plan.add(&envelope(3, t), paid("c", 3, &[(7, 1)], t + HOUR_MS))
            .expect("next hour");

        assert_eq!(plan.products.keys().copied().collect::<Vec<_>>(), [3, 7]);
        assert_eq!(plan.products[&7].sold, 8);
        assert_eq!(plan.products[&3].sold, 1);
        let hour = hour_start(at_millis(t));
        let next = hour_start(at_millis(t + HOUR_MS));
        assert_eq!(plan.sales[&(7, hour)], 7);
        assert_eq!(plan.sales[&(7, next)], 1);
        assert_eq!(plan.sales.len(), 3);
        assert_eq!(plan.payments.len(), 3);
        assert_eq!(plan.outbox.len(), 3);
        assert_eq!(plan.orders.len(), 3);
        let deltas = plan.postings.deltas();
        assert_eq!(deltas[ledger::REVENUE], 3_000 + 5_000 + 1_000);
        assert_eq!(deltas.values().sum::<i64>(), 0, "double entry balances");
    }

    #[test]
    fn restocks_sum_per_product_and_keep_the_latest_time() {
        let mut plan = Plan::default();
        let added = |units| {
            Event::StockAdded(crate::events::StockAdded {
                product_id: 4,
                units,
                available_after: 0,
            })
        };
        plan.add(&envelope(1, 2_000), added(10)).expect("first");
        plan.add(&envelope(2, 1_000), added(5)).expect("second");
        assert_eq!(
            plan.products[&4],
            ProductDelta {
                sold: 0,
                stocked: 15,
                restocked_at: Some(at_millis(2_000)),
            }
        );
    }

    #[test]
    fn a_paid_order_without_payment_data_is_refused() {
        let mut plan = Plan::default();
        let Event::Order(mut order) = paid("x", 1, &[(1, 1)], 5_000) else {
            unreachable!("paid() builds an order event");
        };
        order.payment_id = None;
        let refused = plan.add(&envelope(1, 5_000), Event::Order(order));
        assert!(refused.is_err());
        assert!(plan.products.is_empty(), "nothing half-added");
        assert!(plan.postings.is_empty());
    }
}
