//! The event envelope: how a decision made in Redis travels to MySQL.
//!
//! Every state-changing Lua script appends one entry to the settlement stream `{p}:events` in
//! the same atomic call that made the decision. An entry's fields are the envelope:
//!
//! | field  | meaning                                                     |
//! |--------|-------------------------------------------------------------|
//! | `id`   | event id (UUID, made by the caller; the idempotency fence)  |
//! | `type` | event type, e.g. `balance.charged`                          |
//! | `v`    | payload version (`1`)                                       |
//! | `at`   | occurred-at, Unix milliseconds                              |
//! | `data` | JSON payload, camelCase, integers only for money            |
//!
//! [`Envelope::decode`] turns an envelope into a typed [`Event`]; anything it cannot decode is
//! poison and ends in the dead-letter stream after the worker's retries.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub mod status;

pub use status::{CouponRefusal, CouponStatus, OrderStatus, UnknownWord};

/// Type name of [`BalanceCharged`].
pub const BALANCE_CHARGED: &str = "balance.charged";
/// Type name of [`CouponIssued`].
pub const COUPON_ISSUED: &str = "coupon.issued";
/// Type name of an [`OrderSnapshot`] when an order is reserved.
pub const ORDER_RESERVED: &str = "order.reserved";
/// Type name of an [`OrderSnapshot`] when an order is paid.
pub const ORDER_PAID: &str = "order.paid";
/// Type name of an [`OrderSnapshot`] when an unpaid order expires.
pub const ORDER_EXPIRED: &str = "order.expired";
/// Type name of an [`OrderSnapshot`] when its owner cancels an order.
pub const ORDER_CANCELLED: &str = "order.cancelled";
/// Type name of [`StockAdded`].
pub const STOCK_ADDED: &str = "stock.added";

/// A Unix-millisecond instant as a UTC time (the epoch if out of range).
pub fn at_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// One stream entry, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Redis stream entry id (`<ms>-<seq>`).
    pub stream_id: String,
    /// The entry's `id` field: a UUID fixed before the first send, so a re-sent event keeps it;
    /// the worker applies each id at most once.
    pub event_id: String,
    /// What happened, e.g. `order.paid` (selects the payload type).
    pub event_type: String,
    /// Version of the payload's shape for that type (readers refuse versions they do not know).
    pub version: u32,
    /// When the decision was made, Unix milliseconds.
    pub occurred_at_ms: i64,
    /// The payload as JSON (camelCase, integer won), built by the script with `cjson.encode`.
    pub data: String,
}

/// Why an entry cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A required envelope field is missing or malformed.
    #[error("envelope field {0} is missing or malformed")]
    Envelope(&'static str),
    /// The type is not one this version understands.
    #[error("unknown event type {0} v{1}")]
    UnknownType(String, u32),
    /// The payload does not match the type.
    #[error("payload of {0} does not decode: {1}")]
    Payload(String, String),
}

/// A typed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Money added to a prepaid balance.
    BalanceCharged(BalanceCharged),
    /// Units added to a product's stock by an admin.
    StockAdded(StockAdded),
    /// A first-come coupon issued to a user.
    CouponIssued(CouponIssued),
    /// An order changed state (reserved, paid, expired or cancelled); the payload is the
    /// whole order after the change.
    Order(Box<OrderSnapshot>),
}

/// One order line as events and the order hash carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    /// The product ordered.
    pub product_id: i64,
    /// Product name at order time.
    pub name: String,
    /// Unit price at order time (won).
    pub unit_price: i64,
    /// Units ordered (≥ 1).
    pub quantity: i64,
    /// unit price × quantity.
    pub line_total: i64,
}

/// A coupon's state after a change, with a version that only grows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CouponState {
    /// The issued coupon's id, unique across campaigns; what an order names.
    pub user_coupon_id: i64,
    /// The campaign (MySQL `coupons.id`) the coupon belongs to.
    pub coupon_id: i64,
    /// The user holding the coupon.
    pub user_id: i64,
    /// Its state after the change.
    pub status: CouponStatus,
    /// The order holding or using it.
    pub order_id: Option<String>,
    /// Issue time, Unix ms.
    pub issued_at_ms: i64,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
    /// Grows with every change; a write with a lower version loses.
    pub version: i64,
}

/// An order after a change: every `order.*` event carries the whole order, so the worker can
/// apply them in any order (the higher `version` wins).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderSnapshot {
    /// The order id (UUID v7).
    pub order_id: String,
    /// The user who placed it; only they (or an admin) may see, pay or cancel it.
    pub user_id: i64,
    /// Its state after the change (the event type says the same).
    pub status: OrderStatus,
    /// The lines, priced when the order was placed (later price changes do not apply).
    pub items: Vec<OrderLine>,
    /// Sum of line totals.
    pub subtotal: i64,
    /// Won taken off the subtotal by the coupon (0 without one).
    pub discount: i64,
    /// subtotal − discount.
    pub total: i64,
    /// Creation time, Unix ms.
    pub created_at_ms: i64,
    /// Payment deadline, Unix ms.
    pub expires_at_ms: i64,
    /// Payment time (PAID), Unix ms.
    #[serde(default)]
    pub paid_at_ms: Option<i64>,
    /// Payment id (PAID).
    #[serde(default)]
    pub payment_id: Option<String>,
    /// Balance after payment (PAID).
    #[serde(default)]
    pub balance_after: Option<i64>,
    /// End time (EXPIRED/CANCELLED), Unix ms.
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    /// 1 while PENDING, 2 once ended.
    pub version: i64,
    /// The coupon's new state, if the change touched one.
    pub coupon: Option<CouponState>,
}

