//! The Redis hot path: connection, key schema and typed wrappers over the Lua scripts.
//!
//! One script call is one atomic decision; Rust never does read-modify-write on Redis state.

pub mod call;
pub mod coupons;
pub mod keys;
pub mod orders;
pub mod popular;
pub mod products;
pub mod ratelimit;
pub mod scripts;
pub mod session;
pub mod sessions;
pub mod stock;
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
}

impl Cache {
    /// Connects a pool, loads every script once and returns the handle.
    pub async fn connect(url: &str, pool_size: usize, prefix: &str) -> anyhow::Result<Self> {
        let pool = build_pool(url, pool_size).await?;
        let scripts = Scripts::new();
        scripts.load_all(pool.next()).await?;
        Ok(Self {
            pool,
            keys: Keys::new(prefix),
            scripts: std::sync::Arc::new(scripts),
        })
    }

    /// A client from the pool.
    pub fn client(&self) -> &Client {
        self.pool.next()
    }
}

/// Builds and connects a pool with a reconnect policy and a command timeout.
///
/// State-changing scripts carry an operation id, so fred's re-send of an in-flight command after
/// a reconnect cannot apply a decision twice.
pub async fn build_pool(url: &str, size: usize) -> anyhow::Result<Pool> {
    let config = Config::from_url(url).context("REDIS_URL is not a valid Redis URL")?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(5);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build_pool(size)
        .context("failed to build the Redis pool")?;
    pool.init().await.context("failed to connect to Redis")?;
    Ok(pool)
}

/// Builds a single dedicated client (e.g. for blocking stream reads, which stall a connection).
pub async fn build_client(url: &str) -> anyhow::Result<Client> {
    let config = Config::from_url(url).context("REDIS_URL is not a valid Redis URL")?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .context("failed to build the Redis client")?;
    client.init().await.context("failed to connect to Redis")?;
    Ok(client)
}
