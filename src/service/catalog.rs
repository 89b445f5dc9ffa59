//! Catalog reads: product pages and single products, with live availability from Redis.

use base64::Engine;

use crate::cache::products::{self as product_cache, ProductTerms};
use crate::cache::stock;
use crate::error::{AppError, FieldError};
use crate::state::AppState;
use crate::store::{self, products::ProductRow};

pub use crate::domain::product::Product;

/// One page of the catalog.
pub struct ProductPage {
    /// Products in id order.
    pub items: Vec<Product>,
    /// Opaque cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

/// Default and maximum page sizes.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

const CURSOR_TAG: &str = "p1:";

/// Encodes the position after `last_id` as an opaque cursor.
pub fn encode_cursor(last_id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_TAG}{last_id}"))
}

/// Decodes a cursor; anything not made by [`encode_cursor`] → 400.
pub fn decode_cursor(cursor: &str) -> Result<i64, AppError> {
    let bad = || AppError::Validation(vec![FieldError::new("cursor", "is not a valid cursor")]);
    if cursor.len() > 64 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let id: i64 = text
        .strip_prefix(CURSOR_TAG)
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    // only what encode_cursor makes: no sign, no leading zeros, no other spelling of the id
    if id < 0 || encode_cursor(id) != cursor {
        return Err(bad());
    }
    Ok(id)
}

/// A page of products after the cursor position.
pub async fn list(
    state: &AppState,
    cursor: Option<&str>,
    limit: u32,
) -> Result<ProductPage, AppError> {
    let after = cursor.map(decode_cursor).transpose()?.unwrap_or(0);
    let mut rows = store::products::page_after(&state.db, after, limit + 1).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if has_more {
        rows.last().map(|r| encode_cursor(r.id))
    } else {
        None
    };
    let items = with_stock(state, rows).await?;
    Ok(ProductPage { items, next_cursor })
}

/// One product, or `PRODUCT_NOT_FOUND`.
pub async fn get(state: &AppState, id: i64) -> Result<Product, AppError> {
    let row = store::products::find(&state.db, id)
        .await?
        .ok_or(AppError::ProductNotFound)?;
    Ok(with_stock(state, vec![row]).await?.remove(0))
}

/// Name and price of each product, in the same order (`None`: no such product), from the
/// Redis pricing cache; all misses are read from MySQL in **one** query and cached. One Redis
/// round trip when every product is cached, which is the hot path of creating an order; at
/// most one MySQL read per call however many lines miss (an order of 50 unknown ids costs one
/// SELECT, not 50).
pub async fn terms(state: &AppState, ids: &[i64]) -> Result<Vec<Option<ProductTerms>>, AppError> {
    let mut terms = product_cache::get_many(&state.cache, ids).await?;
    let missing: Vec<i64> = ids
        .iter()
        .zip(terms.iter())
        .filter(|(_, slot)| slot.is_none())
        .map(|(id, _)| *id)
        .collect();
    if missing.is_empty() {
        return Ok(terms);
    }
    let rows = store::products::find_many(&state.db, &missing).await?;
    for row in rows {
        let cached = cache_terms(state, &row).await?;
        for (id, slot) in ids.iter().zip(terms.iter_mut()) {
            if *id == row.id {
                *slot = Some(cached.clone());
            }
        }
    }
    Ok(terms)
}

/// Writes a row's name and price into the pricing cache (the newest version wins there).
pub async fn cache_terms(state: &AppState, row: &ProductRow) -> Result<ProductTerms, AppError> {
    let terms = ProductTerms {
        name: row.name.clone(),
        price: row.price,
    };
    product_cache::put(&state.cache, row.id, &terms, row.version).await?;
    Ok(terms)
}

/// Joins rows with Redis availability; a product Redis does not know yet is loaded into it.
pub async fn with_stock(state: &AppState, rows: Vec<ProductRow>) -> Result<Vec<Product>, AppError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let live = stock::available(&state.cache, &ids).await?;
    let mut products = Vec::with_capacity(rows.len());
    // Units held by pending orders, read once and only if some product is missing in Redis.
    let mut reserved: Option<Vec<(i64, i64)>> = None;
    for (row, available) in rows.into_iter().zip(live) {
        let stock = match available {
            Some(units) => units,
            None => {
                if reserved.is_none() {
                    reserved = Some(crate::store::orders::pending_reservations(&state.db).await?);
                }
                let held = reserved
                    .iter()
                    .flatten()
                    .find(|(id, _)| *id == row.id)
                    .map_or(0, |(_, n)| *n);
                let units = row.stock_total - row.sold - held;
                stock::init_if_missing(&state.cache, row.id, units).await?;
                stock::available(&state.cache, &[row.id]).await?[0].unwrap_or(units)
            }
        };
        products.push(Product {
            id: row.id,
            name: row.name,
            price: row.price,
            stock,
        });
    }
    Ok(products)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_tampering_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).expect("valid"), 42);
        for bad in ["", "!!!", "cDE6LTE", "eDE6NQ", "p1:5"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
