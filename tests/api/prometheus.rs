//! Harness for a private, real Prometheus (the Debian `prometheus` binary) on a loopback port:
//! renders the shipped `deploy/prometheus/prometheus.yml` to scrape given targets every second,
//! runs it with the shipped rules, and answers PromQL through its HTTP API.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

/// The shipped configuration's target line, replaced by the test's targets.
const TARGETS_LINE: &str = r#"- targets: ["app1:9898", "app2:9898"]"#;
/// How long Prometheus may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository's `deploy/prometheus` directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

/// Runs `promtool` with `args` (in `dir`); returns its combined output, panicking on failure.
pub fn promtool(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool (apt-get install prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Runs `promtool check metrics` on one scrape; returns what it complained about (empty: clean).
pub fn check_metrics(exposition: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (apt-get install prometheus)");
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(exposition.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool finished");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running private Prometheus; killed when dropped (its directory is removed unless the test
/// failed, so the log and TSDB stay for a look).
pub struct Prometheus {
    /// Base URL, e.g. `http://127.0.0.1:41235`.
    pub base: String,
    /// Working directory (rendered config, rules, TSDB).
    pub dir: PathBuf,
    http: reqwest::Client,
    child: Child,
}

impl Prometheus {
    /// Renders the shipped config for `targets` (`host:port` of metrics listeners), checks it
    /// with `promtool check config`, starts Prometheus on a free loopback port and waits ready.
    pub async fn start(targets: &[String]) -> Self {
        let dir = std::env::temp_dir()
            .join("flashmart-tests")
            .join(format!("prometheus-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the Prometheus directory");
        let shipped = std::fs::read_to_string(deploy_dir().join("prometheus.yml"))
            .expect("read deploy/prometheus/prometheus.yml");
        assert!(
            shipped.contains(TARGETS_LINE),
            "the shipped targets line moved"
        );
        let quoted: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let rendered = shipped
            .replace(TARGETS_LINE, &format!("- targets: [{}]", quoted.join(", ")))
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
            .replace("scrape_timeout: 10s", "scrape_timeout: 1s");
        std::fs::write(dir.join("prometheus.yml"), rendered).expect("write the config");
        std::fs::copy(deploy_dir().join("alerts.yml"), dir.join("alerts.yml"))
            .expect("copy the rules");
        promtool(&dir, &["check", "config", "prometheus.yml"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("create the log");
        let child = Command::new("prometheus")
            .arg("--config.file=prometheus.yml")
            .arg("--storage.tsdb.path=data")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus (apt-get install prometheus)");
        let prometheus = Self {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            http: crate::helpers::http_client(),
            child,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = self.http.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready in {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Prometheus's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` with query parameters; the parsed JSON reply (any status).
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        self.http
            .get(format!("{}/api/v1/{path}", self.base))
            .query(params)
            .send()
            .await
            .expect("Prometheus answers")
            .json()
            .await
            .expect("Prometheus answers JSON")
    }

    /// An instant query: `Ok(number of series or samples)` when it parsed, `Err(error)` if not.
    pub async fn query(&self, expr: &str) -> Result<usize, String> {
        let reply = self.api("query", &[("query", expr)]).await;
        if reply["status"] != "success" {
            return Err(reply["error"]
                .as_str()
                .unwrap_or("no error text")
                .to_owned());
        }
        let result = &reply["data"]["result"];
        Ok(match reply["data"]["resultType"].as_str() {
            Some("vector") | Some("matrix") => result.as_array().map_or(0, Vec::len),
            _ => 1,
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
