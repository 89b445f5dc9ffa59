//! Cross-cutting request guards: authentication for protected routes, security headers,
//! request metrics and the fallbacks for unknown routes and methods.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::AuthUser;
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

/// Middleware: a request still unanswered after `limit` (`REQUEST_TIMEOUT_SECS`) answers 503
/// with Retry-After and its handler is dropped; every state change behind it is idempotent, so
/// the client's re-send with the same Idempotency-Key gets the first outcome.
pub async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("http_request_timeouts_total").increment(1);
            tracing::warn!(limit_secs = limit.as_secs(), "request timed out");
            AppError::Unavailable.into_response()
        }
    }
}

/// Middleware: headers every response carries, and no banner headers. `hsts` is the
/// `Strict-Transport-Security` value when the service is served over TLS (`HSTS_MAX_AGE_SECS`).
pub async fn security_headers(
    State(hsts): State<Option<HeaderValue>>,
    request: Request,
    next: Next,
) -> Response {
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

/// Route-level middleware: request count and latency labelled by method, matched route and
/// status.
pub async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
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

/// Middleware (outside the request-id layers): a client's `X-Request-Id` is kept only when it
/// is 1–[`MAX_REQUEST_ID_LEN`] characters of `[A-Za-z0-9._-]`; anything else is dropped, so
/// the next layer gives the request a fresh UUID. The id is echoed in the response and written
/// into every log line of the request, so unchecked it would let a client forge log lines
/// (newlines, ANSI escapes) or bloat them.
pub async fn sanitize_request_id(mut request: Request, next: Next) -> Response {
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
    next.run(request).await
}

/// Whether a request id may be kept as the client sent it.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
