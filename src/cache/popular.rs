//! Popularity ranking: units sold per product in hourly sorted sets, one per product bucket
//! (written by stock_settle.lua when a paid order's reservation is committed), read as the
//! union of the last 72 hours of every bucket. A product's sales are all in its own bucket, so
//! the top N of all is the top N of the buckets' rankings put together.

use fred::prelude::*;
use fred::types::Value;

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
    let pipeline = cache.client().pipeline();
    for bucket in cache.keys.buckets() {
        let keys: Vec<String> = (current - WINDOW_HOURS + 1..=current)
            .map(|h| cache.keys.popularity(bucket, h))
            .collect();
        let () = pipeline.zunion(keys, None, None, true).await?;
    }
    let replies: Vec<Value> = pipeline.all().await?;
    let mut ranked = Vec::new();
    for reply in replies {
        let flat: Vec<(String, f64)> = match reply {
            Value::Array(ref items) if items.is_empty() => Vec::new(),
            other => other.convert()?,
        };
        ranked.extend(
            flat.into_iter()
                .filter_map(|(member, score)| Some((member.parse().ok()?, score.round() as i64)))
                .filter(|(_, sold): &(i64, i64)| *sold > 0),
        );
    }
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(limit);
    Ok(ranked)
}

/// Overwrites one hour bucket (rebuilds from MySQL's hourly sales).
pub async fn put_hour(
    cache: &Cache,
    hour: i64,
    sales: &[(i64, i64)],
    ttl_secs: i64,
) -> anyhow::Result<()> {
    for bucket in cache.keys.buckets() {
        let key = cache.keys.popularity(bucket, hour);
        let _: i64 = cache.client().del(&key).await?;
        let members: Vec<(f64, String)> = sales
            .iter()
            .filter(|(product, _)| cache.keys.of_product(*product) == bucket)
            .map(|(product, units)| (*units as f64, product.to_string()))
            .collect();
        if members.is_empty() {
            continue;
        }
        let _: i64 = cache
            .client()
            .zadd(&key, None, None, false, false, members)
            .await?;
        let _: bool = cache.client().expire(&key, ttl_secs, None).await?;
    }
    Ok(())
}
