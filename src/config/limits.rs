//! The rate budgets section of the configuration (per client, per user, per account), each a
//! sustained rate and a burst; README's table lists which are shared by all instances.

use clap::Args;

use super::parse;

/// Per-client and per-user budgets (`*_PER_SECOND` sustained, `*_BURST` at once).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Limits")]
pub struct LimitsConfig {
    /// Requests per second per user (per IP when anonymous), per instance; 10× per IP before
    /// authentication.
    #[arg(
        id = "rate-limit-per-second",
        long = "rate-limit-per-second",
        env = "RATE_LIMIT_PER_SECOND",
        default_value = "50",
        value_parser = parse::within(1u64, 1_000_000),
    )]
    pub rate_limit_per_second: u64,
    /// Burst of that budget.
    #[arg(
        id = "rate-limit-burst",
        long = "rate-limit-burst",
        env = "RATE_LIMIT_BURST",
        default_value = "100",
        value_parser = parse::within(1u32, 1_000_000),
    )]
    pub rate_limit_burst: u32,
    /// Sign-ups and logins per second per IP (per instance, and again over all instances).
    #[arg(
        id = "auth-rate-per-second",
        long = "auth-rate-per-second",
        env = "AUTH_RATE_PER_SECOND",
        default_value = "2",
        value_parser = parse::within(1u64, 1_000_000),
    )]
    pub auth_rate_per_second: u64,
    /// Burst of that budget.
    #[arg(
        id = "auth-rate-burst",
        long = "auth-rate-burst",
        env = "AUTH_RATE_BURST",
        default_value = "20",
        value_parser = parse::within(1u32, 1_000_000),
    )]
    pub auth_rate_burst: u32,
    /// Login attempts per minute per (account, client IP), over all instances.
    #[arg(
        id = "login-attempts-per-minute",
        long = "login-attempts-per-minute",
        env = "LOGIN_ATTEMPTS_PER_MINUTE",
        default_value = "10",
        value_parser = parse::within(1u32, 100_000),
    )]
    pub login_attempts_per_minute: u32,
    /// Login attempts per minute per account from all clients, over all instances.
    #[arg(
        id = "login-account-attempts-per-minute",
        long = "login-account-attempts-per-minute",
        env = "LOGIN_ACCOUNT_ATTEMPTS_PER_MINUTE",
        default_value = "60",
        value_parser = parse::within(1u32, 1_000_000),
    )]
    pub login_account_attempts_per_minute: u32,
    /// Coupon issues per second per user (per instance, and again over all instances).
    #[arg(
        id = "coupon-issue-per-second",
        long = "coupon-issue-per-second",
        env = "COUPON_ISSUE_PER_SECOND",
        default_value = "2",
        value_parser = parse::within(1u64, 1_000_000),
    )]
    pub coupon_issue_per_second: u64,
    /// Burst of that budget.
    #[arg(
        id = "coupon-issue-burst",
        long = "coupon-issue-burst",
        env = "COUPON_ISSUE_BURST",
        default_value = "5",
        value_parser = parse::within(1u32, 1_000_000),
    )]
    pub coupon_issue_burst: u32,
    /// Order creations per second per user, over all instances.
    #[arg(
        id = "order-rate-per-second",
        long = "order-rate-per-second",
        env = "ORDER_RATE_PER_SECOND",
        default_value = "5",
        value_parser = parse::within(1u64, 1_000_000),
    )]
    pub order_rate_per_second: u64,
    /// Burst of that budget.
    #[arg(
        id = "order-rate-burst",
        long = "order-rate-burst",
        env = "ORDER_RATE_BURST",
        default_value = "10",
        value_parser = parse::within(1u32, 1_000_000),
    )]
    pub order_rate_burst: u32,
    /// Payments and balance charges per second per user, over all instances.
    #[arg(
        id = "payment-rate-per-second",
        long = "payment-rate-per-second",
        env = "PAYMENT_RATE_PER_SECOND",
        default_value = "5",
        value_parser = parse::within(1u64, 1_000_000),
    )]
    pub payment_rate_per_second: u64,
    /// Burst of that budget.
    #[arg(
        id = "payment-rate-burst",
        long = "payment-rate-burst",
        env = "PAYMENT_RATE_BURST",
        default_value = "10",
        value_parser = parse::within(1u32, 1_000_000),
    )]
    pub payment_rate_burst: u32,
}
