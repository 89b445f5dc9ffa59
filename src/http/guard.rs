//! Cross-cutting request guards: authentication for protected routes, the edge headers (request
//! id check, security headers), the way out of every answer (timeout, failure log, HTML errors),
//! request metrics and the fallbacks for unknown routes and methods.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::AuthUser;
use super::{failures, negotiate};
use crate::error::AppError;
use crate::service::session::{self, Standing};
use crate::state::AppState;

/// Middleware for protected routers: 401 before anything else runs (bad signature or claims,
/// or a token revoked by log-out), and the verified caller put in the request extensions for
/// handlers (and per-user rate limits). The user's token generation (which also tells whether
/// the user exists) comes from the instance's copy, read from Redis at most once per
/// `SESSION_CACHE_MS`; Redis down → 503.
pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(verified) = AuthUser::verify_headers(request.headers(), &state) else {
        return AppError::Unauthorized.into_response();
    };
    let exists = match session::standing(&state, verified.user, verified.gen).await {
        Ok(Standing::Active) => true,
        Ok(Standing::NoSuchUser) => false,
        Ok(Standing::Revoked) => return AppError::Unauthorized.into_response(),
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(AuthUser {
        id: verified.user,
        role: verified.role,
        exists,
    });
    next.run(request).await
}

/// Middleware: what every answer goes through on its way out, in one layer (each `from_fn`
/// layer costs a request a clone of the stack below it and two allocations): a request still
/// unanswered after `limit` (`REQUEST_TIMEOUT_SECS`; `None`: no limit) answers 503 with
/// Retry-After and its handler is dropped — every state change behind it is idempotent, so the
/// client's re-send with the same Idempotency-Key gets the first outcome —; the failure an
/// error response carries is logged ([`failures::logged`]); and a problem becomes an HTML page
/// for a browser ([`negotiate::for_client`]).
pub async fn answer(
    State(limit): State<Option<Duration>>,
    request: Request,
    next: Next,
) -> Response {
    let wants_html = negotiate::prefers_html(request.headers());
    let response = match limit {
        None => next.run(request).await,
        Some(limit) => match tokio::time::timeout(limit, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                metrics::counter!("http_request_timeouts_total").increment(1);
                tracing::warn!(limit_secs = limit.as_secs(), "request timed out");
                AppError::Unavailable.into_response()
            }
        },
    };
    negotiate::for_client(wants_html, failures::logged(response))
}

/// Middleware, outermost: the request's `X-Request-Id` checked ([`is_acceptable_request_id`];
/// anything else is dropped, so the next layer gives the request a fresh UUID), and the headers
/// every response carries, without banner headers. `hsts` is the `Strict-Transport-Security`
/// value when the service is served over TLS (`HSTS_MAX_AGE_SECS`).
///
/// The id is echoed in the response and written into every log line of the request, so
/// unchecked it would let a client forge log lines (newlines, ANSI escapes) or bloat them.
pub async fn edge_headers(
    State(hsts): State<Option<HeaderValue>>,
    mut request: Request,
    next: Next,
) -> Response {
    let name = HeaderName::from_static("x-request-id");
    let values = request.headers().get_all(&name);
    let mut iter = values.iter();
    let keep = match (iter.next(), iter.next()) {
        (Some(value), None) => is_acceptable_request_id(value.as_bytes()),
        (None, _) => true,
        _ => false,
    };
    if !keep {
        request.headers_mut().remove(&name);
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Some(value) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    headers.remove(header::SERVER);
    headers.remove(HeaderName::from_static("x-powered-by"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

/// The request metrics' handles by route, method and status. The `metrics` macros build and
/// hash a key of three owned labels on every call; a request here finds its handles with one
/// map lookup under a read lock, and registers them only the first time.
#[derive(Default)]
pub struct RequestMetrics {
    by_route: RwLock<HashMap<Box<str>, Vec<Handles>>>,
}

/// The handles of one (route, method, status).
struct Handles {
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl RequestMetrics {
    /// Counts one answered request and its duration.
    fn record(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        let of = |h: &&Handles| h.method == method && h.status == status;
        {
            let by_route = self.by_route.read().unwrap_or_else(|p| p.into_inner());
            if let Some(handles) = by_route.get(route).and_then(|hs| hs.iter().find(of)) {
                handles.requests.increment(1);
                handles.duration.record(seconds);
                return;
            }
        }
        let labels = [
            ("method", method.to_owned()),
            ("route", route.to_owned()),
            ("status", status.to_string()),
        ];
        let requests = metrics::counter!("http_requests_total", &labels);
        let duration = metrics::histogram!("http_request_duration_seconds", &labels);
        requests.increment(1);
        duration.record(seconds);
        let mut by_route = self.by_route.write().unwrap_or_else(|p| p.into_inner());
        let handles = by_route.entry(route.into()).or_default();
        if !handles.iter().any(|h| of(&h)) {
            handles.push(Handles {
                method,
                status,
                requests,
                duration,
            });
        }
    }
}

/// The method's name as a metric label; methods outside HTTP's standard set are `OTHER`, so a
/// client cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Route-level middleware: request count and latency labelled by method, matched route and
/// status.
pub async fn track_metrics(
    State(metrics): State<Arc<RequestMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.record(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Fallback for unknown routes.
pub async fn not_found() -> AppError {
    metrics::counter!("http_requests_total", "route" => "unmatched", "status" => "404")
        .increment(1);
    AppError::RouteNotFound
}

/// Fallback for known routes called with the wrong method.
pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Longest client-supplied `X-Request-Id` that is kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Whether a request id may be kept as the client sent it.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
