//! Stream operations of the settlement consumer group: read, claim, acknowledge, dead-letter,
//! trim and measure lag.

use std::collections::HashMap;

use fred::prelude::*;
use fred::types::streams::XReadResponse;

use super::GROUP;
use crate::cache::keys::Bucket;
use crate::cache::{Cache, Keys};

/// One raw stream entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// The entry's stream id (`<ms>-<seq>`, assigned by Redis); used to acknowledge, reclaim or
    /// dead-letter it.
    pub id: String,
    /// The entry's field names and values as written; an event carries `id`, `type`, `v`,
    /// `at` and `data`.
    pub fields: HashMap<String, String>,
}

/// Entries as `XRANGE` / `XAUTOCLAIM` return them.
type Entries = Vec<(String, HashMap<String, String>)>;

/// The keys of one bucket's settlement stream: the stream, its dead letters and its failure
/// counts (one slot, so a worker's pipelines stay on one node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The bucket whose decisions the stream holds.
    pub bucket: Bucket,
    /// `{b}:events`.
    pub events: String,
    /// `{b}:events:dead`.
    pub dead: String,
    /// `{b}:events:failures`.
    pub failures: String,
}

impl Stream {
    /// The stream of `bucket`.
    pub fn of(keys: &Keys, bucket: Bucket) -> Self {
        Self {
            bucket,
            events: keys.events(bucket),
            dead: keys.dead_letters(bucket),
            failures: keys.event_failures(bucket),
        }
    }

    /// The stream of every bucket, in bucket order.
    pub fn all(keys: &Keys) -> Vec<Self> {
        keys.buckets().map(|b| Self::of(keys, b)).collect()
    }
}

/// Creates the consumer group on every bucket's stream (idempotent).
pub async fn ensure_group(cache: &Cache) -> anyhow::Result<()> {
    for stream in Stream::all(&cache.keys) {
        ensure_group_of(cache, &stream).await?;
    }
    Ok(())
}

/// The lag of every bucket's stream together: pending and undelivered entries summed, the
/// oldest pending entry of all.
pub async fn lag(cache: &Cache) -> anyhow::Result<Lag> {
    let mut total = Lag::default();
    for stream in Stream::all(&cache.keys) {
        let one = lag_of(cache, &stream).await?;
        total.pending += one.pending;
        total.undelivered += one.undelivered;
        total.oldest_pending_ms = match (total.oldest_pending_ms, one.oldest_pending_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(total)
}

/// Dead letters of every bucket's stream.
pub async fn dead_letter_count(cache: &Cache) -> anyhow::Result<u64> {
    let mut total = 0;
    for stream in Stream::all(&cache.keys) {
        let count: u64 = cache.client().xlen(&stream.dead).await?;
        total += count;
    }
    Ok(total)
}

/// Creates the consumer group (and the stream) if missing.
pub async fn ensure_group_of(cache: &Cache, stream: &Stream) -> anyhow::Result<()> {
    let created: Result<(), _> = cache
        .client()
        .xgroup_create(&stream.events, GROUP, "0", true)
        .await;
    match created {
        Ok(()) => Ok(()),
        Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("failed to create the consumer group")),
    }
}

fn flatten(response: XReadResponse<String, String, String, String>) -> Vec<RawEntry> {
    response
        .into_values()
        .flatten()
        .map(|(id, fields)| RawEntry { id, fields })
        .collect()
}

/// Reads entries never delivered to anyone (`>`), blocking up to `block_ms`; an empty list
/// when none arrived (Redis answers nil then). Use a dedicated client: a blocking read stalls
/// every other command on its connection.
pub async fn read_new(
    reader: &Client,
    stream: &Stream,
    consumer: &str,
    count: u64,
    block_ms: u64,
) -> anyhow::Result<Vec<RawEntry>> {
    let reply: Value = reader
        .xreadgroup(
            GROUP,
            consumer,
            Some(count),
            Some(block_ms),
            false,
            &stream.events,
            ">",
        )
        .await?;
    if reply.is_null() {
        return Ok(Vec::new());
    }
    Ok(flatten(reply.into_xread_response()?))
}

/// Re-reads this consumer's own delivered-but-unacknowledged entries (after a restart or a
/// failed batch).
pub async fn read_own_pending(
    cache: &Cache,
    stream: &Stream,
    consumer: &str,
    count: u64,
) -> anyhow::Result<Vec<RawEntry>> {
    let response: XReadResponse<String, String, String, String> = cache
        .client()
        .xreadgroup_map(
            GROUP,
            consumer,
            Some(count),
            None,
            false,
            &stream.events,
            "0",
        )
        .await?;
    Ok(flatten(response))
}

/// Takes over entries idle for at least `min_idle_ms` in other consumers' lists (dead or stuck
/// workers).
pub async fn claim_idle(
    cache: &Cache,
    stream: &Stream,
    consumer: &str,
    min_idle_ms: u64,
    count: u64,
) -> anyhow::Result<Vec<RawEntry>> {
    let (_, entries): (String, Entries) = cache
        .client()
        .xautoclaim_values(
            &stream.events,
            GROUP,
            consumer,
            min_idle_ms,
            "0-0",
            Some(count),
            false,
        )
        .await?;
    Ok(entries
        .into_iter()
        .map(|(id, fields)| RawEntry { id, fields })
        .collect())
}

/// Acknowledges entries (only ever after their effects are committed).
pub async fn ack(cache: &Cache, stream: &Stream, ids: &[String]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let _: i64 = cache
        .client()
        .xack(&stream.events, GROUP, ids.to_vec())
        .await?;
    Ok(())
}

/// Acknowledges committed entries and forgets their failure counts, in one round trip (a
/// pipeline of `XACK` and `HDEL`).
pub async fn ack_committed(cache: &Cache, stream: &Stream, ids: &[String]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let pipeline = cache.client().pipeline();
    let () = pipeline.xack(&stream.events, GROUP, ids.to_vec()).await?;
    let () = pipeline.hdel(&stream.failures, ids.to_vec()).await?;
    let _: Vec<i64> = pipeline.all().await?;
    Ok(())
}

/// Counts one more failed attempt at an entry, across all workers; returns the total.
pub async fn record_failure(cache: &Cache, stream: &Stream, id: &str) -> anyhow::Result<i64> {
    Ok(cache.client().hincrby(&stream.failures, id, 1).await?)
}

/// Forgets failure counts of entries that are done.
pub async fn clear_failures(cache: &Cache, stream: &Stream, ids: &[String]) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let _: i64 = cache.client().hdel(&stream.failures, ids.to_vec()).await?;
    Ok(())
}

