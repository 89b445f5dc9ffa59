//! Queries on `orders`, `order_lines`, `payments` and `sales_hourly`.
//!
//! Order rows are written from whole-order snapshots with a version: an upsert only takes the
//! incoming state when its version is higher, so events applied out of order by different
//! workers still converge on the latest state.

use chrono::{DateTime, Timelike, Utc};
use sqlx::{MySqlConnection, MySqlPool, QueryBuilder};

use crate::events::{at_millis, OrderLine, OrderSnapshot};

/// Writes an order snapshot (and its lines, once) in the worker's transaction.
pub async fn upsert(tx: &mut MySqlConnection, o: &OrderSnapshot) -> Result<(), sqlx::Error> {
    let user_coupon_id = o.coupon.as_ref().map(|c| c.user_coupon_id);
    sqlx::query(
        "INSERT INTO orders (id, user_id, status, subtotal, discount, total, user_coupon_id, \
         created_at, expires_at, paid_at, ended_at, payment_id, version) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
         status = IF(VALUES(version) > version, VALUES(status), status), \
         paid_at = IF(VALUES(version) > version, VALUES(paid_at), paid_at), \
         ended_at = IF(VALUES(version) > version, VALUES(ended_at), ended_at), \
         payment_id = IF(VALUES(version) > version, VALUES(payment_id), payment_id), \
         user_coupon_id = COALESCE(user_coupon_id, VALUES(user_coupon_id)), \
         version = GREATEST(version, VALUES(version))",
    )
    .bind(&o.order_id)
    .bind(o.user_id)
    .bind(&o.status)
    .bind(o.subtotal)
    .bind(o.discount)
    .bind(o.total)
    .bind(user_coupon_id)
    .bind(at_millis(o.created_at_ms))
    .bind(at_millis(o.expires_at_ms))
    .bind(o.paid_at_ms.map(at_millis))
    .bind(o.ended_at_ms.map(at_millis))
    .bind(&o.payment_id)
    .bind(o.version)
    .execute(&mut *tx)
    .await?;
    let mut insert = QueryBuilder::new(
        "INSERT IGNORE INTO order_lines (order_id, product_id, name, unit_price, quantity, \
         line_total) ",
    );
    insert.push_values(&o.items, |mut row, line: &OrderLine| {
        row.push_bind(&o.order_id)
            .push_bind(line.product_id)
            .push_bind(&line.name)
            .push_bind(line.unit_price)
            .push_bind(line.quantity)
            .push_bind(line.line_total);
    });
    insert.build().execute(&mut *tx).await?;
    Ok(())
}

