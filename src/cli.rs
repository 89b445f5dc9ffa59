//! Command line: `serve`, `migrate`, `seed`, … Each subcommand that needs the configuration
//! takes it as flattened arguments read from the environment (so its `--help` documents every
//! variable) and reports failures with their context and a non-zero exit code.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;
use crate::{ops, seed, store, telemetry};

async fn connect(config: &Config) -> anyhow::Result<(sqlx::MySqlPool, Cache)> {
    let db = store::connect(config.database.url.expose(), 4).await?;
    let cache = Cache::connect(
        config.redis.url.expose(),
        1,
        &config.redis.key_prefix,
        config.redis.buckets,
    )
    .await?;
    Ok((db, cache))
}

/// flashmart: flash-sale commerce engine.
#[derive(Parser, Debug)]
#[command(name = "flashmart", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the HTTP API and run the background workers.
    Serve {
        /// The configuration.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Apply pending database migrations (forward-only).
    Migrate {
        /// The configuration.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Insert demo data (catalog, admin, demo users).
    Seed {
        /// Seed the demo catalog, admin and demo users.
        #[arg(long)]
        demo: bool,
        /// Bulk-create this many load-test users (`<prefix>-<n>@load.test`).
        #[arg(long)]
        users: Option<u32>,
        /// E-mail prefix of bulk users.
        #[arg(long, default_value = "load")]
        user_prefix: String,
        /// Write one line `userId,email,accessToken` per bulk user to this file.
        #[arg(long)]
        tokens_out: Option<std::path::PathBuf>,
        /// The configuration.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Check that Redis and MySQL agree and the ledger balances; exits 1 on any violation.
    Audit {
        /// How long to wait for the settlement stream to drain first.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
        /// The configuration.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Rebuild Redis hot state (balances, stock) from MySQL; refuses while events are undrained.
    RebuildCache {
        /// The configuration.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Put every DEAD delivery to the external data platform back in the queue.
    RetryDeadDeliveries {
        /// The configuration.
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Run a local receiver for paid-order deliveries (verifies signatures; for development).
    DevPlatform {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9999")]
        bind: std::net::SocketAddr,
        /// HMAC key the app signs deliveries with (the same value as the app's).
        #[arg(
            long = "external-platform-secret",
            env = "EXTERNAL_PLATFORM_SECRET",
            hide_env_values = true
        )]
        secret: crate::config::Secret,
    },
}

impl Command {
    /// The configuration of a subcommand that has one.
    fn config(&self) -> Option<&Config> {
        match self {
            Command::Serve { config }
            | Command::Migrate { config }
            | Command::Seed { config, .. }
            | Command::Audit { config, .. }
            | Command::RebuildCache { config }
            | Command::RetryDeadDeliveries { config } => Some(config),
            Command::DevPlatform { .. } => None,
        }
    }
}

/// Parses arguments (after loading `.env`, so its values count as environment) and runs the
/// subcommand. A configuration error exits 2 naming the variable.
pub async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let matches = crate::config::ignore_empty_env(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Some(config) = cli.command.config() else {
        if let Command::DevPlatform { bind, secret } = cli.command {
            return dev_platform(bind, secret).await;
        }
        return ExitCode::FAILURE;
    };
    if let Err(e) = config.validate() {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    telemetry::init_logs(config.log_format);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            telemetry::init_metrics(config.server.metrics_addr)?;
            crate::serve::run(*config, Clock::system()).await
        }
        Command::Migrate { config } => {
            let db = store::connect(config.database.url.expose(), 2).await?;
            store::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed {
            demo,
            users,
            user_prefix,
            tokens_out,
            config,
        } => {
            if !demo && users.is_none() {
                anyhow::bail!("nothing to seed: pass --demo and/or --users N");
            }
            if demo {
                seed::demo(&config).await?;
            }
            if let Some(count) = users {
                let out = tokens_out.as_deref();
                seed::bulk_users(&config, count, &user_prefix, out).await?;
            }
            Ok(())
        }
        Command::Audit { wait_secs, config } => {
            let (db, cache) = connect(&config).await?;
            let report = ops::audit::run(&db, &cache, Duration::from_secs(wait_secs)).await?;
            for fact in &report.facts {
                println!("ok: {fact}");
            }
            for violation in &report.violations {
                println!("VIOLATION: {violation}");
            }
            if !report.passed() {
                anyhow::bail!("audit failed with {} violation(s)", report.violations.len());
            }
            println!("audit passed");
            Ok(())
        }
        Command::RetryDeadDeliveries { config } => {
            let (db, _) = connect(&config).await?;
            let requeued = store::outbox::retry_dead(&db, chrono::Utc::now()).await?;
            println!("{requeued} dead deliveries queued again");
            Ok(())
        }
        Command::DevPlatform { .. } => Ok(()),
        Command::RebuildCache { config } => {
            let (db, cache) = connect(&config).await?;
            let rebuilt = ops::rebuild::run(&db, &cache).await?;
            println!(
                "rebuilt {} balances, {} product stock values and {} coupon campaigns",
                rebuilt.balances, rebuilt.products, rebuilt.coupons
            );
            Ok(())
        }
    }
}

/// `flashmart dev-platform`: needs only `EXTERNAL_PLATFORM_SECRET`.
async fn dev_platform(bind: std::net::SocketAddr, secret: crate::config::Secret) -> ExitCode {
    telemetry::init_logs(crate::config::LogFormat::Pretty);
    match crate::delivery::receiver::serve(bind, secret.expose().as_bytes()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
