//! The accept loop: HTTP/1.1 connections with a header-read timeout, a cap on open connections,
//! and a graceful shutdown that waits a bounded time for in-flight requests.
//!
//! `axum::serve` arms no header-read timer, so a client that sends half a request head and then
//! nothing holds its connection until the kernel gives up; here hyper's own timer closes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Config;

/// Limits the accept loop enforces on client connections.
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// A connection with no complete request head this long after it opened (or after its last
    /// response) is closed.
    pub header_read_timeout: Duration,
    /// Most connections open at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before it closes their connections.
    pub drain_timeout: Duration,
}

impl ServerLimits {
    /// The limits of `HEADER_READ_TIMEOUT_SECS`, `MAX_CONNECTIONS` and `REQUEST_TIMEOUT_SECS`
    /// (a request cannot outlive its timeout, so draining waits that long plus a second).
    pub fn from_config(config: &Config) -> Self {
        Self {
            header_read_timeout: config.server.header_read_timeout,
            max_connections: usize::try_from(config.server.max_connections).unwrap_or(usize::MAX),
            drain_timeout: config.server.request_timeout + Duration::from_secs(1),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting, lets
/// in-flight requests finish (closing idle keep-alive connections at once) and returns after at
/// most [`ServerLimits::drain_timeout`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        metrics::gauge!("http_open_connections").increment(1.0);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            metrics::gauge!("http_open_connections").decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_timeout_secs = limits.drain_timeout.as_secs(),
            "requests still in flight after the drain timeout; closing their connections"
        );
    }
}
