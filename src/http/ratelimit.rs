//! Abuse throttling: a token bucket per client key, in two lines.
//!
//! First line, cheap and per instance: tower_governor buckets in memory. The key is the
//! authenticated user id when the route is protected (so one account cannot flood, whatever its
//! IPs) and the peer IP otherwise. Alone, these give a client N times the budget on N
//! instances. Second line, for the budgets that matter (sign-up and log-in per IP, coupon
//! issue, orders, payments): [`global_budget`] counts the same request once more in Redis
//! ([`crate::service::throttle`]), where every instance shares one bucket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, Response};
use axum::middleware::Next;
use axum::response::IntoResponse;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use super::client_ip::ClientIp;
use super::extract::AuthUser;
use crate::domain::UserId;
use crate::error::AppError;
use crate::service::throttle::{self, Budget};
use crate::state::AppState;

/// Who a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An authenticated user.
    User(i64),
    /// An anonymous peer address.
    Ip(IpAddr),
}

/// Extracts [`ClientKey`]: user id when authenticated, else the client IP (see
/// [`super::client_ip`]).
#[derive(Clone, Copy, Debug)]
pub struct ClientKeyExtractor;

impl KeyExtractor for ClientKeyExtractor {
    type Key = ClientKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        if let Some(user) = req.extensions().get::<AuthUser>() {
            return Ok(ClientKey::User(user.id.0));
        }
        let ip = match req.extensions().get::<ClientIp>() {
            Some(ClientIp(ip)) => *ip,
            None => req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        };
        Ok(ClientKey::Ip(ip))
    }
}

type Middleware = governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>;

/// A shared limiter configuration.
pub type Limiter = Arc<GovernorConfig<ClientKeyExtractor, Middleware>>;

/// Builds a limiter allowing `per_second` sustained requests and bursts of `burst`.
pub fn limiter(per_second: u64, burst: u32) -> Limiter {
    let period_ns = (1_000_000_000 / per_second.max(1)).max(1);
    let config = GovernorConfigBuilder::default()
        .per_nanosecond(period_ns)
        .burst_size(burst.max(1))
        .key_extractor(ClientKeyExtractor)
        .finish()
        .expect("governor accepts a non-zero period and burst");
    Arc::new(config)
}

/// The tower layer for a limiter, answering 429 with our problem document and `Retry-After`.
pub fn layer(
    limiter: &Limiter,
) -> GovernorLayer<
    ClientKeyExtractor,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    Body,
> {
    GovernorLayer::new(limiter.clone()).error_handler(on_governor_error)
}

fn on_governor_error(error: GovernorError) -> Response<Body> {
    metrics::counter!("http_rate_limited_total").increment(1);
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => AppError::RateLimited {
            retry_after_secs: wait_time,
        }
        .into_response(),
        _ => AppError::RateLimited {
            retry_after_secs: 1,
        }
        .into_response(),
    }
}

/// Spawns the periodic pruning of idle keys so the limiter's map cannot grow without bound.
pub fn spawn_pruner(limiters: Vec<Limiter>, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    for limiter in &limiters {
                        limiter.limiter().retain_recent();
                    }
                }
            }
        }
    });
}

/// Route middleware: counts the request against `budget` across all instances (after the
/// in-process limiters and, on protected routes, after authentication). The subject is the
/// caller's user id, or the client IP on public routes. Over budget → `429 RATE_LIMITED` with
/// `Retry-After`; Redis unreachable → the request goes on (see [`crate::service::throttle`]).
pub async fn global_budget(
    State((state, budget)): State<(AppState, Budget)>,
    request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let checked = match ClientKeyExtractor.extract(&request) {
        Ok(ClientKey::User(id)) => throttle::check_user(&state, budget, UserId(id)).await,
        Ok(ClientKey::Ip(ip)) => throttle::check(&state, budget, &format!("ip{ip}")).await,
        Err(_) => throttle::check(&state, budget, "unknown").await,
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => {
            metrics::counter!("http_rate_limited_total").increment(1);
            error.into_response()
        }
    }
}
