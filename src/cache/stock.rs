//! Available stock per product, as Redis holds it (what orders reserve from).

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use super::Cache;

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
    if keys.len() == 1 {
        let one: Option<i64> = cache.client().get(&keys[0]).await?;
        return Ok(vec![one]);
    }
    Ok(cache.client().mget(keys).await?)
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
    let keys = vec![
        cache.keys.stock(product_id),
        cache
            .keys
            .operation("restock", &format!("{product_id}:{operation_id}")),
        cache.keys.events(),
    ];
    let event_id = uuid::Uuid::now_v7().to_string();
    let args: Vec<String> = vec![
        units.to_string(),
        RESTOCK_MARKER_TTL_SECS.to_string(),
        event_id,
        now_ms.to_string(),
        product_id.to_string(),
    ];
    let (status, available): (i64, i64) = cache
        .scripts
        .stock_add
        .call(cache.client(), keys, args)
        .await?;
    Ok(match status {
        1 => StockAdd::Applied { available },
        0 => StockAdd::Replayed { available },
        2 => StockAdd::NotLoaded,
        other => anyhow::bail!("stock_add.lua returned unknown status {other}"),
    })
}
