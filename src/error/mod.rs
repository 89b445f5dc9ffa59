//! The one error type of the HTTP surface.
//!
//! Every failure a client can see is an [`AppError`] variant with a stable `code`; the table in
//! [`table`] maps each to a status and an RFC 9457 [`Problem`] ([`problem`]), and nothing else
//! decides them. Internal errors are answered with a generic 500 that says nothing about the
//! inside; their cause travels in the response's extensions as a [`Failure`], which the
//! `http::failures` middleware logs and counts (so errors are logged in one place, once). The
//! HTML rendering for browsers is done by [`crate::http::negotiate`] from the [`Problem`].

pub mod problem;
pub mod table;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::dependency::is_dependency_failure;
use crate::events::{CouponRefusal, OrderStatus};

pub use crate::domain::FieldError;
pub use problem::{problem_response, Problem};

/// Every failure the API reports.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input failed validation; one entry per bad field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The body is not JSON of the expected shape (syntax, unknown field, wrong type).
    #[error("malformed request: {0}")]
    MalformedRequest(String),
    /// The body is not `application/json`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The body is larger than allowed.
    #[error("payload too large")]
    PayloadTooLarge,
    /// No or invalid credentials on a protected route.
    #[error("unauthorized")]
    Unauthorized,
    /// Login failed (same answer for unknown e-mail and wrong password).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Authenticated, but not allowed to touch this resource.
    #[error("forbidden")]
    Forbidden,
    /// A storefront form without a valid CSRF token (old, or posted from another site).
    #[error("csrf token rejected")]
    CsrfRejected,
    /// No such route.
    #[error("route not found")]
    RouteNotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The user does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The product does not exist.
    #[error("product not found")]
    ProductNotFound,
    /// The coupon campaign does not exist.
    #[error("coupon not found")]
    CouponNotFound,
    /// The user already holds a coupon of this campaign.
    #[error("coupon already issued")]
    CouponAlreadyIssued,
    /// No coupons left: the first-come event is over.
    #[error("coupon sold out")]
    CouponSoldOut,
    /// Outside the campaign's issue window.
    #[error("coupon not active")]
    CouponNotActive,
    /// A line asks for more units than can be ordered now.
    #[error("insufficient stock")]
    InsufficientStock {
        /// The product of the refused line (the `product_id` extension of the problem).
        product_id: i64,
        /// Units asked for.
        requested: i64,
        /// Units that could be ordered at the time of the check (Redis's view).
        available: i64,
    },
    /// The coupon cannot be used for this order, and why (the problem's stable `reason`).
    #[error("invalid coupon: {0}")]
    InvalidCoupon(CouponRefusal),
    /// The order does not exist.
    #[error("order not found")]
    OrderNotFound,
    /// The order is not PENDING (or past its deadline); its status is given.
    #[error("order not payable")]
    OrderNotPayable(OrderStatus),
    /// The order is not PENDING any more.
    #[error("order not cancellable")]
    OrderNotCancellable(OrderStatus),
    /// The balance does not cover the order.
    #[error("insufficient balance")]
    InsufficientBalance {
        /// What the order costs after its coupon, in won.
        required: i64,
        /// What the wallet holds now, in won (less than `required`).
        balance: i64,
    },
    /// Sign-up with an e-mail that already has an account.
    #[error("email taken")]
    EmailTaken,
    /// A charge amount outside the allowed range; the message says which rule.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// The same `Idempotency-Key` was reused for a different request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// The client is over its request budget.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a request will be accepted again.
        retry_after_secs: u64,
    },
    /// A dependency (Redis, database) is not reachable.
    #[error("service unavailable")]
    Unavailable,
    /// Anything unexpected; the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What went wrong inside, for the log: put in an error response's extensions by
/// [`AppError::into_response`] and taken out by the failure-logging middleware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A dependency is down or overloaded (answered 503); the cause chain.
    Dependency(String),
    /// A bug or an unexpected state (answered 500); the cause chain.
    Internal(String),
    /// The instance refused work it cannot do now (answered 503).
    Unavailable,
}

impl AppError {
    /// The failure to log, if this error is one (client mistakes are not).
    ///
    /// `{:#}` (the cause chain), not `{:?}`: Debug would symbolise a captured backtrace inside
    /// the request task, costing ~200 MiB and a blocked worker (see bench/README).
    pub fn failure(&self) -> Option<Failure> {
        match self {
            AppError::Internal(cause) if is_dependency_failure(cause) => {
                Some(Failure::Dependency(format!("{cause:#}")))
            }
            AppError::Internal(cause) => Some(Failure::Internal(format!("{cause:#}"))),
            AppError::Unavailable => Some(Failure::Unavailable),
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying, for the `Retry-After` header.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AppError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            AppError::Internal(cause) if is_dependency_failure(cause) => Some(1),
            AppError::Unavailable => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = problem_response(self.problem());
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(failure) = self.failure() {
            response.extensions_mut().insert(failure);
        }
        response
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("database query failed"))
    }
}

impl From<fred::error::Error> for AppError {
    fn from(e: fred::error::Error) -> Self {
        AppError::Internal(anyhow::Error::new(e).context("redis command failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn internal_errors_never_show_their_cause() {
        let err = AppError::Internal(anyhow::anyhow!("SELECT * FROM secret at src/x.rs"));
        let body = err.problem().to_json().to_string();
        assert!(!body.contains("SELECT"), "{body}");
        assert!(body.contains("INTERNAL_ERROR"));
    }

    #[test]
    fn timeouts_of_dependencies_are_503_not_500() {
        let timeout =
            fred::error::Error::new(fred::error::ErrorKind::Timeout, "Request timed out.");
        let err = AppError::Internal(anyhow::Error::new(timeout).context("lua script failed"));
        assert_eq!(err.problem().status, StatusCode::SERVICE_UNAVAILABLE);
        let pool = AppError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(pool.problem().code, "SERVICE_UNAVAILABLE");
        let other = AppError::Internal(anyhow::anyhow!("boom"));
        assert_eq!(other.problem().status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn validation_errors_list_their_fields() {
        let err = AppError::Validation(vec![FieldError::new("email", "is not an e-mail")]);
        let body = err.problem().to_json();
        assert_eq!(body["status"], 400);
        assert_eq!(body["errors"][0]["field"], "email");
    }
}
