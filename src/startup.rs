//! Builds the application from a [`Config`], binds its listener (port 0 in tests, reporting the
//! real port) and runs it until SIGTERM / Ctrl-C, then shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TokenKeys;
use crate::cache::{stock, topology, Cache};
use crate::clock::Clock;
use crate::config::{Config, RedisConfig, UNSAFE_REDIS_PHRASE};
use crate::http::server::{self, ServerLimits};
use crate::http::{self, ratelimit, Limiters};
use crate::local::Generations;
use crate::logout_feed::LogoutFeed;
use crate::settlement::runner::{self, RunnerConfig};
use crate::settlement::WorkerConfig;
use crate::state::{AppState, Shared};
use crate::store;

/// How long a stopping instance waits for its background tasks (expiry sweep, delivery relay,
/// settlement worker) to finish the step they are in. Each step is idempotent and bounded by
/// its own timeouts, so this only bounds a stuck dependency; what is cut off is redone by the
/// next instance (leases, pending stream entries).
const BACKGROUND_DRAIN: std::time::Duration = std::time::Duration::from_secs(15);

/// A built, bound, not yet running application.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    limits: ServerLimits,
    shutdown: CancellationToken,
    /// The background tasks, awaited on shutdown.
    tasks: TaskTracker,
    /// The settlement worker's thread, joined on shutdown.
    settlement: Option<std::thread::JoinHandle<()>>,
}

impl Application {
    /// Connects to MySQL and Redis, checks Redis durability, loads stock and binds the listener.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<Self> {
        Self::build_with_routes(config, clock, Router::new()).await
    }

    /// Like [`Application::build`] with extra routes behind the same layers (tests only).
    pub async fn build_with_routes(
        config: Config,
        clock: Clock,
        extra: Router<AppState>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.server.bind_addr)
            .await
            .with_context(|| format!("failed to bind {}", config.server.bind_addr))?;
        Self::build_on(config, clock, listener, extra).await
    }

    /// Builds the application on a listener the caller bound (`serve` binds before MySQL and
    /// Redis are up). Every dependency is checked before any background task starts, and a
    /// build that fails half-way stops whatever it had started.
    pub async fn build_on(
        config: Config,
        clock: Clock,
        listener: TcpListener,
        extra: Router<AppState>,
    ) -> anyhow::Result<Self> {
        let db = store::connect(
            config.database.url.expose(),
            config.database.max_connections,
        )
        .await?;
        let cache = Cache::connect(
            config.redis.url.expose(),
            config.redis.pool_size,
            &config.redis.key_prefix,
            config.redis.buckets,
        )
        .await
        .context("failed to connect to Redis")?;
        let replica_acks = check_redis_durability(&cache, &config.redis).await?;
        let cache = cache
            .require_replicas(
                config.redis.url.expose(),
                config.redis.pool_size,
                replica_acks,
                config.redis.replica_ack_timeout,
            )
            .await
            .context("failed to connect the replica-acknowledged Redis pool")?
            .fuse_calls(config.redis.fused_calls);
        // Which path the coupon and order sagas take (REDIS_FUSED_CALLS, docs/ARCHITECTURE.md
        // §4b): one call where Redis allows it, or one call per step.
        tracing::info!(reach = ?cache.reach, "saga calls decided");
        load_missing_stock(&db, &cache)
            .await
            .context("failed to load product stock into Redis")?;
        crate::settlement::stream::ensure_group(&cache)
            .await
            .context("failed to create the settlement consumer group")?;
        let tokens = Arc::new(TokenKeys::new(
            config.auth.jwt_secret.expose().as_bytes(),
            config.auth.access_token_ttl.as_secs(),
        ));
        let limits = ServerLimits::from_config(&config);
        let config_login_attempts = config.limits.login_attempts_per_minute;
        let coupon_issues = crate::service::coupons::issue_batcher(&cache, &config.redis);
        let coupon_grants = crate::service::coupons::grant_batcher(&cache, &config.redis);
        let coupon_claims = crate::service::coupons::claim_batcher(&cache, &config.redis);
        let stock_holds = crate::service::reservations::hold_batcher(&cache, &config.redis);
        let stock_settles = crate::service::reservations::settle_batcher(&cache, &config.redis);
        let rate_checks = crate::service::throttle::rate_batcher(&cache, &config.redis);
        let feed = Arc::new(LogoutFeed::new(cache.keys.bucket_count()));
        let trust = config.auth.session_feed_trust;
        let mut generations = Generations::new(config.auth.session_cache);
        if !trust.is_zero() {
            generations = generations.vouched_by(feed.clone(), cache.keys.clone(), trust);
        }
        let generations = Arc::new(generations);
        let state = AppState::new(Shared {
            db,
            cache,
            coupon_issues,
            coupon_grants,
            coupon_claims,
            stock_holds,
            stock_settles,
            rate_checks,
            tokens,
            clock,
            generations: generations.clone(),
            config: Arc::new(config),
            popular: Default::default(),
            popular_body: Default::default(),
            login_attempts: Arc::new(crate::service::login::attempt_limiter(
                config_login_attempts,
            )),
        });
        let limiters = Limiters::from_config(&state.config);
        let shutdown = CancellationToken::new();
        // Stops the tasks spawned below if a later step fails; disarmed on success.
        let stop_on_failure = shutdown.clone().drop_guard();
        ratelimit::spawn_pruner(limiters.all(), shutdown.clone());
        let tasks = TaskTracker::new();
        crate::observe::spawn_collector(
            state.db.clone(),
            state.cache.pool.clone(),
            shutdown.clone(),
        );
        if !trust.is_zero() {
            crate::cache::logouts::start(
                state.config.redis.url.expose(),
                state.cache.clone(),
                feed,
                generations,
                shutdown.clone(),
            )
            .await
            .context("failed to subscribe to the log-out feed")?;
        }
        let attempts = state.login_attempts.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => attempts.retain_recent(),
                }
            }
        });
        let mut settlement = None;
        if state.config.settlement.worker {
            let runner = RunnerConfig {
                database_url: state.config.database.url.expose().to_owned(),
                redis_url: state.config.redis.url.expose().to_owned(),
                key_prefix: state.config.redis.key_prefix.clone(),
                buckets: state.config.redis.buckets,
                consumer: state.config.settlement.consumer_name(),
                replica_acks,
                replica_ack_timeout: state.config.redis.replica_ack_timeout,
                worker: WorkerConfig {
                    claim_idle_ms: state.config.settlement.claim_idle.as_millis() as u64,
                    batch_size: state.config.settlement.batch_size,
                    commit_pace: state.config.settlement.commit_pace,
                    ..WorkerConfig::default()
                },
            };
            settlement = Some(runner::spawn(runner, state.clock.clone(), shutdown.clone()).await?);
        }
        if let (Some(url), Some(secret)) = (
            state.config.delivery.platform_url.clone(),
            state.config.delivery.platform_secret.clone(),
        ) {
            let relay = crate::delivery::relay::RelayConfig {
                url,
                secret: secret.expose().as_bytes().to_vec(),
                timeout: state.config.delivery.timeout,
                backoff_base: state.config.delivery.backoff_base,
                max_attempts: state.config.delivery.max_attempts as i32,
                batch: 32,
            };
            tasks.spawn(crate::delivery::relay::run(
                state.db.clone(),
                relay,
                shutdown.clone(),
            ));
        } else {
            tracing::info!(
                "EXTERNAL_PLATFORM_URL not set: paid-order deliveries wait in the outbox"
            );
        }
        tasks.spawn(crate::service::expiry::run(
            state.clone(),
            std::time::Duration::from_millis(500),
            shutdown.clone(),
        ));
        let extra = extra.merge(crate::web::router(&state, &limiters)); // the storefront pages
        let router = http::router(state.clone(), &limiters, extra);
        stop_on_failure.disarm();
        Ok(Self {
            listener,
            router,
            state,
            limits,
            shutdown,
            tasks,
            settlement,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The shared state (tests use it to reach the database and Redis directly).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A token that stops the server and its background tasks when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, finishing in-flight requests (for at most
    /// the drain timeout), then stops the background tasks and waits for them to finish the
    /// step they are in (for at most [`BACKGROUND_DRAIN`]), the settlement thread included.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        server::serve(
            self.listener,
            self.router,
            self.limits,
            self.shutdown.clone(),
        )
        .await;
        self.shutdown.cancel();
        drain_background(self.tasks, self.settlement).await;
        Ok(())
    }
}

