//! Available stock per product, as Redis holds it (what orders reserve from).

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use super::call::{self, Reply, ScriptCall};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// How long an applied restock marker is kept (replays within this window are no-ops).
const RESTOCK_MARKER_TTL_SECS: i64 = 86_400;

/// Outcome of [`add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockAdd {
    /// Units added now; available units after.
    Applied { available: i64 },
    /// This operation id had already been applied; nothing changed.
    Replayed { available: i64 },
    /// Redis does not hold this product yet; nothing changed (load it from MySQL).
    NotLoaded,
}

/// Sets a product's available units only if Redis does not know the product yet; returns
/// whether it was set.
pub async fn init_if_missing(
    cache: &Cache,
    product_id: i64,
    available: i64,
) -> anyhow::Result<bool> {
    let set: Option<String> = cache
        .client()
        .set(
            cache.keys.stock(product_id),
            available,
            None,
            Some(SetOptions::NX),
            false,
        )
        .await?;
    Ok(set.is_some())
}

/// Overwrites a product's available units (only for new products and rebuilds).
pub async fn put(cache: &Cache, product_id: i64, available: i64) -> anyhow::Result<()> {
    let _: () = cache
        .client()
        .set(
            cache.keys.stock(product_id),
            available,
            None::<Expiration>,
            None,
            false,
        )
        .await?;
    Ok(())
}

/// Available units of many products, in the same order; `None` where Redis has no value.
pub async fn available(cache: &Cache, product_ids: &[i64]) -> anyhow::Result<Vec<Option<i64>>> {
    if product_ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = product_ids.iter().map(|id| cache.keys.stock(*id)).collect();
    cache.get_each(&keys).await
}

/// One restock (stock_add.lua).
pub struct AddCall<'a> {
    /// The product.
    pub product_id: i64,
    /// Units to add (> 0).
    pub units: i64,
    /// The operation id that makes a re-send a no-op.
    pub operation_id: &'a str,
    /// Decision time, Unix ms.
    pub now_ms: i64,
    /// Event id of `stock.added`, fixed before the first send.
    pub event_id: String,
}

impl ScriptCall for AddCall<'_> {
    type Outcome = StockAdd;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.stock_add
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        vec![
            k.stock(self.product_id),
            k.restock_marker(
                self.product_id,
                &format!("{}:{}", self.product_id, self.operation_id),
            ),
            k.events(k.of_product(self.product_id)),
        ]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            self.units.to_string(),
            RESTOCK_MARKER_TTL_SECS.to_string(),
            self.event_id.clone(),
            self.now_ms.to_string(),
            self.product_id.to_string(),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<StockAdd> {
        Ok(match reply.int(0)? {
            1 => StockAdd::Applied {
                available: reply.int(1)?,
            },
            0 => StockAdd::Replayed {
                available: reply.int(1)?,
            },
            2 => StockAdd::NotLoaded,
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Adds `units` to a product's available stock once per `operation_id` and appends
/// `stock.added` (stock_add.lua); the worker then raises the product's total in MySQL.
pub async fn add(
    cache: &Cache,
    product_id: i64,
    units: i64,
    operation_id: &str,
    now_ms: i64,
) -> anyhow::Result<StockAdd> {
    let call = AddCall {
        product_id,
        units,
        operation_id,
        now_ms,
        event_id: uuid::Uuid::now_v7().to_string(),
    };
    call::run(cache, &call).await
}
