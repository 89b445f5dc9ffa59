//! The worker loop. [`Worker::run_once`] does one step and reports an [`Outcome`], so tests can
//! drive the worker step by step; [`Worker::run`] loops until shutdown.

use std::time::{Duration, Instant};

use fred::prelude::*;
use tokio_util::sync::CancellationToken;

use super::apply::{apply_batch, BatchOutcome};
use super::stock_commit;
use super::stream::{self, RawEntry, Stream};
use crate::cache::batch::Batcher;
use crate::cache::Cache;
use crate::clock::Clock;
use crate::events::Envelope;

/// Tuning of one worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Most entries read and applied per batch (one transaction).
    pub batch_size: u64,
    /// How long a read for new entries blocks.
    pub block_ms: u64,
    /// Entries idle this long in another consumer's list are reclaimed.
    pub claim_idle_ms: u64,
    /// How often to look for idle entries to reclaim and to trim the stream.
    pub housekeeping_every: Duration,
    /// Failed attempts (across all workers) after which an entry is dead-lettered.
    pub max_failures: i64,
    /// Least time between the starts of two merged transactions of the instance.
    pub commit_pace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            block_ms: 1_000,
            claim_idle_ms: 30_000,
            housekeeping_every: Duration::from_secs(5),
            max_failures: 5,
            commit_pace: Duration::from_millis(50),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Entries read or claimed.
    pub read: usize,
    /// Events applied now.
    pub applied: usize,
    /// Redeliveries skipped (already applied).
    pub duplicates: usize,
    /// Entries that failed this time and stay pending.
    pub failed: usize,
    /// Entries moved to the dead-letter stream.
    pub dead_lettered: usize,
}

/// The instance's settlement group commit: the stream workers' batches that are ready together
/// go into MySQL as one transaction (`None` for each when that transaction failed: each stream
/// then applies its own batch, one event at a time if need be).
pub type Applier = Batcher<Vec<Envelope>, Option<BatchOutcome>>;

/// What the stream workers of one instance share.
#[derive(Clone)]
pub struct Shared {
    /// The runner's MySQL pool.
    pub db: sqlx::MySqlPool,
    /// Redis, for the streams' non-blocking commands.
    pub cache: Cache,
    /// Time source for applied-at stamps and the lag.
    pub clock: Clock,
    /// This instance's consumer name in every stream's group.
    pub consumer: String,
    /// Batch size, blocking read, idle reclaim and failure limits.
    pub config: WorkerConfig,
    /// The instance's merged commits.
    pub applier: Applier,
}

/// The settlement consumer of one bucket's stream.
pub struct StreamWorker {
    db: sqlx::MySqlPool,
    cache: Cache,
    stream: Stream,
    applier: Applier,
    reader: Client,
    clock: Clock,
    consumer: String,
    config: WorkerConfig,
    drain_own_pending: bool,
    last_housekeeping: Option<Instant>,
}

impl StreamWorker {
    /// Creates the worker of `stream`, with its own blocking-read connection, and joins the
    /// stream's group.
    pub async fn new(shared: Shared, redis_url: &str, stream: Stream) -> anyhow::Result<Self> {
        let Shared {
            db,
            cache,
            clock,
            consumer,
            config,
            applier,
        } = shared;
        let reader = crate::cache::build_client(redis_url).await?;
        stream::ensure_group_of(&cache, &stream).await?;
        Ok(Self {
            db,
            cache,
            stream,
            applier,
            reader,
            clock,
            consumer,
            config,
            drain_own_pending: true,
            last_housekeeping: None,
        })
    }

