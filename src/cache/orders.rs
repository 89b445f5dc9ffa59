//! Orders while they are hot in Redis, and the three order scripts (reserve, pay, release).

use std::collections::HashMap;

use fred::prelude::*;
use fred::types::Value;

use super::Cache;
use crate::events::OrderLine;

/// How long idempotency records of orders and payments are kept (the API promises 24 h).
pub const IDEMPOTENCY_TTL_SECS: i64 = 86_400;
/// How long an ended order stays in Redis (the worker has written it to MySQL long before).
pub const ENDED_ORDER_RETENTION_SECS: i64 = 86_400;
/// Hourly ranking buckets live a little longer than the 72-hour window they feed.
pub const RANKING_BUCKET_TTL_SECS: i64 = 73 * 3600;

/// An order as Redis holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotOrder {
    /// Order id.
    pub id: String,
    /// Owner.
    pub user_id: i64,
    /// PENDING, PAID, EXPIRED or CANCELLED.
    pub status: String,
    /// Lines.
    pub items: Vec<OrderLine>,
    /// Sum of lines.
    pub subtotal: i64,
    /// Discount.
    pub discount: i64,
    /// Total.
    pub total: i64,
    /// userCouponId, if a coupon was used.
    pub user_coupon_id: Option<i64>,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms.
    pub expires_at_ms: i64,
    /// Unix ms, when paid.
    pub paid_at_ms: Option<i64>,
}

/// Reads an order hash; `None` when Redis does not hold it.
pub async fn read(cache: &Cache, order_id: &str) -> anyhow::Result<Option<HotOrder>> {
    let fields: HashMap<String, String> =
        cache.client().hgetall(cache.keys.order(order_id)).await?;
    from_fields(&fields)
}

/// Many orders in one round trip (a pipeline of HGETALLs), in the same order; `None` where
/// Redis no longer holds the order.
pub async fn read_many(
    cache: &Cache,
    order_ids: &[String],
) -> anyhow::Result<Vec<Option<HotOrder>>> {
    if order_ids.len() <= 1 {
        let mut orders = Vec::with_capacity(1);
        for id in order_ids {
            orders.push(read(cache, id).await?);
        }
        return Ok(orders);
    }
    let pipeline = cache.client().pipeline();
    for id in order_ids {
        let () = pipeline.hgetall(cache.keys.order(id)).await?;
    }
    let replies: Vec<Value> = pipeline.all().await?;
    replies
        .into_iter()
        .map(|reply| from_fields(&reply.convert::<HashMap<String, String>>()?))
        .collect()
}

fn from_fields(fields: &HashMap<String, String>) -> anyhow::Result<Option<HotOrder>> {
    if fields.is_empty() {
        return Ok(None);
    }
    let text = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let number = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
    let items: Vec<OrderLine> = serde_json::from_str(&text("items"))?;
    Ok(Some(HotOrder {
        id: text("id"),
        user_id: number("userId").unwrap_or(0),
        status: text("status"),
        items,
        subtotal: number("subtotal").unwrap_or(0),
        discount: number("discount").unwrap_or(0),
        total: number("total").unwrap_or(0),
        user_coupon_id: number("userCouponId"),
        created_at_ms: number("createdAt").unwrap_or(0),
        expires_at_ms: number("expiresAt").unwrap_or(0),
        paid_at_ms: number("paidAt"),
    }))
}

/// A new order to reserve.
pub struct ReserveCall<'a> {
    /// New order id.
    pub order_id: &'a str,
    /// Owner.
    pub user_id: i64,
    /// Lines (validated, priced).
    pub items: &'a [OrderLine],
    /// Sum of lines.
    pub subtotal: i64,
    /// Discount.
    pub discount: i64,
    /// Coupon to reserve: (userCouponId, couponId, campaign minimum order amount).
    pub coupon: Option<(i64, i64, i64)>,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// Deadline, Unix ms.
    pub expires_at_ms: i64,
    /// Idempotency key (the client's, or one per request).
    pub idempotency_key: &'a str,
}

/// Outcome of [`reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Reserved now.
    Reserved,
    /// This key already made an order: its id.
    Replayed(String),
    /// A line lacks stock.
    InsufficientStock {
        /// Product.
        product_id: i64,
        /// Units asked for.
        requested: i64,
        /// Units available.
        available: i64,
    },
    /// The coupon cannot be used; a stable reason word.
    InvalidCoupon(String),
    /// Redis does not hold this product's stock.
    StockNotLoaded(i64),
    /// The idempotency key was used with another request.
    KeyReused,
}

