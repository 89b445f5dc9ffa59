//! `flashmart rebuild-cache`: rebuilds Redis's hot state (balances, stock, pricing) from MySQL, the
//! source of truth. Refuses while the stream holds events MySQL has not applied, because then
//! MySQL is behind Redis and the rebuild would lose those decisions.

use sqlx::MySqlPool;

use fred::prelude::*;

use crate::cache::{coupons, products, stock, wallet, Cache};
use crate::ops::audit::reserved_units;
use crate::settlement::stream;

/// What was rebuilt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Balances written.
    pub balances: usize,
    /// Product stock values written.
    pub products: usize,
    /// Coupon campaigns written.
    pub coupons: usize,
}

/// Rebuilds balances and stock from MySQL.
pub async fn run(db: &MySqlPool, cache: &Cache) -> anyhow::Result<Rebuilt> {
    stream::ensure_group(cache).await?;
    let lag = stream::lag(cache).await?;
    if !lag.drained() {
        anyhow::bail!(
            "refusing to rebuild: {} pending and {} undelivered events are not in MySQL yet; \
             let a settlement worker drain the stream first",
            lag.pending,
            lag.undelivered
        );
    }
    let users: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT u.id, a.balance FROM users u LEFT JOIN accounts a ON a.code = CONCAT('user:', u.id)",
    )
    .fetch_all(db)
    .await?;
    for (id, balance) in &users {
        wallet::put(cache, *id, balance.unwrap_or(0)).await?;
    }
    let products = crate::store::products::all(db).await?;
    let reserved = reserved_units(db).await?;
    for p in &products {
        let units = p.stock_total - p.sold - reserved.get(&p.id).copied().unwrap_or(0);
        stock::put(cache, p.id, units).await?;
        let terms = products::ProductTerms {
            name: p.name.clone(),
            price: p.price,
        };
        products::put(cache, p.id, &terms, p.version).await?;
    }
    let coupons = rebuild_coupons(db, cache).await?;
    rebuild_pending_orders(db, cache).await?;
    rebuild_rankings(db, cache).await?;
    Ok(Rebuilt {
        balances: users.len(),
        products: products.len(),
        coupons,
    })
}

/// Rewrites every campaign, its holders and their coupons from MySQL.
async fn rebuild_coupons(db: &MySqlPool, cache: &Cache) -> anyhow::Result<usize> {
    let campaigns = crate::store::coupons::all(db).await?;
    let mut max_id = 0i64;
    for campaign in &campaigns {
        let issued = crate::store::coupons::issued_of(db, campaign.id).await?;
        let k = &cache.keys;
        let _: i64 = cache
            .client()
            .del(vec![k.coupon(campaign.id), k.coupon_users(campaign.id)])
            .await?;
        let terms = coupons::CampaignTerms {
            coupon_id: campaign.id,
            total: campaign.total_quantity,
            starts_ms: campaign.issue_starts_at.timestamp_millis(),
            ends_ms: campaign.issue_ends_at.timestamp_millis(),
            valid_ms: i64::from(campaign.valid_days) * 86_400_000,
        };
        coupons::load(cache, &terms, issued.len() as i64).await?;
        for c in issued {
            max_id = max_id.max(c.id);
            let issued_at = c.issued_at.timestamp_millis();
            let expires_at = c.expires_at.timestamp_millis();
            let holder = format!("{}|{issued_at}|{expires_at}|", c.id);
            let _: i64 = cache
                .client()
                .hset(k.coupon_users(c.coupon_id), (c.user_id.to_string(), holder))
                .await?;
            let fields: Vec<(String, String)> = vec![
                ("id".into(), c.id.to_string()),
                ("couponId".into(), c.coupon_id.to_string()),
                ("userId".into(), c.user_id.to_string()),
                ("status".into(), c.status.clone()),
                ("issuedAt".into(), issued_at.to_string()),
                ("expiresAt".into(), expires_at.to_string()),
                ("orderId".into(), c.order_id.clone().unwrap_or_default()),
                ("ver".into(), c.version.to_string()),
            ];
            let _: i64 = cache
                .client()
                .hset(k.user_coupon(c.coupon_id, c.user_id), fields)
                .await?;
            let index = format!("{}:{}", c.coupon_id, c.user_id);
            let _: i64 = cache
                .client()
                .hset(
                    k.coupon_owners(k.of_campaign(c.id)),
                    (c.id.to_string(), index.clone()),
                )
                .await?;
            let _: i64 = cache
                .client()
                .hset(
                    k.user_coupon_index(k.of_user(c.user_id)),
                    (c.id.to_string(), index),
                )
                .await?;
            let _: i64 = cache
                .client()
                .sadd(k.user_coupons(c.user_id), c.coupon_id)
                .await?;
        }
    }
    // Every bucket's sequence continues above the highest id issued in any bucket.
    let floor = max_id / i64::from(cache.keys.bucket_count()) + 1;
    for bucket in cache.keys.buckets() {
        let seq = cache.keys.user_coupon_seq(bucket);
        let current: Option<i64> = cache.client().get(&seq).await?;
        if current.unwrap_or(0) < floor {
            let _: () = cache.client().set(&seq, floor, None, None, false).await?;
        }
    }
    Ok(campaigns.len())
}

