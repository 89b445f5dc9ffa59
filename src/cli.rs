//! Command line: `serve`, `migrate`, `seed`. Each subcommand reads the configuration from the
//! environment and reports failures with their context and a non-zero exit code.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;
use crate::{ops, seed, store, telemetry};

async fn connect(config: &Config) -> anyhow::Result<(sqlx::MySqlPool, Cache)> {
    let db = store::connect(config.database_url.expose(), 4).await?;
    let cache = Cache::connect(config.redis_url.expose(), 1, &config.redis_key_prefix).await?;
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
    Serve,
    /// Apply pending database migrations (forward-only).
    Migrate,
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
    },
    /// Check that Redis and MySQL agree and the ledger balances; exits 1 on any violation.
    Audit {
        /// How long to wait for the settlement stream to drain first.
        #[arg(long, default_value_t = 30)]
        wait_secs: u64,
    },
    /// Rebuild Redis hot state (balances, stock) from MySQL; refuses while events are undrained.
    RebuildCache,
    /// Put every DEAD delivery to the external data platform back in the queue.
    RetryDeadDeliveries,
    /// Run a local receiver for paid-order deliveries (verifies signatures; for development).
    DevPlatform {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9999")]
        bind: std::net::SocketAddr,
    },
}

/// Parses arguments and runs the subcommand.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::DevPlatform { bind } = cli.command {
        return dev_platform(bind).await;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(config.log_format);
    match run(cli.command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            telemetry::init_metrics(config.metrics_addr)?;
            crate::serve::run(config, Clock::system()).await
        }
        Command::Migrate => {
            let db = store::connect(config.database_url.expose(), 2).await?;
            store::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed {
            demo,
            users,
            user_prefix,
            tokens_out,
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
        Command::Audit { wait_secs } => {
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
        Command::RetryDeadDeliveries => {
            let (db, _) = connect(&config).await?;
            let requeued = store::outbox::retry_dead(&db, chrono::Utc::now()).await?;
            println!("{requeued} dead deliveries queued again");
            Ok(())
        }
        Command::DevPlatform { .. } => Ok(()),
        Command::RebuildCache => {
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
async fn dev_platform(bind: std::net::SocketAddr) -> ExitCode {
    let _ = dotenvy::dotenv();
    telemetry::init_logs(crate::config::LogFormat::Pretty);
    let Ok(secret) = std::env::var("EXTERNAL_PLATFORM_SECRET") else {
        eprintln!("EXTERNAL_PLATFORM_SECRET must be set (the same value the app signs with)");
        return ExitCode::from(2);
    };
    match crate::delivery::receiver::serve(bind, secret.as_bytes()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
