//! Configuration from environment variables (a `.env` file is read first if present).
//!
//! Every value is validated at start with a message naming the variable; secrets are wrapped in
//! [`Secret`] whose `Debug` never prints them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    Pretty,
}

/// Process configuration; see README for the variables and defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// `DATABASE_URL`: mysql://user:password@host:port/db (holds a password).
    pub database_url: Secret,
    /// `REDIS_URL`: redis://… (may hold a password).
    pub redis_url: Secret,
    /// `BIND_ADDR`, default 127.0.0.1:8080.
    pub bind_addr: SocketAddr,
    /// `METRICS_ADDR`, default 127.0.0.1:9898; `off` disables the listener.
    pub metrics_addr: Option<SocketAddr>,
    /// `JWT_SECRET`: HMAC key for access tokens, at least 32 bytes.
    pub jwt_secret: Secret,
    /// `ACCESS_TOKEN_TTL_SECONDS`, default 3600.
    pub access_token_ttl_secs: u64,
    /// `ADMIN_EMAIL` for `seed`.
    pub admin_email: Option<String>,
    /// `ADMIN_PASSWORD` for `seed`; a random one is generated and printed when absent.
    pub admin_password: Option<Secret>,
    /// `EXTERNAL_PLATFORM_URL`: where paid orders are delivered (none → deliveries wait).
    pub external_platform_url: Option<String>,
    /// `EXTERNAL_PLATFORM_SECRET`: HMAC key for delivery signatures.
    pub external_platform_secret: Option<Secret>,
    /// `DELIVERY_TIMEOUT_MS`, default 5000: per-request timeout towards the platform.
    pub delivery_timeout_ms: u64,
    /// `DELIVERY_BACKOFF_BASE_MS`, default 1000: first retry delay (doubles, with jitter).
    pub delivery_backoff_base_ms: u64,
    /// `DELIVERY_MAX_ATTEMPTS`, default 12: attempts before a delivery is DEAD.
    pub delivery_max_attempts: u32,
    /// `ORDER_TTL_SECONDS`, default 600.
    pub order_ttl_secs: u64,
    /// `REDIS_KEY_PREFIX`, default `fm`; every key is `{prefix}:…` (one hash slot).
    pub redis_key_prefix: String,
    /// `LOG_FORMAT`: `json` or `pretty` (default).
    pub log_format: LogFormat,
    /// `SETTLEMENT_WORKER`: `on` (default) or `off` for this instance.
    pub settlement_worker: bool,
    /// `STARTUP_TIMEOUT_SECS`, default 300 (0 = wait for ever): how long `serve` waits for MySQL
    /// and Redis at start (answering `/health/ready` 503) before it gives up and exits 1.
    pub startup_timeout_secs: u64,
    /// `HEADER_READ_TIMEOUT_SECS`, default 10: a connection that has not sent a whole request
    /// head this long after it opened (or after its last response) is closed.
    pub header_read_timeout_secs: u64,
    /// `REQUEST_TIMEOUT_SECS`, default 30: a request still unanswered after this long answers
    /// 503 with Retry-After (its work is dropped; a client re-sends with its Idempotency-Key).
    pub request_timeout_secs: u64,
    /// `MAX_CONNECTIONS`, default 20000: open client connections per instance; more wait in the
    /// kernel's accept queue until one closes.
    pub max_connections: u64,
    /// `SETTLEMENT_CLAIM_IDLE_MS`, default 30000: entries idle this long in a dead consumer's
    /// list are reclaimed by another worker.
    pub settlement_claim_idle_ms: u64,
    /// `SETTLEMENT_BATCH_SIZE`, default 1000: most events one settlement transaction applies
    /// (writes are aggregated per batch, so larger batches cost fewer statements per event).
    pub settlement_batch_size: u64,
    /// `ALLOW_UNSAFE_REDIS_PERSISTENCE=acknowledged-writes-may-be-lost` lets `serve` start on a
    /// Redis without `appendfsync always`.
    pub allow_unsafe_redis_persistence: bool,
    /// `HSTS_MAX_AGE_SECS`: send `Strict-Transport-Security` (only when served behind TLS).
    pub hsts_max_age_secs: Option<u64>,
    /// `AUTH_RATE_PER_SECOND` / `AUTH_RATE_BURST`: per-IP budget on sign-up and login
    /// (default 2 / 20).
    pub auth_rate: (u64, u32),
    /// `LOGIN_ATTEMPTS_PER_MINUTE`: login attempts per account (default 10, burst the same).
    pub login_attempts_per_minute: u32,
    /// `TRUSTED_PROXIES`: comma-separated proxy IPs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// `DB_MAX_CONNECTIONS`, default 20.
    pub db_max_connections: u32,
    /// `REDIS_POOL_SIZE`, default 4.
    pub redis_pool_size: usize,
    /// `RATE_LIMIT_PER_SECOND` (sustained requests per client per second), default 50.
    pub rate_limit_per_second: u64,
    /// `RATE_LIMIT_BURST`, default 100.
    pub rate_limit_burst: u32,
    /// `COUPON_ISSUE_PER_SECOND` (sustained issue requests per user per second), default 2.
    pub coupon_issue_per_second: u64,
    /// `COUPON_ISSUE_BURST`, default 5.
    pub coupon_issue_burst: u32,
    /// `LOGIN_ACCOUNT_ATTEMPTS_PER_MINUTE`: login attempts per account over all clients and
    /// instances (default 60, burst the same).
    pub login_account_attempts_per_minute: u32,
    /// `ORDER_RATE_PER_SECOND` / `ORDER_RATE_BURST`: order creations per user over all
    /// instances (default 5 / 10).
    pub order_rate: (u64, u32),
    /// `PAYMENT_RATE_PER_SECOND` / `PAYMENT_RATE_BURST`: payments and balance charges per user
    /// over all instances (default 5 / 10).
    pub payment_rate: (u64, u32),
}

