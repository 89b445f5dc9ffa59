//! Logs (tracing) and metrics (Prometheus exporter on its own listener).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Latency buckets in seconds, explicit so histograms render as histograms.
pub const LATENCY_BUCKETS_SECS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Buckets of `ledger_lag_seconds` (decision in Redis → commit in MySQL): finer around the
/// 1-second target than [`LATENCY_BUCKETS_SECS`], and wide enough to show a backlog.
pub const LEDGER_LAG_BUCKETS_SECS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the global tracing subscriber (`RUST_LOG` filters, default `info`).
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,fred=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Installs the Prometheus recorder and, when an address is given, serves `/metrics` there.
///
/// Safe to call more than once per process (tests start many apps): later calls are no-ops.
pub fn init_metrics(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("ledger_lag_seconds".into()),
            LEDGER_LAG_BUCKETS_SECS,
        )
        .context("invalid histogram buckets")?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECS)
        .context("invalid histogram buckets")?
        .upkeep_timeout(Duration::from_secs(5));
    match addr {
        Some(addr) => builder
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("failed to start the metrics listener on {addr}"))?,
        None => {
            builder
                .install_recorder()
                .context("failed to install the metrics recorder")?;
        }
    }
    let _ = INSTALLED.set(());
    crate::observe::init();
    Ok(())
}
