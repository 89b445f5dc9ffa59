//! Orders while they are hot in Redis (in their user's bucket, which the order id names), and
//! the three order scripts (reserve, pay, release).

use std::collections::HashMap;

use fred::prelude::*;
use fred::types::Value;

use super::call::{self, Reply, ScriptCall};
use super::ratelimit::TakeRequest;
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};
use crate::domain::Order;
use crate::events::{CouponRefusal, OrderLine, OrderStatus};

/// How long idempotency records of orders and payments are kept (the API promises 24 h).
pub const IDEMPOTENCY_TTL_SECS: i64 = 86_400;
/// How long an ended order stays in Redis (the worker has written it to MySQL long before).
pub const ENDED_ORDER_RETENTION_SECS: i64 = 86_400;

/// Reads an order hash; `None` when Redis does not hold it.
pub async fn read(cache: &Cache, order_id: &str) -> anyhow::Result<Option<Order>> {
    let Some(bucket) = cache.keys.of_order(order_id) else {
        return Ok(None);
    };
    let fields: HashMap<String, String> = cache
        .client()
        .hgetall(cache.keys.order(bucket, order_id))
        .await?;
    from_fields(&fields)
}

/// Many orders in one round trip (a pipeline of HGETALLs), in the same order; `None` where
/// Redis no longer holds the order.
pub async fn read_many(cache: &Cache, order_ids: &[String]) -> anyhow::Result<Vec<Option<Order>>> {
    if order_ids.len() <= 1 {
        let mut orders = Vec::with_capacity(1);
        for id in order_ids {
            orders.push(read(cache, id).await?);
        }
        return Ok(orders);
    }
    let pipeline = cache.client().pipeline();
    let mut asked = Vec::with_capacity(order_ids.len());
    for id in order_ids {
        let bucket = cache.keys.of_order(id);
        if let Some(bucket) = bucket {
            let () = pipeline.hgetall(cache.keys.order(bucket, id)).await?;
        }
        asked.push(bucket.is_some());
    }
    let mut replies = if asked.iter().any(|a| *a) {
        pipeline.all::<Vec<Value>>().await?.into_iter()
    } else {
        Vec::new().into_iter()
    };
    asked
        .into_iter()
        .map(
            |was_asked| match was_asked.then(|| replies.next()).flatten() {
                Some(reply) => from_fields(&reply.convert::<HashMap<String, String>>()?),
                None => Ok(None),
            },
        )
        .collect()
}

/// The hash fields of a PENDING `order` at `version` (rebuilds write them; `order_reserve.lua`
/// writes the same names): [`from_fields`] reads back exactly `order`.
pub fn to_fields(order: &Order, version: i64) -> anyhow::Result<Vec<(String, String)>> {
    let mut fields = vec![
        ("id".to_owned(), order.id.clone()),
        ("userId".to_owned(), order.user_id.to_string()),
        ("status".to_owned(), order.status.to_string()),
        ("items".to_owned(), serde_json::to_string(&order.items)?),
        ("subtotal".to_owned(), order.subtotal.to_string()),
        ("discount".to_owned(), order.discount.to_string()),
        ("total".to_owned(), order.total.to_string()),
        (
            "userCouponId".to_owned(),
            order
                .user_coupon_id
                .map(|i| i.to_string())
                .unwrap_or_default(),
        ),
        ("createdAt".to_owned(), order.created_at_ms.to_string()),
        ("expiresAt".to_owned(), order.expires_at_ms.to_string()),
        ("ver".to_owned(), version.to_string()),
    ];
    if let Some(paid) = order.paid_at_ms {
        fields.push(("paidAt".to_owned(), paid.to_string()));
    }
    Ok(fields)
}

