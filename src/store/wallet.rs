//! Queries on `wallet_charges` (the record of every charge).

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use super::insert_rows;

/// A charge to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRow {
    /// The event that made it (primary key).
    pub event_id: String,
    /// Whose balance.
    pub user_id: i64,
    /// Won added.
    pub amount: i64,
    /// Balance right after, in Redis.
    pub balance_after: i64,
    /// When it was decided.
    pub charged_at: DateTime<Utc>,
}

/// Records charges in the caller's transaction (multi-row).
pub async fn insert_charges(
    tx: &mut MySqlConnection,
    charges: &[ChargeRow],
) -> Result<(), sqlx::Error> {
    insert_rows(
        tx,
        "INSERT INTO wallet_charges (event_id, user_id, amount, balance_after, charged_at)",
        charges,
        "",
        |mut row, c| {
            row.push_bind(&c.event_id)
                .push_bind(c.user_id)
                .push_bind(c.amount)
                .push_bind(c.balance_after)
                .push_bind(c.charged_at);
        },
    )
    .await?;
    Ok(())
}
