//! Queries on `coupons` (campaigns) and `user_coupons` (issued coupons).

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool, Row};

use crate::events::{at_millis, CouponIssued, CouponState};

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    /// The campaign's id (auto-increment), the `couponId` of the API.
    pub id: i64,
    /// Display name, as the administrator entered it (1–100 characters).
    pub name: String,
    /// `FIXED` or `PERCENT`.
    pub discount_type: String,
    /// Won off (FIXED) or percent off (PERCENT).
    pub discount_value: i64,
    /// Cap of a percent discount, won.
    pub max_discount: Option<i64>,
    /// Smallest order subtotal the coupon applies to, won.
    pub min_order_amount: i64,
    /// Coupons in total.
    pub total_quantity: i64,
    /// Issue window start (inclusive).
    pub issue_starts_at: DateTime<Utc>,
    /// Issue window end (exclusive).
    pub issue_ends_at: DateTime<Utc>,
    /// Days a coupon stays valid after issue.
    pub valid_days: i32,
}

fn campaign(row: &sqlx::mysql::MySqlRow) -> Result<CampaignRow, sqlx::Error> {
    Ok(CampaignRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        discount_type: row.try_get("discount_type")?,
        discount_value: row.try_get("discount_value")?,
        max_discount: row.try_get("max_discount")?,
        min_order_amount: row.try_get("min_order_amount")?,
        total_quantity: row.try_get("total_quantity")?,
        issue_starts_at: row.try_get("issue_starts_at")?,
        issue_ends_at: row.try_get("issue_ends_at")?,
        valid_days: row.try_get("valid_days")?,
    })
}

/// Inserts a campaign (id ignored) and returns its id.
pub async fn insert(
    pool: &MySqlPool,
    c: &CampaignRow,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO coupons (name, discount_type, discount_value, max_discount, \
         min_order_amount, total_quantity, issue_starts_at, issue_ends_at, valid_days, \
         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&c.name)
    .bind(&c.discount_type)
    .bind(c.discount_value)
    .bind(c.max_discount)
    .bind(c.min_order_amount)
    .bind(c.total_quantity)
    .bind(c.issue_starts_at)
    .bind(c.issue_ends_at)
    .bind(c.valid_days)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(result.last_insert_id() as i64)
}

/// One campaign.
pub async fn find(pool: &MySqlPool, id: i64) -> Result<Option<CampaignRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, name, discount_type, discount_value, max_discount, min_order_amount, \
         total_quantity, issue_starts_at, issue_ends_at, valid_days FROM coupons WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(campaign).transpose()
}

/// The newest campaigns (at most `limit`).
pub async fn list(pool: &MySqlPool, limit: u32) -> Result<Vec<CampaignRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, name, discount_type, discount_value, max_discount, min_order_amount, \
         total_quantity, issue_starts_at, issue_ends_at, valid_days FROM coupons \
         ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(campaign).collect()
}

/// Every campaign (rebuilds and audits).
pub async fn all(pool: &MySqlPool) -> Result<Vec<CampaignRow>, sqlx::Error> {
    list(pool, u32::MAX).await
}

/// Records issued coupons in the worker's transaction (multi-row `INSERT IGNORE`). A later
/// state of the same coupon may already be there (applied first by another worker); a
/// different coupon of the same campaign for the same user is caught by [`ensure_held`].
pub async fn insert_issued(
    tx: &mut MySqlConnection,
    issued: &[CouponIssued],
) -> Result<(), sqlx::Error> {
    super::insert_rows(
        tx,
        "INSERT IGNORE INTO user_coupons \
         (id, coupon_id, user_id, status, issued_at, expires_at, version)",
        issued,
        "",
        |mut row, c| {
            row.push_bind(c.user_coupon_id)
                .push_bind(c.coupon_id)
                .push_bind(c.user_id)
                .push_bind("AVAILABLE")
                .push_bind(at_millis(c.issued_at_ms))
                .push_bind(at_millis(c.expires_at_ms))
                .push_bind(1);
        },
    )
    .await?;
    Ok(())
}

