//! flashmart: a flash-sale commerce engine.
//!
//! Module map (a request's way through the code):
//! - [`http`]: axum routers, one file per resource; extracts and validates input into domain
//!   types, calls a service, maps the outcome to JSON. Never talks to Redis or SQL itself.
//! - [`service`]: one use case per file (sign-up, login, catalog, wallet, …).
//! - [`cache`]: the Redis hot path — typed wrappers over the Lua scripts in `lua/` and the key
//!   schema.
//! - [`store`]: MySQL, the source of truth — sqlx queries with bound parameters only.
//! - [`domain`]: validated value types (money, e-mail, ids) built at the edge.
//! - [`auth`]: password hashing and signed access tokens.
//! - [`error`]: the one error type and its mapping to problem+json / HTML; [`dependency`]
//!   tells a dependency's failure (503, retry) from our own bug (500).
//! - [`web`]: the storefront — server-rendered pages (session cookie, CSRF-checked forms) on
//!   the same services as the API.
//! - [`startup`], [`serve`], [`config`], [`telemetry`], [`cli`]: process wiring ([`serve`] waits
//!   for MySQL and Redis at start, answering `/health/ready` 503 meanwhile).
//! - [`local`], [`logout_feed`]: this instance's in-memory state (limiters, the copy of token
//!   generations) and whether the log-out feed vouches for that copy.
//! - [`observe`]: metric descriptions, Lua timings, build info and the periodic collector of
//!   pool, dependency, outbox and process gauges.

pub mod auth;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dependency;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod local;
pub mod logout_feed;
pub mod observe;
pub mod ops;
pub mod seed;
pub mod serve;
pub mod service;
pub mod settlement;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;
