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

/// Whether a sqlx error is a unique-key violation (MySQL error 1062).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("23000"))
}
