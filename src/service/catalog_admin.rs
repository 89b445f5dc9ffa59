//! Catalog administration: create products, change name/price, add stock.

use crate::cache::stock;
use crate::error::AppError;
use crate::service::catalog::{self, Product};
use crate::state::AppState;
use crate::store;

/// Creates a product with its initial stock, in MySQL and then in Redis.
pub async fn create(
    state: &AppState,
    name: &str,
    price: i64,
    stock_units: i64,
) -> Result<Product, AppError> {
    let now = state.clock.now();
    let id = store::products::insert(&state.db, name, price, stock_units, now).await?;
    stock::put(&state.cache, id, stock_units).await?;
    Ok(Product {
        id,
        name: name.to_owned(),
        price,
        stock: stock_units,
    })
}

/// Changes a product. Added stock is committed to MySQL first, then made orderable in Redis by
/// an idempotent script call; if that call fails the units stay unorderable (never oversold)
/// until `rebuild-cache`, and the admin gets an error to retry.
pub async fn update(
    state: &AppState,
    id: i64,
    name: Option<&str>,
    price: Option<i64>,
    add_stock: i64,
) -> Result<Product, AppError> {
    let found =
        store::products::update(&state.db, id, name, price, add_stock, state.clock.now()).await?;
    if !found {
        return Err(AppError::ProductNotFound);
    }
    if add_stock > 0 {
        let operation = uuid::Uuid::now_v7().to_string();
        stock::add(&state.cache, id, add_stock, &operation).await?;
    }
    catalog::get(state, id).await
}
