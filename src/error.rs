//! The one error type of the HTTP surface and its mapping to responses.
//!
//! Every failure a client can see is an [`AppError`] variant with a stable `code`. The mapping to
//! a status and an RFC 9457 problem document lives here and nowhere else. Internal errors are
//! logged with their cause and answered with a generic 500 that says nothing about the inside.
//! The HTML rendering for browsers is done by [`crate::http::negotiate`] from the [`Problem`]
//! that every error response carries in its extensions.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::dependency::is_dependency_failure;
use crate::events::{CouponRefusal, OrderStatus};

pub use crate::domain::FieldError;

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

/// The problem document of an error response (RFC 9457 plus `code` and extensions).
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The response status (set on the response; this field itself is not serialized).
    #[serde(skip)]
    pub status: StatusCode,
    /// Stable SCREAMING_SNAKE_CASE code.
    pub code: &'static str,
    /// Short human title.
    pub title: &'static str,
    /// What happened, for a human; never internal details.
    pub detail: String,
    /// Extension members (e.g. `errors`, `shortfall`).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

impl Problem {
    /// The JSON body: `type`, `title`, `status`, `detail`, `code` and the extensions.
    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("urn:flashmart:problem:{}", self.code)),
        );
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        body.insert("code".into(), json!(self.code));
        for (k, v) in &self.extensions {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

impl AppError {
    /// The stable code, status, title and detail of this error.
    pub fn problem(&self) -> Problem {
        use AppError as E;
        let (status, code, title, detail): (StatusCode, &'static str, &'static str, String) =
            match self {
                E::Validation(_) => (
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_FAILED",
                    "Validation failed",
                    "One or more fields are invalid.".into(),
                ),
                E::MalformedRequest(why) => (
                    StatusCode::BAD_REQUEST,
                    "MALFORMED_REQUEST",
                    "Malformed request",
                    why.clone(),
                ),
                E::UnsupportedMediaType => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "Unsupported media type",
                    "Send the body as application/json.".into(),
                ),
                E::PayloadTooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "Payload too large",
                    "The request body exceeds 16 KiB.".into(),
                ),
                E::Unauthorized => (
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "Unauthorized",
                    "A valid access token is required.".into(),
                ),
                E::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "INVALID_CREDENTIALS",
                    "Invalid credentials",
                    "The e-mail or password is incorrect.".into(),
                ),
                E::Forbidden => (
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    "Forbidden",
                    "You may not access this resource.".into(),
                ),
                E::CsrfRejected => (
                    StatusCode::FORBIDDEN,
                    "CSRF_REJECTED",
                    "Form expired",
                    "This form is no longer valid (it is old or was sent from another site). \
                     Reload the page and try again."
                        .into(),
                ),
                E::RouteNotFound => (
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "Not found",
                    "No such resource.".into(),
                ),
                E::MethodNotAllowed => (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "METHOD_NOT_ALLOWED",
                    "Method not allowed",
                    "This method is not allowed on this resource.".into(),
                ),
                E::UserNotFound => (
                    StatusCode::NOT_FOUND,
                    "USER_NOT_FOUND",
                    "User not found",
                    "No such user.".into(),
                ),
                E::ProductNotFound => (
                    StatusCode::NOT_FOUND,
                    "PRODUCT_NOT_FOUND",
                    "Product not found",
                    "No such product.".into(),
                ),
                E::CouponNotFound => (
                    StatusCode::NOT_FOUND,
                    "COUPON_NOT_FOUND",
                    "Coupon not found",
                    "No such coupon campaign.".into(),
                ),
                E::CouponAlreadyIssued => (
                    StatusCode::CONFLICT,
                    "COUPON_ALREADY_ISSUED",
                    "Coupon already issued",
                    "You already hold a coupon of this campaign; it is one per user.".into(),
                ),
                E::CouponSoldOut => (
                    StatusCode::GONE,
                    "COUPON_SOLD_OUT",
                    "Coupon sold out",
                    "All coupons have been issued: the first-come event is over.".into(),
                ),
                E::CouponNotActive => (
                    StatusCode::CONFLICT,
                    "COUPON_NOT_ACTIVE",
                    "Coupon not active",
                    "This coupon cannot be issued now: its issue window has not started or has \
                     ended."
                        .into(),
                ),
                E::InsufficientStock {
                    product_id,
                    requested,
                    available,
                } => (
                    StatusCode::CONFLICT,
                    "INSUFFICIENT_STOCK",
                    "Insufficient stock",
                    format!(
                        "Product {product_id}: {requested} requested but only {available} \
                         available."
                    ),
                ),
                E::InvalidCoupon(reason) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "INVALID_COUPON",
                    "Invalid coupon",
                    match reason {
                        CouponRefusal::NotFound | CouponRefusal::NotYours => {
                            "This coupon is not yours.".to_owned()
                        }
                        CouponRefusal::NotAvailable => {
                            "This coupon is already used or reserved by another order.".to_owned()
                        }
                        CouponRefusal::Expired => "This coupon has expired.".to_owned(),
                        CouponRefusal::BelowMinimum => {
                            "The order does not reach this coupon's minimum amount.".to_owned()
                        }
                    },
                ),
                E::OrderNotFound => (
                    StatusCode::NOT_FOUND,
                    "ORDER_NOT_FOUND",
                    "Order not found",
                    "No such order.".into(),
                ),
                E::OrderNotPayable(status) => (
                    StatusCode::CONFLICT,
                    "ORDER_NOT_PAYABLE",
                    "Order not payable",
                    format!("This order cannot be paid: it is {status}."),
                ),
                E::OrderNotCancellable(status) => (
                    StatusCode::CONFLICT,
                    "ORDER_NOT_CANCELLABLE",
                    "Order not cancellable",
                    format!("Only pending orders can be cancelled; this one is {status}."),
                ),
                E::InsufficientBalance { required, balance } => (
                    StatusCode::PAYMENT_REQUIRED,
                    "INSUFFICIENT_BALANCE",
                    "Insufficient balance",
                    format!(
                        "Your balance is {} won short of this order's {required} won: please \
                         charge your balance first, then pay again.",
                        required - balance
                    ),
                ),
                E::EmailTaken => (
                    StatusCode::CONFLICT,
                    "EMAIL_TAKEN",
                    "E-mail taken",
                    "An account with this e-mail already exists.".into(),
                ),
                E::InvalidAmount(why) => (
                    StatusCode::BAD_REQUEST,
                    "INVALID_AMOUNT",
                    "Invalid amount",
                    why.clone(),
                ),
                E::IdempotencyKeyReused => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "IDEMPOTENCY_KEY_REUSED",
                    "Idempotency key reused",
                    "This Idempotency-Key was already used for a different request.".into(),
                ),
                E::RateLimited { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    "Too many requests",
                    "Slow down and retry after the time in Retry-After.".into(),
                ),
                E::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVICE_UNAVAILABLE",
                    "Service unavailable",
                    "The service is temporarily unavailable; retry shortly.".into(),
                ),
                E::Internal(cause) if is_dependency_failure(cause) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVICE_UNAVAILABLE",
                    "Service unavailable",
                    "A service we depend on is unavailable or overloaded; retry shortly (with \
                     the same Idempotency-Key, which makes a retry safe)."
                        .into(),
                ),
                E::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "Internal error",
                    "Something went wrong on our side; it has been logged.".into(),
                ),
            };
        let mut extensions = Map::new();
        match self {
            E::Validation(errors) => {
                extensions.insert("errors".into(), json!(errors));
            }
            E::InsufficientStock {
                product_id,
                requested,
                available,
            } => {
                extensions.insert("productId".into(), json!(product_id));
                extensions.insert("requested".into(), json!(requested));
                extensions.insert("available".into(), json!(available));
            }
            E::InvalidCoupon(reason) => {
                extensions.insert("reason".into(), json!(reason));
            }
            E::OrderNotPayable(status) | E::OrderNotCancellable(status) => {
                extensions.insert("orderStatus".into(), json!(status));
            }
            E::InsufficientBalance { required, balance } => {
                extensions.insert("required".into(), json!(required));
                extensions.insert("balance".into(), json!(balance));
                extensions.insert("shortfall".into(), json!(required - balance));
            }
            _ => {}
        }
        Problem {
            status,
            code,
            title,
            detail,
            extensions,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(cause) if is_dependency_failure(cause) => {
                metrics::counter!("http_overload_total").increment(1);
                tracing::warn!(
                    error = format!("{cause:#}"),
                    "dependency unavailable or overloaded: answered 503"
                );
            }
            // `{:#}` (the cause chain), not `{:?}`: Debug would symbolise a captured backtrace
            // inside the request task, costing ~200 MiB and a blocked worker (see bench/README).
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error")
            }
            AppError::Unavailable => tracing::warn!("dependency unavailable"),
            _ => {}
        }
        let retry_after = match &self {
            AppError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            AppError::Internal(cause) if is_dependency_failure(cause) => Some(1),
            AppError::Unavailable => Some(1),
            _ => None,
        };
        let mut response = problem_response(self.problem());
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// Renders a problem as `application/problem+json`, keeping the [`Problem`] in the extensions
/// so the content negotiation layer can turn it into an HTML page for browsers.
pub fn problem_response(problem: Problem) -> Response {
    let body = problem.to_json().to_string();
    let mut response = (problem.status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response.extensions_mut().insert(Arc::new(problem));
    response
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
