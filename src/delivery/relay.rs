//! The outbox relay: claims due deliveries with a lease, POSTs them signed, and records the
//! outcome — delivered on any 2xx, otherwise retried with exponential backoff and jitter until
//! the attempt limit, then DEAD (see `flashmart retry-dead-deliveries`). Any number of
//! instances may run it; `FOR UPDATE SKIP LOCKED` plus the lease keep them off each other's rows.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::signature;
use crate::store::outbox::{self, Delivery};

/// Relay settings.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where to POST.
    pub url: String,
    /// HMAC key of the signature.
    pub secret: Vec<u8>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// First retry delay; doubles per attempt (with up to 50 % jitter), capped at 5 minutes.
    pub backoff_base: Duration,
    /// Attempts before a delivery is DEAD.
    pub max_attempts: i32,
    /// Deliveries claimed per round.
    pub batch: u32,
}

/// Delay before the next attempt after `failed` failures: `base × 2^(failed-1)` plus up to 50 %
/// jitter, never more than 5 minutes.
pub fn backoff(base: Duration, failed: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << (failed - 1).clamp(0, 16));
    let jitter = rand::rng().random_range(0.0..0.5);
    exp.mul_f64(1.0 + jitter).min(Duration::from_secs(300))
}

/// Runs one claim-and-deliver round; returns how many deliveries were attempted.
pub async fn run_once(
    db: &sqlx::MySqlPool,
    http: &reqwest::Client,
    config: &RelayConfig,
) -> anyhow::Result<usize> {
    let lease = chrono::Duration::from_std(config.timeout * 2 + Duration::from_secs(5))?;
    let due = outbox::claim(db, config.batch, lease, Utc::now()).await?;
    let attempts = due.iter().map(|d| attempt(db, http, config, d));
    let results = futures::future::join_all(attempts).await;
    for result in results {
        result?;
    }
    Ok(due.len())
}

async fn attempt(
    db: &sqlx::MySqlPool,
    http: &reqwest::Client,
    config: &RelayConfig,
    delivery: &Delivery,
) -> anyhow::Result<()> {
    let t = Utc::now().timestamp();
    let sent = http
        .post(&config.url)
        .timeout(config.timeout)
        .header("content-type", "application/json")
        .header("x-flashmart-event-id", &delivery.event_id)
        .header(
            "x-flashmart-signature",
            signature::sign(&config.secret, t, &delivery.body),
        )
        .body(delivery.body.clone())
        .send()
        .await;
    let error = match sent {
        Ok(response) if response.status().is_success() => {
            let now = Utc::now();
            record_outcome(|| outbox::delivered(db, delivery.id, now)).await?;
            metrics::counter!("deliveries_total", "result" => "delivered").increment(1);
            return Ok(());
        }
        Ok(response) => format!("platform answered {}", response.status()),
        Err(e) if e.is_timeout() => "timed out".to_owned(),
        Err(e) => format!("request failed: {e}"),
    };
    let attempts = delivery.attempts + 1;
    let dead = attempts >= config.max_attempts;
    let retry_at = Utc::now() + chrono::Duration::from_std(backoff(config.backoff_base, attempts))?;
    record_outcome(|| outbox::failed(db, delivery.id, &error, retry_at, dead)).await?;
    let result = if dead { "dead" } else { "retry" };
    metrics::counter!("deliveries_total", "result" => result).increment(1);
    if dead {
        tracing::error!(event_id = %delivery.event_id, attempts, error, "delivery is dead");
    }
    Ok(())
}

/// Writes an attempt's outcome, again after a deadlock, a lock wait timeout or a lost
/// connection (a few times, briefly): a lost "delivered" would send the event once more when
/// the lease runs out, and a lost failure would hold its retry back until then.
async fn record_outcome<F, Fut>(write: F) -> Result<(), sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    const TRIES: u32 = 4;
    let mut tried = 1;
    loop {
        match write().await {
            Err(e) if tried < TRIES && crate::dependency::is_transient_database_error(&e) => {
                tracing::warn!(error = %e, tried, "writing a delivery outcome again");
                tokio::time::sleep(Duration::from_millis(50 * u64::from(tried))).await;
                tried += 1;
            }
            result => return result,
        }
    }
}

/// Relays until shutdown: immediately again after a full batch, else every 200 ms.
pub async fn run(db: sqlx::MySqlPool, config: RelayConfig, shutdown: CancellationToken) {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the delivery HTTP client");
            return;
        }
    };
    tracing::info!("delivery relay started");
    loop {
        let pause = match run_once(&db, &http, &config).await {
            Ok(n) if n as u32 >= config.batch => Duration::ZERO,
            Ok(_) => Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "delivery round failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for failed in 1..6 {
            let d = backoff(base, failed);
            let floor = base * (1 << (failed - 1));
            assert!(d >= floor && d <= floor.mul_f64(1.5), "{failed}: {d:?}");
        }
        assert_eq!(
            backoff(base, 40),
            Duration::from_secs(300),
            "capped after the jitter"
        );
    }
}
