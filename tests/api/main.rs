//! Integration tests against real MariaDB, real Redis and real HTTP. Each test gets its own
//! database and Redis key prefix (see `helpers::spawn_app`).

mod account_identity;
mod auth;
mod catalog;
mod coupon_claim;
mod coupon_rush;
mod coupon_script;
mod coupons;
mod delivery;
mod delivery_cluster;
mod errors;
mod failover;
#[path = "../../chaos/src/proxy.rs"]
mod fault_proxy;
mod global_limits;
mod helpers;
mod instances;
mod lua;
mod multi_instance;
mod observability;
mod order_concurrency;
mod order_place;
mod orders;
mod outage;
mod popular;
mod pricing;
mod product_reads;
mod prometheus;
mod replay;
mod sagas;
mod sale_workload;
mod security;
mod sessions;
mod settlement;
mod settlement_batch;
mod slow_clients;
mod startup_wait;
mod stock_refusals;
mod storefront;
mod stream_lag;
mod wallet;
mod wallet_concurrency;
