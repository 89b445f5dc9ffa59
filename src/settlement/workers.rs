//! An instance's settlement worker: one [`StreamWorker`] per bucket's stream, all in one
//! consumer group per stream, so every instance shares every stream's work (docs/ARCHITECTURE.md
//! §5). They share the runner's MySQL pool, whose size bounds how many batches commit at once.

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::stream::Stream;
use super::worker::{Outcome, StreamWorker, WorkerConfig};
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
        let mut streams = Vec::new();
        for stream in Stream::all(&cache.keys) {
            streams.push(
                StreamWorker::new(
                    db.clone(),
                    cache.clone(),
                    redis_url,
                    clock.clone(),
                    consumer.clone(),
                    config.clone(),
                    stream,
                )
                .await?,
            );
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