/// Puts every PENDING order back into Redis so it can still be paid, cancelled or expired.
async fn rebuild_pending_orders(db: &MySqlPool, cache: &Cache) -> anyhow::Result<()> {
    let k = &cache.keys;
    for bucket in k.buckets() {
        let _: i64 = cache
            .client()
            .del(vec![
                k.order_deadlines(bucket),
                k.reservation_deadlines(bucket),
            ])
            .await?;
    }
    for stored in crate::store::orders::pending(db).await? {
        let o = &stored.order;
        let Some(bucket) = k.of_order(&o.id) else {
            tracing::warn!(order_id = %o.id, "pending order's id names no bucket; not rebuilt");
            continue;
        };
        let fields = crate::cache::orders::to_fields(o, stored.version)?;
        let _: i64 = cache.client().hset(k.order(bucket, &o.id), fields).await?;
        let _: i64 = cache
            .client()
            .zadd(
                k.order_deadlines(bucket),
                None,
                None,
                false,
                false,
                (o.expires_at_ms as f64, o.id.clone()),
            )
            .await?;
        let _: i64 = cache
            .client()
            .zadd(
                k.user_orders(o.user_id),
                None,
                None,
                false,
                false,
                (o.created_at_ms as f64, o.id.clone()),
            )
            .await?;
        rebuild_reservations(cache, o).await?;
    }
    Ok(())
}

/// A pending order's reservations, one per product bucket (the stock written above excludes
/// its units, so expiry or payment must find them held).
async fn rebuild_reservations(cache: &Cache, o: &crate::domain::Order) -> anyhow::Result<()> {
    let k = &cache.keys;
    let due = o.expires_at_ms + crate::service::reservations::RESERVATION_GRACE_MS;
    for (bucket, lines) in crate::cache::reservations::lines_by_bucket(k, &o.items) {
        let held = serde_json::to_string(&crate::cache::reservations::Reservation {
            user_id: o.user_id,
            lines,
        })?;
        let _: () = cache
            .client()
            .set(k.reservation(bucket, &o.id), held, None, None, false)
            .await?;
        let _: i64 = cache
            .client()
            .zadd(
                k.reservation_deadlines(bucket),
                None,
                None,
                false,
                false,
                (due as f64, o.id.clone()),
            )
            .await?;
    }
    Ok(())
}

/// Rewrites the last 72 hourly popularity buckets from MySQL's hourly sales.
async fn rebuild_rankings(db: &MySqlPool, cache: &Cache) -> anyhow::Result<()> {
    use crate::cache::popular::{hour_of, put_hour, WINDOW_HOURS};
    let current = hour_of(chrono::Utc::now().timestamp_millis());
    let oldest = crate::events::at_millis((current - WINDOW_HOURS + 1) * 3_600_000);
    let rows: Vec<(i64, chrono::DateTime<chrono::Utc>, i64)> = sqlx::query_as(
        "SELECT product_id, hour_start, quantity FROM sales_hourly WHERE hour_start >= ?",
    )
    .bind(oldest)
    .fetch_all(db)
    .await?;
    for hour in current - WINDOW_HOURS + 1..=current {
        let sales: Vec<(i64, i64)> = rows
            .iter()
            .filter(|(_, at, _)| hour_of(at.timestamp_millis()) == hour)
            .map(|(product, _, units)| (*product, *units))
            .collect();
        let ttl = (hour + WINDOW_HOURS + 1) * 3600 - chrono::Utc::now().timestamp();
        put_hour(cache, hour, &sales, ttl.max(60)).await?;
    }
    Ok(())
}