/// Decodes an order hash strictly: a hash without one of the fields every order has is a
/// damaged entry and an error, never an order with zeros in it.
fn from_fields(fields: &HashMap<String, String>) -> anyhow::Result<Option<Order>> {
    if fields.is_empty() {
        return Ok(None);
    }
    let required = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("order hash lacks field {name}: {fields:?}"))
    };
    let number = |name: &str| -> anyhow::Result<i64> {
        let text = required(name)?;
        text.parse()
            .map_err(|_| anyhow::anyhow!("order hash field {name} is not an integer: {text:?}"))
    };
    let optional = |name: &str| -> anyhow::Result<Option<i64>> {
        match fields.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                anyhow::anyhow!("order hash field {name} is not an integer: {text:?}")
            }),
        }
    };
    let items: Vec<OrderLine> = serde_json::from_str(required("items")?)?;
    Ok(Some(Order {
        id: required("id")?.clone(),
        user_id: number("userId")?,
        status: required("status")?.parse()?,
        items,
        subtotal: number("subtotal")?,
        discount: number("discount")?,
        total: number("total")?,
        user_coupon_id: optional("userCouponId")?,
        created_at_ms: number("createdAt")?,
        expires_at_ms: number("expiresAt")?,
        paid_at_ms: optional("paidAt")?,
    }))
}

/// A new order to reserve.
pub struct ReserveCall<'a> {
    /// Id for the order to create (a fresh UUIDv7 from the service); unused when the key
    /// replays an earlier order.
    pub order_id: &'a str,
    /// The user who placed it; only they (or an admin) may see, pay or cancel it.
    pub user_id: i64,
    /// Lines (validated, priced).
    pub items: &'a [OrderLine],
    /// Sum of the line totals in won, before the discount.
    pub subtotal: i64,
    /// Won taken off the subtotal by the coupon (0 without one).
    pub discount: i64,
    /// Coupon to reserve: (userCouponId, couponId, campaign minimum order amount).
    pub coupon: Option<(i64, i64, i64)>,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// When the order expires unless paid, Unix ms.
    pub expires_at_ms: i64,
    /// Idempotency key (the client's, or one per request).
    pub idempotency_key: &'a str,
}

impl ReserveCall<'_> {
    /// The order a [`ReserveOutcome::Reserved`] answer created: exactly what order_reserve.lua
    /// wrote into its hash, so the saga answers without reading it back.
    pub fn created_order(&self) -> Order {
        Order {
            id: self.order_id.to_owned(),
            user_id: self.user_id,
            status: OrderStatus::Pending,
            items: self.items.to_vec(),
            subtotal: self.subtotal,
            discount: self.discount,
            total: self.subtotal - self.discount,
            user_coupon_id: self.coupon.map(|(user_coupon_id, _, _)| user_coupon_id),
            created_at_ms: self.now_ms,
            expires_at_ms: self.expires_at_ms,
            paid_at_ms: None,
        }
    }
}

/// Outcome of [`reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The order is PENDING now and holds its coupon.
    Reserved,
    /// This key already made an order: its id.
    Replayed(String),
    /// The coupon cannot be used, and why.
    InvalidCoupon(CouponRefusal),
    /// The idempotency key was used with another request.
    KeyReused,
    /// The reservation sweeper voided this order id before it was created (its stock went back).
    Voided,
}

/// What makes two order requests "the same": the lines and the coupon.
pub fn fingerprint(call: &ReserveCall<'_>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for line in call.items {
        hasher.update(format!("{}x{};", line.product_id, line.quantity));
    }
    hasher.update(format!("c{:?}", call.coupon.map(|c| c.0)));
    hex::encode(&hasher.finalize()[..12])
}

