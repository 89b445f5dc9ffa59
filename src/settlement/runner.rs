//! Runs the settlement worker on its own OS thread, with its own single-threaded tokio runtime
//! and its own Redis and MySQL connections.
//!
//! Why not a task on the server's runtime: folding a batch of up to 1,000 events (decoding,
//! aggregating, building multi-row statements) is milliseconds of CPU without an await, and on
//! the server's runtime that stalls every request queued on the same worker thread (the bench's
//! mixed scenario: worst p99 55 ms with the worker on the server runtime, 25 ms on its own
//! thread). It also keeps the worker's I/O on a reactor of its own. It does not make the worker
//! immune to a machine whose cores are saturated: then the operating system shares them out,
//! and settlement slows down with everything else (bench/README.md, ledger lag).

use tokio_util::sync::CancellationToken;

use super::{Worker, WorkerConfig};
use crate::cache::Cache;
use crate::clock::Clock;

/// MySQL connections of the worker: one transaction at a time, plus the reachability check.
const DB_CONNECTIONS: u32 = 2;

/// Redis connections of the worker's pool (acknowledgements, failure counts, housekeeping);
/// the blocking stream read has its own connection besides.
const REDIS_CONNECTIONS: usize = 1;

/// Where the worker connects and how it runs.
pub struct RunnerConfig {
    /// MySQL URL the worker opens its own connections to (`DATABASE_URL`).
    pub database_url: String,
    /// Redis URL the worker opens its own connections to (`REDIS_URL`).
    pub redis_url: String,
    /// Prefix of every Redis key, the same as the server's so both see one event stream
    /// (`REDIS_KEY_PREFIX`).
    pub key_prefix: String,
    /// The deployment's bucket count (one stream per bucket).
    pub buckets: u16,
    /// This worker's consumer name in the settlement group: `SETTLEMENT_CONSUMER` if set,
    /// else unique to the process.
    pub consumer: String,
    /// Replicas that must hold a batch before it is written into MySQL (0: none; the value
    /// `serve` decided from the topology at start).
    pub replica_acks: u8,
    /// How long to wait for them (`REDIS_REPLICA_ACK_TIMEOUT_MS`).
    pub replica_ack_timeout: std::time::Duration,
    /// Batch size, block and reclaim timings and the failure limit the worker loop runs with.
    pub worker: WorkerConfig,
}

/// Starts the worker thread; returns once the worker has connected and joined the group (or
/// with the error that stopped it). The thread ends when `shutdown` is cancelled.
pub async fn spawn(
    config: RunnerConfig,
    clock: Clock,
    shutdown: CancellationToken,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let (ready, started) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
    let thread = std::thread::Builder::new()
        .name("settlement".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                match connect(&config, clock).await {
                    Ok(worker) => {
                        let _ = ready.send(Ok(()));
                        worker.run(shutdown).await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
        })?;
    started
        .await
        .map_err(|_| anyhow::anyhow!("the settlement thread ended before it started"))??;
    Ok(thread)
}

async fn connect(config: &RunnerConfig, clock: Clock) -> anyhow::Result<Worker> {
    let db = crate::store::connect(&config.database_url, DB_CONNECTIONS).await?;
    let cache = Cache::connect(
        &config.redis_url,
        REDIS_CONNECTIONS,
        &config.key_prefix,
        config.buckets,
    )
    .await?
    .require_replicas(
        &config.redis_url,
        REDIS_CONNECTIONS,
        config.replica_acks,
        config.replica_ack_timeout,
    )
    .await?;
    Worker::new(
        db,
        cache,
        &config.redis_url,
        clock,
        config.consumer.clone(),
        config.worker.clone(),
    )
    .await
}