/// What makes two order requests "the same": the lines and the coupon.
fn fingerprint(call: &ReserveCall<'_>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for line in call.items {
        hasher.update(format!("{}x{};", line.product_id, line.quantity));
    }
    hasher.update(format!("c{:?}", call.coupon.map(|c| c.0)));
    hex::encode(&hasher.finalize()[..12])
}

fn int(values: &[Value], i: usize) -> i64 {
    values.get(i).and_then(|v| v.as_i64()).unwrap_or(0)
}

fn text(values: &[Value], i: usize) -> String {
    values
        .get(i)
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// Runs order_reserve.lua.
pub async fn reserve(cache: &Cache, call: &ReserveCall<'_>) -> anyhow::Result<ReserveOutcome> {
    let k = &cache.keys;
    let coupon_key = match call.coupon {
        Some((_, coupon_id, _)) => k.user_coupon(coupon_id, call.user_id),
        None => k.no_coupon(),
    };
    let mut keys = vec![
        k.order(call.order_id),
        k.order_deadlines(),
        k.user_orders(call.user_id),
        k.idempotency("order", call.user_id, call.idempotency_key),
        k.events(),
        coupon_key,
    ];
    keys.extend(call.items.iter().map(|l| k.stock(l.product_id)));
    let event_id = uuid::Uuid::now_v7().to_string();
    let (coupon_id, minimum) = match call.coupon {
        Some((user_coupon_id, _, minimum)) => (user_coupon_id.to_string(), minimum),
        None => (String::new(), 0),
    };
    let mut args: Vec<String> = vec![
        call.order_id.to_owned(),
        call.user_id.to_string(),
        call.now_ms.to_string(),
        call.expires_at_ms.to_string(),
        event_id,
        IDEMPOTENCY_TTL_SECS.to_string(),
        serde_json::to_string(call.items)?,
        call.subtotal.to_string(),
        coupon_id,
        call.discount.to_string(),
        (call.subtotal - call.discount).to_string(),
        minimum.to_string(),
        call.items.len().to_string(),
    ];
    args.extend(call.items.iter().map(|l| l.quantity.to_string()));
    args.extend(call.items.iter().map(|l| l.product_id.to_string()));
    args.push(fingerprint(call));
    let reply: Vec<Value> = cache
        .scripts
        .order_reserve
        .call(cache.client(), keys, args)
        .await?;
    Ok(match int(&reply, 0) {
        1 => ReserveOutcome::Reserved,
        0 => ReserveOutcome::Replayed(text(&reply, 1)),
        -1 => ReserveOutcome::InsufficientStock {
            product_id: int(&reply, 1),
            requested: int(&reply, 2),
            available: int(&reply, 3),
        },
        -2 => ReserveOutcome::InvalidCoupon(text(&reply, 1)),
        -3 => ReserveOutcome::StockNotLoaded(int(&reply, 1)),
        -4 => ReserveOutcome::KeyReused,
        other => anyhow::bail!("order_reserve.lua returned unknown status {other}"),
    })
}

/// A payment to make.
pub struct PayCall<'a> {
    /// The order.
    pub order: &'a HotOrder,
    /// The payer (must own the order).
    pub user_id: i64,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// Payment id to assign.
    pub payment_id: &'a str,
    /// Idempotency key.
    pub idempotency_key: &'a str,
    /// The order's coupon key parts (couponId), if any.
    pub coupon_id: Option<i64>,
}

/// Outcome of [`pay`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    /// Paid now (or a replay of this key): payment id, amount, balance after, paid-at ms.
    Paid {
        /// Payment id.
        payment_id: String,
        /// Won paid.
        amount: i64,
        /// Balance after.
        balance: i64,
        /// Unix ms.
        paid_at_ms: i64,
        /// Whether this was a replay.
        replay: bool,
    },
    /// The balance does not cover the total.
    InsufficientBalance {
        /// Order total.
        required: i64,
        /// Balance.
        balance: i64,
    },
    /// Not payable; the order's status.
    NotPayable(String),
    /// Redis holds no balance for the payer.
    BalanceNotLoaded,
    /// No such order in Redis.
    NotFound,
    /// Someone else's order.
    Forbidden,
    /// The key was used for another order.
    KeyReused,
}

