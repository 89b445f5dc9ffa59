//! Queries on `orders`, `order_lines`, `payments` and `sales_hourly`.
//!
//! Order rows are written from whole-order snapshots with a version: an upsert only takes the
//! incoming state when its version is higher, so events applied out of order by different
//! workers still converge on the latest state.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use sqlx::{MySqlConnection, MySqlPool};

use super::insert_rows;

use crate::domain::Order;
use crate::events::{at_millis, OrderLine, OrderSnapshot};

/// Writes order snapshots (and their lines, once) in the worker's transaction: one multi-row
/// upsert of the orders, one multi-row insert of the lines. Pass them sorted by order id
/// (one lock order for every worker); two snapshots of one order may both be there, the
/// higher version wins whichever comes first.
pub async fn upsert(
    tx: &mut MySqlConnection,
    orders: &[&OrderSnapshot],
) -> Result<(), sqlx::Error> {
    insert_rows(
        tx,
        "INSERT INTO orders (id, user_id, status, subtotal, discount, total, user_coupon_id, \
         created_at, expires_at, paid_at, ended_at, payment_id, version)",
        orders,
        "ON DUPLICATE KEY UPDATE \
         status = IF(VALUES(version) > version, VALUES(status), status), \
         paid_at = IF(VALUES(version) > version, VALUES(paid_at), paid_at), \
         ended_at = IF(VALUES(version) > version, VALUES(ended_at), ended_at), \
         payment_id = IF(VALUES(version) > version, VALUES(payment_id), payment_id), \
         user_coupon_id = COALESCE(user_coupon_id, VALUES(user_coupon_id)), \
         version = GREATEST(version, VALUES(version))",
        |mut row, o| {
            row.push_bind(&o.order_id)
                .push_bind(o.user_id)
                .push_bind(o.status.as_str())
                .push_bind(o.subtotal)
                .push_bind(o.discount)
                .push_bind(o.total)
                .push_bind(o.coupon.as_ref().map(|c| c.user_coupon_id))
                .push_bind(at_millis(o.created_at_ms))
                .push_bind(at_millis(o.expires_at_ms))
                .push_bind(o.paid_at_ms.map(at_millis))
                .push_bind(o.ended_at_ms.map(at_millis))
                .push_bind(&o.payment_id)
                .push_bind(o.version);
        },
    )
    .await?;
    let lines: Vec<(&str, &OrderLine)> = orders
        .iter()
        .flat_map(|o| o.items.iter().map(|line| (o.order_id.as_str(), line)))
        .collect();
    insert_rows(
        tx,
        "INSERT IGNORE INTO order_lines (order_id, product_id, name, unit_price, quantity, \
         line_total)",
        &lines,
        "",
        |mut row, (order_id, line)| {
            row.push_bind(*order_id)
                .push_bind(line.product_id)
                .push_bind(&line.name)
                .push_bind(line.unit_price)
                .push_bind(line.quantity)
                .push_bind(line.line_total);
        },
    )
    .await?;
    Ok(())
}

/// A payment to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    /// The payment's id (UUIDv7, the one the payment answer gave), stored as `payments.id`.
    pub payment_id: String,
    /// Order id (unique: a second fence against paying twice).
    pub order_id: String,
    /// The user whose balance paid it (the order's owner).
    pub user_id: i64,
    /// Won paid.
    pub amount: i64,
    /// When it was paid.
    pub paid_at: DateTime<Utc>,
}

/// Records payments in the worker's transaction (multi-row).
pub async fn insert_payments(
    tx: &mut MySqlConnection,
    payments: &[PaymentRow],
) -> Result<(), sqlx::Error> {
    insert_rows(
        tx,
        "INSERT INTO payments (id, order_id, user_id, amount, paid_at)",
        payments,
        "",
        |mut row, p| {
            row.push_bind(&p.payment_id)
                .push_bind(&p.order_id)
                .push_bind(p.user_id)
                .push_bind(p.amount)
                .push_bind(p.paid_at);
        },
    )
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

/// Adds summed units to the hourly sales table: one multi-row upsert in (product, hour) order.
pub async fn add_sales(
    tx: &mut MySqlConnection,
    sales: &BTreeMap<(i64, DateTime<Utc>), i64>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(i64, DateTime<Utc>, i64)> = sales
        .iter()
        .map(|((product_id, hour), units)| (*product_id, *hour, *units))
        .collect();
    insert_rows(
        tx,
        "INSERT INTO sales_hourly (product_id, hour_start, quantity)",
        &rows,
        "ON DUPLICATE KEY UPDATE quantity = quantity + VALUES(quantity)",
        |mut row, (product_id, hour, units)| {
            row.push_bind(*product_id)
                .push_bind(*hour)
                .push_bind(*units);
        },
    )
    .await?;
    Ok(())
}

/// An order row with its lines, and the version MySQL holds (a rebuild writes it back to Redis
/// so later events still win over it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// The order.
    pub order: Order,
    /// 1 while PENDING, 2 once ended (the events' `version`).
    pub version: i64,
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
    let mut lines_of: std::collections::HashMap<String, Vec<OrderLine>> =
        std::collections::HashMap::new();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
        let mut select = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "SELECT order_id, product_id, name, unit_price, quantity, line_total \
             FROM order_lines WHERE order_id IN ",
        );
        super::push_padded_in_list(&mut select, chunk);
        select.push(" ORDER BY order_id, product_id");
        let found: Vec<(String, i64, String, i64, i32, i64)> =
            select.build_query_as().fetch_all(pool).await?;
        for (order_id, product_id, name, unit_price, quantity, line_total) in found {
            lines_of.entry(order_id).or_default().push(OrderLine {
                product_id,
                name,
                unit_price,
                quantity: i64::from(quantity),
                line_total,
            });
        }
    }
    let mut orders = Vec::with_capacity(rows.len());
    for r in rows {
        let items = lines_of.remove(&r.0).unwrap_or_default();
        orders.push(StoredOrder {
            order: Order {
                id: r.0,
                user_id: r.1,
                status: r.2.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                items,
                subtotal: r.3,
                discount: r.4,
                total: r.5,
                user_coupon_id: r.6,
                created_at_ms: r.7.timestamp_millis(),
                expires_at_ms: r.8.timestamp_millis(),
                paid_at_ms: r.9.map(|t| t.timestamp_millis()),
            },
            version: i64::from(r.12),
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