/// The phrase that must be given to run on a Redis that can lose acknowledged writes.
pub const UNSAFE_REDIS_PHRASE: &str = "acknowledged-writes-may-be-lost";

/// A configuration error naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Builds a configuration from any lookup function (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database_url = get("DATABASE_URL").ok_or_else(|| err("DATABASE_URL", "is required"))?;
        if !database_url.starts_with("mysql://") {
            return Err(err("DATABASE_URL", "must start with mysql://"));
        }
        let redis_url = get("REDIS_URL").ok_or_else(|| err("REDIS_URL", "is required"))?;
        if !redis_url.starts_with("redis://")
            && !redis_url.starts_with("rediss://")
            && !redis_url.starts_with("redis-cluster://")
        {
            return Err(err(
                "REDIS_URL",
                "must start with redis://, rediss:// or redis-cluster://",
            ));
        }
        let jwt_secret = get("JWT_SECRET").ok_or_else(|| err("JWT_SECRET", "is required"))?;
        if jwt_secret.len() < 32 {
            return Err(err("JWT_SECRET", "must be at least 32 characters"));
        }
        let metrics_addr = match get("METRICS_ADDR").as_deref() {
            Some("off") => None,
            Some(v) => Some(parse("METRICS_ADDR", v)?),
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9898))),
        };
        let prefix = get("REDIS_KEY_PREFIX").unwrap_or_else(|| "fm".into());
        let prefix_ok = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !prefix_ok {
            return Err(err("REDIS_KEY_PREFIX", "1-64 characters of [A-Za-z0-9_-]"));
        }
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(err("LOG_FORMAT", "must be json or pretty")),
        };
        let settlement_worker = match get("SETTLEMENT_WORKER").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(_) => return Err(err("SETTLEMENT_WORKER", "must be on or off")),
        };
        let allow_unsafe = match get("ALLOW_UNSAFE_REDIS_PERSISTENCE") {
            None => false,
            Some(v) if v == UNSAFE_REDIS_PHRASE => true,
            Some(_) => {
                return Err(err(
                    "ALLOW_UNSAFE_REDIS_PERSISTENCE",
                    format!("the only accepted value is {UNSAFE_REDIS_PHRASE}"),
                ))
            }
        };
        let platform_url = get("EXTERNAL_PLATFORM_URL");
        if let Some(url) = &platform_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err("EXTERNAL_PLATFORM_URL", "must be an http(s) URL"));
            }
            if get("EXTERNAL_PLATFORM_SECRET").is_none_or(|s| s.len() < 16) {
                return Err(err(
                    "EXTERNAL_PLATFORM_SECRET",
                    "must be set (at least 16 characters) when EXTERNAL_PLATFORM_URL is",
                ));
            }
        }
        Ok(Self {
            database_url: Secret::new(database_url),
            redis_url: Secret::new(redis_url),
            bind_addr: parse_or("BIND_ADDR", get("BIND_ADDR"), "127.0.0.1:8080")?,
            metrics_addr,
            jwt_secret: Secret::new(jwt_secret),
            access_token_ttl_secs: bounded(&get, "ACCESS_TOKEN_TTL_SECONDS", 3600, 60, 86_400)?,
            admin_email: get("ADMIN_EMAIL"),
            admin_password: get("ADMIN_PASSWORD").map(Secret::new),
            external_platform_url: platform_url,
            external_platform_secret: get("EXTERNAL_PLATFORM_SECRET").map(Secret::new),
            order_ttl_secs: bounded(&get, "ORDER_TTL_SECONDS", 600, 1, 86_400)?,
            delivery_timeout_ms: bounded(&get, "DELIVERY_TIMEOUT_MS", 5_000, 10, 120_000)?,
            delivery_backoff_base_ms: bounded(&get, "DELIVERY_BACKOFF_BASE_MS", 1_000, 1, 600_000)?,
            delivery_max_attempts: bounded(&get, "DELIVERY_MAX_ATTEMPTS", 12, 1, 100)? as u32,
            redis_key_prefix: prefix,
            log_format,
            settlement_worker,
            startup_timeout_secs: bounded(&get, "STARTUP_TIMEOUT_SECS", 300, 0, 86_400)?,
            header_read_timeout_secs: bounded(&get, "HEADER_READ_TIMEOUT_SECS", 10, 1, 600)?,
            request_timeout_secs: bounded(&get, "REQUEST_TIMEOUT_SECS", 30, 1, 3_600)?,
            max_connections: bounded(&get, "MAX_CONNECTIONS", 20_000, 16, 1_000_000)?,
            settlement_claim_idle_ms: bounded(
                &get,
                "SETTLEMENT_CLAIM_IDLE_MS",
                30_000,
                10,
                3_600_000,
            )?,
            settlement_batch_size: bounded(&get, "SETTLEMENT_BATCH_SIZE", 1_000, 1, 5_000)?,
            allow_unsafe_redis_persistence: allow_unsafe,
            hsts_max_age_secs: match get("HSTS_MAX_AGE_SECS") {
                Some(v) => Some(parse("HSTS_MAX_AGE_SECS", &v)?),
                None => None,
            },
            auth_rate: (
                bounded(&get, "AUTH_RATE_PER_SECOND", 2, 1, 1_000_000)?,
                bounded(&get, "AUTH_RATE_BURST", 20, 1, 1_000_000)? as u32,
            ),
            login_attempts_per_minute: bounded(&get, "LOGIN_ATTEMPTS_PER_MINUTE", 10, 1, 100_000)?
                as u32,
            trusted_proxies: match get("TRUSTED_PROXIES") {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(|ip| parse("TRUSTED_PROXIES", ip.trim()))
                    .collect::<Result<_, _>>()?,
            },
            db_max_connections: bounded(&get, "DB_MAX_CONNECTIONS", 20, 1, 1000)? as u32,
            redis_pool_size: bounded(&get, "REDIS_POOL_SIZE", 4, 1, 64)? as usize,
            rate_limit_per_second: bounded(&get, "RATE_LIMIT_PER_SECOND", 50, 1, 1_000_000)?,
            rate_limit_burst: bounded(&get, "RATE_LIMIT_BURST", 100, 1, 1_000_000)? as u32,
            coupon_issue_per_second: bounded(&get, "COUPON_ISSUE_PER_SECOND", 2, 1, 1_000_000)?,
            coupon_issue_burst: bounded(&get, "COUPON_ISSUE_BURST", 5, 1, 1_000_000)? as u32,
            login_account_attempts_per_minute: bounded(
                &get,
                "LOGIN_ACCOUNT_ATTEMPTS_PER_MINUTE",
                60,
                1,
                1_000_000,
            )? as u32,
            order_rate: (
                bounded(&get, "ORDER_RATE_PER_SECOND", 5, 1, 1_000_000)?,
                bounded(&get, "ORDER_RATE_BURST", 10, 1, 1_000_000)? as u32,
            ),
            payment_rate: (
                bounded(&get, "PAYMENT_RATE_PER_SECOND", 5, 1, 1_000_000)?,
                bounded(&get, "PAYMENT_RATE_BURST", 10, 1, 1_000_000)? as u32,
            ),
        })
    }
}