impl ScriptCall for ReserveCall<'_> {
    type Outcome = ReserveOutcome;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.order_reserve
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let bucket = k.of_user(self.user_id);
        let coupon_key = match self.coupon {
            Some((_, coupon_id, _)) => k.user_coupon(coupon_id, self.user_id),
            None => k.no_coupon(bucket),
        };
        vec![
            k.order(bucket, self.order_id),
            k.order_deadlines(bucket),
            k.user_orders(self.user_id),
            k.idempotency("order", self.user_id, self.idempotency_key),
            k.events(bucket),
            coupon_key,
            k.order_void(bucket, self.order_id),
        ]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        let (coupon_id, minimum) = match self.coupon {
            Some((user_coupon_id, _, minimum)) => (user_coupon_id.to_string(), minimum),
            None => (String::new(), 0),
        };
        Ok(vec![
            self.order_id.to_owned(),
            self.user_id.to_string(),
            self.now_ms.to_string(),
            self.expires_at_ms.to_string(),
            uuid::Uuid::now_v7().to_string(),
            IDEMPOTENCY_TTL_SECS.to_string(),
            serde_json::to_string(self.items)?,
            self.subtotal.to_string(),
            coupon_id,
            self.discount.to_string(),
            (self.subtotal - self.discount).to_string(),
            minimum.to_string(),
            fingerprint(self),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<ReserveOutcome> {
        reserve_outcome(&reply)
    }
}

/// The outcome in a reply of lib/order_reserve.lua (order_reserve.lua's, or order_place.lua's
/// once every product bucket held).
pub(super) fn reserve_outcome(reply: &Reply) -> anyhow::Result<ReserveOutcome> {
    Ok(match reply.int(0)? {
        1 => ReserveOutcome::Reserved,
        0 => ReserveOutcome::Replayed(reply.text(1)?),
        -2 => ReserveOutcome::InvalidCoupon(reply.word(1)?),
        -4 => ReserveOutcome::KeyReused,
        -5 => ReserveOutcome::Voided,
        _ => return Err(reply.unknown_status()),
    })
}

/// Runs order_reserve.lua.
pub async fn reserve(cache: &Cache, call: &ReserveCall<'_>) -> anyhow::Result<ReserveOutcome> {
    call::run(cache, call).await
}

/// A payment to make.
pub struct PayCall<'a> {
    /// The order to pay; it must be in the payer's bucket (its id names the bucket).
    pub order_id: &'a str,
    /// The payer (must own the order).
    pub user_id: i64,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// Payment id to assign.
    pub payment_id: &'a str,
    /// The client's `Idempotency-Key` (or one made per request): a retry answers the first outcome.
    pub idempotency_key: &'a str,
    /// The order's coupon as (userCouponId, couponId) when the caller knows it; without it, an
    /// order that holds a coupon answers [`PayOutcome::CouponNeeded`] and changes nothing.
    pub coupon: Option<(i64, i64)>,
    /// The payer's payment budget, taken first in the same call (its key must be in the
    /// payer's bucket: [`crate::cache::Keys::user_rate`]); over it →
    /// [`PayOutcome::Throttled`]. `None`: the caller took it already.
    pub budget: Option<TakeRequest>,
}

/// What a payment call decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayOutcome {
    /// Paid now (or a replay of this key): payment id, amount, balance after, paid-at ms.
    Paid {
        /// The payment's id (made before the first send, so a replay reports the same).
        payment_id: String,
        /// Won taken from the balance (the order total).
        amount: i64,
        /// The payer's balance right after this payment.
        balance: i64,
        /// When it was paid, Unix ms.
        paid_at_ms: i64,
        /// Whether this was a replay.
        replay: bool,
    },
    /// The balance does not cover the total.
    InsufficientBalance {
        /// The order total the balance would have to cover.
        required: i64,
        /// The balance now (the answer's shortfall is required − balance).
        balance: i64,
    },
    /// Not payable; the order's status (PENDING past its deadline reads as EXPIRED).
    NotPayable(OrderStatus),
    /// Redis holds no balance for the payer.
    BalanceNotLoaded,
    /// The order holds this coupon (a userCouponId) and the call did not name it: call again
    /// with it.
    CouponNeeded(i64),
    /// No such order in Redis.
    NotFound,
    /// Someone else's order.
    Forbidden,
    /// The key was used for another order.
    KeyReused,
    /// Over the payer's payment budget; nothing changed.
    Throttled {
        /// Milliseconds until the budget allows the next payment.
        retry_after_ms: u64,
    },
}

