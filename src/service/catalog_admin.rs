//! Catalog administration: create products, change name/price, add stock.

use crate::cache::products as product_cache;
use crate::cache::stock::{self, StockAdd};
use crate::error::AppError;
use crate::service::catalog::{self, Product};
use crate::state::AppState;
use crate::store;

/// Creates a product with its initial stock, in MySQL and then in Redis. The Redis value is set
/// only if absent, so a concurrent lazy load by another instance is never overwritten.
pub async fn create(
    state: &AppState,
    name: &str,
    price: i64,
    stock_units: i64,
) -> Result<Product, AppError> {
    let now = state.clock.now();
    let id = store::products::insert(&state.db, name, price, stock_units, now).await?;
    stock::init_if_missing(&state.cache, id, stock_units).await?;
    let row = store::products::find(&state.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("product {id} missing right after its insert"))?;
    catalog::cache_terms(state, &row).await?;
    Ok(catalog::with_stock(state, vec![row]).await?.remove(0))
}

/// Changes a product's name or price (MySQL) and adds stock. Added stock is decided in Redis
/// by stock_add.lua, once per operation id (the `Idempotency-Key`, so a retried request never
/// adds twice), and reaches MySQL's total through the `stock.added` event.
pub async fn update(
    state: &AppState,
    id: i64,
    name: Option<&str>,
    price: Option<i64>,
    add_stock: i64,
    operation_id: Option<String>,
) -> Result<Product, AppError> {
    if name.is_some() || price.is_some() {
        // Forget first: until the new terms are cached, a reader misses and reads MySQL.
        product_cache::forget(&state.cache, id).await?;
        let found = store::products::update(&state.db, id, name, price, state.clock.now()).await?;
        if !found {
            return Err(AppError::ProductNotFound);
        }
        if let Some(row) = store::products::find(&state.db, id).await? {
            catalog::cache_terms(state, &row).await?;
        }
    }
    if add_stock > 0 {
        let operation = operation_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let now_ms = state.clock.now_ms();
        let mut added = stock::add(&state.cache, id, add_stock, &operation, now_ms).await?;
        if added == StockAdd::NotLoaded {
            catalog::get(state, id).await?; // loads the product's stock from MySQL
            added = stock::add(&state.cache, id, add_stock, &operation, now_ms).await?;
        }
        if added == StockAdd::NotLoaded {
            return Err(anyhow::anyhow!("stock of product {id} not in Redis after loading").into());
        }
    }
    catalog::get(state, id).await
}
