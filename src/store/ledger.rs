//! The double-entry ledger: postings (entries) and the accounts they materialise.
//!
//! Every event posts entries whose amounts sum to zero (a debit and a credit of equal size), so
//! the sum over the whole ledger is always zero and every account equals its entries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlPool};

/// Money entering the system from outside (charges). Goes negative by what was charged.
pub const CASH_IN: &str = "cash_in";
/// Money earned by paid orders.
pub const REVENUE: &str = "revenue";

/// The account code of a user's prepaid balance.
pub fn user_account(user_id: i64) -> String {
    format!("user:{user_id}")
}

/// One ledger entry to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    /// The event that caused it.
    pub event_id: String,
    /// The account it moves money in or out of: `user:{id}` ([`user_account`]), `cash_in` or
    /// `revenue`.
    pub account: String,
    /// Signed amount in won.
    pub amount: i64,
}

/// Postings collected while applying a batch; written in one go.
#[derive(Default, Debug)]
pub struct Postings {
    entries: Vec<Posting>,
}

impl Postings {
    /// Moves `amount` won from `from` to `to` for `event_id` (one debit, one credit).
    pub fn transfer(&mut self, event_id: &str, from: &str, to: &str, amount: i64) {
        self.entries.push(Posting {
            event_id: event_id.into(),
            account: from.into(),
            amount: -amount,
        });
        self.entries.push(Posting {
            event_id: event_id.into(),
            account: to.into(),
            amount,
        });
    }

    /// Whether nothing was posted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Net change per account, in account order (a fixed lock order avoids deadlocks between
    /// workers).
    pub fn deltas(&self) -> BTreeMap<&str, i64> {
        let mut deltas = BTreeMap::new();
        for p in &self.entries {
            *deltas.entry(p.account.as_str()).or_insert(0) += p.amount;
        }
        deltas
    }
}

/// Writes the entries and updates the accounts, inside the caller's transaction: the entries
/// (no shared rows), then one multi-row upsert of the net change per account, in account
/// order — a fixed lock order, so workers never deadlock on the shared `cash_in` / `revenue`
/// rows, and those locks are taken at the very end of the transaction.
pub async fn write(
    tx: &mut MySqlConnection,
    postings: &Postings,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if postings.is_empty() {
        return Ok(());
    }
    super::insert_rows(
        tx,
        "INSERT INTO ledger_entries (event_id, account, amount, created_at)",
        &postings.entries,
        "",
        |mut row, p| {
            row.push_bind(&p.event_id)
                .push_bind(&p.account)
                .push_bind(p.amount)
                .push_bind(now);
        },
    )
    .await?;
    let deltas: Vec<(&str, i64)> = postings.deltas().into_iter().collect();
    super::insert_rows(
        tx,
        "INSERT INTO accounts (code, balance, updated_at)",
        &deltas,
        "ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), \
         updated_at = VALUES(updated_at)",
        |mut row, (account, delta)| {
            row.push_bind(*account).push_bind(*delta).push_bind(now);
        },
    )
    .await?;
    Ok(())
}

/// An account's materialised balance (0 when it has none yet).
pub async fn account_balance(pool: &MySqlPool, code: &str) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT balance FROM accounts WHERE code = ?")
        .bind(code)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.0).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_a_debit_and_an_equal_credit() {
        let mut postings = Postings::default();
        postings.transfer("e1", CASH_IN, "user:1", 500);
        postings.transfer("e2", CASH_IN, "user:2", 300);
        let deltas = postings.deltas();
        assert_eq!(deltas[CASH_IN], -800);
        assert_eq!(deltas["user:1"], 500);
        assert_eq!(deltas.values().sum::<i64>(), 0);
    }
}
