//! The sections of the background workers in `serve`: settlement (Redis stream → MySQL ledger)
//! and delivery of paid orders to the external platform.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::{parse, Secret};

/// The settlement worker (Redis stream → MySQL ledger).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Settlement")]
pub struct SettlementConfig {
    /// Run the settlement worker in this `serve` process (`on` or `off`).
    #[arg(
        id = "settlement-worker",
        long = "settlement-worker",
        env = "SETTLEMENT_WORKER",
        default_value = "on",
        value_parser = parse::on_off,
        action = ArgAction::Set,
    )]
    pub worker: bool,
    /// Stable consumer name, so a restarted instance drains its own pending events at once
    /// (default: `{HOSTNAME}-{pid}-{random}`); 1-64 characters of `[A-Za-z0-9_-]`.
    #[arg(
        id = "settlement-consumer",
        long = "settlement-consumer",
        env = "SETTLEMENT_CONSUMER",
        value_parser = parse::name,
    )]
    pub consumer: Option<String>,
    /// Host name in the default consumer name.
    #[arg(
        id = "hostname",
        long = "hostname",
        env = "HOSTNAME",
        default_value = "host"
    )]
    pub hostname: String,
    /// Milliseconds an entry may sit idle at a dead worker before a live one reclaims it.
    #[arg(
        id = "settlement-claim-idle-ms",
        long = "settlement-claim-idle-ms",
        env = "SETTLEMENT_CLAIM_IDLE_MS",
        default_value = "30000",
        value_parser = parse::millis(10, 3_600_000),
    )]
    pub claim_idle: Duration,
    /// Most events one settlement transaction applies.
    #[arg(
        id = "settlement-batch-size",
        long = "settlement-batch-size",
        env = "SETTLEMENT_BATCH_SIZE",
        default_value = "1000",
        value_parser = parse::within(1u64, 5_000),
    )]
    pub batch_size: u64,
    /// Least milliseconds between the starts of two settlement transactions of one instance
    /// (0: no pause). Events that arrive meanwhile join the next transaction, so a longer pace
    /// means fewer, larger transactions and stream reads (less CPU per event) and a longer
    /// ledger lag (about twice the pace at most, plus the commit).
    #[arg(
        id = "settlement-commit-pace-ms",
        long = "settlement-commit-pace-ms",
        env = "SETTLEMENT_COMMIT_PACE_MS",
        default_value = "50",
        value_parser = parse::millis(0, 1_000),
    )]
    pub commit_pace: Duration,
}

impl SettlementConfig {
    /// The consumer name: `SETTLEMENT_CONSUMER` when set (stable across restarts, so a restarted
    /// instance drains its own pending entries at once), else unique to this process.
    pub fn consumer_name(&self) -> String {
        if let Some(name) = &self.consumer {
            return name.clone();
        }
        let short = &uuid::Uuid::new_v4().simple().to_string()[..8];
        format!("{}-{}-{short}", self.hostname, std::process::id())
    }
}

/// Delivery of paid orders to the external data platform.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Delivery")]
pub struct DeliveryConfig {
    /// Where paid orders are POSTed (http or https); unset: deliveries wait in the outbox.
    #[arg(
        id = "external-platform-url",
        long = "external-platform-url",
        env = "EXTERNAL_PLATFORM_URL",
        hide_env_values = true
    )]
    pub platform_url: Option<String>,
    /// HMAC key of `X-Flashmart-Signature`, at least 16 characters (required with a URL).
    #[arg(
        id = "external-platform-secret",
        long = "external-platform-secret",
        env = "EXTERNAL_PLATFORM_SECRET",
        hide_env_values = true
    )]
    pub platform_secret: Option<Secret>,
    /// Milliseconds one delivery request may take.
    #[arg(
        id = "delivery-timeout-ms",
        long = "delivery-timeout-ms",
        env = "DELIVERY_TIMEOUT_MS",
        default_value = "5000",
        value_parser = parse::millis(10, 120_000),
    )]
    pub timeout: Duration,
    /// Milliseconds before the first retry (doubles each time, with jitter).
    #[arg(
        id = "delivery-backoff-base-ms",
        long = "delivery-backoff-base-ms",
        env = "DELIVERY_BACKOFF_BASE_MS",
        default_value = "1000",
        value_parser = parse::millis(1, 600_000),
    )]
    pub backoff_base: Duration,
    /// Attempts before a delivery is DEAD.
    #[arg(
        id = "delivery-max-attempts",
        long = "delivery-max-attempts",
        env = "DELIVERY_MAX_ATTEMPTS",
        default_value = "12",
        value_parser = parse::within(1u32, 100),
    )]
    pub max_attempts: u32,
}
