//! The table from error to problem document: one static [`Kind`] per [`AppError`] variant
//! (status, stable code, title, default detail), plus the few details and extension members that
//! depend on the error's data. Every status and code a client can see is in this file.

use axum::http::StatusCode;
use serde_json::{json, Map};

use super::problem::Problem;
use super::AppError;
use crate::dependency::is_dependency_failure;
use crate::events::CouponRefusal;

/// The fixed part of a problem: what a client branches on, and a default detail.
#[derive(Debug)]
pub struct Kind {
    /// The HTTP status of the response.
    pub status: StatusCode,
    /// The stable SCREAMING_SNAKE_CASE code (the API contract).
    pub code: &'static str,
    /// A short human title.
    pub title: &'static str,
    /// The detail when the error's data adds nothing to it.
    pub detail: &'static str,
}

/// `VALIDATION_FAILED` (bad request).
pub const VALIDATION: Kind = Kind {
    status: StatusCode::BAD_REQUEST,
    code: "VALIDATION_FAILED",
    title: "Validation failed",
    detail: "One or more fields are invalid.",
};

/// `MALFORMED_REQUEST` (bad request).
pub const MALFORMED_REQUEST: Kind = Kind {
    status: StatusCode::BAD_REQUEST,
    code: "MALFORMED_REQUEST",
    title: "Malformed request",
    detail: "The request is malformed.",
};

/// `UNSUPPORTED_MEDIA_TYPE` (unsupported media type).
pub const UNSUPPORTED_MEDIA_TYPE: Kind = Kind {
    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
    code: "UNSUPPORTED_MEDIA_TYPE",
    title: "Unsupported media type",
    detail: "Send the body as application/json.",
};

/// `PAYLOAD_TOO_LARGE` (payload too large).
pub const PAYLOAD_TOO_LARGE: Kind = Kind {
    status: StatusCode::PAYLOAD_TOO_LARGE,
    code: "PAYLOAD_TOO_LARGE",
    title: "Payload too large",
    detail: "The request body exceeds 16 KiB.",
};

/// `UNAUTHORIZED` (unauthorized).
pub const UNAUTHORIZED: Kind = Kind {
    status: StatusCode::UNAUTHORIZED,
    code: "UNAUTHORIZED",
    title: "Unauthorized",
    detail: "A valid access token is required.",
};

/// `INVALID_CREDENTIALS` (unauthorized).
pub const INVALID_CREDENTIALS: Kind = Kind {
    status: StatusCode::UNAUTHORIZED,
    code: "INVALID_CREDENTIALS",
    title: "Invalid credentials",
    detail: "The e-mail or password is incorrect.",
};

/// `FORBIDDEN` (forbidden).
pub const FORBIDDEN: Kind = Kind {
    status: StatusCode::FORBIDDEN,
    code: "FORBIDDEN",
    title: "Forbidden",
    detail: "You may not access this resource.",
};

/// `CSRF_REJECTED` (forbidden).
pub const CSRF_REJECTED: Kind = Kind {
    status: StatusCode::FORBIDDEN,
    code: "CSRF_REJECTED",
    title: "Form expired",
    detail: "This form is no longer valid (it is old or was sent from another site). \
                     Reload the page and try again.",
};

/// `NOT_FOUND` (not found).
pub const ROUTE_NOT_FOUND: Kind = Kind {
    status: StatusCode::NOT_FOUND,
    code: "NOT_FOUND",
    title: "Not found",
    detail: "No such resource.",
};

/// `METHOD_NOT_ALLOWED` (method not allowed).
pub const METHOD_NOT_ALLOWED: Kind = Kind {
    status: StatusCode::METHOD_NOT_ALLOWED,
    code: "METHOD_NOT_ALLOWED",
    title: "Method not allowed",
    detail: "This method is not allowed on this resource.",
};

/// `USER_NOT_FOUND` (not found).
pub const USER_NOT_FOUND: Kind = Kind {
    status: StatusCode::NOT_FOUND,
    code: "USER_NOT_FOUND",
    title: "User not found",
    detail: "No such user.",
};

/// `PRODUCT_NOT_FOUND` (not found).
pub const PRODUCT_NOT_FOUND: Kind = Kind {
    status: StatusCode::NOT_FOUND,
    code: "PRODUCT_NOT_FOUND",
    title: "Product not found",
    detail: "No such product.",
};

