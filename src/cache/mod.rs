//! The Redis hot path: connection, key schema and typed wrappers over the Lua scripts.
//!
//! One script call is one atomic decision; Rust never does read-modify-write on Redis state.

pub mod batch;
pub mod call;
pub mod coupon_claim;
pub mod coupons;
pub mod durable;
pub mod keys;
pub mod logouts;
pub mod order_place;
pub mod orders;
pub mod per_bucket;
pub mod popular;
pub mod products;
pub mod ratelimit;
pub mod reservations;
pub mod scripts;
pub mod session;
pub mod sessions;
pub mod stock;
pub mod topology;
pub mod user_coupons;
pub mod wallet;

use std::time::Duration;

use anyhow::Context;
use fred::prelude::*;

pub use keys::Keys;
pub use scripts::Scripts;

/// Everything needed to talk to Redis: a connection pool, the key schema and the scripts.
#[derive(Clone)]
pub struct Cache {
    /// Connection pool for ordinary commands and scripts.
    pub pool: Pool,
    /// Key schema under the configured prefix.
    pub keys: Keys,
    /// The loaded Lua scripts (shared: a `Cache` clone must stay cheap).
    pub scripts: std::sync::Arc<Scripts>,
    /// The replica-acknowledged path for state-changing scripts, when replicas are required
    /// (`REDIS_MIN_REPLICA_ACKS` > 0); `None`: a decision is answered once its primary holds it.
    pub durable: Option<durable::Durable>,
    /// Which steps of a saga one script call may do together ([`Cache::one_call`]).
    pub reach: Reach,
}

/// How far one script call may reach across buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// A standalone server: one call may touch keys of every bucket.
    AnyBucket,
    /// A Cluster: one call touches keys of one slot, so of one bucket.
    OneBucket,
    /// `REDIS_FUSED_CALLS=off`: every saga step is a call of its own, as on a Cluster across
    /// buckets.
    StepByStep,
}

impl Cache {
    /// Connects a pool, checks that the deployment's keys use `buckets` buckets (the first
    /// start records the count; a later start with another count is refused, since its keys
    /// would name other slots), loads every script once and returns the handle.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        prefix: &str,
        buckets: u16,
    ) -> anyhow::Result<Self> {
        let pool = build_pool(url, pool_size).await?;
        let keys = Keys::new(prefix, buckets);
        check_bucket_count(pool.next(), &keys).await?;
        let scripts = Scripts::new();
        scripts.load_all(pool.next()).await?;
        let reach = if pool.next().is_clustered() {
            Reach::OneBucket
        } else {
            Reach::AnyBucket
        };
        Ok(Self {
            pool,
            keys,
            scripts: std::sync::Arc::new(scripts),
            durable: None,
            reach,
        })
    }

    /// With `fused == false` (`REDIS_FUSED_CALLS=off`), every step of a saga is a call of its
    /// own even where one call could do them together.
    pub fn fuse_calls(mut self, fused: bool) -> Self {
        if !fused {
            self.reach = Reach::StepByStep;
        }
        self
    }

    /// Whether one script call may do steps on keys of all of `buckets`: on a standalone server
    /// always, on a Cluster when they are one bucket (one slot), never with fused calls off.
    pub fn one_call(&self, buckets: &[keys::Bucket]) -> bool {
        match self.reach {
            Reach::AnyBucket => true,
            Reach::OneBucket => buckets.windows(2).all(|pair| pair[0] == pair[1]),
            Reach::StepByStep => false,
        }
    }

    /// From now on, state-changing scripts are answered only once `acks` replicas hold their
    /// effects (at most `timeout` of waiting; see [`durable`]). `acks == 0` keeps the direct path.
    pub async fn require_replicas(
        mut self,
        url: &str,
        pool_size: usize,
        acks: u8,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        self.durable = match acks {
            0 => None,
            _ => Some(durable::Durable::connect(url, pool_size, acks, timeout).await?),
        };
        Ok(self)
    }

    /// A client from the pool.
    pub fn client(&self) -> &Client {
        self.pool.next()
    }

    /// For each deadline zset of `keys`, in order, its members whose score (a time, ms) is at or
    /// before `now_ms`, at most `limit` each: what a sweeper is due to look at (pending orders,
    /// stock reservations). One ZRANGEBYSCORE per key, in one pipeline.
    pub async fn due_in(
        &self,
        keys: Vec<String>,
        now_ms: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<Vec<String>>> {
        if let [key] = keys.as_slice() {
            // A pipeline of one answers its reply unwrapped (the members, not a list of them).
            let one = self
                .client()
                .zrangebyscore(key, "-inf", now_ms, false, Some((0, limit)))
                .await?;
            return Ok(vec![one]);
        }
        let pipeline = self.client().pipeline();
        for key in &keys {
            let () = pipeline
                .zrangebyscore(key, "-inf", now_ms, false, Some((0, limit)))
                .await?;
        }
        let replies: Vec<fred::types::Value> = pipeline.all().await?;
        replies
            .into_iter()
            .map(|reply| Ok(reply.convert::<Vec<String>>()?))
            .collect()
    }

    /// Members of the zsets `keys` together (one ZCARD per key in one pipeline: the keys are in
    /// many buckets).
    pub async fn count_all(&self, keys: Vec<String>) -> anyhow::Result<i64> {
        if let [key] = keys.as_slice() {
            return Ok(self.client().zcard(key).await?);
        }
        let pipeline = self.client().pipeline();
        for key in keys {
            let () = pipeline.zcard(key).await?;
        }
        let counts: Vec<i64> = pipeline.all().await?;
        Ok(counts.into_iter().sum())
    }

    /// The integer value of each key, in order (`None` where absent): one GET per key in one
    /// pipeline, since keys of many buckets cannot share an MGET on a cluster (CROSSSLOT).
    pub async fn get_each(&self, keys: &[String]) -> anyhow::Result<Vec<Option<i64>>> {
        match keys {
            [] => Ok(Vec::new()),
            [one] => Ok(vec![self.client().get(one).await?]),
            many => {
                let pipeline = self.client().pipeline();
                for key in many {
                    let () = pipeline.get(key).await?;
                }
                let replies: Vec<fred::types::Value> = pipeline.all().await?;
                replies
                    .into_iter()
                    .map(|reply| Ok(reply.convert::<Option<i64>>()?))
                    .collect()
            }
        }
    }
}

