//! Stock reservations: an order's units held in each product bucket, keyed by the order id
//! (steps of the order saga; docs/ARCHITECTURE.md §4b), and the void marker the reservation
//! sweeper sets on an order that never appeared.

use fred::prelude::*;

use super::call::{self, Reply, ScriptCall};
use super::keys::Bucket;
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};
use crate::events::OrderStatus;

/// How long an ended reservation stays `done` (a late re-send of its stock_reserve.lua call
/// then changes nothing), and how long a void marker stays.
pub const ENDED_RESERVATION_RETENTION_SECS: i64 = 86_400;
/// Hourly ranking buckets live a little longer than the 72-hour window they feed.
pub const RANKING_BUCKET_TTL_SECS: i64 = 73 * 3600;

/// One order's lines of one product bucket: (product id, units).
pub type Lines = Vec<(i64, i64)>;

/// Holds an order's units of the products of one bucket (stock_reserve.lua).
pub struct ReserveCall<'a> {
    /// The order the units are held for (its id is fixed before the first send).
    pub order_id: &'a str,
    /// The order's owner (the sweeper finds the order's bucket from the order id).
    pub user_id: i64,
    /// When the sweeper resolves the reservation if nothing else has, Unix ms.
    pub due_ms: i64,
    /// The lines of this bucket's products, at least one.
    pub lines: &'a [(i64, i64)],
}

/// What stock_reserve.lua decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The units are held now, or were by an earlier send of this call.
    Held,
    /// A line lacks stock (nothing is held).
    InsufficientStock {
        /// The product that lacks the units.
        product_id: i64,
        /// Units asked for.
        requested: i64,
        /// Units it has left to reserve right now.
        available: i64,
    },
    /// Redis does not hold this product's stock (nothing is held).
    StockNotLoaded(i64),
}

fn bucket_of(keys: &Keys, lines: &[(i64, i64)]) -> Bucket {
    keys.of_product(lines.first().map_or(0, |(product, _)| *product))
}

