//! The exactly-once fence: an event id can be recorded as applied only once.

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use crate::events::Envelope;

/// Records the event as applied in the caller's transaction; `false` if it already was (a
/// redelivery), in which case the caller must skip it.
pub async fn mark_applied(
    tx: &mut MySqlConnection,
    envelope: &Envelope,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "INSERT IGNORE INTO applied_events \
         (event_id, stream_id, event_type, occurred_at, applied_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&envelope.event_id)
    .bind(&envelope.stream_id)
    .bind(&envelope.event_type)
    .bind(envelope.occurred_at())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(result.rows_affected() == 1)
}
