//! A background task that refreshes the gauges no request path sets: MySQL and Redis pool
//! state, a probe of each dependency, the outbox's depth and age, and process metrics.
//!
//! Every instance runs one; the outbox gauges are the same table seen from each, so dashboards
//! take `max()` over instances. The queries are cheap (an index on `outbox.status`).

use std::time::{Duration, Instant};

use fred::clients::Pool;
use fred::interfaces::{ClientLike, EventInterface};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

/// How often the gauges are refreshed (well under a 15 s scrape interval).
pub const EVERY: Duration = Duration::from_secs(5);
/// A probe slower than this counts as the dependency being down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Starts the collector and a reconnect counter per Redis pool client; both stop with `stop`.
pub fn spawn(db: MySqlPool, redis: Pool, stop: CancellationToken) {
    for client in redis.clients() {
        let listener = client.on_reconnect(|_| async {
            metrics::counter!("redis_reconnects_total").increment(1);
            Ok(())
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            listener.abort();
        });
    }
    tokio::spawn(async move {
        let process = metrics_process::Collector::default();
        process.describe();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    process.collect();
                    collect(&db, &redis).await;
                }
            }
        }
    });
}

/// One refresh of every gauge; a failing query leaves its gauges at their last value (the
/// probe gauge says the dependency is down).
pub async fn collect(db: &MySqlPool, redis: &Pool) {
    metrics::gauge!("db_pool_connections").set(f64::from(db.size()));
    metrics::gauge!("db_pool_idle_connections").set(db.num_idle() as f64);
    metrics::gauge!("db_pool_max_connections").set(f64::from(db.options().get_max_connections()));
    let clients = redis.clients();
    let connected = clients.iter().filter(|c| c.is_connected()).count();
    metrics::gauge!("redis_pool_clients").set(clients.len() as f64);
    metrics::gauge!("redis_pool_connected_clients").set(connected as f64);

    let started = Instant::now();
    let mysql_up = tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(db))
        .await
        .is_ok_and(|r| r.is_ok());
    record_probe("mysql", mysql_up, started);
    let started = Instant::now();
    let redis_up = tokio::time::timeout(PROBE_TIMEOUT, redis.next().ping::<String>(None))
        .await
        .is_ok_and(|r| r.is_ok());
    record_probe("redis", redis_up, started);

    if mysql_up {
        if let Err(error) = outbox(db).await {
            tracing::warn!(error = %error, "outbox gauges not refreshed");
        }
    }
}

fn record_probe(dependency: &'static str, up: bool, started: Instant) {
    metrics::gauge!("dependency_up", "dependency" => dependency).set(if up { 1.0 } else { 0.0 });
    if up {
        metrics::histogram!("dependency_probe_seconds", "dependency" => dependency)
            .record(started.elapsed().as_secs_f64());
    }
}

/// Outbox depth and age, straight from MySQL (the relay's own view of its queue).
async fn outbox(db: &MySqlPool) -> Result<(), sqlx::Error> {
    let (pending, dead, oldest_secs): (i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(status = 'PENDING'), 0) AS SIGNED), \
                CAST(COALESCE(SUM(status = 'DEAD'), 0) AS SIGNED), \
                CAST(TIMESTAMPDIFF(MICROSECOND, \
                     MIN(IF(status = 'PENDING', created_at, NULL)), UTC_TIMESTAMP(6)) \
                     / 1e6 AS DOUBLE) \
         FROM outbox WHERE status IN ('PENDING', 'DEAD')",
    )
    .fetch_one(db)
    .await?;
    metrics::gauge!("outbox_pending_deliveries").set(pending as f64);
    metrics::gauge!("outbox_dead_deliveries").set(dead as f64);
    metrics::gauge!("outbox_oldest_pending_age_seconds").set(oldest_secs.unwrap_or(0.0).max(0.0));
    Ok(())
}
