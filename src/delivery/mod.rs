//! Delivery of paid orders to the external data platform: the signed body format, and the relay
//! that POSTs outbox rows at least once with exponential backoff and jitter.

pub mod receiver;
pub mod relay;
pub mod signature;

use serde_json::{json, Value};

use crate::events::{at_millis, OrderSnapshot};

/// The body POSTed for a paid order (see API.md, "External data platform delivery").
pub fn order_paid_body(event_id: &str, occurred_at_ms: i64, order: &OrderSnapshot) -> Value {
    let time = |ms: i64| at_millis(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "eventId": event_id,
        "type": "order.paid",
        "occurredAt": time(occurred_at_ms),
        "order": {
            "orderId": order.order_id,
            "userId": order.user_id,
            "items": order.items,
            "subtotal": order.subtotal,
            "discount": order.discount,
            "total": order.total,
            "paidAt": order.paid_at_ms.map(time),
        }
    })
}