/// Runs order_pay.lua.
pub async fn pay(cache: &Cache, call: &PayCall<'_>) -> anyhow::Result<PayOutcome> {
    let k = &cache.keys;
    let coupon_key = match call.coupon_id {
        Some(coupon_id) => k.user_coupon(coupon_id, call.user_id),
        None => k.no_coupon(),
    };
    let keys = vec![
        k.order(&call.order.id),
        k.balance(call.user_id),
        k.order_deadlines(),
        k.idempotency("pay", call.user_id, call.idempotency_key),
        k.events(),
        coupon_key,
        k.popularity(call.now_ms.div_euclid(3_600_000)),
    ];
    let args: Vec<String> = vec![
        call.order.id.clone(),
        call.user_id.to_string(),
        call.now_ms.to_string(),
        call.payment_id.to_owned(),
        uuid::Uuid::now_v7().to_string(),
        IDEMPOTENCY_TTL_SECS.to_string(),
        RANKING_BUCKET_TTL_SECS.to_string(),
        ENDED_ORDER_RETENTION_SECS.to_string(),
    ];
    let reply: Vec<Value> = cache
        .scripts
        .order_pay
        .call(cache.client(), keys, args)
        .await?;
    Ok(match int(&reply, 0) {
        status @ (0 | 1) => PayOutcome::Paid {
            payment_id: text(&reply, 1),
            amount: int(&reply, 2),
            balance: int(&reply, 3),
            paid_at_ms: int(&reply, 4),
            replay: status == 0,
        },
        -1 => PayOutcome::InsufficientBalance {
            required: int(&reply, 1),
            balance: int(&reply, 2),
        },
        -2 => PayOutcome::NotPayable(text(&reply, 1)),
        -3 => PayOutcome::BalanceNotLoaded,
        -4 => PayOutcome::NotFound,
        -5 => PayOutcome::Forbidden,
        -6 => PayOutcome::KeyReused,
        -7 => anyhow::bail!(
            "order {} holds a coupon that is not reserved by it",
            call.order.id
        ),
        other => anyhow::bail!("order_pay.lua returned unknown status {other}"),
    })
}

/// Why an order is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Its deadline passed (sweeper).
    Expire,
    /// Its owner cancelled it.
    Cancel {
        /// The caller.
        user_id: i64,
    },
}

/// Outcome of [`release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Ended now with this status.
    Released(String),
    /// Not PENDING any more; its status.
    NotPending(String),
    /// Expire: deadline not reached.
    NotDue,
    /// No such order.
    NotFound,
    /// Cancel: someone else's order.
    Forbidden,
}

/// Runs order_release.lua for an order read from Redis.
pub async fn release(
    cache: &Cache,
    order: &HotOrder,
    coupon_id: Option<i64>,
    mode: ReleaseMode,
    now_ms: i64,
) -> anyhow::Result<ReleaseOutcome> {
    let k = &cache.keys;
    let coupon_key = match coupon_id {
        Some(coupon_id) => k.user_coupon(coupon_id, order.user_id),
        None => k.no_coupon(),
    };
    let mut keys = vec![
        k.order(&order.id),
        k.order_deadlines(),
        k.events(),
        coupon_key,
    ];
    keys.extend(order.items.iter().map(|l| k.stock(l.product_id)));
    let (mode_word, caller) = match mode {
        ReleaseMode::Expire => ("expire", String::new()),
        ReleaseMode::Cancel { user_id } => ("cancel", user_id.to_string()),
    };
    let mut args: Vec<String> = vec![
        order.id.clone(),
        mode_word.to_owned(),
        now_ms.to_string(),
        uuid::Uuid::now_v7().to_string(),
        caller,
        ENDED_ORDER_RETENTION_SECS.to_string(),
        order.items.len().to_string(),
    ];
    args.extend(order.items.iter().map(|l| l.quantity.to_string()));
    let reply: Vec<Value> = cache
        .scripts
        .order_release
        .call(cache.client(), keys, args)
        .await?;
    Ok(match int(&reply, 0) {
        1 => ReleaseOutcome::Released(text(&reply, 1)),
        -2 => ReleaseOutcome::NotPending(text(&reply, 1)),
        -3 => ReleaseOutcome::NotDue,
        -4 => ReleaseOutcome::NotFound,
        -5 => ReleaseOutcome::Forbidden,
        other => anyhow::bail!("order_release.lua returned unknown status {other}"),
    })
}

/// Ids of pending orders whose deadline is at or before `now_ms` (at most `limit`).
pub async fn due(cache: &Cache, now_ms: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    Ok(cache
        .client()
        .zrangebyscore(
            cache.keys.order_deadlines(),
            "-inf",
            now_ms,
            false,
            Some((0, limit)),
        )
        .await?)
}

/// Number of pending orders.
pub async fn pending_count(cache: &Cache) -> anyhow::Result<i64> {
    Ok(cache.client().zcard(cache.keys.order_deadlines()).await?)
}

/// A user's recent order ids, newest first.
pub async fn recent(cache: &Cache, user_id: i64) -> anyhow::Result<Vec<String>> {
    Ok(cache
        .client()
        .zrevrange(cache.keys.user_orders(user_id), 0, -1, false)
        .await?)
}
