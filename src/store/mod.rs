//! MySQL, the source of truth: connection pool, migrations and one file of queries per table
//! group. Every query binds its parameters; no input is ever formatted into SQL.

pub mod coupons;
pub mod events;
pub mod ledger;
pub mod orders;
pub mod outbox;
pub mod products;
pub mod users;
pub mod wallet;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::query_builder::Separated;
use sqlx::{MySql, MySqlConnection, QueryBuilder};

/// Opens the connection pool (UTC session time zone, utf8mb4).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(url)
        .context("DATABASE_URL is not a valid mysql:// URL")?
        .timezone(Some("+00:00".into()))
        .charset("utf8mb4");
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("failed to connect to the database")
}

/// Applies every pending migration (forward-only).
pub async fn migrate(pool: &MySqlPool) -> anyhow::Result<()> {
    sqlx::migrate!("./migrations")
        .run(pool)
        .await
        .context("failed to run migrations")
}

/// Whether a sqlx error is a unique-key violation (MySQL 1062 and its kin), and not any other
/// integrity error of SQLSTATE 23000 (a foreign-key or NOT NULL violation is a bug, not a
/// duplicate).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Most rows one multi-row statement carries: well under MySQL's 65,535 placeholders even for
/// the widest row we write, and small enough to keep a statement's packet modest.
pub const ROWS_PER_STATEMENT: usize = 256;

/// `rows` cut into statements of a power-of-two number of rows, largest first (the binary form
/// of its length, [`ROWS_PER_STATEMENT`] at most each): a statement's text depends only on
/// its row count, so a batch of any size reuses the few prepared statements of those counts
/// (sqlx keeps them per connection) instead of preparing one of its own exact size.
pub fn statement_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = ROWS_PER_STATEMENT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// Runs `{head} VALUES (…), (…) {tail}` over `rows`, in [`statement_chunks`], in the
/// caller's transaction; `bind` pushes one row's values. Returns the rows affected (as MySQL
/// counts them: an upsert that updates counts 2). No statement is sent for no rows.
pub async fn insert_rows<'a, T: 'a>(
    tx: &mut MySqlConnection,
    head: &str,
    rows: &'a [T],
    tail: &str,
    mut bind: impl FnMut(Separated<'_, MySql, &'static str>, &'a T),
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in statement_chunks(rows) {
        let mut statement = QueryBuilder::<MySql>::new(head);
        statement.push(" ");
        statement.push_values(chunk, &mut bind);
        statement.push(" ");
        statement.push(tail);
        affected += statement.build().execute(&mut *tx).await?.rows_affected();
    }
    Ok(affected)
}

/// Appends `(?, ?, …)` binding every value, for `… IN (…)` lists.
pub fn push_in_list<T>(statement: &mut QueryBuilder<MySql>, values: &[T])
where
    T: Copy + for<'t> sqlx::Encode<'t, MySql> + sqlx::Type<MySql>,
{
    push_bound_list(statement, values.iter().copied());
}

/// Like [`push_in_list`], padded to a power-of-two length by repeating the last value (the
/// same set, so the same rows), so lists of any length reuse a few prepared statements. Not
/// empty: `values` must hold at least one value.
pub fn push_padded_in_list<T>(statement: &mut QueryBuilder<MySql>, values: &[T])
where
    T: Copy + for<'t> sqlx::Encode<'t, MySql> + sqlx::Type<MySql>,
{
    let padding = values.len().next_power_of_two() - values.len();
    let repeated = values.last().copied().into_iter().cycle().take(padding);
    push_bound_list(statement, values.iter().copied().chain(repeated));
}

/// Appends `(?, ?, …)` binding each of `values`.
fn push_bound_list<T>(statement: &mut QueryBuilder<MySql>, values: impl Iterator<Item = T>)
where
    T: for<'t> sqlx::Encode<'t, MySql> + sqlx::Type<MySql>,
{
    statement.push("(");
    let mut list = statement.separated(", ");
    for value in values {
        list.push_bind(value);
    }
    list.push_unseparated(")");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_carry_powers_of_two_rows_and_every_row_once() {
        for n in [0usize, 1, 2, 3, 7, 255, 256, 257, 300, 1_000, 1_500] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n} rows, in order, once");
            assert!(
                chunks
                    .iter()
                    .all(|c| c.len().is_power_of_two() && c.len() <= ROWS_PER_STATEMENT),
                "{n}: {:?}",
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
            );
        }
        let sizes = |n: usize| {
            let rows = vec![0u8; n];
            statement_chunks(&rows).map(<[u8]>::len).collect::<Vec<_>>()
        };
        assert_eq!(sizes(300), vec![256, 32, 8, 4]);
        assert_eq!(sizes(600), vec![256, 256, 64, 16, 8]);
    }

    #[test]
    fn a_padded_in_list_repeats_its_last_value_up_to_a_power_of_two() {
        let mut statement = QueryBuilder::<MySql>::new("SELECT 1 WHERE id IN ");
        push_padded_in_list(&mut statement, &[1i64, 2, 3]);
        assert_eq!(statement.sql(), "SELECT 1 WHERE id IN (?, ?, ?, ?)");
        let mut statement = QueryBuilder::<MySql>::new("IN ");
        push_padded_in_list(&mut statement, &[1i64, 2, 3, 4]);
        assert_eq!(statement.sql(), "IN (?, ?, ?, ?)");
    }
}