/// Payload of `coupon.issued` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CouponIssued {
    /// The issued coupon's id.
    pub user_coupon_id: i64,
    /// The campaign (MySQL `coupons.id`) the coupon belongs to.
    pub coupon_id: i64,
    /// The user holding the coupon.
    pub user_id: i64,
    /// Issue time, Unix ms.
    pub issued_at_ms: i64,
    /// Expiry time, Unix ms.
    pub expires_at_ms: i64,
}

/// Payload of `stock.added` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockAdded {
    /// The product whose stock was raised.
    pub product_id: i64,
    /// Units an admin added to the product's stock (> 0); the worker raises its MySQL total by it.
    pub units: i64,
    /// Available units right after, in Redis.
    pub available_after: i64,
}

/// Payload of `balance.charged` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BalanceCharged {
    /// Whose balance.
    pub user_id: i64,
    /// Won added (> 0).
    pub amount: i64,
    /// Balance right after, in Redis.
    pub balance_after: i64,
}

impl Envelope {
    /// Builds an envelope from a stream entry's id and fields.
    pub fn from_fields(
        stream_id: &str,
        fields: &HashMap<String, String>,
    ) -> Result<Self, DecodeError> {
        let get = |name: &'static str| {
            fields
                .get(name)
                .filter(|v| !v.is_empty())
                .ok_or(DecodeError::Envelope(name))
        };
        let event_id = get("id")?;
        if event_id.len() != 36 {
            return Err(DecodeError::Envelope("id"));
        }
        Ok(Self {
            stream_id: stream_id.to_owned(),
            event_id: event_id.clone(),
            event_type: get("type")?.clone(),
            version: get("v")?.parse().map_err(|_| DecodeError::Envelope("v"))?,
            occurred_at_ms: get("at")?
                .parse()
                .map_err(|_| DecodeError::Envelope("at"))?,
            data: get("data")?.clone(),
        })
    }

    /// When the decision was made.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.occurred_at_ms)
            .single()
            .unwrap_or_default()
    }

    /// Decodes the payload by type and version.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        let payload_error =
            |e: serde_json::Error| DecodeError::Payload(self.event_type.clone(), e.to_string());
        match (self.event_type.as_str(), self.version) {
            (BALANCE_CHARGED, 1) => {
                let charged: BalanceCharged =
                    serde_json::from_str(&self.data).map_err(payload_error)?;
                if charged.amount <= 0 || charged.user_id <= 0 {
                    return Err(DecodeError::Payload(
                        self.event_type.clone(),
                        "range".into(),
                    ));
                }
                Ok(Event::BalanceCharged(charged))
            }
            (STOCK_ADDED, 1) => {
                let added: StockAdded = serde_json::from_str(&self.data).map_err(payload_error)?;
                if added.units <= 0 || added.product_id <= 0 {
                    return Err(DecodeError::Payload(
                        self.event_type.clone(),
                        "range".into(),
                    ));
                }
                Ok(Event::StockAdded(added))
            }
            (COUPON_ISSUED, 1) => {
                let issued: CouponIssued =
                    serde_json::from_str(&self.data).map_err(payload_error)?;
                Ok(Event::CouponIssued(issued))
            }
            (ORDER_RESERVED | ORDER_PAID | ORDER_EXPIRED | ORDER_CANCELLED, 1) => {
                let order: OrderSnapshot =
                    serde_json::from_str(&self.data).map_err(payload_error)?;
                let expected = match self.event_type.as_str() {
                    ORDER_RESERVED => OrderStatus::Pending,
                    ORDER_PAID => OrderStatus::Paid,
                    ORDER_EXPIRED => OrderStatus::Expired,
                    _ => OrderStatus::Cancelled,
                };
                let consistent = order.status == expected
                    && order.total == order.subtotal - order.discount
                    && !order.items.is_empty();
                if !consistent {
                    return Err(DecodeError::Payload(
                        self.event_type.clone(),
                        "state".into(),
                    ));
                }
                Ok(Event::Order(Box::new(order)))
            }
            (other, v) => Err(DecodeError::UnknownType(other.to_owned(), v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ID: &str = "0190a3f0-0000-7000-8000-000000000001";

    #[test]
    fn a_charge_entry_decodes_to_a_typed_event() {
        let f = fields(&[
            ("id", ID),
            ("type", "balance.charged"),
            ("v", "1"),
            ("at", "1700000000000"),
            ("data", r#"{"userId":4,"amount":500,"balanceAfter":1500}"#),
        ]);
        let envelope = Envelope::from_fields("1-0", &f).expect("envelope");
        let expected = BalanceCharged {
            user_id: 4,
            amount: 500,
            balance_after: 1500,
        };
        assert_eq!(envelope.decode(), Ok(Event::BalanceCharged(expected)));
    }

    #[test]
    fn poison_entries_are_refused_with_a_reason() {
        let missing = fields(&[("type", "balance.charged")]);
        assert_eq!(
            Envelope::from_fields("1-0", &missing),
            Err(DecodeError::Envelope("id"))
        );
        let unknown = fields(&[
            ("id", ID),
            ("type", "x.y"),
            ("v", "1"),
            ("at", "1"),
            ("data", "{}"),
        ]);
        let envelope = Envelope::from_fields("1-0", &unknown).expect("envelope");
        assert!(matches!(
            envelope.decode(),
            Err(DecodeError::UnknownType(_, 1))
        ));
        let bad = fields(&[
            ("id", ID),
            ("type", "balance.charged"),
            ("v", "1"),
            ("at", "1"),
            ("data", r#"{"userId":4,"amount":-5,"balanceAfter":0}"#),
        ]);
        let envelope = Envelope::from_fields("1-0", &bad).expect("envelope");
        assert!(matches!(envelope.decode(), Err(DecodeError::Payload(..))));
    }
}
