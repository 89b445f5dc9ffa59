//! Metrics beyond the request path: HELP text for every series the binary exports
//! ([`catalog`]), Lua script timings, the build-info gauge, and a periodic collector of
//! pool, dependency, outbox and process gauges ([`collector`]).
//!
//! Names follow Prometheus conventions: base units in the name (`_seconds`, `_bytes`), `_total`
//! on counters, and labels drawn from small fixed sets (route, script, result) — never a user or
//! order id, which would make one series per shopper.

pub mod catalog;
pub mod collector;

use std::time::Duration;

pub use collector::spawn as spawn_collector;

/// The crate version, as `flashmart_build_info{version}` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from (`build.rs`; `unknown` outside a checkout).
pub const REVISION: &str = env!("FLASHMART_GIT_REVISION");

/// Registers HELP text for every metric, publishes `flashmart_build_info` and creates the
/// counters that alerts read at zero, so a rule over them has a series before the first event.
///
/// Idempotent: the recorder keeps one series per name and label set.
pub fn init() {
    catalog::describe_all();
    metrics::gauge!("flashmart_build_info", "version" => VERSION, "revision" => REVISION).set(1.0);
    for name in catalog::ZERO_COUNTERS {
        metrics::counter!(*name).absolute(0);
    }
    for (name, label, values) in catalog::ZERO_LABELLED_COUNTERS {
        for value in *values {
            metrics::counter!(*name, *label => *value).increment(0);
        }
    }
}

/// Records one Lua script call: `lua_script_calls_total` and `lua_script_duration_seconds`,
/// both by `script` (file name) and `outcome` (`ok`, `error`, `timeout`).
pub fn record_lua_call(script: &'static str, outcome: &'static str, took: Duration) {
    metrics::counter!("lua_script_calls_total", "script" => script, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("lua_script_duration_seconds", "script" => script, "outcome" => outcome)
        .record(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_is_never_empty() {
        assert!(!REVISION.is_empty());
        assert!(!VERSION.is_empty());
    }
}
