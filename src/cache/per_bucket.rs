//! One [`Batcher`] per key bucket: a batch is one script call, and one script call touches keys
//! of one slot, so requests are gathered per bucket (docs/ARCHITECTURE.md §4).

use std::future::Future;
use std::sync::Arc;

use super::batch::{BatchLimits, Batcher};
use super::keys::Bucket;
use super::Cache;

/// Batchers of one script, one per bucket; a request goes to the batcher of its bucket.
pub struct PerBucket<Req, Out> {
    batchers: Arc<[Batcher<Req, Out>]>,
}

impl<Req, Out> Clone for PerBucket<Req, Out> {
    fn clone(&self) -> Self {
        Self {
            batchers: self.batchers.clone(),
        }
    }
}

impl<Req, Out> PerBucket<Req, Out>
where
    Req: Send + 'static,
    Out: Send + 'static,
{
    /// Starts `buckets` batchers of `name`; `decide` runs one batch of one bucket.
    pub fn start<F, Fut>(name: &'static str, limits: BatchLimits, buckets: u16, decide: F) -> Self
    where
        F: Fn(Bucket, Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Out>>> + Send + 'static,
    {
        let decide = Arc::new(decide);
        let batchers: Vec<Batcher<Req, Out>> = (0..buckets.max(1))
            .map(|index| {
                let decide = decide.clone();
                Batcher::start(name, limits, move |requests| {
                    decide(Bucket(index), requests)
                })
            })
            .collect();
        Self {
            batchers: batchers.into(),
        }
    }

    /// Starts one batcher of `name` per bucket of `cache`'s deployment, within the limits of
    /// `REDIS_BATCH_MAX` and `REDIS_BATCHES_IN_FLIGHT`; `decide` runs one batch of one bucket
    /// with a handle of the cache.
    pub fn on_cache<F, Fut>(
        name: &'static str,
        cache: &Cache,
        redis: &crate::config::RedisConfig,
        decide: F,
    ) -> Self
    where
        F: Fn(Cache, Bucket, Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Out>>> + Send + 'static,
    {
        let cache = cache.clone();
        let buckets = cache.keys.bucket_count();
        Self::start(
            name,
            BatchLimits::of(redis),
            buckets,
            move |bucket, requests| decide(cache.clone(), bucket, requests),
        )
    }

    /// Queues `request` for a call in `bucket` and waits for its own outcome.
    pub async fn submit(&self, bucket: Bucket, request: Req) -> anyhow::Result<Out> {
        let batcher = self
            .batchers
            .get(usize::from(bucket.0))
            .ok_or_else(|| anyhow::anyhow!("no batcher for bucket {bucket}"))?;
        batcher.submit(request).await
    }
}
