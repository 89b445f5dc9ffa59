//! HELP text and unit of every metric the binary exports, in one place so `promtool check
//! metrics` finds none without, and the series that exist at zero from the start.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Counters without labels that alert rules read; created at 0 so `increase()` has a series.
pub const ZERO_COUNTERS: &[&str] = &[
    "settlement_dead_letters_total",
    "http_panics_total",
    "http_request_timeouts_total",
    "http_overload_total",
    "redis_reconnects_total",
    "redis_replica_shortfalls_total",
];

/// Labelled counters created at 0 for each result the dashboards and alerts name.
pub const ZERO_LABELLED_COUNTERS: &[(&str, &str, &[&str])] = &[
    (
        "deliveries_total",
        "result",
        &["delivered", "retry", "dead"],
    ),
    (
        "coupon_issue_attempts_total",
        "result",
        &["issued", "already_issued", "sold_out", "not_active"],
    ),
    (
        "orders_total",
        "result",
        &["reserved", "insufficient_stock", "invalid_coupon", "error"],
    ),
    (
        "payments_total",
        "result",
        &["paid", "replayed", "insufficient_balance", "not_payable"],
    ),
];

/// Registers the description (HELP) and unit of every metric.
pub fn describe_all() {
    describe_http();
    describe_sale();
    describe_settlement();
    describe_delivery();
    describe_resources();
}

fn describe_http() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, matched route and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from request head to response, by method, matched route and status."
    );
    describe_gauge!(
        "http_open_connections",
        "Client connections open on this instance."
    );
    describe_counter!(
        "http_panics_total",
        "Handlers that panicked (answered 500)."
    );
    describe_counter!(
        "http_request_timeouts_total",
        "Requests answered 503 because they ran past REQUEST_TIMEOUT_SECS."
    );
    describe_counter!(
        "http_overload_total",
        "Requests refused with 503 because a pool was exhausted."
    );
    describe_counter!(
        "http_rate_limited_total",
        "Requests refused 429 by the per-instance budget."
    );
    describe_counter!(
        "rate_limited_global_total",
        "Requests refused 429 by a budget shared by all instances, by budget."
    );
    describe_counter!(
        "rate_limit_global_unavailable_total",
        "Shared budget checks that could not reach Redis, by budget."
    );
    describe_counter!(
        "web_csrf_rejected_total",
        "Storefront form posts refused for a bad CSRF token."
    );
    describe_counter!(
        "web_sessions_started_total",
        "Storefront sessions started (cookie log-ins)."
    );
    describe_counter!(
        "logins_total",
        "Log-in attempts, by result (ok, rejected, throttled)."
    );
    describe_counter!("logouts_total", "Log-outs (token generation raised).");
    describe_counter!("users_signed_up_total", "Accounts created.");
}

fn describe_sale() {
    describe_counter!(
        "coupon_issue_attempts_total",
        "First-come coupon issue attempts, by result (issued, sold_out, already_issued, …)."
    );
    describe_gauge!(
        "coupon_remaining",
        "Coupons left in a campaign as last seen by this instance, by campaign id."
    );
    describe_counter!(
        "orders_total",
        "Order creations, by result (reserved, insufficient_stock, …)."
    );
    describe_counter!(
        "orders_ended_total",
        "Pending orders ended without payment, by status."
    );
    describe_gauge!(
        "orders_pending",
        "Orders holding a stock reservation, awaiting payment."
    );
    describe_gauge!(
        "stock_reservations_live",
        "Stock reservations not yet committed or released, over every product bucket."
    );
    describe_counter!(
        "stock_reservations_swept_total",
        "Reservations the sweeper ended after a saga step was cut off, by outcome."
    );
    describe_counter!(
        "stock_reservations_committed_total",
        "Paid orders' reservations the settlement worker committed on reading order.paid."
    );
    describe_counter!(
        "payments_total",
        "Order payments, by result (paid, insufficient_balance, …)."
    );
    describe_counter!(
        "wallet_charges_total",
        "Balance charges, by result (charged, over_limit, …)."
    );
    describe_counter!(
        "popular_refreshes_total",
        "Refreshes of this instance's top-5 ranking cache."
    );
    describe_counter!(
        "db_product_reads_total",
        "Product reads that went to MySQL (cache misses)."
    );
    describe_counter!(
        "lua_script_calls_total",
        "Lua script calls against Redis, by script file and outcome (ok, error, timeout)."
    );
    describe_histogram!(
        "lua_script_duration_seconds",
        Unit::Seconds,
        "Round trip of one Lua script call, by script file and outcome."
    );
    describe_histogram!(
        "redis_batch_size",
        Unit::Count,
        "Requests decided by one group-committed Lua script call, by script file."
    );
}

fn describe_settlement() {
    describe_histogram!(
        "ledger_lag_seconds",
        Unit::Seconds,
        "Time from a decision in Redis to its commit in the MySQL ledger."
    );
    describe_histogram!(
        "settlement_batch_size",
        "Events applied by one settlement transaction."
    );
    describe_histogram!(
        "settlement_commit_seconds",
        Unit::Seconds,
        "Time to apply and commit one settlement batch."
    );
    describe_counter!(
        "settlement_events_applied_total",
        "Events written to the ledger, by event type."
    );
    describe_counter!(
        "settlement_dead_letters_total",
        "Events moved to the dead-letter stream after repeated failures."
    );
    describe_gauge!(
        "settlement_pending_events",
        "Events delivered to a worker but not yet acknowledged."
    );
    describe_gauge!(
        "settlement_undelivered_events",
        "Events in the stream not yet read by any settlement worker."
    );
    describe_gauge!(
        "settlement_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest event read but not yet acknowledged (0 when none)."
    );
}

fn describe_delivery() {
    describe_counter!(
        "deliveries_total",
        "Delivery attempts of paid orders to the external platform, by result."
    );
    describe_gauge!(
        "outbox_pending_deliveries",
        "Outbox deliveries waiting to be sent (PENDING)."
    );
    describe_gauge!(
        "outbox_dead_deliveries",
        "Outbox deliveries that ran out of attempts (DEAD)."
    );
    describe_gauge!(
        "outbox_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest PENDING outbox delivery (0 when none)."
    );
}

fn describe_resources() {
    describe_gauge!(
        "flashmart_build_info",
        "Always 1; labels carry the version and git revision."
    );
    describe_gauge!(
        "db_pool_connections",
        "Connections open in the API's MySQL pool."
    );
    describe_gauge!(
        "db_pool_idle_connections",
        "Idle connections in the API's MySQL pool."
    );
    describe_gauge!(
        "db_pool_max_connections",
        "Configured size of the API's MySQL pool."
    );
    describe_gauge!("redis_pool_clients", "Clients in the API's Redis pool.");
    describe_gauge!(
        "redis_pool_connected_clients",
        "Clients of the API's Redis pool now connected."
    );
    describe_counter!(
        "redis_reconnects_total",
        "Reconnections of the API's Redis pool clients."
    );
    describe_counter!(
        "redis_replica_shortfalls_total",
        "Decisions and settlement batches for which fewer Redis replicas than REDIS_MIN_REPLICA_ACKS acknowledged the write in time (answered 503 / retried)."
    );
    describe_gauge!(
        "dependency_up",
        "1 when the last probe of a dependency (mysql, redis) answered in time, else 0."
    );
    describe_histogram!(
        "dependency_probe_seconds",
        Unit::Seconds,
        "Round trip of the periodic probe of a dependency (SELECT 1, PING)."
    );
}
