//! The shipped observability, checked against a real Prometheus: two `flashmart serve`
//! processes run a short sale (sign-up, charge, coupon, order, pay, a 402, a cancel), a private
//! Prometheus scrapes them with `deploy/prometheus/prometheus.yml` and `alerts.yml`, and every
//! PromQL expression of the Grafana dashboard and of the alert rules must parse and return data.
//! A panel or alert over a metric the binary does not export therefore fails here.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::instances::{spawn_cluster, Cluster};
use crate::prometheus::{check_metrics, deploy_dir, promtool, Prometheus};
use crate::sale_workload::workload;

/// How long every expression may take to return data (scrapes every second; a busy machine).
const DATA_DEADLINE: Duration = Duration::from_secs(180);
/// How long the second instance may take to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(60);

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe listener");
    listener.local_addr().expect("probe address").to_string()
}

/// Starts a second `serve` on the cluster's database and prefix, with its own metrics listener
/// (the cluster harness gives every instance the same environment).
async fn second_instance(cluster: &Cluster, metrics_addr: &str) -> (Child, String) {
    let bind = free_addr();
    let mut env: HashMap<&str, String> = cluster.env.clone();
    env.insert("BIND_ADDR", bind.clone());
    env.insert("METRICS_ADDR", metrics_addr.to_owned());
    let log = std::env::temp_dir().join(format!("flashmart-tests/{}-obs.log", cluster.prefix));
    let child = Command::new(env!("CARGO_BIN_EXE_flashmart"))
        .arg("serve")
        .envs(env)
        .current_dir(std::env::temp_dir())
        .stdout(std::fs::File::create(&log).expect("create the log"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the second instance");
    let base = format!("http://{bind}");
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let ready = cluster
            .http
            .get(format!("{base}/health/ready"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            return (child, base);
        }
        assert!(
            Instant::now() < deadline,
            "second instance not ready; see {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `expr` of the dashboard's panels, with Grafana's variables replaced by what "All" and
/// a default range mean.
fn dashboard_exprs() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/flashmart.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target has an expr");
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".+");
            exprs.push((
                format!("panel {:?}", panel["title"].as_str().unwrap_or("?")),
                expr,
            ));
        }
    }
    exprs
}

/// The value part of an alert expression as Prometheus prints it (`<value> <op> <number>`).
fn alert_value(query: &str) -> String {
    let mut parts: Vec<&str> = query.trim().rsplitn(3, ' ').collect();
    parts.reverse();
    match parts.as_slice() {
        [value, op, number]
            if ["==", "!=", ">", "<", ">=", "<="].contains(op) && number.parse::<f64>().is_ok() =>
        {
            (*value).to_owned()
        }
        _ => panic!("alert expression does not end in `<op> <number>`: {query}"),
    }
}

/// The alert rules Prometheus loaded (name, query), all healthy.
async fn alert_exprs(prometheus: &Prometheus) -> Vec<(String, String)> {
    let rules = prometheus.api("rules", &[]).await;
    let mut exprs = Vec::new();
    for group in rules["data"]["groups"].as_array().expect("rule groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["name"].as_str().expect("rule name");
            assert_ne!(rule["health"], "err", "rule {name} is unhealthy: {rule}");
            let query = rule["query"].as_str().expect("rule query");
            exprs.push((format!("alert {name} (value)"), alert_value(query)));
            exprs.push((format!("alert {name} (as written)"), query.to_owned()));
        }
    }
    exprs
}

#[test]
fn the_shipped_rules_pass_promtool() {
    let dir = deploy_dir();
    promtool(&dir, &["check", "rules", "alerts.yml"]);
    let tested = promtool(&dir, &["test", "rules", "alerts_test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[tokio::test]
async fn every_dashboard_panel_and_alert_has_data_in_a_real_prometheus() {
    let metrics = [free_addr(), free_addr()];
    let first_metrics = metrics[0].clone();
    let cluster = spawn_cluster(1, |env| {
        env.insert("METRICS_ADDR", first_metrics);
    })
    .await;
    let (_second, second) = second_instance(&cluster, &metrics[1]).await;
    workload(&cluster, &second).await;

    // Each exposition is clean for promtool (HELP on every metric, naming conventions).
    for addr in &metrics {
        let text = cluster
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        for name in [
            "flashmart_build_info{",
            "lua_script_duration_seconds_bucket{",
            "process_resident_memory_bytes",
            "# HELP http_requests_total",
        ] {
            assert!(text.contains(name), "{addr} exports no {name}");
        }
        let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count();
        eprintln!("{addr}: {families} metric families, {samples} samples");
        let problems = check_metrics(&text);
        assert!(
            problems.trim().is_empty(),
            "promtool check metrics on {addr}:\n{problems}"
        );
    }

    let prometheus = Prometheus::start(&metrics).await;
    let mut exprs = dashboard_exprs();
    assert!(
        exprs.len() >= 30,
        "the dashboard lost panels: {}",
        exprs.len()
    );
    let deadline = Instant::now() + DATA_DEADLINE;
    let alerts = loop {
        let alerts = alert_exprs(&prometheus).await;
        if !alerts.is_empty() || Instant::now() > deadline {
            break alerts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        alerts.len() >= 2 * 13,
        "Prometheus loaded {} alert expressions",
        alerts.len()
    );
    exprs.extend(alerts);
    exprs.push((
        "both targets up".into(),
        "sum(up{job=\"flashmart\"}) == 2".into(),
    ));

    let mut missing = exprs.clone();
    loop {
        let mut still = Vec::new();
        for (what, expr) in missing {
            match prometheus.query(&expr).await {
                Err(error) => panic!("{what} does not parse: {expr}\n{error}"),
                Ok(0) if !what.ends_with("(as written)") => still.push((what, expr)),
                Ok(_) => {}
            }
        }
        missing = still;
        if missing.is_empty() {
            eprintln!("{} expressions parsed and returned data", exprs.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no data after {DATA_DEADLINE:?} for:\n{}",
            missing
                .iter()
                .map(|(w, e)| format!("  {w}: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
