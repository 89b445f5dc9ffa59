//! Queries on `products`.

use chrono::{DateTime, Utc};
use sqlx::{MySqlPool, Row};

/// A product as stored (without Redis's live availability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRow {
    /// The product's id (auto-increment), the `productId` of the API.
    pub id: i64,
    /// Display name, as the administrator entered it (1–200 characters, trimmed).
    pub name: String,
    /// Unit price in won.
    pub price: i64,
    /// Units ever stocked.
    pub stock_total: i64,
    /// Units sold in paid orders.
    pub sold: i64,
    /// Grows with every change of name or price (the pricing cache keeps the newest).
    pub version: i64,
}

fn from_row(row: &sqlx::mysql::MySqlRow) -> Result<ProductRow, sqlx::Error> {
    Ok(ProductRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        price: row.try_get("price")?,
        stock_total: row.try_get("stock_total")?,
        sold: row.try_get("sold")?,
        version: row.try_get("version")?,
    })
}

/// Inserts a product and returns its id.
pub async fn insert(
    pool: &MySqlPool,
    name: &str,
    price: i64,
    stock: i64,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO products (name, price, stock_total, sold, created_at, updated_at) \
         VALUES (?, ?, ?, 0, ?, ?)",
    )
    .bind(name)
    .bind(price)
    .bind(stock)
    .bind(now)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(result.last_insert_id() as i64)
}

/// One product by id.
pub async fn find(pool: &MySqlPool, id: i64) -> Result<Option<ProductRow>, sqlx::Error> {
    let sql = "SELECT id, name, price, stock_total, sold, version FROM products WHERE id = ?";
    metrics::counter!("db_product_reads_total").increment(1);
    let row = sqlx::query(sql).bind(id).fetch_optional(pool).await?;
    row.as_ref().map(from_row).transpose()
}

/// The products among `ids` that exist, in one query (an order's cache misses, however many
/// lines it has; at most 50 ids, so one `IN (…)` list).
pub async fn find_many(pool: &MySqlPool, ids: &[i64]) -> Result<Vec<ProductRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new(
        "SELECT id, name, price, stock_total, sold, version FROM products WHERE id IN ",
    );
    super::push_padded_in_list(&mut query, ids);
    metrics::counter!("db_product_reads_total").increment(1);
    let rows = query.build().fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// A page of products with id greater than `after_id`, in id order.
pub async fn page_after(
    pool: &MySqlPool,
    after_id: i64,
    limit: u32,
) -> Result<Vec<ProductRow>, sqlx::Error> {
    let sql =
        "SELECT id, name, price, stock_total, sold, version FROM products WHERE id > ? ORDER BY id LIMIT ?";
    let rows = sqlx::query(sql)
        .bind(after_id)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Every product (for loading Redis stock at start-up and rebuilds).
pub async fn all(pool: &MySqlPool) -> Result<Vec<ProductRow>, sqlx::Error> {
    let sql = "SELECT id, name, price, stock_total, sold, version FROM products ORDER BY id";
    let rows = sqlx::query(sql).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// Changes name and/or price and bumps the version; returns false when the product does not
/// exist.
pub async fn update(
    pool: &MySqlPool,
    id: i64,
    name: Option<&str>,
    price: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE products SET name = COALESCE(?, name), price = COALESCE(?, price), \
         version = version + 1, updated_at = ? WHERE id = ?",
    )
    .bind(name)
    .bind(price)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Net change of one product row in a settlement batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProductDelta {
    /// Units sold in paid orders.
    pub sold: i64,
    /// Units added by restocks (settled `stock.added`).
    pub stocked: i64,
    /// Latest restock time, if any (becomes `updated_at`).
    pub restocked_at: Option<DateTime<Utc>>,
}

/// Applies summed deltas in the worker's transaction: one `UPDATE … CASE id …` for all the
/// batch's products (up to [`super::ROWS_PER_STATEMENT`] per statement), so a batch costs one
/// round trip here however many products it touched. The `WHERE id IN (…)` scan walks the
/// primary key in id order, so concurrent workers lock product rows in the same order.
pub async fn apply_deltas(
    tx: &mut sqlx::MySqlConnection,
    deltas: &std::collections::BTreeMap<i64, ProductDelta>,
) -> anyhow::Result<()> {
    let rows: Vec<(i64, ProductDelta)> = deltas.iter().map(|(id, d)| (*id, *d)).collect();
    for chunk in super::statement_chunks(&rows) {
        let mut update =
            sqlx::QueryBuilder::<sqlx::MySql>::new("UPDATE products SET sold = sold + CASE id");
        for (id, delta) in chunk {
            update
                .push(" WHEN ")
                .push_bind(*id)
                .push(" THEN ")
                .push_bind(delta.sold);
        }
        update.push(" ELSE 0 END, stock_total = stock_total + CASE id");
        for (id, delta) in chunk {
            update
                .push(" WHEN ")
                .push_bind(*id)
                .push(" THEN ")
                .push_bind(delta.stocked);
        }
        update.push(" ELSE 0 END, updated_at = CASE id");
        for (id, delta) in chunk {
            update
                .push(" WHEN ")
                .push_bind(*id)
                .push(" THEN COALESCE(")
                .push_bind(delta.restocked_at)
                .push(", updated_at)");
        }
        update.push(" ELSE updated_at END WHERE id IN ");
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        super::push_in_list(&mut update, &ids);
        let result = update.build().execute(&mut *tx).await?;
        anyhow::ensure!(
            result.rows_affected() == chunk.len() as u64,
            "settled units for an unknown product among {ids:?}"
        );
    }
    Ok(())
}
