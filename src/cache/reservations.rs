//! Stock reservations: an order's units held in each product bucket, keyed by the order id
//! (steps of the order saga; docs/ARCHITECTURE.md §4b), and the void marker the reservation
//! sweeper sets on an order that never appeared.

use std::collections::BTreeMap;

use fred::prelude::*;

use super::call::{self, Reply, ScriptCall};
use super::keys::Bucket;
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};
use crate::events::{OrderLine, OrderStatus};

/// How long an ended reservation stays `done` (a late re-send of its stock_reserve.lua call
/// then changes nothing), and how long a void marker stays.
pub const ENDED_RESERVATION_RETENTION_SECS: i64 = 86_400;
/// Hourly ranking buckets live a little longer than the 72-hour window they feed.
pub const RANKING_BUCKET_TTL_SECS: i64 = 73 * 3600;

/// One order's lines of one product bucket: (product id, units).
pub type Lines = Vec<(i64, i64)>;

/// An order's lines grouped by product bucket, in line order within each bucket: one hold (and
/// one reservation) per bucket.
pub fn lines_by_bucket(keys: &Keys, items: &[OrderLine]) -> BTreeMap<Bucket, Lines> {
    let mut buckets: BTreeMap<Bucket, Lines> = BTreeMap::new();
    for line in items {
        buckets
            .entry(keys.of_product(line.product_id))
            .or_default()
            .push((line.product_id, line.quantity));
    }
    buckets
}

/// One order's hold in one product bucket: what a stock_reserve.lua request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The order the units are held for (its id is fixed before the first send).
    pub order_id: String,
    /// The order's owner (the sweeper finds the order's bucket from the order id).
    pub user_id: i64,
    /// When the sweeper resolves the reservation if nothing else has, Unix ms.
    pub due_ms: i64,
    /// The order's lines of this bucket's products: (product id, units); at least one.
    pub lines: Lines,
}

/// What stock_reserve.lua decided for one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// The units are held now, or were by an earlier send of this request.
    Held,
    /// A line lacks stock (nothing is held for this order).
    InsufficientStock {
        /// The product that lacks the units.
        product_id: i64,
        /// Units asked for.
        requested: i64,
        /// Units it has left to reserve right now.
        available: i64,
    },
    /// Redis does not hold this product's stock (nothing is held for this order).
    StockNotLoaded(i64),
    /// This order id's reservation has already ended (released or committed): nothing is held,
    /// and the id must not be used for a new order.
    Spent,
}

/// One stock_reserve.lua call: holds of one product bucket, decided in this order.
pub struct HoldCall<'a> {
    /// At least one hold; every line in one bucket.
    pub requests: &'a [HoldRequest],
}

impl HoldRequest {
    /// The product bucket the hold is in: its first line's (every line's, for a valid hold).
    pub fn bucket(&self, keys: &Keys) -> Bucket {
        keys.of_product(self.lines.first().map_or(0, |(product, _)| *product))
    }
}

fn bucket_of_holds(keys: &Keys, requests: &[HoldRequest]) -> Bucket {
    requests
        .first()
        .map_or_else(|| keys.of_product(0), |r| r.bucket(keys))
}

impl ScriptCall for HoldCall<'_> {
    type Outcome = Vec<ReserveOutcome>;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.stock_reserve
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let bucket = bucket_of_holds(k, self.requests);
        let mut keys = vec![k.reservation_deadlines(bucket)];
        for r in self.requests {
            push_hold_keys(k, bucket, r, &mut keys);
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.requests.is_empty(), "a hold call needs a request");
        let mut args = vec![self.requests.len().to_string()];
        for r in self.requests {
            push_hold_args(r, &mut args)?;
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<Vec<ReserveOutcome>> {
        reply.rows(4)?.map(|at| hold_outcome(&reply, at)).collect()
    }
}

/// A hold's keys as lib/stock_hold.lua reads them: the reservation, then each line's stock.
pub(super) fn push_hold_keys(k: &Keys, bucket: Bucket, hold: &HoldRequest, keys: &mut Vec<String>) {
    keys.push(k.reservation(bucket, &hold.order_id));
    keys.extend(hold.lines.iter().map(|(product, _)| k.stock(*product)));
}

/// A hold's arguments as lib/stock_hold.lua reads them: order id, user id, sweeper time, line
/// count, then each line's product id and units.
pub(super) fn push_hold_args(hold: &HoldRequest, args: &mut Vec<String>) -> anyhow::Result<()> {
    anyhow::ensure!(!hold.lines.is_empty(), "a hold needs a line");
    args.extend([
        hold.order_id.clone(),
        hold.user_id.to_string(),
        hold.due_ms.to_string(),
        hold.lines.len().to_string(),
    ]);
    for (product, units) in &hold.lines {
        args.extend([product.to_string(), units.to_string()]);
    }
    Ok(())
}

