//! The "conventional design" coupon issue, for `make bench`: what most Spring/JPA
//! implementations do (`@Transactional` + a pessimistic lock), driven straight against MariaDB
//! with N concurrent workers and no HTTP at all.
//!
//! One issue = one transaction:
//! ```sql
//! BEGIN;
//! SELECT total_quantity, issued_quantity, starts_at, ends_at FROM campaigns WHERE id = ? FOR UPDATE;
//! -- window and remaining checked in the application
//! SELECT id FROM issued_coupons WHERE campaign_id = ? AND user_id = ?;   -- one per user
//! INSERT INTO issued_coupons (campaign_id, user_id, status, issued_at, expires_at) VALUES (…);
//! UPDATE campaigns SET issued_quantity = issued_quantity + 1 WHERE id = ?;
//! COMMIT;
//! ```
//! on its own scratch tables in a fresh database (dropped afterwards). The campaign has a huge
//! quantity and users are drawn at random from a large range, so almost every call issues.
//!
//! ```text
//! cargo bench --bench conventional_coupon -- --concurrency 64 --duration 10
//! ```
//! Prints a human summary and one `RESULT {json}` line (issues/s, latency percentiles, counts).
//! Reads `DATABASE_URL` (a user allowed to create databases) unless `--database-url` is given.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Row};

#[derive(Parser, Debug)]
#[command(about = "Conventional (SELECT … FOR UPDATE) coupon issue against MariaDB")]
struct Args {
    /// Server to use (a fresh database is created on it); default: $DATABASE_URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Concurrent workers, each with its own connection.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Coupons in the campaign.
    #[arg(long, default_value_t = 100_000_000)]
    quantity: i64,
    /// Users are drawn at random from 1..=USERS.
    #[arg(long, default_value_t = 100_000_000)]
    users: i64,
    /// Keep the scratch database.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Default)]
struct Tally {
    issued: u64,
    already: u64,
    sold_out: u64,
    retried: u64,
    latencies_us: Vec<u32>,
}

enum Outcome {
    Issued,
    Already,
    SoldOut,
}

async fn issue_once(
    pool: &sqlx::MySqlPool,
    campaign: i64,
    user: i64,
) -> Result<Outcome, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT total_quantity, issued_quantity, \
         CAST(starts_at <= UTC_TIMESTAMP(6) AND ends_at > UTC_TIMESTAMP(6) AS SIGNED), valid_days \
         FROM campaigns WHERE id = ? FOR UPDATE",
    )
    .bind(campaign)
    .fetch_one(&mut *tx)
    .await?;
    let total: i64 = row.try_get(0)?;
    let issued: i64 = row.try_get(1)?;
    let open: i64 = row.try_get(2)?;
    let valid_days: i32 = row.try_get(3)?;
    if open == 0 || issued >= total {
        tx.rollback().await?;
        return Ok(Outcome::SoldOut);
    }
    let held = sqlx::query("SELECT id FROM issued_coupons WHERE campaign_id = ? AND user_id = ?")
        .bind(campaign)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
    if held.is_some() {
        tx.rollback().await?;
        return Ok(Outcome::Already);
    }
    sqlx::query(
        "INSERT INTO issued_coupons (campaign_id, user_id, status, issued_at, expires_at) \
         VALUES (?, ?, 'AVAILABLE', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? DAY)",
    )
    .bind(campaign)
    .bind(user)
    .bind(valid_days)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE campaigns SET issued_quantity = issued_quantity + 1 WHERE id = ?")
        .bind(campaign)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Outcome::Issued)
}

/// Deadlocks / lock wait timeouts / duplicate keys are retried, as a JPA retry would.
fn retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("40001") | Some("HY000") | Some("23000")
            )
        }
        _ => false,
    }
}

