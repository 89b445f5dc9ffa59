//! Top-5 popular products over the last 72 hours, served from an in-process cache that is
//! refreshed at most once a second per instance, by one task at a time (single flight):
//! readers never wait on Redis while a value exists, even a slightly stale one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::popular::{self as ranking, WINDOW_HOURS};
use crate::error::AppError;
use crate::service::catalog::{self, Product};
use crate::state::AppState;
use crate::store;

/// How old a served ranking may be.
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Places in the ranking.
pub const TOP: usize = 5;

/// One ranked product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    /// 1-based rank.
    pub rank: usize,
    /// The product (live stock).
    pub product: Product,
    /// Units sold in the window.
    pub sold: i64,
}

/// A computed ranking and the window it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// Window start, Unix ms (start of the oldest hour bucket).
    pub from_ms: i64,
    /// Window end, Unix ms (when it was computed).
    pub to_ms: i64,
    /// At most five, most sold first, ties by lower product id.
    pub items: Vec<Ranked>,
}

/// The per-instance cache.
#[derive(Default)]
pub struct PopularCache {
    value: Mutex<Option<(Instant, Arc<Ranking>)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl PopularCache {
    fn fresh(&self, max_age: Duration) -> (Option<Arc<Ranking>>, bool) {
        let guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((at, ranking)) => (Some(ranking.clone()), at.elapsed() < max_age),
            None => (None, false),
        }
    }

    fn store(&self, ranking: Arc<Ranking>) {
        let mut guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some((Instant::now(), ranking));
    }
}

/// The ranking, from the cache when fresh; otherwise one caller refreshes it while the others
/// keep getting the previous value.
pub async fn ranking(state: &AppState) -> Result<Arc<Ranking>, AppError> {
    let cache = &state.popular;
    let (current, fresh) = cache.fresh(MAX_AGE);
    if let (Some(ranking), true) = (&current, fresh) {
        return Ok(ranking.clone());
    }
    let _guard = match (cache.refresh.try_lock(), &current) {
        (Ok(guard), _) => guard,
        (Err(_), Some(stale)) => return Ok(stale.clone()),
        (Err(_), None) => cache.refresh.lock().await,
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
    let mut items = Vec::with_capacity(top.len());
    for (product_id, sold) in top {
        let Some(row) = store::products::find(&state.db, product_id).await? else {
            continue;
        };
        let product = catalog::with_stock(state, vec![row]).await?.remove(0);
        items.push(Ranked {
            rank: items.len() + 1,
            product,
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
