//! An instance's settlement worker: one [`StreamWorker`] per bucket's stream, all in one
//! consumer group per stream, so every instance shares every stream's work (docs/ARCHITECTURE.md
//! §5). They share the runner's MySQL pool, whose size bounds how many batches commit at once.

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::apply::apply_merged;
use super::stream::Stream;
use super::worker::{Applier, Outcome, Shared, StreamWorker, WorkerConfig};
use crate::cache::batch::{BatchLimits, Batcher};
use crate::cache::Cache;
use crate::clock::Clock;

/// The settlement consumers of one instance, one per bucket's stream.
pub struct Worker {
    streams: Vec<StreamWorker>,
    consumer: String,
}

impl Worker {
    /// Joins the group of every bucket's stream as `consumer`, each with its own blocking-read
    /// connection.
    pub async fn new(
        db: sqlx::MySqlPool,
        cache: Cache,
        redis_url: &str,
        clock: Clock,
        consumer: String,
        config: WorkerConfig,
    ) -> anyhow::Result<Self> {
        let shared = Shared {
            applier: applier(db.clone(), clock.clone(), config.commit_pace),
            db,
            cache: cache.clone(),
            clock,
            consumer: consumer.clone(),
            config,
        };
        let mut streams = Vec::new();
        for stream in Stream::all(&cache.keys) {
            streams.push(StreamWorker::new(shared.clone(), redis_url, stream).await?);
        }
        Ok(Self { streams, consumer })
    }

    /// The consumer name in every stream's group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// One step on every stream at once (tests drive the worker with it); the outcomes added up.
    pub async fn run_once(&mut self) -> anyhow::Result<Outcome> {
        let steps = join_all(self.streams.iter_mut().map(StreamWorker::run_once)).await;
        let mut total = Outcome::default();
        for step in steps {
            let step = step?;
            total.read += step.read;
            total.applied += step.applied;
            total.duplicates += step.duplicates;
            total.failed += step.failed;
            total.dead_lettered += step.dead_lettered;
        }
        Ok(total)
    }

    /// Runs every stream's loop until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(consumer = %self.consumer, streams = self.streams.len(),
            "settlement worker started");
        join_all(
            self.streams
                .into_iter()
                .map(|worker| worker.run(shutdown.clone())),
        )
        .await;
        tracing::info!(consumer = %self.consumer, "settlement worker stopped");
    }
}

/// Most streams' batches one merged transaction takes.
const MERGED_BATCHES: usize = 64;

/// The group commit of the instance's stream workers: while one merged transaction is at MySQL,
/// the batches that become ready queue, and the next transaction takes them all. One commit
/// then carries every bucket's events (a commit per stream and step would multiply the commits
/// by the bucket count and starve the small pool).
///
/// Merged transactions start at least `pace` apart. While one waits for its turn, the events
/// that arrive gather into the next one, so a busy instance commits fewer, larger transactions
/// (each commit costs MariaDB a redo-log sync and every statement its round trip, and each
/// stream worker reads and acknowledges once per transaction it joins) and an event waits at
/// most about twice the pace for its turn.
fn applier(db: sqlx::MySqlPool, clock: Clock, pace: std::time::Duration) -> Applier {
    let limits = BatchLimits {
        max: MERGED_BATCHES,
        in_flight: 1,
    };
    let last_start = std::sync::Arc::new(std::sync::Mutex::new(None::<tokio::time::Instant>));
    Batcher::start("settlement", limits, move |batches: Vec<Vec<_>>| {
        let (db, clock, last_start) = (db.clone(), clock.clone(), last_start.clone());
        async move {
            let previous = *last_start.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(previous) = previous {
                tokio::time::sleep_until(previous + pace).await;
            }
            *last_start.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(tokio::time::Instant::now());
            let events: usize = batches.iter().map(Vec::len).sum();
            match apply_merged(&db, &batches, clock.now()).await {
                Ok(done) => {
                    metrics::histogram!("settlement_batch_size").record(events as f64);
                    Ok(done.into_iter().map(Some).collect())
                }
                Err(e) => {
                    // Each stream applies its own batch again, and finds the culprit.
                    tracing::debug!(error = format!("{e:#}"), "merged settlement batch failed");
                    Ok(vec![None; batches.len()])
                }
            }
        }
    })
}