/// Writes coupons' new states (from order events), multi-row; an older version never
/// overwrites a newer one. Pass them sorted by id (one lock order for every worker).
pub async fn upsert_states(
    tx: &mut MySqlConnection,
    states: &[(&CouponState, Option<DateTime<Utc>>)],
) -> Result<(), sqlx::Error> {
    super::insert_rows(
        tx,
        "INSERT INTO user_coupons (id, coupon_id, user_id, status, issued_at, expires_at, \
         order_id, used_at, version)",
        states,
        "ON DUPLICATE KEY UPDATE \
         status = IF(VALUES(version) > version, VALUES(status), status), \
         order_id = IF(VALUES(version) > version, VALUES(order_id), order_id), \
         used_at = IF(VALUES(version) > version, VALUES(used_at), used_at), \
         version = GREATEST(version, VALUES(version))",
        |mut row, (c, used_at)| {
            row.push_bind(c.user_coupon_id)
                .push_bind(c.coupon_id)
                .push_bind(c.user_id)
                .push_bind(c.status.as_str())
                .push_bind(at_millis(c.issued_at_ms))
                .push_bind(at_millis(c.expires_at_ms))
                .push_bind(&c.order_id)
                .push_bind(*used_at)
                .push_bind(c.version);
        },
    )
    .await?;
    Ok(())
}

/// The one-per-user fence, checked after the writes of a batch: every `(userCouponId,
/// couponId, userId)` must be stored as exactly that row. (coupon, user) is unique, so a row
/// that is missing or belongs to another campaign or user means a second coupon of the same
/// campaign for the same user was refused by MySQL — an error that fails the batch.
pub async fn ensure_held(
    tx: &mut MySqlConnection,
    expected: &[(i64, i64, i64)],
) -> anyhow::Result<()> {
    if expected.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = expected.iter().map(|(id, _, _)| *id).collect();
    let mut stored = std::collections::HashMap::new();
    for chunk in ids.chunks(super::ROWS_PER_STATEMENT) {
        let mut select = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "SELECT id, coupon_id, user_id FROM user_coupons WHERE id IN ",
        );
        super::push_padded_in_list(&mut select, chunk);
        let rows: Vec<(i64, i64, i64)> = select.build_query_as().fetch_all(&mut *tx).await?;
        stored.extend(
            rows.into_iter()
                .map(|(id, coupon, user)| (id, (coupon, user))),
        );
    }
    for (id, coupon_id, user_id) in expected {
        match stored.get(id) {
            Some((c, u)) if c == coupon_id && u == user_id => {}
            Some((c, u)) => anyhow::bail!(
                "user coupon {id} is stored for campaign {c} and user {u}, \
                 not campaign {coupon_id} and user {user_id}"
            ),
            None => anyhow::bail!(
                "user {user_id} already holds a coupon of campaign {coupon_id}; refusing {id}"
            ),
        }
    }
    Ok(())
}

/// An issued coupon as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserCouponRow {
    /// The issued coupon's id, the API's `userCouponId` (taken from Redis's sequence at issue).
    pub id: i64,
    /// The campaign it was issued from (`coupons.id`).
    pub coupon_id: i64,
    /// The user who holds it; one coupon per user and campaign.
    pub user_id: i64,
    /// AVAILABLE, RESERVED or USED.
    pub status: String,
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// When it stops being usable: issue time plus the campaign's valid days.
    pub expires_at: DateTime<Utc>,
    /// The order it is reserved by or used in.
    pub order_id: Option<String>,
    /// State version (grows with every change).
    pub version: i32,
}

/// Every issued coupon of a campaign (rebuilds and audits).
pub async fn issued_of(
    pool: &MySqlPool,
    coupon_id: i64,
) -> Result<Vec<UserCouponRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, coupon_id, user_id, status, issued_at, expires_at, order_id, version \
         FROM user_coupons WHERE coupon_id = ? ORDER BY id",
    )
    .bind(coupon_id)
    .fetch_all(pool)
    .await
}

/// How many coupons of a campaign MySQL has recorded (loading a campaign into Redis).
pub async fn issued_count(pool: &MySqlPool, coupon_id: i64) -> Result<i64, sqlx::Error> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM user_coupons WHERE coupon_id = ?")
        .bind(coupon_id)
        .fetch_one(pool)
        .await?;
    Ok(count)
}