/// The outcome in the four elements of `reply` from `at` on (`{status, productId, requested,
/// available}`, lib/stock_hold.lua).
pub(super) fn hold_outcome(reply: &Reply, at: usize) -> anyhow::Result<ReserveOutcome> {
    Ok(match reply.int(at)? {
        0 | 1 => ReserveOutcome::Held,
        2 => ReserveOutcome::Spent,
        -1 => ReserveOutcome::InsufficientStock {
            product_id: reply.int(at + 1)?,
            requested: reply.int(at + 2)?,
            available: reply.int(at + 3)?,
        },
        -3 => ReserveOutcome::StockNotLoaded(reply.int(at + 1)?),
        _ => return Err(reply.unknown_status()),
    })
}

/// Runs stock_reserve.lua for holds of one product bucket; one outcome per hold.
pub async fn hold_all(
    cache: &Cache,
    requests: &[HoldRequest],
) -> anyhow::Result<Vec<ReserveOutcome>> {
    let bucket = bucket_of_holds(&cache.keys, requests);
    anyhow::ensure!(
        requests
            .iter()
            .flat_map(|r| &r.lines)
            .all(|(product, _)| cache.keys.of_product(*product) == bucket),
        "one stock_reserve.lua call holds products of one bucket"
    );
    call::run_each(cache, &HoldCall { requests }, requests.len()).await
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

/// The end of one order's reservation in one product bucket: what a stock_settle.lua request
/// carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleRequest {
    /// The order the units were held for.
    pub order_id: String,
    /// The products of the reservation (a release gives their units back).
    pub products: Vec<i64>,
    /// Commit or release.
    pub how: Settle,
}

/// One stock_settle.lua call: reservations of one product bucket ended in this order.
pub struct SettleCall<'a> {
    /// The bucket of the reservations.
    pub bucket: Bucket,
    /// At least one.
    pub requests: &'a [SettleRequest],
}

impl ScriptCall for SettleCall<'_> {
    type Outcome = Vec<bool>;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.stock_settle
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let mut keys = vec![k.reservation_deadlines(self.bucket)];
        for r in self.requests {
            let hour = match r.how {
                Settle::Commit { hour } => hour,
                Settle::Release => 0,
            };
            keys.push(k.reservation(self.bucket, &r.order_id));
            keys.push(k.popularity(self.bucket, hour));
            if r.how == Settle::Release {
                keys.extend(r.products.iter().map(|p| k.stock(*p)));
            }
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.requests.is_empty(), "a settle call needs a request");
        let mut args = vec![
            RANKING_BUCKET_TTL_SECS.to_string(),
            ENDED_RESERVATION_RETENTION_SECS.to_string(),
            self.requests.len().to_string(),
        ];
        for r in self.requests {
            let (mode, products): (&str, &[i64]) = match r.how {
                Settle::Commit { .. } => ("commit", &[]),
                Settle::Release => ("release", &r.products),
            };
            args.extend([
                r.order_id.clone(),
                mode.to_owned(),
                products.len().to_string(),
            ]);
            args.extend(products.iter().map(i64::to_string));
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<Vec<bool>> {
        reply.flags()
    }
}

/// Runs stock_settle.lua for reservations of `bucket`; per request, whether it ended now.
pub async fn settle_all(
    cache: &Cache,
    bucket: Bucket,
    requests: &[SettleRequest],
) -> anyhow::Result<Vec<bool>> {
    anyhow::ensure!(
        requests
            .iter()
            .flat_map(|r| &r.products)
            .all(|product| cache.keys.of_product(*product) == bucket),
        "one stock_settle.lua call settles products of one bucket"
    );
    call::run_each(cache, &SettleCall { bucket, requests }, requests.len()).await
}

/// A live reservation, as the sweeper reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Reservations due at or before `now_ms` as (bucket, order id), at most `limit` of each bucket.
pub async fn due(cache: &Cache, now_ms: i64, limit: i64) -> anyhow::Result<Vec<(Bucket, String)>> {
    let buckets: Vec<Bucket> = cache.keys.buckets().collect();
    let keys = buckets.iter().map(|b| cache.keys.reservation_deadlines(*b));
    let due = cache.due_in(keys.collect(), now_ms, limit).await?;
    Ok(buckets
        .into_iter()
        .zip(due)
        .flat_map(|(bucket, ids)| ids.into_iter().map(move |id| (bucket, id)))
        .collect())
}

/// Live reservations of every bucket.
pub async fn live_count(cache: &Cache) -> anyhow::Result<i64> {
    let keys = cache
        .keys
        .buckets()
        .map(|b| cache.keys.reservation_deadlines(b));
    cache.count_all(keys.collect()).await
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
