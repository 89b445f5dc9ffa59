//! The settlement worker: consumes the event stream and writes every decision into MySQL.
//!
//! Guarantees (see docs/ARCHITECTURE.md):
//! - a batch is applied in ONE MySQL transaction and acknowledged (`XACK`) only after commit;
//! - each event is applied at most once (the `applied_events` primary key) and, because
//!   nothing is acknowledged before commit, at least once: exactly-once effects;
//! - a worker drains its own pending entries on start and reclaims entries left idle by dead
//!   consumers (`XAUTOCLAIM`), so any number of instances may run it;
//! - an entry that keeps failing goes to the dead-letter stream after
//!   [`WorkerConfig::max_failures`] attempts, counted across all workers;
//! - the stream is trimmed only below what the group has acknowledged;
//! - the paid orders it reads have their reservations committed in Redis before the batch goes
//!   to MySQL ([`stock_commit`]): the payment saga's last step rides on the stream;
//! - `serve` runs it on a thread of its own ([`runner`]), so HTTP load cannot starve it.

pub mod apply;
pub mod plan;
pub mod runner;
pub mod stock_commit;
pub mod stream;
pub mod worker;
pub mod workers;

pub use worker::{Outcome, StreamWorker, WorkerConfig};
pub use workers::Worker;

/// The consumer group every settlement worker joins.
pub const GROUP: &str = "settlement";
