//! Top-5 popular products over the last 72 hours, served from an in-process cache that is
//! refreshed at most once a second per instance, by one task at a time (single flight):
//! readers never wait on Redis while a value exists, even a slightly stale one.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::popular::{self as ranking, WINDOW_HOURS};
use crate::error::AppError;
use crate::service::catalog;
use crate::state::AppState;
use crate::store;

/// How old a served ranking may be.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Places in the ranking.
pub const TOP: usize = 5;

pub use crate::domain::product::{Ranked, Ranking};

/// The per-instance cache of the ranking (held by the state as `state.popular`).
pub type PopularCache = crate::local::Memo<Ranking>;

/// The ranking, from the cache when fresh; otherwise one caller refreshes it while the others
/// keep getting the previous value.
pub async fn ranking(state: &AppState) -> Result<Arc<Ranking>, AppError> {
    let cache = &state.popular;
    let (current, fresh) = cache.fresh(MAX_AGE);
    if let (Some(ranking), true) = (&current, fresh) {
        return Ok(ranking.clone());
    }
    let _guard = match (cache.refresh_lock().try_lock(), &current) {
        (Ok(guard), _) => guard,
        (Err(_), Some(stale)) => return Ok(stale.clone()),
        (Err(_), None) => cache.refresh_lock().lock().await,
    };
    if let (Some(ranking), true) = cache.fresh(MAX_AGE) {
        return Ok(ranking); // another caller refreshed while we waited
    }
    let computed = Arc::new(compute(state).await?);
    cache.store(computed.clone());
    metrics::counter!("popular_refreshes_total").increment(1);
    Ok(computed)
}

/// Computes the ranking from Redis now.
pub async fn compute(state: &AppState) -> Result<Ranking, AppError> {
    let now_ms = state.clock.now_ms();
    let top = ranking::top(&state.cache, now_ms, TOP).await?;
    // One query for the ranked products and one stock read for all of them (was one of each
    // per place); ranked ids that no longer name a product are skipped.
    let ids: Vec<i64> = top.iter().map(|(id, _)| *id).collect();
    let rows = store::products::find_many(&state.db, &ids).await?;
    let mut products = catalog::with_stock(state, rows).await?;
    let mut items = Vec::with_capacity(top.len());
    for (product_id, sold) in top {
        let Some(at) = products.iter().position(|p| p.id == product_id) else {
            continue;
        };
        items.push(Ranked {
            rank: items.len() + 1,
            product: products.swap_remove(at),
            sold,
        });
    }
    let from_ms = (ranking::hour_of(now_ms) - WINDOW_HOURS + 1) * 3_600_000;
    Ok(Ranking {
        from_ms,
        to_ms: now_ms,
        items,
    })
}