impl ScriptCall for ReserveCall<'_> {
    type Outcome = ReserveOutcome;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.stock_reserve
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let bucket = bucket_of(k, self.lines);
        let mut keys = vec![
            k.reservation(bucket, self.order_id),
            k.reservation_deadlines(bucket),
        ];
        keys.extend(self.lines.iter().map(|(product, _)| k.stock(*product)));
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.lines.is_empty(), "a reservation needs a line");
        let mut args = vec![
            self.order_id.to_owned(),
            self.user_id.to_string(),
            self.due_ms.to_string(),
        ];
        for (product, units) in self.lines {
            args.extend([product.to_string(), units.to_string()]);
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<ReserveOutcome> {
        Ok(match reply.int(0)? {
            0 | 1 => ReserveOutcome::Held,
            -1 => ReserveOutcome::InsufficientStock {
                product_id: reply.int(1)?,
                requested: reply.int(2)?,
                available: reply.int(3)?,
            },
            -3 => ReserveOutcome::StockNotLoaded(reply.int(1)?),
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Runs stock_reserve.lua for the lines of one product bucket.
pub async fn reserve(cache: &Cache, call: &ReserveCall<'_>) -> anyhow::Result<ReserveOutcome> {
    call::run(cache, call).await
}

/// How a reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The order was paid: the units stay sold and count for the ranking in `hour`.
    Commit {
        /// The UTC hour of the payment (ms / 3.6e6).
        hour: i64,
    },
    /// The order ended unpaid or never existed: the units go back to stock.
    Release,
}

/// Ends one order's reservation in one product bucket (stock_settle.lua).
pub struct SettleCall<'a> {
    /// The order the units were held for.
    pub order_id: &'a str,
    /// The bucket of the reservation.
    pub bucket: Bucket,
    /// The products of the reservation (a release gives their units back).
    pub products: &'a [i64],
    /// Commit or release.
    pub how: Settle,
}

impl ScriptCall for SettleCall<'_> {
    type Outcome = bool;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.stock_settle
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let hour = match self.how {
            Settle::Commit { hour } => hour,
            Settle::Release => 0,
        };
        let mut keys = vec![
            k.reservation(self.bucket, self.order_id),
            k.reservation_deadlines(self.bucket),
            k.popularity(self.bucket, hour),
        ];
        if self.how == Settle::Release {
            keys.extend(self.products.iter().map(|p| k.stock(*p)));
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        let mode = match self.how {
            Settle::Commit { .. } => "commit",
            Settle::Release => "release",
        };
        let mut args = vec![
            self.order_id.to_owned(),
            mode.to_owned(),
            RANKING_BUCKET_TTL_SECS.to_string(),
            ENDED_RESERVATION_RETENTION_SECS.to_string(),
        ];
        if self.how == Settle::Release {
            args.extend(self.products.iter().map(i64::to_string));
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<bool> {
        match reply.int(0)? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(reply.unknown_status()),
        }
    }
}

/// Runs stock_settle.lua; `true` when the reservation ended now.
pub async fn settle(cache: &Cache, call: &SettleCall<'_>) -> anyhow::Result<bool> {
    call::run(cache, call).await
}

/// A live reservation, as the sweeper reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Reservation {
    /// The order's owner.
    #[serde(rename = "userId")]
    pub user_id: i64,
    /// The units held: (product id, units).
    pub lines: Lines,
}

/// The reservation of `order_id` in `bucket`; `None` when there is none or it has ended.
pub async fn read(
    cache: &Cache,
    bucket: Bucket,
    order_id: &str,
) -> anyhow::Result<Option<Reservation>> {
    let held: Option<String> = cache
        .client()
        .get(cache.keys.reservation(bucket, order_id))
        .await?;
    match held.as_deref() {
        None | Some("done") => Ok(None),
        Some(json) => Ok(Some(serde_json::from_str(json).map_err(|e| {
            anyhow::anyhow!("reservation of order {order_id} is damaged: {e}: {json:?}")
        })?)),
    }
}

/// Order ids of `bucket`'s reservations due at or before `now_ms` (at most `limit`).
pub async fn due(
    cache: &Cache,
    bucket: Bucket,
    now_ms: i64,
    limit: i64,
) -> anyhow::Result<Vec<String>> {
    Ok(cache
        .client()
        .zrangebyscore(
            cache.keys.reservation_deadlines(bucket),
            "-inf",
            now_ms,
            false,
            Some((0, limit)),
        )
        .await?)
}

/// Live reservations of every bucket.
pub async fn live_count(cache: &Cache) -> anyhow::Result<i64> {
    let mut total = 0;
    for bucket in cache.keys.buckets() {
        let n: i64 = cache
            .client()
            .zcard(cache.keys.reservation_deadlines(bucket))
            .await?;
        total += n;
    }
    Ok(total)
}

/// What the order's bucket says of an order whose reservation is due (order_void.lua).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The order exists with this status; `paid_at_ms` is set once it is paid.
    Exists {
        /// Its status now.
        status: OrderStatus,
        /// When it was paid, Unix ms.
        paid_at_ms: Option<i64>,
    },
    /// It was never created, and now never will be.
    Voided,
}

/// Asks an order's bucket what became of the order, voiding it if it was never created.
pub struct VoidCall<'a> {
    /// The order's bucket (named by its id).
    pub bucket: Bucket,
    /// The order.
    pub order_id: &'a str,
}

impl ScriptCall for VoidCall<'_> {
    type Outcome = Fate;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.order_void
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        vec![
            k.order(self.bucket, self.order_id),
            k.order_void(self.bucket, self.order_id),
        ]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![ENDED_RESERVATION_RETENTION_SECS.to_string()])
    }

    fn decode(reply: Reply) -> anyhow::Result<Fate> {
        Ok(match reply.int(0)? {
            1 => Fate::Exists {
                status: reply.word(1)?,
                paid_at_ms: reply.text(2)?.parse().ok(),
            },
            0 => Fate::Voided,
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Runs order_void.lua.
pub async fn fate(cache: &Cache, bucket: Bucket, order_id: &str) -> anyhow::Result<Fate> {
    call::run(cache, &VoidCall { bucket, order_id }).await
}
