//! The order: one type from the Redis hash, the MySQL rows and every service.

use crate::events::{OrderLine, OrderStatus};

/// An order as the engine knows it: what Redis holds while it is hot, what MySQL's `orders` and
/// `order_lines` rows hold, and what services return (the HTTP and HTML views render it).
/// Events carry it as an [`crate::events::OrderSnapshot`], the wire format the worker decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The order id (UUID v7, so ids sort by creation).
    pub id: String,
    /// The user who placed it; only they (or an admin) may see, pay or cancel it.
    pub user_id: i64,
    /// Where the order is in its life.
    pub status: OrderStatus,
    /// The lines, priced when the order was placed (later price changes do not apply).
    pub items: Vec<OrderLine>,
    /// Sum of lines.
    pub subtotal: i64,
    /// Won taken off the subtotal by the coupon (0 without one).
    pub discount: i64,
    /// What payment takes from the balance: subtotal − discount.
    pub total: i64,
    /// userCouponId, if a coupon was used.
    pub user_coupon_id: Option<i64>,
    /// When it was placed, Unix ms.
    pub created_at_ms: i64,
    /// Its payment deadline, Unix ms; unpaid after it, the sweeper expires it.
    pub expires_at_ms: i64,
    /// Unix ms, when paid.
    pub paid_at_ms: Option<i64>,
}
