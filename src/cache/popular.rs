//! Popularity ranking: units sold per product in hourly sorted sets (written by order_pay.lua),
//! read as the union of the last 72 buckets.

use fred::prelude::*;

use super::Cache;

/// Buckets in the window: the current partial hour and the 71 before it.
pub const WINDOW_HOURS: i64 = 72;

/// The hour bucket a Unix-ms instant falls in.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(3_600_000)
}

/// Units sold per product over the window ending in `now_ms`'s hour, most sold first, ties by
/// lower product id; at most `limit`.
pub async fn top(cache: &Cache, now_ms: i64, limit: usize) -> anyhow::Result<Vec<(i64, i64)>> {
    let current = hour_of(now_ms);
    let keys: Vec<String> = (current - WINDOW_HOURS + 1..=current)
        .map(|h| cache.keys.popularity(h))
        .collect();
    let flat: Vec<(String, f64)> = cache.client().zunion(keys, None, None, true).await?;
    let mut ranked: Vec<(i64, i64)> = flat
        .into_iter()
        .filter_map(|(member, score)| Some((member.parse().ok()?, score.round() as i64)))
        .filter(|(_, sold)| *sold > 0)
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(limit);
    Ok(ranked)
}

/// Overwrites one hour bucket (rebuilds from MySQL's hourly sales).
pub async fn put_bucket(
    cache: &Cache,
    hour: i64,
    sales: &[(i64, i64)],
    ttl_secs: i64,
) -> anyhow::Result<()> {
    let key = cache.keys.popularity(hour);
    let _: i64 = cache.client().del(&key).await?;
    if sales.is_empty() {
        return Ok(());
    }
    let members: Vec<(f64, String)> = sales
        .iter()
        .map(|(product, units)| (*units as f64, product.to_string()))
        .collect();
    let _: i64 = cache
        .client()
        .zadd(&key, None, None, false, false, members)
        .await?;
    let _: bool = cache.client().expire(&key, ttl_secs, None).await?;
    Ok(())
}
