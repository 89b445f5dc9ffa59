//! Queries on `outbox`: enqueue in the settlement transaction, claim with a lease
//! (`FOR UPDATE SKIP LOCKED`, so instances never deliver the same row at the same time), and
//! record the outcome of each attempt.

use chrono::{DateTime, Duration, Utc};
use sqlx::{MySqlConnection, MySqlPool};

/// A delivery to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Event id (the receiver's de-duplication key; unique in the outbox).
    pub event_id: String,
    /// The event's `type` (e.g. `order.paid`), kept for operators' queries on the outbox.
    pub event_type: &'static str,
    /// The JSON body to POST.
    pub body: String,
}

/// Enqueues deliveries in the caller's transaction (multi-row; once per event id).
pub async fn enqueue(
    tx: &mut MySqlConnection,
    deliveries: &[NewDelivery],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    super::insert_rows(
        tx,
        "INSERT IGNORE INTO outbox (event_id, event_type, body, status, attempts, \
         next_attempt_at, created_at)",
        deliveries,
        "",
        |mut row, d| {
            row.push_bind(&d.event_id)
                .push_bind(d.event_type)
                .push_bind(&d.body)
                .push_bind("PENDING")
                .push_bind(0)
                .push_bind(now)
                .push_bind(now);
        },
    )
    .await?;
    Ok(())
}

/// A claimed delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    /// The outbox row's primary key, used to lease and mark this delivery.
    pub id: i64,
    /// Event id (sent as `X-Flashmart-Event-Id`; the same on every retry).
    pub event_id: String,
    /// The JSON body to POST.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries for `lease` (other instances skip them meanwhile) and
/// counts the attempt each is about to get: the count is committed before any request leaves,
/// so `attempts` is never below the requests the platform saw, even when the outcome of an
/// attempt is never written (the relay died, or a deadlock lost the write).
pub async fn claim(
    pool: &MySqlPool,
    limit: u32,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let due: Vec<Delivery> = sqlx::query_as(
        "SELECT id, event_id, body, attempts FROM outbox WHERE status = 'PENDING' \
         AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) \
         ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if !due.is_empty() {
        // One statement leases the whole batch (its rows are locked by the SELECT above).
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        let mut lease_all = sqlx::QueryBuilder::<sqlx::MySql>::new(
            "UPDATE outbox SET attempts = attempts + 1, lease_until = ",
        );
        lease_all.push_bind(now + lease).push(" WHERE id IN ");
        super::push_padded_in_list(&mut lease_all, &ids);
        lease_all.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(due)
}

/// Marks a delivery done (its attempt was counted when it was claimed).
pub async fn delivered(pool: &MySqlPool, id: i64, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE outbox SET status = 'DELIVERED', delivered_at = ?, \
         lease_until = NULL, last_error = NULL WHERE id = ? AND status = 'PENDING'",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt (counted when it was claimed): retried at `retry_at`, or DEAD when
/// `dead`.
pub async fn failed(
    pool: &MySqlPool,
    id: i64,
    error: &str,
    retry_at: DateTime<Utc>,
    dead: bool,
) -> Result<(), sqlx::Error> {
    let error: String = error.chars().take(500).collect();
    sqlx::query(
        "UPDATE outbox SET last_error = ?, next_attempt_at = ?, \
         lease_until = NULL, status = IF(?, 'DEAD', status) \
         WHERE id = ? AND status = 'PENDING'",
    )
    .bind(error)
    .bind(retry_at)
    .bind(dead)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deliveries per status.
pub async fn counts(pool: &MySqlPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        .fetch_all(pool)
        .await
}

/// Puts every DEAD delivery back in the queue; returns how many.
pub async fn retry_dead(pool: &MySqlPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE outbox SET status = 'PENDING', attempts = 0, next_attempt_at = ?, \
         lease_until = NULL WHERE status = 'DEAD'",
    )
    .bind(now)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
