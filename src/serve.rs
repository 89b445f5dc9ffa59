//! `flashmart serve`: binds the listener at once, answers `/health/live` (and 503 + Retry-After
//! to everything else) while MySQL and Redis come up, retrying with backoff, then serves the
//! application on the same socket.
//!
//! An instance restarted while Redis replays its AOF (answering `LOADING`) or while MySQL
//! restarts therefore stays up and reports why it is not ready, instead of exiting and leaving
//! the restart policy to guess.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::dependency::is_dependency_failure;
use crate::http::server::{self, ServerLimits};
use crate::http::warming_router;
use crate::startup::{cancel_on_signal, Application};

/// First pause between two start-up attempts; doubles up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Connections the kernel queues before `accept` (tokio's own default).
const LISTEN_BACKLOG: u32 = 1024;
/// Longest pause between two start-up attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Runs `serve` until SIGTERM / Ctrl-C. Fails when the address cannot be bound, when the
/// dependencies are still unavailable after `STARTUP_TIMEOUT_SECS`, or at once on an error that
/// waiting cannot cure (a Redis without durable persistence, a bad URL).
pub async fn run(config: Config, clock: Clock) -> anyhow::Result<()> {
    let socket = bind(config.server.bind_addr)
        .with_context(|| format!("failed to bind {}", config.server.bind_addr))?;
    let stop = CancellationToken::new();
    cancel_on_signal(stop.clone());

    let warming_stop = CancellationToken::new();
    let warming = tokio::spawn(server::serve(
        TcpListener::from_std(socket.try_clone()?)?,
        warming_router(&config),
        ServerLimits::from_config(&config),
        warming_stop.clone(),
    ));
    tracing::info!(addr = %socket.local_addr()?, "listening; connecting to MySQL and Redis");
    let built = tokio::select! {
        built = build_when_ready(&config, &clock, &socket) => Some(built),
        _ = stop.cancelled() => None,
    };
    warming_stop.cancel();
    let _ = warming.await;
    let Some(app) = built.transpose()? else {
        tracing::info!("stopped before the dependencies were ready");
        return Ok(());
    };

    let app_stop = app.shutdown_token();
    tokio::spawn(async move {
        stop.cancelled().await;
        app_stop.cancel();
    });
    tracing::info!(addr = %app.local_addr()?, "flashmart serving");
    app.run_until_stopped().await
}

/// Binds like `tokio::net::TcpListener::bind` (address reuse, an accept queue of 1024, where
/// std's 128 makes a connection rush see resets) and returns the socket as a std listener,
/// which can be cloned for the warming server and each start-up attempt.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Builds the application, retrying while MySQL or Redis is unavailable (with backoff, logging
/// each wait), until `STARTUP_TIMEOUT_SECS` has passed (never, if 0).
async fn build_when_ready(
    config: &Config,
    clock: &Clock,
    socket: &std::net::TcpListener,
) -> anyhow::Result<Application> {
    let timeout = config.server.startup_timeout;
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let listener = TcpListener::from_std(socket.try_clone()?)?;
        let error =
            match Application::build_on(config.clone(), clock.clone(), listener, Router::new())
                .await
            {
                Ok(app) => return Ok(app),
                Err(error) => error,
            };
        if !is_dependency_failure(&error) {
            return Err(error);
        }
        if deadline.is_some_and(|deadline| Instant::now() + delay > deadline) {
            return Err(error.context(format!(
                "MySQL or Redis still unavailable after {}s (STARTUP_TIMEOUT_SECS)",
                timeout.as_secs()
            )));
        }
        tracing::warn!(
            attempt,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            waiting_for = format!("{error:#}"),
            "dependencies not ready; /health/ready answers 503 until they are"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}