/// `COUPON_NOT_FOUND` (not found).
pub const COUPON_NOT_FOUND: Kind = Kind {
    status: StatusCode::NOT_FOUND,
    code: "COUPON_NOT_FOUND",
    title: "Coupon not found",
    detail: "No such coupon campaign.",
};

/// `COUPON_ALREADY_ISSUED` (conflict).
pub const COUPON_ALREADY_ISSUED: Kind = Kind {
    status: StatusCode::CONFLICT,
    code: "COUPON_ALREADY_ISSUED",
    title: "Coupon already issued",
    detail: "You already hold a coupon of this campaign; it is one per user.",
};

/// `COUPON_SOLD_OUT` (gone).
pub const COUPON_SOLD_OUT: Kind = Kind {
    status: StatusCode::GONE,
    code: "COUPON_SOLD_OUT",
    title: "Coupon sold out",
    detail: "All coupons have been issued: the first-come event is over.",
};

/// `COUPON_NOT_ACTIVE` (conflict).
pub const COUPON_NOT_ACTIVE: Kind = Kind {
    status: StatusCode::CONFLICT,
    code: "COUPON_NOT_ACTIVE",
    title: "Coupon not active",
    detail: "This coupon cannot be issued now: its issue window has not started or has \
                     ended.",
};

/// `INSUFFICIENT_STOCK` (conflict).
pub const INSUFFICIENT_STOCK: Kind = Kind {
    status: StatusCode::CONFLICT,
    code: "INSUFFICIENT_STOCK",
    title: "Insufficient stock",
    detail: "A line asks for more units than are available.",
};

/// `INVALID_COUPON` (unprocessable entity).
pub const INVALID_COUPON: Kind = Kind {
    status: StatusCode::UNPROCESSABLE_ENTITY,
    code: "INVALID_COUPON",
    title: "Invalid coupon",
    detail: "This coupon cannot be used for this order.",
};

/// `ORDER_NOT_FOUND` (not found).
pub const ORDER_NOT_FOUND: Kind = Kind {
    status: StatusCode::NOT_FOUND,
    code: "ORDER_NOT_FOUND",
    title: "Order not found",
    detail: "No such order.",
};

/// `ORDER_NOT_PAYABLE` (conflict).
pub const ORDER_NOT_PAYABLE: Kind = Kind {
    status: StatusCode::CONFLICT,
    code: "ORDER_NOT_PAYABLE",
    title: "Order not payable",
    detail: "This order cannot be paid.",
};

/// `ORDER_NOT_CANCELLABLE` (conflict).
pub const ORDER_NOT_CANCELLABLE: Kind = Kind {
    status: StatusCode::CONFLICT,
    code: "ORDER_NOT_CANCELLABLE",
    title: "Order not cancellable",
    detail: "Only pending orders can be cancelled.",
};

/// `INSUFFICIENT_BALANCE` (payment required).
pub const INSUFFICIENT_BALANCE: Kind = Kind {
    status: StatusCode::PAYMENT_REQUIRED,
    code: "INSUFFICIENT_BALANCE",
    title: "Insufficient balance",
    detail: "Your balance does not cover this order; please charge it.",
};

/// `EMAIL_TAKEN` (conflict).
pub const EMAIL_TAKEN: Kind = Kind {
    status: StatusCode::CONFLICT,
    code: "EMAIL_TAKEN",
    title: "E-mail taken",
    detail: "An account with this e-mail already exists.",
};

/// `INVALID_AMOUNT` (bad request).
pub const INVALID_AMOUNT: Kind = Kind {
    status: StatusCode::BAD_REQUEST,
    code: "INVALID_AMOUNT",
    title: "Invalid amount",
    detail: "The amount is not valid.",
};

/// `IDEMPOTENCY_KEY_REUSED` (unprocessable entity).
pub const IDEMPOTENCY_KEY_REUSED: Kind = Kind {
    status: StatusCode::UNPROCESSABLE_ENTITY,
    code: "IDEMPOTENCY_KEY_REUSED",
    title: "Idempotency key reused",
    detail: "This Idempotency-Key was already used for a different request.",
};

/// `RATE_LIMITED` (too many requests).
pub const RATE_LIMITED: Kind = Kind {
    status: StatusCode::TOO_MANY_REQUESTS,
    code: "RATE_LIMITED",
    title: "Too many requests",
    detail: "Slow down and retry after the time in Retry-After.",
};