/// Records the bucket count at the deployment's first start (`SET NX`) and refuses any other
/// count afterwards: two instances must never disagree on which slot holds a key.
async fn check_bucket_count(client: &Client, keys: &Keys) -> anyhow::Result<()> {
    let record = keys.bucket_record();
    let wanted = keys.bucket_count();
    let _: Option<String> = client
        .set(
            &record,
            wanted,
            None,
            Some(fred::types::SetOptions::NX),
            false,
        )
        .await
        .context("failed to record REDIS_BUCKETS")?;
    let held: Option<u16> = client.get(&record).await?;
    match held {
        Some(held) if held == wanted => Ok(()),
        held => anyhow::bail!(
            "REDIS_BUCKETS is {wanted}, but this deployment's Redis ({record}) was started with \
             {held:?}: the bucket count is fixed for the life of a deployment"
        ),
    }
}

/// The settings every connection to `REDIS_URL` starts from: a 5 s connection timeout and an
/// exponential reconnect policy (100 ms doubling to 5 s, never giving up).
pub fn builder(url: &str) -> anyhow::Result<Builder> {
    let config = Config::from_url(url).context("REDIS_URL is not a valid Redis URL")?;
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(5))
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    Ok(builder)
}

/// Builds and connects a pool with a reconnect policy and a command timeout.
///
/// State-changing scripts carry an operation id, so fred's re-send of an in-flight command after
/// a reconnect cannot apply a decision twice.
pub async fn build_pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    build_pool_with(url, size, |_| {}).await
}

/// Like [`build_pool`], with connection settings changed by `tune` (for example no re-sends).
pub async fn build_pool_with(
    url: &str,
    size: usize,
    tune: impl FnOnce(&mut fred::types::config::ConnectionConfig),
) -> anyhow::Result<Pool> {
    let pool = builder(url)?
        .with_connection_config(tune)
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(5);
        })
        .build_pool(size)
        .context("failed to build the Redis pool")?;
    pool.init().await.context("failed to connect to Redis")?;
    Ok(pool)
}

/// Builds a single dedicated client (e.g. for blocking stream reads, which stall a connection).
pub async fn build_client(url: &str) -> anyhow::Result<Client> {
    let client = builder(url)?
        .build()
        .context("failed to build the Redis client")?;
    client.init().await.context("failed to connect to Redis")?;
    Ok(client)
}