/// Records a payment (once per event; the order id is unique as a second fence).
pub async fn insert_payment(
    tx: &mut MySqlConnection,
    payment_id: &str,
    o: &OrderSnapshot,
    paid_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (id, order_id, user_id, amount, paid_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(payment_id)
    .bind(&o.order_id)
    .bind(o.user_id)
    .bind(o.total)
    .bind(paid_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The UTC hour an instant falls in.
pub fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

/// Adds sold units to the products and to the hourly sales table.
pub async fn record_sales(
    tx: &mut MySqlConnection,
    items: &[OrderLine],
    paid_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let hour = hour_start(paid_at);
    let mut lines: Vec<&OrderLine> = items.iter().collect();
    lines.sort_by_key(|l| l.product_id); // one lock order for every worker
    for line in lines {
        let sold = sqlx::query("UPDATE products SET sold = sold + ? WHERE id = ?")
            .bind(line.quantity)
            .bind(line.product_id)
            .execute(&mut *tx)
            .await?;
        anyhow::ensure!(
            sold.rows_affected() == 1,
            "paid units for unknown product {}",
            line.product_id
        );
        sqlx::query(
            "INSERT INTO sales_hourly (product_id, hour_start, quantity) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity)",
        )
        .bind(line.product_id)
        .bind(hour)
        .bind(line.quantity)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// An order row with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// The order as a snapshot (version and coupon omitted).
    pub order: OrderSnapshot,
    /// userCouponId, if any.
    pub user_coupon_id: Option<i64>,
}

type OrderRow = (
    String,
    i64,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
    i32,
);

async fn with_lines(
    pool: &MySqlPool,
    rows: Vec<OrderRow>,
) -> Result<Vec<StoredOrder>, sqlx::Error> {
    let mut orders = Vec::with_capacity(rows.len());
    for r in rows {
        let items: Vec<(i64, String, i64, i32, i64)> = sqlx::query_as(
            "SELECT product_id, name, unit_price, quantity, line_total FROM order_lines \
             WHERE order_id = ? ORDER BY product_id",
        )
        .bind(&r.0)
        .fetch_all(pool)
        .await?;
        let items = items
            .into_iter()
            .map(
                |(product_id, name, unit_price, quantity, line_total)| OrderLine {
                    product_id,
                    name,
                    unit_price,
                    quantity: i64::from(quantity),
                    line_total,
                },
            )
            .collect();
        orders.push(StoredOrder {
            user_coupon_id: r.6,
            order: OrderSnapshot {
                order_id: r.0,
                user_id: r.1,
                status: r.2,
                items,
                subtotal: r.3,
                discount: r.4,
                total: r.5,
                created_at_ms: r.7.timestamp_millis(),
                expires_at_ms: r.8.timestamp_millis(),
                paid_at_ms: r.9.map(|t| t.timestamp_millis()),
                payment_id: r.11,
                balance_after: None,
                ended_at_ms: r.10.map(|t| t.timestamp_millis()),
                version: i64::from(r.12),
                coupon: None,
            },
        });
    }
    Ok(orders)
}

/// One order by id.
pub async fn find(pool: &MySqlPool, id: &str) -> Result<Option<StoredOrder>, sqlx::Error> {
    let row: Option<OrderRow> = sqlx::query_as(
        "SELECT id, user_id, status, subtotal, discount, total, user_coupon_id, created_at, \
         expires_at, paid_at, ended_at, payment_id, version FROM orders WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(with_lines(pool, row.into_iter().collect()).await?.pop())
}

/// A user's orders strictly older than `(before_ms, before_id)` (all when `None`), newest
/// first.
pub async fn history_page(
    pool: &MySqlPool,
    user_id: i64,
    before: Option<(i64, String)>,
    limit: u32,
) -> Result<Vec<StoredOrder>, sqlx::Error> {
    let rows: Vec<OrderRow> = match before {
        Some((ms, id)) => {
            let at = at_millis(ms);
            sqlx::query_as(
                "SELECT id, user_id, status, subtotal, discount, total, user_coupon_id, \
                 created_at, expires_at, paid_at, ended_at, payment_id, version FROM orders \
                 WHERE user_id = ? AND (created_at < ? OR (created_at = ? AND id < ?)) \
                 ORDER BY created_at DESC, id DESC LIMIT ?",
            )
            .bind(user_id)
            .bind(at)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as(
                "SELECT id, user_id, status, subtotal, discount, total, user_coupon_id, \
                 created_at, expires_at, paid_at, ended_at, payment_id, version FROM orders \
                 WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            )
            .bind(user_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    with_lines(pool, rows).await
}

/// Units reserved by PENDING orders, per product.
pub async fn pending_reservations(pool: &MySqlPool) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT l.product_id, CAST(SUM(l.quantity) AS SIGNED) FROM order_lines l \
         JOIN orders o ON o.id = l.order_id WHERE o.status = 'PENDING' GROUP BY l.product_id",
    )
    .fetch_all(pool)
    .await
}

/// Every PENDING order (for rebuilding Redis).
pub async fn pending(pool: &MySqlPool) -> Result<Vec<StoredOrder>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(
        "SELECT id, user_id, status, subtotal, discount, total, user_coupon_id, created_at, \
         expires_at, paid_at, ended_at, payment_id, version FROM orders WHERE status = 'PENDING'",
    )
    .fetch_all(pool)
    .await?;
    with_lines(pool, rows).await
}
