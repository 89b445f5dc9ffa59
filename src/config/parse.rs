//! Value parsers for the configuration: bounded numbers, durations in the unit the variable's
//! name states (`_MS`, `_SECS`/`_SECONDS`), and the few values with their own syntax.
//!
//! A parser's error message never repeats a secret: a [`super::Secret`] parses from any value
//! (`FromStr` cannot fail), and secrets are checked after parsing (see `Config::validate`),
//! where the message names the variable only.

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// A number within `min..=max` (both inclusive).
pub fn within<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |value| {
        let n: T = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a whole number"))?;
        if n < min || n > max {
            return Err(format!("must be between {min} and {max}"));
        }
        Ok(n)
    }
}

/// A whole number of milliseconds within `min_ms..=max_ms`.
pub fn millis(
    min_ms: u64,
    max_ms: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    let n = within(min_ms, max_ms);
    move |value| n(value).map(Duration::from_millis)
}

/// A whole number of seconds within `min_secs..=max_secs`.
pub fn seconds(
    min_secs: u64,
    max_secs: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    let n = within(min_secs, max_secs);
    move |value| n(value).map(Duration::from_secs)
}

/// `host:port`, or `off` for no listener.
pub fn listener_or_off(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{value:?} is neither host:port nor off"))
}

/// One IP address of a comma-separated list (spaces around it are allowed).
pub fn ip(value: &str) -> Result<IpAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not an IP address"))
}

/// `on` or `off`.
pub fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("must be on or off".into()),
    }
}

/// 1-64 characters of `[A-Za-z0-9_-]`: a Redis key prefix or a consumer name (no braces, so
/// it cannot change a key's hash tag; no spaces or colons).
pub fn name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err("must be 1-64 characters of [A-Za-z0-9_-]".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_the_unit_of_the_variable() {
        assert_eq!(millis(1, 10_000)("500"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds(1, 600)("10"), Ok(Duration::from_secs(10)));
        assert!(seconds(1, 600)("601").is_err());
        assert!(millis(1, 600)("0").is_err());
        assert!(millis(1, 600)("1.5").is_err());
    }

    #[test]
    fn metrics_listener_can_be_switched_off() {
        assert_eq!(listener_or_off("off"), Ok(None));
        assert!(listener_or_off("127.0.0.1:1").expect("addr").is_some());
        assert!(listener_or_off("nowhere").is_err());
    }

    #[test]
    fn names_refuse_braces_and_colons() {
        assert!(name("fm-1_a").is_ok());
        for bad in ["", "a}b", "a:b", "a b", &"x".repeat(65)] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
    }
}
