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
pub const ROWS_PER_STATEMENT: usize = 500;

/// Runs `{head} VALUES (…), (…) {tail}` over `rows`, [`ROWS_PER_STATEMENT`] at a time, in the
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
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
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
    statement.push("(");
    let mut list = statement.separated(", ");
    for value in values {
        list.push_bind(*value);
    }
    list.push_unseparated(")");
}
