//! Configuration from environment variables (a `.env` file is read first if present), declared
//! once with clap's derive: each section (`sections.rs`, `limits.rs`, `workers.rs`) names its
//! variables, defaults and parsers, so `flashmart serve --help` documents every variable and a
//! test checks README's table against the same declarations.
//!
//! Every value is validated at start with a message naming the variable; secrets are wrapped in
//! [`Secret`] whose `Debug` never prints them, `--help` hides their values, and their checks
//! (see [`Config::validate`]) never repeat them.

mod limits;
mod parse;
mod sections;
#[cfg(test)]
mod tests;
mod workers;

use std::fmt;

use clap::{Args, CommandFactory, FromArgMatches};

pub use limits::LimitsConfig;
pub use sections::{
    AuthConfig, DatabaseConfig, LogFormat, OrdersConfig, RedisConfig, ServerConfig,
};
pub use workers::{DeliveryConfig, SettlementConfig};

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

/// Any value parses (so clap's messages, which repeat a bad value, never show a secret);
/// [`Config::validate`] checks secrets afterwards by name only.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Process configuration; see README for the variables and defaults.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// MySQL.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisConfig,
    /// HTTP listeners and their limits.
    #[command(flatten)]
    pub server: ServerConfig,
    /// Tokens and the seeded admin.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// Rate budgets.
    #[command(flatten)]
    pub limits: LimitsConfig,
    /// Order lifetime.
    #[command(flatten)]
    pub orders: OrdersConfig,
    /// The settlement worker.
    #[command(flatten)]
    pub settlement: SettlementConfig,
    /// Deliveries to the external platform.
    #[command(flatten)]
    pub delivery: DeliveryConfig,
    /// `json` for one JSON object per line, `pretty` for people.
    #[arg(
        id = "log-format",
        long = "log-format",
        env = "LOG_FORMAT",
        default_value = "pretty",
        value_enum,
        help_heading = "Logging"
    )]
    pub log_format: LogFormat,
}

/// The phrase that must be given to run on a Redis that can lose acknowledged writes.
pub const UNSAFE_REDIS_PHRASE: &str = "acknowledged-writes-may-be-lost";

/// A configuration error naming the variable at fault (never its value when it is a secret).
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_owned(),
        message: message.into(),
    }
}

/// Only to build a [`clap::Command`] holding the configuration's arguments.
#[derive(clap::Parser)]
struct Standalone {
    #[command(flatten)]
    config: Config,
}

impl Config {
    /// Reads the process environment (after loading `.env` if present).
    pub fn from_env() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds a configuration from any lookup function (tests pass a map), exactly as
    /// `flashmart serve` would from the environment; empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut argv = vec!["flashmart".to_owned()];
        // Each variable becomes its `--flag=value`; the process environment is not consulted.
        let command = Standalone::command().mut_args(|arg| {
            let var = arg.get_env().and_then(|v| v.to_str()).map(str::to_owned);
            if let (Some(var), Some(long)) = (var, arg.get_long()) {
                if let Some(value) = get(&var).filter(|v| !v.is_empty()) {
                    argv.push(format!("--{long}={value}"));
                }
            }
            arg.env(None)
        });
        let matches = command.try_get_matches_from(argv).map_err(from_clap)?;
        let config = Self::from_arg_matches(&matches).map_err(from_clap)?;
        config.validate()?;
        Ok(config)
    }

    /// The checks clap's parsers cannot make: those on secrets (so that no message shows one)
    /// and those spanning variables.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.database.url.expose().starts_with("mysql://") {
            return Err(err("DATABASE_URL", "must start with mysql://"));
        }
        let redis = self.redis.url.expose();
        if !["redis://", "rediss://", "redis-cluster://"]
            .iter()
            .any(|scheme| redis.starts_with(scheme))
        {
            return Err(err(
                "REDIS_URL",
                "must start with redis://, rediss:// or redis-cluster://",
            ));
        }
        if self.auth.jwt_secret.expose().len() < 32 {
            return Err(err("JWT_SECRET", "must be at least 32 characters"));
        }
        if let Some(url) = &self.delivery.platform_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err("EXTERNAL_PLATFORM_URL", "must be an http(s) URL"));
            }
            let secret_len = self
                .delivery
                .platform_secret
                .as_ref()
                .map(|s| s.expose().len());
            if secret_len.is_none_or(|len| len < 16) {
                return Err(err(
                    "EXTERNAL_PLATFORM_SECRET",
                    "must be set (at least 16 characters) when EXTERNAL_PLATFORM_URL is",
                ));
            }
        }
        Ok(())
    }
}

/// Treats a variable that is set but empty as unset (as the configuration always has), for a
/// command whose arguments read the environment; applies to every subcommand.
pub fn ignore_empty_env(command: clap::Command) -> clap::Command {
    let subcommands: Vec<String> = command
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    let mut command = command.mut_args(|arg| {
        let empty = arg
            .get_env()
            .and_then(std::env::var_os)
            .is_some_and(|v| v.is_empty());
        if empty {
            arg.env(None)
        } else {
            arg
        }
    });
    for name in subcommands {
        command = command.mut_subcommand(name, ignore_empty_env);
    }
    command
}

/// A clap error as a [`ConfigError`] naming the variable: every flag is its variable's name
/// in lower case with `-` for `_` (a test holds that).
fn from_clap(error: clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        Some(ContextValue::Strings(args)) => args.first().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let flag = arg.trim_start_matches("--");
    let flag = flag.split([' ', '=', '<']).next().unwrap_or_default();
    let var = flag.to_uppercase().replace('-', "_");
    let message = if error.kind() == ErrorKind::MissingRequiredArgument {
        "is required".to_owned()
    } else if let Some(source) = std::error::Error::source(&error) {
        source.to_string()
    } else if let Some(ContextValue::Strings(valid)) = error.get(ContextKind::ValidValue) {
        format!("must be one of {}", valid.join(", "))
    } else {
        error.kind().to_string()
    };
    err(&var, message)
}