fn parse<T: FromStr>(var: &'static str, value: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| err(var, format!("cannot parse {value:?}")))
}

fn parse_or<T: FromStr>(
    var: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<T, ConfigError> {
    parse(var, value.as_deref().unwrap_or(default))
}

fn bounded(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let value: u64 = match get(var) {
        Some(v) => parse(var, &v)?,
        None => default,
    };
    if !(min..=max).contains(&value) {
        return Err(err(var, format!("must be between {min} and {max}")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, String> {
        HashMap::from([
            ("DATABASE_URL", "mysql://u:p@127.0.0.1:3307/db".to_string()),
            ("REDIS_URL", "redis://127.0.0.1:6380".to_string()),
            ("JWT_SECRET", "x".repeat(32)),
        ])
    }

    fn load(map: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_required_values_are_given() {
        let cfg = load(&base()).expect("valid");
        assert_eq!(cfg.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.order_ttl_secs, 600);
        assert_eq!(cfg.redis_key_prefix, "fm");
        assert!(cfg.settlement_worker);
    }

    #[test]
    fn short_jwt_secret_is_refused_by_name() {
        let mut map = base();
        map.insert("JWT_SECRET", "short".into());
        assert_eq!(load(&map).expect_err("refused").var, "JWT_SECRET");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let cfg = load(&base()).expect("valid");
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("u:p@"), "{shown}");
        assert!(!shown.contains(&"x".repeat(32)));
    }

    #[test]
    fn key_prefix_with_braces_is_refused() {
        let mut map = base();
        map.insert("REDIS_KEY_PREFIX", "a}b".into());
        assert_eq!(load(&map).expect_err("refused").var, "REDIS_KEY_PREFIX");
    }
}
