//! Unit tests of the configuration: defaults, refusals by variable name, secrets never shown,
//! and README's table against the variables clap declares.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use clap::CommandFactory;

use super::*;

fn base() -> HashMap<&'static str, String> {
    HashMap::from([
        ("DATABASE_URL", "mysql://u:p@127.0.0.1:3307/db".to_string()),
        ("REDIS_URL", "redis://127.0.0.1:6380".to_string()),
        ("JWT_SECRET", "x".repeat(32)),
    ])
}

fn load(map: &HashMap<&'static str, String>) -> Result<Config, ConfigError> {
    Config::from_lookup(|k| map.get(k).cloned())
}

fn refused(var: &'static str, value: &str) -> ConfigError {
    let mut map = base();
    map.insert(var, value.into());
    load(&map).expect_err("refused")
}

#[test]
fn defaults_apply_when_only_required_values_are_given() {
    let cfg = load(&base()).expect("valid");
    assert_eq!(cfg.server.bind_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(
        cfg.server.metrics_addr.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9898")
    );
    assert_eq!(cfg.orders.ttl, Duration::from_secs(600));
    assert_eq!(cfg.auth.access_token_ttl, Duration::from_secs(3600));
    assert_eq!(cfg.delivery.timeout, Duration::from_millis(5000));
    assert_eq!(cfg.settlement.claim_idle, Duration::from_millis(30_000));
    assert_eq!(cfg.server.startup_timeout, Duration::from_secs(300));
    assert_eq!(cfg.redis.key_prefix, "fm");
    assert_eq!(cfg.redis.buckets, 16);
    assert_eq!(cfg.redis.min_replica_acks, None);
    assert_eq!(cfg.redis.replica_ack_timeout, Duration::from_millis(500));
    assert!(cfg.settlement.worker);
    assert!(!cfg.redis.allow_unsafe_persistence());
    assert!(cfg.server.trusted_proxies.is_empty());
    assert_eq!(cfg.server.hsts_max_age_secs, None);
    assert_eq!(cfg.log_format, LogFormat::Pretty);
    assert_eq!(
        (cfg.limits.auth_rate_per_second, cfg.limits.auth_rate_burst),
        (2, 20)
    );
}

#[test]
fn values_are_read_in_the_unit_their_name_states() {
    let mut map = base();
    map.insert("ORDER_TTL_SECONDS", "5".into());
    map.insert("DELIVERY_BACKOFF_BASE_MS", "250".into());
    map.insert("METRICS_ADDR", "off".into());
    map.insert("TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2".into());
    map.insert("SETTLEMENT_WORKER", "off".into());
    map.insert("LOG_FORMAT", "json".into());
    map.insert("REDIS_MIN_REPLICA_ACKS", "1".into());
    map.insert("ALLOW_UNSAFE_REDIS_PERSISTENCE", UNSAFE_REDIS_PHRASE.into());
    map.insert("HSTS_MAX_AGE_SECS", "".into());
    let cfg = load(&map).expect("valid");
    assert_eq!(cfg.orders.ttl, Duration::from_secs(5));
    assert_eq!(cfg.delivery.backoff_base, Duration::from_millis(250));
    assert_eq!(cfg.server.metrics_addr, None);
    assert_eq!(cfg.server.trusted_proxies.len(), 2);
    assert!(!cfg.settlement.worker);
    assert_eq!(cfg.log_format, LogFormat::Json);
    assert_eq!(cfg.redis.min_replica_acks, Some(1));
    assert!(cfg.redis.allow_unsafe_persistence());
    assert_eq!(cfg.server.hsts_max_age_secs, None, "empty means unset");
}

#[test]
fn bad_values_are_refused_by_variable_name() {
    for (var, value) in [
        ("JWT_SECRET", "short"),
        ("DATABASE_URL", "postgres://x"),
        ("REDIS_URL", "http://x"),
        ("REDIS_KEY_PREFIX", "a}b"),
        ("REDIS_BUCKETS", "0"),
        ("REDIS_MIN_REPLICA_ACKS", "256"),
        ("REDIS_REPLICA_ACK_TIMEOUT_MS", "0"),
        ("ORDER_TTL_SECONDS", "0"),
        ("SETTLEMENT_BATCH_SIZE", "5001"),
        ("SETTLEMENT_COMMIT_PACE_MS", "1001"),
        ("SETTLEMENT_CONSUMER", "a b"),
        ("SETTLEMENT_WORKER", "yes"),
        ("LOG_FORMAT", "xml"),
        ("METRICS_ADDR", "nowhere"),
        ("TRUSTED_PROXIES", "10.0.0.1,nope"),
        ("ALLOW_UNSAFE_REDIS_PERSISTENCE", "yes"),
        ("EXTERNAL_PLATFORM_URL", "ftp://x"),
        ("EXTERNAL_PLATFORM_URL", "http://x"),
    ] {
        let error = refused(var, value);
        let expected = if (var, value) == ("EXTERNAL_PLATFORM_URL", "http://x") {
            "EXTERNAL_PLATFORM_SECRET"
        } else {
            var
        };
        assert_eq!(error.var, expected, "{var}={value}: {error}");
    }
    let mut map = base();
    map.remove("JWT_SECRET");
    let error = load(&map).expect_err("required");
    assert_eq!(
        (error.var.as_str(), error.message.as_str()),
        ("JWT_SECRET", "is required")
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let mut map = base();
    map.insert("ADMIN_PASSWORD", "admin-password-1".into());
    map.insert("EXTERNAL_PLATFORM_URL", "http://127.0.0.1:9".into());
    map.insert("EXTERNAL_PLATFORM_SECRET", "platform-secret-1".into());
    let cfg = load(&map).expect("valid");
    let shown = format!("{cfg:?}");
    for secret in [
        "u:p@",
        &"x".repeat(32),
        "admin-password-1",
        "platform-secret-1",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn errors_about_secrets_never_show_them() {
    let error = refused("JWT_SECRET", "too-short-secret");
    assert!(!error.to_string().contains("too-short-secret"), "{error}");
    let error = refused("DATABASE_URL", "mysq://user:hunter2@h/db");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

fn all_arguments(command: &clap::Command) -> Vec<clap::Arg> {
    let mut args: Vec<clap::Arg> = command.get_arguments().cloned().collect();
    for sub in command.get_subcommands() {
        args.extend(all_arguments(sub));
    }
    args
}

#[test]
fn help_hides_the_values_of_secrets_and_flags_match_variables() {
    let secrets = [
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "ADMIN_PASSWORD",
        "EXTERNAL_PLATFORM_URL",
        "EXTERNAL_PLATFORM_SECRET",
    ];
    for arg in all_arguments(&crate::cli::Cli::command()) {
        let Some(var) = arg.get_env().and_then(|v| v.to_str()) else {
            continue;
        };
        let long = arg.get_long().expect("every variable has a flag");
        assert_eq!(long, var.to_lowercase().replace('_', "-"), "flag of {var}");
        if secrets.contains(&var) {
            assert!(arg.is_hide_env_values_set(), "--help would show {var}");
        }
        assert!(arg.get_help().is_some(), "{var} has no help text");
    }
}

/// The variables named in the first column of README's configuration table.
fn readme_variables() -> BTreeSet<String> {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
    let section = readme
        .split("\n## Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut names = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split('|').nth(1).unwrap_or_default();
        for name in first.split('`').skip(1).step_by(2) {
            names.insert(name.to_owned());
        }
    }
    names
}

#[test]
fn readme_documents_exactly_the_variables_clap_reads() {
    let declared: BTreeSet<String> = all_arguments(&crate::cli::Cli::command())
        .iter()
        .filter_map(|a| a.get_env().and_then(|v| v.to_str()).map(str::to_owned))
        .collect();
    let documented = readme_variables();
    let missing: Vec<_> = declared.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "not in README's table: {missing:?}; in README's table but not read: {unknown:?}"
    );
}
