//! The exactly-once fence: an event id can be recorded as applied only once.

use chrono::{DateTime, Utc};
use sqlx::{MySql, MySqlConnection, QueryBuilder};

use super::{insert_rows, push_padded_in_list};
use crate::events::Envelope;

/// Records the fresh events of `batch` as applied in the caller's transaction and tells, per
/// envelope, whether it is fresh (`false`: applied before, or earlier in this batch — the
/// caller must skip it).
///
/// One `SELECT … IN` finds what was committed before, one multi-row `INSERT IGNORE` records
/// the rest. If that insert records fewer rows than it should, another worker is applying some
/// of the same events right now (a reclaim race): for a single event that means "not fresh";
/// for a larger batch it is an error, and the worker retries the events one by one.
pub async fn mark_applied(
    tx: &mut MySqlConnection,
    batch: &[Envelope],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<bool>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = batch.iter().map(|e| e.event_id.as_str()).collect();
    let mut select =
        QueryBuilder::<MySql>::new("SELECT event_id FROM applied_events WHERE event_id IN ");
    push_padded_in_list(&mut select, &ids);
    let applied: Vec<(String,)> = select.build_query_as().fetch_all(&mut *tx).await?;
    let mut seen: std::collections::HashSet<&str> =
        applied.iter().map(|(id,)| id.as_str()).collect();
    let fresh: Vec<bool> = ids.iter().map(|id| seen.insert(*id)).collect();
    let rows: Vec<&Envelope> = batch
        .iter()
        .zip(&fresh)
        .filter_map(|(e, fresh)| (*fresh).then_some(e))
        .collect();
    let recorded = insert_rows(
        tx,
        "INSERT IGNORE INTO applied_events \
         (event_id, stream_id, event_type, occurred_at, applied_at)",
        &rows,
        "",
        |mut row, e| {
            row.push_bind(&e.event_id)
                .push_bind(&e.stream_id)
                .push_bind(&e.event_type)
                .push_bind(e.occurred_at())
                .push_bind(now);
        },
    )
    .await?;
    if recorded == rows.len() as u64 {
        return Ok(fresh);
    }
    if batch.len() == 1 {
        return Ok(vec![false]);
    }
    anyhow::bail!(
        "{} of {} events are being applied by another worker right now",
        rows.len() as u64 - recorded,
        rows.len()
    )
}
