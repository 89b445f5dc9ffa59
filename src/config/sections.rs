//! The sections of [`super::Config`], one per concern. Every field is read from the environment
//! variable named in its `env` attribute (and from the matching `--flag`); `flashmart serve
//! --help` lists them all with their defaults. Secrets hide their values from `--help`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

use super::{parse, Secret, UNSAFE_REDIS_PHRASE};

/// The MySQL source of truth.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// `mysql://user:password@host:port/db` (required; holds a password, never printed).
    #[arg(
        id = "database-url",
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    pub url: Secret,
    /// MySQL pool size of the API (the settlement worker has its own 2 connections).
    #[arg(
        id = "db-max-connections",
        long = "db-max-connections",
        env = "DB_MAX_CONNECTIONS",
        default_value = "20",
        value_parser = parse::within(1u32, 1000),
    )]
    pub max_connections: u32,
}

/// Redis, the hot path.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Redis")]
pub struct RedisConfig {
    /// `redis://host:port`, `rediss://…` or `redis-cluster://…` (required; may hold a password).
    #[arg(
        id = "redis-url",
        long = "redis-url",
        env = "REDIS_URL",
        hide_env_values = true
    )]
    pub url: Secret,
    /// Every Redis key is `{prefix}:…`; 1-64 characters of `[A-Za-z0-9_-]`.
    #[arg(
        id = "redis-key-prefix",
        long = "redis-key-prefix",
        env = "REDIS_KEY_PREFIX",
        default_value = "fm",
        value_parser = parse::name,
    )]
    pub key_prefix: String,
    /// Redis connections of the API (the settlement worker has its own 2).
    #[arg(
        id = "redis-pool-size",
        long = "redis-pool-size",
        env = "REDIS_POOL_SIZE",
        default_value = "4",
        value_parser = parse::within(1usize, 64),
    )]
    pub pool_size: usize,
    /// Set to `acknowledged-writes-may-be-lost` to run on a Redis without `appendfsync always`.
    #[arg(
        id = "allow-unsafe-redis-persistence",
        long = "allow-unsafe-redis-persistence",
        env = "ALLOW_UNSAFE_REDIS_PERSISTENCE",
        value_parser = [UNSAFE_REDIS_PHRASE],
    )]
    unsafe_persistence: Option<String>,
    /// Virtual key buckets (1-1024) that keys spread over by owner; fixed for a deployment
    /// (recorded in Redis at the first start; another value is refused).
    #[arg(
        id = "redis-buckets",
        long = "redis-buckets",
        env = "REDIS_BUCKETS",
        default_value = "16",
        value_parser = parse::within(1u16, 1024),
    )]
    pub buckets: u16,
    /// Replicas that must acknowledge a state change (`WAIT`) before a 2xx; unset: no `WAIT`.
    #[arg(
        id = "redis-min-replica-acks",
        long = "redis-min-replica-acks",
        env = "REDIS_MIN_REPLICA_ACKS",
        value_parser = parse::within(0u8, u8::MAX),
    )]
    pub min_replica_acks: Option<u8>,
    /// How long (ms) to wait for those replica acknowledgements before answering 503.
    #[arg(
        id = "redis-replica-ack-timeout-ms",
        long = "redis-replica-ack-timeout-ms",
        env = "REDIS_REPLICA_ACK_TIMEOUT_MS",
        default_value = "500",
        value_parser = parse::millis(1, 60_000),
    )]
    pub replica_ack_timeout: Duration,
    /// Most requests one script call decides together (group commit of coupon issue and of the
    /// shared rate budgets); 1 sends each request on its own.
    #[arg(
        id = "redis-batch-max",
        long = "redis-batch-max",
        env = "REDIS_BATCH_MAX",
        default_value = "64",
        value_parser = parse::within(1usize, 1024),
    )]
    pub batch_max: usize,
    /// Batches of one kind in flight to Redis at once; requests arriving meanwhile wait and form
    /// the next batch.
    #[arg(
        id = "redis-batches-in-flight",
        long = "redis-batches-in-flight",
        env = "REDIS_BATCHES_IN_FLIGHT",
        default_value = "2",
        value_parser = parse::within(1usize, 64),
    )]
    pub batches_in_flight: usize,
    /// Do a saga's steps in one script call where Redis allows it (a standalone server, or a
    /// Cluster where the steps' keys share a slot): `on` or `off`.
    #[arg(
        id = "redis-fused-calls",
        long = "redis-fused-calls",
        env = "REDIS_FUSED_CALLS",
        default_value = "on",
        value_parser = parse::on_off,
        action = ArgAction::Set,
    )]
    pub fused_calls: bool,
}

impl RedisConfig {
    /// Whether the operator accepted, by the exact phrase, a Redis that can lose acknowledged
    /// writes.
    pub fn allow_unsafe_persistence(&self) -> bool {
        self.unsafe_persistence.is_some()
    }
}