impl ScriptCall for PayCall<'_> {
    type Outcome = PayOutcome;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.order_pay
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let bucket = k.of_user(self.user_id);
        let coupon_key = match self.coupon {
            Some((_, coupon_id)) => k.user_coupon(coupon_id, self.user_id),
            None => k.no_coupon(bucket),
        };
        let mut keys = vec![
            k.order(bucket, self.order_id),
            k.balance(self.user_id),
            k.order_deadlines(bucket),
            k.idempotency("pay", self.user_id, self.idempotency_key),
            k.events(bucket),
            coupon_key,
        ];
        keys.extend(self.budget.as_ref().map(|b| b.key.clone()));
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        let mut args = vec![
            self.order_id.to_owned(),
            self.user_id.to_string(),
            self.now_ms.to_string(),
            self.payment_id.to_owned(),
            uuid::Uuid::now_v7().to_string(),
            IDEMPOTENCY_TTL_SECS.to_string(),
            ENDED_ORDER_RETENTION_SECS.to_string(),
            self.coupon
                .map(|(user_coupon_id, _)| user_coupon_id.to_string())
                .unwrap_or_default(),
        ];
        if let Some(budget) = &self.budget {
            args.extend([
                budget.rate.interval_us.to_string(),
                budget.rate.burst.to_string(),
                budget.request_id.clone(),
            ]);
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<PayOutcome> {
        Ok(match reply.int(0)? {
            status @ (0 | 1) => PayOutcome::Paid {
                payment_id: reply.text(1)?,
                amount: reply.int(2)?,
                balance: reply.int(3)?,
                paid_at_ms: reply.int(4)?,
                replay: status == 0,
            },
            -1 => PayOutcome::InsufficientBalance {
                required: reply.int(1)?,
                balance: reply.int(2)?,
            },
            -2 => PayOutcome::NotPayable(reply.word(1)?),
            -3 => PayOutcome::BalanceNotLoaded,
            -4 => PayOutcome::NotFound,
            -5 => PayOutcome::Forbidden,
            -6 => PayOutcome::KeyReused,
            -7 => anyhow::bail!("the order holds a coupon that is not reserved by it"),
            -8 => PayOutcome::CouponNeeded(reply.int(1)?),
            -9 => PayOutcome::Throttled {
                retry_after_ms: reply.int(1)?.max(1) as u64,
            },
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Runs order_pay.lua.
pub async fn pay(cache: &Cache, call: &PayCall<'_>) -> anyhow::Result<PayOutcome> {
    call::run(cache, call)
        .await
        .map_err(|e| e.context(format!("paying order {}", call.order_id)))
}

/// Why an order is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Its deadline passed (sweeper).
    Expire,
    /// Its owner cancelled it.
    Cancel {
        /// Who asks to cancel; only the owner may.
        user_id: i64,
    },
}

/// Outcome of [`release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Ended now with this status.
    Released(OrderStatus),
    /// Not PENDING any more; its status.
    NotPending(OrderStatus),
    /// Expire: deadline not reached.
    NotDue,
    /// No such order.
    NotFound,
    /// Cancel: someone else's order.
    Forbidden,
}

/// One release of a pending order (order_release.lua).
pub struct ReleaseCall<'a> {
    /// The order, as read from Redis (its lines name the stock keys).
    pub order: &'a Order,
    /// The order's campaign, if it holds a coupon.
    pub coupon_id: Option<i64>,
    /// Expire or cancel.
    pub mode: ReleaseMode,
    /// Now, Unix ms.
    pub now_ms: i64,
    /// Event id of the ending event, fixed before the first send (a re-send answers the same).
    pub event_id: String,
}

impl ScriptCall for ReleaseCall<'_> {
    type Outcome = ReleaseOutcome;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.order_release
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let bucket = k.of_user(self.order.user_id);
        let coupon_key = match self.coupon_id {
            Some(coupon_id) => k.user_coupon(coupon_id, self.order.user_id),
            None => k.no_coupon(bucket),
        };
        vec![
            k.order(bucket, &self.order.id),
            k.order_deadlines(bucket),
            k.events(bucket),
            coupon_key,
        ]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        let (mode_word, caller) = match self.mode {
            ReleaseMode::Expire => ("expire", String::new()),
            ReleaseMode::Cancel { user_id } => ("cancel", user_id.to_string()),
        };
        Ok(vec![
            self.order.id.clone(),
            mode_word.to_owned(),
            self.now_ms.to_string(),
            self.event_id.clone(),
            caller,
            ENDED_ORDER_RETENTION_SECS.to_string(),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<ReleaseOutcome> {
        Ok(match reply.int(0)? {
            1 => ReleaseOutcome::Released(reply.word(1)?),
            -2 => ReleaseOutcome::NotPending(reply.word(1)?),
            -3 => ReleaseOutcome::NotDue,
            -4 => ReleaseOutcome::NotFound,
            -5 => ReleaseOutcome::Forbidden,
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Runs order_release.lua for an order read from Redis.
pub async fn release(
    cache: &Cache,
    order: &Order,
    coupon_id: Option<i64>,
    mode: ReleaseMode,
    now_ms: i64,
) -> anyhow::Result<ReleaseOutcome> {
    let call = ReleaseCall {
        order,
        coupon_id,
        mode,
        now_ms,
        event_id: uuid::Uuid::now_v7().to_string(),
    };
    call::run(cache, &call).await
}

/// Ids of pending orders whose deadline is at or before `now_ms`, at most `limit` of each
/// bucket.
pub async fn due(cache: &Cache, now_ms: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    let keys = cache.keys.buckets().map(|b| cache.keys.order_deadlines(b));
    let due = cache.due_in(keys.collect(), now_ms, limit).await?;
    Ok(due.into_iter().flatten().collect())
}

/// Number of pending orders in every bucket.
pub async fn pending_count(cache: &Cache) -> anyhow::Result<i64> {
    let keys = cache.keys.buckets().map(|b| cache.keys.order_deadlines(b));
    cache.count_all(keys.collect()).await
}

/// The first outcome an order idempotency key recorded: (order id, request fingerprint).
pub async fn prior(
    cache: &Cache,
    user_id: i64,
    idempotency_key: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let prior: Option<String> = cache
        .client()
        .get(cache.keys.idempotency("order", user_id, idempotency_key))
        .await?;
    Ok(prior.and_then(|p| {
        let (order, fingerprint) = p.split_once('|')?;
        Some((order.to_owned(), fingerprint.to_owned()))
    }))
}

/// The order id of a request (user, idempotency key, body): the id its first attempt took, or
/// a fresh UUIDv7 that becomes that id (`SET NX GET`, kept as long as the key's record). A
/// retry after a lost reply so repeats each saga step under the first attempt's id and finds
/// its stock already held.
pub async fn attempt_id(
    cache: &Cache,
    user_id: i64,
    idempotency_key: &str,
    fingerprint: &str,
) -> anyhow::Result<String> {
    let fresh = cache.keys.new_order_id(user_id);
    let first: Option<String> = cache
        .client()
        .set(
            cache
                .keys
                .order_attempt(user_id, idempotency_key, fingerprint),
            fresh.as_str(),
            Some(fred::types::Expiration::EX(IDEMPOTENCY_TTL_SECS)),
            Some(fred::types::SetOptions::NX),
            true,
        )
        .await?;
    Ok(first.unwrap_or(fresh))
}

/// A user's recent order ids, newest first.
pub async fn recent(cache: &Cache, user_id: i64) -> anyhow::Result<Vec<String>> {
    Ok(cache
        .client()
        .zrevrange(cache.keys.user_orders(user_id), 0, -1, false)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const WHOLE: &[(&str, &str)] = &[
        ("id", "o1"),
        ("userId", "7"),
        ("status", "PENDING"),
        (
            "items",
            r#"[{"productId":1,"name":"A","unitPrice":10,"quantity":2,"lineTotal":20}]"#,
        ),
        ("subtotal", "20"),
        ("discount", "0"),
        ("total", "20"),
        ("userCouponId", ""),
        ("createdAt", "1000"),
        ("expiresAt", "2000"),
    ];

    #[test]
    fn the_fields_a_rebuild_writes_read_back_as_the_same_order() {
        let mut order = from_fields(&hash(WHOLE))
            .expect("decodes")
            .expect("present");
        for coupon in [None, Some(9)] {
            order.user_coupon_id = coupon;
            let fields: HashMap<String, String> =
                to_fields(&order, 1).expect("encodes").into_iter().collect();
            assert_eq!(fields["ver"], "1");
            let back = from_fields(&fields).expect("decodes").expect("present");
            assert_eq!(back, order);
        }
    }

    #[test]
    fn a_whole_hash_decodes_and_a_damaged_one_is_an_error() {
        let order = from_fields(&hash(WHOLE))
            .expect("decodes")
            .expect("present");
        assert_eq!(order.user_id, 7);
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.user_coupon_id, None);
        for missing in ["userId", "status", "total", "expiresAt", "items"] {
            let damaged: Vec<_> = WHOLE
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert!(
                from_fields(&hash(&damaged)).is_err(),
                "a hash without {missing} must not decode"
            );
        }
        let mut bad_status = hash(WHOLE);
        bad_status.insert("status".into(), "PAYED".into());
        assert!(from_fields(&bad_status).is_err());
        assert_eq!(from_fields(&HashMap::new()).expect("empty"), None);
    }
}