/// Copies an entry to the dead-letter stream with the reason, then acknowledges it.
pub async fn dead_letter(
    cache: &Cache,
    stream: &Stream,
    entry: &RawEntry,
    reason: &str,
) -> anyhow::Result<()> {
    let mut fields: Vec<(String, String)> = vec![
        ("sourceId".into(), entry.id.clone()),
        ("reason".into(), reason.chars().take(500).collect()),
    ];
    let mut names: Vec<&String> = entry.fields.keys().collect();
    names.sort();
    for name in names {
        fields.push((format!("f.{name}"), entry.fields[name].clone()));
    }
    let _: String = cache
        .client()
        .xadd(&stream.dead, false, None, "*", fields)
        .await?;
    ack(cache, stream, std::slice::from_ref(&entry.id)).await?;
    clear_failures(cache, stream, std::slice::from_ref(&entry.id)).await?;
    metrics::counter!("settlement_dead_letters_total").increment(1);
    Ok(())
}

/// Backlog of the group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Delivered but not acknowledged.
    pub pending: u64,
    /// Appended but not yet delivered to any consumer.
    pub undelivered: u64,
    /// Unix ms of the oldest pending entry, if any.
    pub oldest_pending_ms: Option<i64>,
}

impl Lag {
    /// Whether every appended event has been applied and acknowledged.
    pub fn drained(&self) -> bool {
        self.pending == 0 && self.undelivered == 0
    }
}

/// Most undelivered entries [`lag`] counts one by one; a longer backlog reports this number.
pub const UNDELIVERED_COUNT_CAP: u64 = 10_000;