/// `SERVICE_UNAVAILABLE` (service unavailable).
pub const UNAVAILABLE: Kind = Kind {
    status: StatusCode::SERVICE_UNAVAILABLE,
    code: "SERVICE_UNAVAILABLE",
    title: "Service unavailable",
    detail: "The service is temporarily unavailable; retry shortly.",
};

/// `SERVICE_UNAVAILABLE` (service unavailable).
pub const DEPENDENCY_FAILED: Kind = Kind {
    status: StatusCode::SERVICE_UNAVAILABLE,
    code: "SERVICE_UNAVAILABLE",
    title: "Service unavailable",
    detail: "A service we depend on is unavailable or overloaded; retry shortly (with \
                     the same Idempotency-Key, which makes a retry safe).",
};

/// `INTERNAL_ERROR` (internal server error).
pub const INTERNAL: Kind = Kind {
    status: StatusCode::INTERNAL_SERVER_ERROR,
    code: "INTERNAL_ERROR",
    title: "Internal error",
    detail: "Something went wrong on our side; it has been logged.",
};

impl AppError {
    /// The row of the table this error maps to.
    pub fn kind(&self) -> &'static Kind {
        use AppError as E;
        match self {
            E::Validation(_) => &VALIDATION,
            E::MalformedRequest(_) => &MALFORMED_REQUEST,
            E::UnsupportedMediaType => &UNSUPPORTED_MEDIA_TYPE,
            E::PayloadTooLarge => &PAYLOAD_TOO_LARGE,
            E::Unauthorized => &UNAUTHORIZED,
            E::InvalidCredentials => &INVALID_CREDENTIALS,
            E::Forbidden => &FORBIDDEN,
            E::CsrfRejected => &CSRF_REJECTED,
            E::RouteNotFound => &ROUTE_NOT_FOUND,
            E::MethodNotAllowed => &METHOD_NOT_ALLOWED,
            E::UserNotFound => &USER_NOT_FOUND,
            E::ProductNotFound => &PRODUCT_NOT_FOUND,
            E::CouponNotFound => &COUPON_NOT_FOUND,
            E::CouponAlreadyIssued => &COUPON_ALREADY_ISSUED,
            E::CouponSoldOut => &COUPON_SOLD_OUT,
            E::CouponNotActive => &COUPON_NOT_ACTIVE,
            E::InsufficientStock { .. } => &INSUFFICIENT_STOCK,
            E::InvalidCoupon(_) => &INVALID_COUPON,
            E::OrderNotFound => &ORDER_NOT_FOUND,
            E::OrderNotPayable(_) => &ORDER_NOT_PAYABLE,
            E::OrderNotCancellable(_) => &ORDER_NOT_CANCELLABLE,
            E::InsufficientBalance { .. } => &INSUFFICIENT_BALANCE,
            E::EmailTaken => &EMAIL_TAKEN,
            E::InvalidAmount(_) => &INVALID_AMOUNT,
            E::IdempotencyKeyReused => &IDEMPOTENCY_KEY_REUSED,
            E::RateLimited { .. } => &RATE_LIMITED,
            E::Unavailable => &UNAVAILABLE,
            E::Internal(cause) if is_dependency_failure(cause) => &DEPENDENCY_FAILED,
            E::Internal(_) => &INTERNAL,
        }
    }

    /// What happened, for a human; never internal details.
    fn detail(&self) -> String {
        use AppError as E;
        match self {
            E::MalformedRequest(why) => why.clone(),
            E::InsufficientStock {
                product_id,
                requested,
                available,
            } => format!(
                "Product {product_id}: {requested} requested but only {available} \
                         available."
            ),
            E::InvalidCoupon(reason) => match reason {
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
            E::OrderNotPayable(status) => format!("This order cannot be paid: it is {status}."),
            E::OrderNotCancellable(status) => {
                format!("Only pending orders can be cancelled; this one is {status}.")
            }
            E::InsufficientBalance { required, balance } => format!(
                "Your balance is {} won short of this order's {required} won: please \
                         charge your balance first, then pay again.",
                required - balance
            ),
            E::InvalidAmount(why) => why.clone(),
            _ => self.kind().detail.to_owned(),
        }
    }

    /// The stable code, status, title, detail and extension members of this error.
    pub fn problem(&self) -> Problem {
        use AppError as E;
        let kind = self.kind();
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
            status: kind.status,
            code: kind.code,
            title: kind.title,
            detail: self.detail(),
            extensions,
        }
    }
}
