//! Operator commands: `audit` (are Redis and MySQL consistent, does the ledger balance?) and
//! `rebuild-cache` (rebuild Redis hot state from MySQL).

pub mod audit;
pub mod rebuild;