/// Measures the group's backlog from what cannot go stale.
///
/// `XINFO GROUPS` reports `lag` from the group's `entries-read` counter, which Redis 7.0
/// restores stale after an AOF rewrite followed by a crash (a phantom backlog that never goes
/// away). So "undelivered" is decided from ids instead: nothing is undelivered when the group's
/// last-delivered id is the stream's last id; otherwise the entries after it are counted (up to
/// [`UNDELIVERED_COUNT_CAP`]). "Pending" is the size of the group's pending list (`XPENDING`).
pub async fn lag_of(cache: &Cache, stream: &Stream) -> anyhow::Result<Lag> {
    let groups: Vec<HashMap<String, Value>> = cache.client().xinfo_groups(&stream.events).await?;
    let Some(group) = groups
        .iter()
        .find(|g| g.get("name").and_then(|v| v.as_string()).as_deref() == Some(GROUP))
    else {
        let length: u64 = cache.client().xlen(&stream.events).await?;
        return Ok(Lag {
            pending: 0,
            undelivered: length,
            oldest_pending_ms: None,
        });
    };
    let last_delivered = group
        .get("last-delivered-id")
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| "0-0".into());
    let undelivered = undelivered_after(cache, stream, &last_delivered).await?;
    let (pending, oldest_pending_ms) = pending_summary(cache, stream).await?;
    Ok(Lag {
        pending,
        undelivered,
        oldest_pending_ms,
    })
}

/// Entries after `last_delivered` (0 when it is the stream's newest entry).
async fn undelivered_after(
    cache: &Cache,
    stream: &Stream,
    last_delivered: &str,
) -> anyhow::Result<u64> {
    let newest: Vec<(String, HashMap<String, String>)> = cache
        .client()
        .xrevrange(&stream.events, "+", "-", Some(1))
        .await?;
    match newest.first() {
        None => return Ok(0),
        Some((id, _)) if id == last_delivered => return Ok(0),
        Some(_) => {}
    }
    let entries: Vec<(String, HashMap<String, String>)> = cache
        .client()
        .xrange(
            &stream.events,
            format!("({last_delivered}"),
            "+",
            Some(UNDELIVERED_COUNT_CAP),
        )
        .await?;
    Ok(entries.len() as u64)
}

/// Size of the group's pending list and the Unix ms of its oldest entry, from `XPENDING`.
async fn pending_summary(cache: &Cache, stream: &Stream) -> anyhow::Result<(u64, Option<i64>)> {
    let summary: Value = cache.client().xpending(&stream.events, GROUP, ()).await?;
    let Value::Array(parts) = summary else {
        return Ok((0, None));
    };
    let count = parts.first().and_then(|v| v.as_u64()).unwrap_or(0);
    let oldest = parts
        .get(1)
        .and_then(|v| v.as_string())
        .and_then(|id| millis_of(&id));
    Ok((count, if count > 0 { oldest } else { None }))
}

/// The millisecond part of a stream id.
pub fn millis_of(stream_id: &str) -> Option<i64> {
    stream_id.split('-').next()?.parse().ok()
}

/// Removes entries every consumer has acknowledged: everything below the oldest pending entry,
/// or below the last delivered one when nothing is pending.
pub async fn trim_acknowledged(cache: &Cache, stream: &Stream) -> anyhow::Result<u64> {
    let groups: Vec<HashMap<String, Value>> = cache.client().xinfo_groups(&stream.events).await?;
    if groups.len() != 1 {
        return Ok(0); // only trim when our group is the only reader
    }
    let summary: Value = cache.client().xpending(&stream.events, GROUP, ()).await?;
    let oldest_pending = match &summary {
        Value::Array(parts) => parts.get(1).and_then(|v| v.as_string()),
        _ => None,
    };
    let floor = match oldest_pending {
        Some(id) => id,
        None => match groups[0]
            .get("last-delivered-id")
            .and_then(|v| v.as_string())
        {
            Some(id) if id != "0-0" => id,
            _ => return Ok(0),
        },
    };
    Ok(cache
        .client()
        .xtrim(&stream.events, ("MINID", "=", floor))
        .await?)
}

/// Removes consumers (other than `me`) that hold no pending entries and have been idle for
/// `idle_ms`: the names of processes that are gone.
pub async fn forget_idle_consumers(
    cache: &Cache,
    stream: &Stream,
    me: &str,
    idle_ms: u64,
) -> anyhow::Result<u64> {
    let consumers: Vec<HashMap<String, Value>> = cache
        .client()
        .xinfo_consumers(&stream.events, GROUP)
        .await?;
    let mut removed = 0;
    for consumer in consumers {
        let name = consumer
            .get("name")
            .and_then(|v| v.as_string())
            .unwrap_or_default();
        let pending = consumer
            .get("pending")
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        let idle = consumer.get("idle").and_then(|v| v.as_u64()).unwrap_or(0);
        if name != me && !name.is_empty() && pending == 0 && idle >= idle_ms {
            let _: i64 = cache
                .client()
                .xgroup_delconsumer(&stream.events, GROUP, &name)
                .await?;
            removed += 1;
        }
    }
    Ok(removed)
}
