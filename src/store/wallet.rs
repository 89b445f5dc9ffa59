//! Queries on `wallet_charges` (the record of every charge).

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

/// Records a charge in the caller's transaction.
pub async fn insert_charge(
    tx: &mut MySqlConnection,
    event_id: &str,
    user_id: i64,
    amount: i64,
    balance_after: i64,
    charged_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO wallet_charges (event_id, user_id, amount, balance_after, charged_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(event_id)
    .bind(user_id)
    .bind(amount)
    .bind(balance_after)
    .bind(charged_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
