//! `flashmart rebuild-cache`: rebuilds Redis's hot state (balances, stock) from MySQL, the
//! source of truth. Refuses while the stream holds events MySQL has not applied, because then
//! MySQL is behind Redis and the rebuild would lose those decisions.

use sqlx::MySqlPool;

use crate::cache::{stock, wallet, Cache};
use crate::ops::audit::reserved_units;
use crate::settlement::stream;

/// What was rebuilt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Balances written.
    pub balances: usize,
    /// Product stock values written.
    pub products: usize,
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
    }
    Ok(Rebuilt {
        balances: users.len(),
        products: products.len(),
    })
}
