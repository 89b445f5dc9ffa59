//! Use cases, one per file. Services take validated domain values and return domain results or
//! an [`crate::error::AppError`]; they own the order of Redis and MySQL steps.

pub mod catalog;
pub mod catalog_admin;
pub mod coupons;
pub mod discount;
pub mod expiry;
pub mod history;
pub mod login;
pub mod order_pricing;
pub mod orders;
pub mod payments;
pub mod popular;
pub mod reservations;
pub mod session;
pub mod sessions;
pub mod signup;
pub mod throttle;
pub mod wallet;