    /// This worker's consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Runs until `shutdown` is cancelled; errors are logged and retried with backoff.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let bucket = self.stream.bucket;
        tracing::debug!(consumer = %self.consumer, %bucket, "stream worker started");
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let step = tokio::select! {
                _ = shutdown.cancelled() => break,
                step = self.run_once() => step,
            };
            match step {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "settlement step failed; retrying");
                    // Entries read before the failure are pending at this consumer now: read
                    // them again first (else they wait for the idle reclaim, 30 s by default).
                    self.drain_own_pending = true;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        let _ = self.reader.quit().await;
        tracing::debug!(consumer = %self.consumer, %bucket, "stream worker stopped");
    }

    /// One step: own pending entries first, then (periodically) reclaim idle entries of other
    /// consumers, else new entries; apply what was read.
    pub async fn run_once(&mut self) -> anyhow::Result<Outcome> {
        if self.housekeeping_due() {
            self.last_housekeeping = Some(Instant::now());
            self.housekeeping().await?;
            let claimed = stream::claim_idle(
                &self.cache,
                &self.stream,
                &self.consumer,
                self.config.claim_idle_ms,
                self.config.batch_size,
            )
            .await?;
            if !claimed.is_empty() {
                tracing::info!(count = claimed.len(), "reclaimed idle settlement entries");
                return self.process(claimed).await;
            }
        }
        let entries = if self.drain_own_pending {
            let own = stream::read_own_pending(
                &self.cache,
                &self.stream,
                &self.consumer,
                self.config.batch_size,
            )
            .await?;
            if own.is_empty() {
                self.drain_own_pending = false;
            }
            own
        } else {
            Vec::new()
        };
        let entries = if entries.is_empty() && !self.drain_own_pending {
            stream::read_new(
                &self.reader,
                &self.stream,
                &self.consumer,
                self.config.batch_size,
                self.config.block_ms,
            )
            .await?
        } else {
            entries
        };
        self.process(entries).await
    }

    fn housekeeping_due(&self) -> bool {
        self.last_housekeeping
            .is_none_or(|t| t.elapsed() >= self.config.housekeeping_every)
    }

    async fn housekeeping(&self) -> anyhow::Result<()> {
        stream::trim_acknowledged(&self.cache, &self.stream).await?;
        stream::forget_idle_consumers(&self.cache, &self.stream, &self.consumer, 3_600_000).await?;
        if self.stream.bucket.0 != 0 {
            return Ok(());
        }
        // One worker of the instance reports the lag of every bucket's stream together.
        let lag = stream::lag(&self.cache).await?;
        metrics::gauge!("settlement_pending_events").set(lag.pending as f64);
        metrics::gauge!("settlement_undelivered_events").set(lag.undelivered as f64);
        let age_secs = lag
            .oldest_pending_ms
            .map(|ms| (self.clock.now_ms() - ms).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("settlement_oldest_pending_age_seconds").set(age_secs);
        Ok(())
    }

    /// Applies entries: the whole batch in one transaction; if that fails, one by one so a
    /// poison entry cannot hold back the others.
    async fn process(&mut self, entries: Vec<RawEntry>) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome {
            read: entries.len(),
            ..Outcome::default()
        };
        if entries.is_empty() {
            return Ok(outcome);
        }
        if let Some(durable) = &self.cache.durable {
            // Nothing goes into MySQL that a failover could still take away from Redis.
            let newest = newest_id(&entries).unwrap_or_default();
            durable.settle_fence(&self.stream.events, newest).await?;
        }
        let mut good: Vec<(RawEntry, Envelope)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match Envelope::from_fields(&entry.id, &entry.fields) {
                Ok(envelope) => good.push((entry, envelope)),
                Err(e) => self.failed(&entry, &e.to_string(), &mut outcome).await?,
            }
        }
        let envelopes: Vec<Envelope> = good.iter().map(|(_, e)| e.clone()).collect();
        if envelopes.is_empty() {
            return Ok(outcome);
        }
        // The payment saga's last step (stock_commit.rs), before MySQL: it needs only Redis.
        stock_commit::commit_paid(&self.cache, &envelopes).await?;
        let started = Instant::now();
        let merged = match self.applier.submit(envelopes.clone()).await {
            Ok(Some(done)) => Ok(done),
            Ok(None) => apply_batch(&self.db, &envelopes, self.clock.now()).await,
            Err(e) => Err(e),
        };
        match merged {
            Ok(done) => {
                self.committed(
                    &envelopes,
                    started,
                    done.applied,
                    done.duplicates,
                    &mut outcome,
                )
                .await?;
            }
            Err(batch_error) => {
                self.database_reachable()
                    .await
                    .map_err(|e| e.context(batch_error))?;
                for (entry, envelope) in good {
                    let one = std::slice::from_ref(&envelope);
                    match apply_batch(&self.db, one, self.clock.now()).await {
                        Ok(done) => {
                            self.committed(
                                one,
                                started,
                                done.applied,
                                done.duplicates,
                                &mut outcome,
                            )
                            .await?
                        }
                        Err(e) => {
                            // A database outage, a deadlock or a lock timeout is nobody's
                            // poison: stop and retry later without counting a failure.
                            self.database_reachable()
                                .await
                                .map_err(|d| d.context(e.to_string()))?;
                            if is_transient(&e) {
                                return Err(e.context("transient database error"));
                            }
                            self.failed(&entry, &format!("{e:#}"), &mut outcome).await?
                        }
                    }
                }
            }
        }
        Ok(outcome)
    }

    async fn committed(
        &self,
        envelopes: &[Envelope],
        started: Instant,
        applied: usize,
        duplicates: usize,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        // The lag ends at the MySQL commit, which just happened: taken before the round trip
        // that acknowledges the entries in Redis, so Redis's latency is not counted as MySQL's.
        let committed_ms = self.clock.now_ms();
        metrics::histogram!("settlement_commit_seconds").record(started.elapsed().as_secs_f64());
        for envelope in envelopes {
            metrics::counter!("settlement_events_applied_total", "type" => envelope.event_type.clone())
                .increment(1);
            let lag_secs = (committed_ms - envelope.occurred_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!("ledger_lag_seconds").record(lag_secs);
        }
        let ids: Vec<String> = envelopes.iter().map(|e| e.stream_id.clone()).collect();
        stream::ack_committed(&self.cache, &self.stream, &ids).await?;
        outcome.applied += applied;
        outcome.duplicates += duplicates;
        Ok(())
    }

    /// Counts a failure; past the limit the entry is dead-lettered, else it stays pending and
    /// this worker re-reads its pending list next.
    async fn failed(
        &mut self,
        entry: &RawEntry,
        reason: &str,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let attempts = stream::record_failure(&self.cache, &self.stream, &entry.id).await?;
        if attempts >= self.config.max_failures {
            tracing::error!(stream_id = %entry.id, attempts, reason, "dead-lettering settlement entry");
            stream::dead_letter(&self.cache, &self.stream, entry, reason).await?;
            outcome.dead_lettered += 1;
        } else {
            tracing::warn!(stream_id = %entry.id, attempts, reason, "settlement entry failed");
            outcome.failed += 1;
            self.drain_own_pending = true;
            // Space the retries out so a slow-to-clear cause gets time before the next strike.
            tokio::time::sleep(Duration::from_millis(100 * attempts.clamp(1, 10) as u64)).await;
        }
        Ok(())
    }

    async fn database_reachable(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.db).await?;
        Ok(())
    }
}

/// Deadlocks, lock-wait timeouts and lost connections (MySQL error numbers, not message text):
/// the same work will succeed later.
/// The newest stream id of a batch (ids are `ms-seq`, compared as numbers).
fn newest_id(entries: &[RawEntry]) -> Option<&str> {
    fn parts(id: &str) -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
    entries
        .iter()
        .max_by_key(|e| parts(&e.id))
        .map(|e| e.id.as_str())
}

fn is_transient(error: &anyhow::Error) -> bool {
    crate::dependency::is_dependency_failure(error)
}