/// Waits for the background tasks and the settlement thread (already told to stop) to end, for
/// at most [`BACKGROUND_DRAIN`] in all; logs what it stopped waiting for.
async fn drain_background(tasks: TaskTracker, settlement: Option<std::thread::JoinHandle<()>>) {
    tasks.close();
    let settled = async {
        if let Some(thread) = settlement {
            match tokio::task::spawn_blocking(move || thread.join()).await {
                Ok(Ok(())) => {}
                _ => tracing::warn!("the settlement thread panicked while stopping"),
            }
        }
    };
    let all = async { tokio::join!(tasks.wait(), settled) };
    match tokio::time::timeout(BACKGROUND_DRAIN, all).await {
        Ok(_) => tracing::info!("background tasks stopped"),
        Err(_) => tracing::warn!(
            drain_secs = BACKGROUND_DRAIN.as_secs(),
            "background tasks still running after the drain bound; exiting anyway (their \
             work is idempotent and is picked up by another instance)"
        ),
    }
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
        token.cancel();
    });
}

/// Refuses a Redis that could lose acknowledged writes (see [`topology::required_acks`]) and
/// returns the replica acknowledgements every decision must wait for.
async fn check_redis_durability(cache: &Cache, redis: &RedisConfig) -> anyhow::Result<u8> {
    let found = topology::inspect(cache.client())
        .await
        .context("failed to read the Redis topology")?;
    let decided = topology::required_acks(
        &found,
        redis.min_replica_acks,
        redis.allow_unsafe_persistence(),
    )
    .map_err(|e| anyhow::anyhow!("{e:#} (ALLOW_UNSAFE_REDIS_PERSISTENCE={UNSAFE_REDIS_PHRASE})"))?;
    for warning in &decided.warnings {
        tracing::warn!(
            "{warning}: acknowledged charges, orders and payments may be lost \
             (ALLOW_UNSAFE_REDIS_PERSISTENCE is set)"
        );
    }
    tracing::info!(
        cluster = found.cluster,
        primaries = found.primaries.len(),
        min_replicas = found.min_replicas(),
        replica_acks = decided.acks,
        "redis topology checked"
    );
    Ok(decided.acks)
}

/// Loads the available stock of every product Redis does not know yet.
async fn load_missing_stock(db: &sqlx::MySqlPool, cache: &Cache) -> anyhow::Result<()> {
    let mut loaded = 0usize;
    let reserved = crate::ops::audit::reserved_units(db).await?;
    for product in store::products::all(db).await? {
        let held = reserved.get(&product.id).copied().unwrap_or(0);
        let available = product.stock_total - product.sold - held;
        if stock::init_if_missing(cache, product.id, available).await? {
            loaded += 1;
        }
    }
    if loaded > 0 {
        tracing::info!(loaded, "loaded product stock into Redis");
    }
    Ok(())
}