async fn worker(
    pool: sqlx::MySqlPool,
    campaign: i64,
    users: i64,
    seed: u64,
    measure_from: Instant,
    until: Instant,
) -> anyhow::Result<Tally> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    while Instant::now() < until {
        let user = rng.random_range(1..=users);
        let started = Instant::now();
        let outcome = loop {
            match issue_once(&pool, campaign, user).await {
                Ok(o) => break o,
                Err(e) if retryable(&e) => tally.retried += 1,
                Err(e) => return Err(e).context("issue transaction failed"),
            }
        };
        if started < measure_from {
            continue; // warm-up
        }
        let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        tally.latencies_us.push(us);
        match outcome {
            Outcome::Issued => tally.issued += 1,
            Outcome::Already => tally.already += 1,
            Outcome::SoldOut => tally.sold_out += 1,
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!(args.duration >= 1, "--duration must be at least 1");
    let base = MySqlConnectOptions::from_str(&args.database_url).context("bad DATABASE_URL")?;
    let name = format!("fmconv_{}", uuid::Uuid::new_v4().simple());
    let mut admin = base.connect().await.context("connect to MariaDB")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(&mut admin)
    .await
    .context("create the scratch database")?;

    let result = run(&args, base.clone().database(&name)).await;

    if !args.keep {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE `{name}`")))
            .execute(&mut admin)
            .await
            .context("drop the scratch database")?;
    } else {
        eprintln!("kept database {name}");
    }
    admin.close().await.ok();
    result
}

async fn run(args: &Args, options: MySqlConnectOptions) -> anyhow::Result<()> {
    let pool = MySqlPoolOptions::new()
        .max_connections(args.concurrency as u32)
        .min_connections(args.concurrency as u32)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .context("connect to the scratch database")?;
    sqlx::raw_sql(
        "CREATE TABLE campaigns (
            id              BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
            name            VARCHAR(100) NOT NULL,
            total_quantity  BIGINT      NOT NULL,
            issued_quantity BIGINT      NOT NULL DEFAULT 0,
            starts_at       DATETIME(6) NOT NULL,
            ends_at         DATETIME(6) NOT NULL,
            valid_days      INT         NOT NULL,
            version         BIGINT      NOT NULL DEFAULT 0
        ) ENGINE = InnoDB;
        CREATE TABLE issued_coupons (
            id          BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
            campaign_id BIGINT      NOT NULL,
            user_id     BIGINT      NOT NULL,
            status      VARCHAR(16) NOT NULL,
            issued_at   DATETIME(6) NOT NULL,
            expires_at  DATETIME(6) NOT NULL,
            UNIQUE KEY uk_campaign_user (campaign_id, user_id),
            KEY ix_user (user_id)
        ) ENGINE = InnoDB;",
    )
    .execute(&pool)
    .await
    .context("create the scratch tables")?;
    let campaign = sqlx::query(
        "INSERT INTO campaigns (name, total_quantity, starts_at, ends_at, valid_days) \
         VALUES ('conventional bench', ?, UTC_TIMESTAMP(6) - INTERVAL 1 HOUR, \
                 UTC_TIMESTAMP(6) + INTERVAL 1 DAY, 7)",
    )
    .bind(args.quantity)
    .execute(&pool)
    .await?
    .last_insert_id() as i64;

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let until = measure_from + Duration::from_secs(args.duration);
    let seed_base: u64 = rand::rng().random();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|i| {
            tokio::spawn(worker(
                pool.clone(),
                campaign,
                args.users,
                seed_base.wrapping_add(i as u64),
                measure_from,
                until,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await.context("worker panicked")??;
        total.issued += t.issued;
        total.already += t.already;
        total.sold_out += t.sold_out;
        total.retried += t.retried;
        total.latencies_us.extend(t.latencies_us);
    }
    let measured = until.duration_since(measure_from).as_secs_f64();
    total.latencies_us.sort_unstable();
    let lat = Arc::new(total.latencies_us);

    // the books must agree: the count column equals the rows inserted
    let (rows, counted): (i64, i64) = {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM issued_coupons), issued_quantity FROM campaigns WHERE id = ?",
        )
        .bind(campaign)
        .fetch_one(&pool)
        .await?;
        (r.try_get(0)?, r.try_get(1)?)
    };
    pool.close().await;
    anyhow::ensure!(
        rows == counted,
        "issued_quantity {counted} but {rows} rows: the conventional design lost an update"
    );

    let attempts = lat.len() as f64;
    let per_sec = total.issued as f64 / measured;
    let (p50, p95, p99) = (
        percentile(&lat, 50.0),
        percentile(&lat, 95.0),
        percentile(&lat, 99.0),
    );
    println!(
        "conventional coupon issue (MariaDB, SELECT … FOR UPDATE), {} workers, {:.0} s:",
        args.concurrency, measured
    );
    println!(
        "  {per_sec:.0} issues/s ({} issued, {} already held, {} sold out/closed, {} retried), \
         {:.0} transactions/s",
        total.issued,
        total.already,
        total.sold_out,
        total.retried,
        attempts / measured
    );
    println!("  latency p50 {p50:.2} ms, p95 {p95:.2} ms, p99 {p99:.2} ms");
    println!(
        "RESULT {{\"concurrency\":{},\"seconds\":{measured},\"issued\":{},\"already\":{},\"soldOut\":{},\"retried\":{},\"issuesPerSecond\":{per_sec:.1},\"p50Ms\":{p50:.3},\"p95Ms\":{p95:.3},\"p99Ms\":{p99:.3}}}",
        args.concurrency, total.issued, total.already, total.sold_out, total.retried
    );
    Ok(())
}