/// The HTTP server: listeners, connection limits, timeouts, proxies.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Server")]
pub struct ServerConfig {
    /// API listener.
    #[arg(
        id = "bind-addr",
        long = "bind-addr",
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub bind_addr: SocketAddr,
    /// Prometheus `/metrics` listener; `off` disables it.
    #[arg(
        id = "metrics-addr",
        long = "metrics-addr",
        env = "METRICS_ADDR",
        default_value = "127.0.0.1:9898",
        value_parser = parse::listener_or_off,
    )]
    pub metrics_addr: ::std::option::Option<SocketAddr>,
    /// Seconds `serve` waits for MySQL and Redis at start before it exits 1; 0 waits for ever.
    #[arg(
        id = "startup-timeout-secs",
        long = "startup-timeout-secs",
        env = "STARTUP_TIMEOUT_SECS",
        default_value = "300",
        value_parser = parse::seconds(0, 86_400),
    )]
    pub startup_timeout: Duration,
    /// Seconds a connection may take to send a complete request head (also when idle after a
    /// response) before it is closed.
    #[arg(
        id = "header-read-timeout-secs",
        long = "header-read-timeout-secs",
        env = "HEADER_READ_TIMEOUT_SECS",
        default_value = "10",
        value_parser = parse::seconds(1, 600),
    )]
    pub header_read_timeout: Duration,
    /// Seconds after which an unanswered request gets 503 + Retry-After.
    #[arg(
        id = "request-timeout-secs",
        long = "request-timeout-secs",
        env = "REQUEST_TIMEOUT_SECS",
        default_value = "30",
        value_parser = parse::seconds(1, 3_600),
    )]
    pub request_timeout: Duration,
    /// Open client connections per instance; more wait in the kernel's accept queue.
    #[arg(
        id = "max-connections",
        long = "max-connections",
        env = "MAX_CONNECTIONS",
        default_value = "20000",
        value_parser = parse::within(16u64, 1_000_000),
    )]
    pub max_connections: u64,
    /// Send `Strict-Transport-Security` with this max-age (seconds) and mark storefront cookies
    /// `Secure`; set only when served behind TLS.
    #[arg(
        id = "hsts-max-age-secs",
        long = "hsts-max-age-secs",
        env = "HSTS_MAX_AGE_SECS",
        value_parser = parse::within(0u64, u64::MAX),
    )]
    pub hsts_max_age_secs: Option<u64>,
    /// Comma-separated proxy IPs whose `X-Forwarded-For` is believed (right-most untrusted hop).
    #[arg(
        id = "trusted-proxies",
        long = "trusted-proxies",
        env = "TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse::ip,
    )]
    pub trusted_proxies: Vec<IpAddr>,
}

/// Access tokens and the seeded admin.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Authentication")]
pub struct AuthConfig {
    /// Access-token signing key, at least 32 characters (required; never printed).
    #[arg(
        id = "jwt-secret",
        long = "jwt-secret",
        env = "JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Secret,
    /// Seconds an access token (and a storefront session) lasts.
    #[arg(
        id = "access-token-ttl-seconds",
        long = "access-token-ttl-seconds",
        env = "ACCESS_TOKEN_TTL_SECONDS",
        default_value = "3600",
        value_parser = parse::seconds(60, 86_400),
    )]
    pub access_token_ttl: Duration,
    /// Milliseconds an instance may answer from its own copy of a user's token generation
    /// instead of asking Redis: a log-out served by another instance revokes the user's tokens
    /// here within this time (the instance that served it revokes them at once). 0: ask Redis
    /// on every authenticated request.
    #[arg(
        id = "session-cache-ms",
        long = "session-cache-ms",
        env = "SESSION_CACHE_MS",
        default_value = "1000",
        value_parser = parse::millis(0, 10_000),
    )]
    pub session_cache: Duration,
    /// Milliseconds an instance may answer from its copy of a user's token generation while
    /// its log-out feed vouches for the copy: every log-out of the user's bucket since the
    /// copy was read has been heard (Redis shard channels, checked by heartbeats every 250 ms;
    /// a silent or reconnecting feed stops vouching within a second). 0: no feed, only
    /// `SESSION_CACHE_MS`.
    #[arg(
        id = "session-feed-trust-ms",
        long = "session-feed-trust-ms",
        env = "SESSION_FEED_TRUST_MS",
        default_value = "60000",
        value_parser = parse::millis(0, 600_000),
    )]
    pub session_feed_trust: Duration,
    /// E-mail of the admin `seed --demo` creates (default `admin@flashmart.local`).
    #[arg(id = "admin-email", long = "admin-email", env = "ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// Password of that admin; generated and printed when unset (never printed otherwise).
    #[arg(
        id = "admin-password",
        long = "admin-password",
        env = "ADMIN_PASSWORD",
        hide_env_values = true
    )]
    pub admin_password: Option<Secret>,
}

/// Orders.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Orders")]
pub struct OrdersConfig {
    /// Seconds after which an unpaid order expires.
    #[arg(
        id = "order-ttl-seconds",
        long = "order-ttl-seconds",
        env = "ORDER_TTL_SECONDS",
        default_value = "600",
        value_parser = parse::seconds(1, 86_400),
    )]
    pub ttl: Duration,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    Pretty,
}
