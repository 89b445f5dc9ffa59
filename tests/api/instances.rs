//! Multi-process harness: several real `flashmart serve` processes (the binary Cargo built for
//! this test run) sharing one fresh database and one Redis key prefix.
//!
//! Unlike [`crate::helpers::spawn_app`], which runs the app inside the test process, a
//! [`Cluster`] runs every instance as its own OS process, so tests can prove claims that only
//! hold across processes (no shared memory, no shared connection pools) and can stop instances
//! with real signals. Each instance writes its JSON logs to
//! `$TMPDIR/flashmart-tests/<prefix>-<i>.log`; a failed start panics with the tail of that log.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use flashmart::cache::Cache;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use sqlx::mysql::MySqlPool;
use tokio::process::{Child, Command};

use crate::helpers::{fresh_database, http_client, json_of, test_env, TestUser, TEST_PASSWORD};

/// The `flashmart` binary built for this test run.
const BINARY: &str = env!("CARGO_BIN_EXE_flashmart");
/// How long an instance may take to answer `GET /health/ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two readiness probes.
const READY_POLL: Duration = Duration::from_millis(50);
/// Longest a single readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an instance may take to exit after SIGTERM.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of an instance's log shown when it fails to start or stop.
const LOG_TAIL_LINES: usize = 40;
/// Fresh ports tried per instance when the chosen one is taken before the instance binds it.
const BIND_ATTEMPTS: usize = 5;
/// Variables a child must never inherit from the test process: only the cluster's count.
const SCRUBBED_VARS: [&str; 6] = [
    "DATABASE_URL",
    "REDIS_URL",
    "JWT_SECRET",
    "BIND_ADDR",
    "METRICS_ADDR",
    "REDIS_KEY_PREFIX",
];

/// One `flashmart serve` process slot: its port and log survive restarts.
struct Instance {
    /// Loopback port the instance listens on.
    port: u16,
    /// File its stdout and stderr are appended to.
    log_path: PathBuf,
    /// The running process; `None` once killed or terminated.
    child: Option<Child>,
}

/// Several `flashmart serve` processes on one database and one Redis key prefix.
pub struct Cluster {
    /// Base URL of each instance, e.g. `http://127.0.0.1:41234`.
    pub bases: Vec<String>,
    /// URL of the cluster's database.
    #[allow(dead_code)] // harness API: not every test reads it
    pub database_url: String,
    /// Name of the cluster's database.
    #[allow(dead_code)] // harness API: not every test reads it
    pub db_name: String,
    /// Redis key prefix shared by every instance.
    #[allow(dead_code)] // harness API: not every test reads it
    pub prefix: String,
    /// Environment every instance and [`Cluster::run_cli`] get (`BIND_ADDR` is per instance).
    pub env: HashMap<&'static str, String>,
    /// Pool on the cluster's database, for assertions and fixtures.
    pub db: MySqlPool,
    /// Redis handle under the cluster's prefix, for assertions and fixtures.
    pub cache: Cache,
    /// HTTP client (no redirects, no default headers).
    pub http: reqwest::Client,
    /// The process slots, in the order of `bases`.
    instances: Vec<Instance>,
    /// Declared last: the instances are killed before their database is dropped.
    _database: crate::helpers::DatabaseGuard,
}

/// Why an instance did not become ready.
enum NotReady {
    /// The process exited first, with this status.
    Exited(ExitStatus),
    /// It was still not ready after [`READY_TIMEOUT`].
    TimedOut,
}

/// One `flashmart serve` with its metrics listener on a free port, and that listener's URL
/// (for tests that count what the process did through its own metrics).
pub async fn spawn_one_with_metrics() -> (Cluster, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe")
        .local_addr()
        .expect("addr")
        .port();
    let cluster = spawn_cluster(1, |env| {
        env.insert("METRICS_ADDR", format!("127.0.0.1:{port}"));
    })
    .await;
    (cluster, format!("http://127.0.0.1:{port}/metrics"))
}

/// A counter's value in the metrics at `url`: the sum of its samples whose line contains
/// `labels` ("" for every sample), 0 before its first increment.
pub async fn counter_total(http: &reqwest::Client, url: &str, name: &str, labels: &str) -> u64 {
    let text = http
        .get(url)
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.split_whitespace().last())
        .map(|v| v.parse::<f64>().expect("a number") as u64)
        .sum()
}

/// Starts `n` instances of `flashmart serve` on a fresh database and a fresh Redis prefix and
/// waits until each answers `GET /health/ready` with 200.
///
/// The environment is [`crate::helpers::test_env`] plus `LOG_FORMAT=json` and `RUST_LOG=info`;
/// `adjust` may change it before any instance starts (it applies to every instance).
/// `BIND_ADDR` is always set per instance to a free loopback port.
///
/// Panics with the tail of the instance's log if one exits early or is not ready in 30 s.
pub async fn spawn_cluster(
    n: usize,
    adjust: impl FnOnce(&mut HashMap<&'static str, String>),
) -> Cluster {
    let (database_url, database) = fresh_database().await;
    let db_name = database.name().to_owned();
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut env = test_env(&database_url, &prefix);
    env.insert("METRICS_ADDR", "off".to_owned());
    env.insert("LOG_FORMAT", "json".to_owned());
    env.insert("RUST_LOG", "info".to_owned());
    adjust(&mut env);
    let http = http_client();
    let log_dir = log_dir();
    let mut instances = Vec::with_capacity(n);
    for i in 0..n {
        let log_path = log_dir.join(format!("{prefix}-{i}.log"));
        instances.push(launch_on_free_port(&http, &env, log_path).await);
    }
    let db = MySqlPool::connect(&database_url)
        .await
        .expect("connect to the cluster's database");
    let redis_url = env.get("REDIS_URL").expect("test_env sets REDIS_URL");
    let cache = Cache::connect(redis_url, 2, &prefix, 16)
        .await
        .expect("connect to the cluster's Redis");
    Cluster {
        bases: instances.iter().map(|x| base_url(x.port)).collect(),
        database_url,
        db_name,
        prefix,
        env,
        db,
        cache,
        http,
        instances,
        _database: database,
    }
}

/// The directory holding instance logs (created if missing); children also run in it, so a
/// `.env` file in the repository cannot add to their environment.
fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("flashmart-tests");
    std::fs::create_dir_all(&dir).expect("create the instance log directory");
    dir
}

fn base_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A loopback port that was free a moment ago (bound to port 0, read, released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe listener");
    listener
        .local_addr()
        .expect("read the probe listener's address")
        .port()
}

/// Starts one instance on a free port; if another process grabbed that port between
/// [`free_port`] and the instance's bind, tries a new port (up to [`BIND_ATTEMPTS`] times).
async fn launch_on_free_port(
    http: &reqwest::Client,
    env: &HashMap<&'static str, String>,
    log_path: PathBuf,
) -> Instance {
    for attempt in 1..=BIND_ATTEMPTS {
        let port = free_port();
        let log_start = log_len(&log_path);
        let mut child = spawn_serve(env, port, &log_path);
        match wait_ready(http, &base_url(port), &mut child).await {
            Ok(()) => {
                return Instance {
                    port,
                    log_path,
                    child: Some(child),
                }
            }
            Err(NotReady::Exited(_))
                if attempt < BIND_ATTEMPTS
                    && read_log(&log_path)
                        .get(log_start..)
                        .is_some_and(|new| new.contains("failed to bind")) =>
            {
                continue
            }
            Err(why) => fail_start(child, why, &log_path),
        }
    }
    unreachable!("the last attempt either returns or panics")
}

/// Spawns `flashmart serve` on `port` with `env` (over the inherited environment, less
/// [`SCRUBBED_VARS`]), appending its output to `log_path`.
fn spawn_serve(env: &HashMap<&'static str, String>, port: u16, log_path: &Path) -> Child {
    let stdout = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open the instance log");
    let stderr = stdout.try_clone().expect("share the instance log");
    let mut command = command_with_env(env);
    command
        .arg("serve")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    command.spawn().expect("spawn flashmart serve")
}

/// A command for the binary with the cluster's environment on top of the inherited one.
fn command_with_env(env: &HashMap<&'static str, String>) -> Command {
    let mut command = Command::new(BINARY);
    for var in SCRUBBED_VARS {
        command.env_remove(var);
    }
    command
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(log_dir());
    command
}

/// Polls `GET {base}/health/ready` every [`READY_POLL`] until it answers 200.
async fn wait_ready(http: &reqwest::Client, base: &str, child: &mut Child) -> Result<(), NotReady> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("{base}/health/ready");
    loop {
        if let Some(status) = child.try_wait().expect("poll the instance process") {
            return Err(NotReady::Exited(status));
        }
        let probe = http.get(&url).timeout(PROBE_TIMEOUT).send().await;
        if probe.is_ok_and(|r| r.status() == StatusCode::OK) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(NotReady::TimedOut);
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Kills a child that did not become ready (SIGKILL) and panics with its log tail.
fn fail_start(mut child: Child, why: NotReady, log_path: &Path) -> ! {
    let _ = child.start_kill();
    let reason = match why {
        NotReady::Exited(status) => format!("exited with {status} before it was ready"),
        NotReady::TimedOut => format!("was not ready within {READY_TIMEOUT:?}"),
    };
    panic!(
        "flashmart serve {reason}; last lines of {}:\n{}",
        log_path.display(),
        log_tail(log_path)
    )
}

/// Size of the log file so far (0 if it does not exist yet).
fn log_len(path: &Path) -> usize {
    std::fs::metadata(path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX))
}

/// The log file's contents (empty if it does not exist yet).
fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last [`LOG_TAIL_LINES`] lines of a log file.
fn log_tail(path: &Path) -> String {
    let text = read_log(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

impl Cluster {
    /// Base URL of instance `i`.
    pub fn base(&self, i: usize) -> &str {
        &self.bases[i]
    }

    /// Number of instances (running or not).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// OS process id of instance `i`, if it is running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.instances[i].child.as_ref().and_then(Child::id)
    }

    /// The running process of instance `i`; panics if it was stopped.
    fn child_mut(&mut self, i: usize) -> &mut Child {
        self.instances[i]
            .child
            .as_mut()
            .unwrap_or_else(|| panic!("instance {i} is not running"))
    }

    /// Kills instance `i` with SIGKILL and waits for it; returns its exit status.
    pub async fn kill(&mut self, i: usize) -> ExitStatus {
        let child = self.child_mut(i);
        child.start_kill().expect("send SIGKILL");
        let status = child.wait().await.expect("wait for the killed instance");
        self.instances[i].child = None;
        status
    }

    /// Sends SIGTERM to instance `i` (`kill -TERM <pid>`) and waits up to 10 s for it to exit;
    /// returns its exit status. Panics (after SIGKILL) with its log tail if it does not exit.
    pub async fn terminate(&mut self, i: usize) -> ExitStatus {
        let child = self.child_mut(i);
        let pid = child.id().expect("a running child has a pid");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        match tokio::time::timeout(TERMINATE_TIMEOUT, child.wait()).await {
            Ok(status) => {
                let status = status.expect("wait for the terminated instance");
                self.instances[i].child = None;
                status
            }
            Err(_) => {
                let _ = child.kill().await;
                self.instances[i].child = None;
                panic!(
                    "instance {i} did not exit within {TERMINATE_TIMEOUT:?} of SIGTERM; \
                     last lines of its log:\n{}",
                    log_tail(&self.instances[i].log_path)
                )
            }
        }
    }

    /// Starts instance `i` again on its port with the cluster's environment and waits until it
    /// is ready; an instance still running is killed (SIGKILL) first.
    pub async fn restart(&mut self, i: usize) {
        self.start(i).await;
        self.wait_ready(i).await;
    }

    /// Starts instance `i` again on its port with the cluster's environment without waiting
    /// for it to be ready; an instance still running is killed (SIGKILL) first.
    pub async fn start(&mut self, i: usize) {
        if self.instances[i].child.is_some() {
            self.kill(i).await;
        }
        let instance = &mut self.instances[i];
        instance.child = Some(spawn_serve(&self.env, instance.port, &instance.log_path));
    }

    /// Waits until the running instance `i` answers `GET /health/ready` with 200; panics with
    /// its log tail if it exits first or is not ready in 30 s.
    pub async fn wait_ready(&mut self, i: usize) {
        let mut child = self.instances[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("instance {i} is not running"));
        match wait_ready(&self.http, &self.bases[i], &mut child).await {
            Ok(()) => self.instances[i].child = Some(child),
            Err(why) => fail_start(child, why, &self.instances[i].log_path),
        }
    }

    /// Waits up to `limit` for the running instance `i` to exit by itself and returns its exit
    /// status; panics (after SIGKILL) if it is still running then.
    pub async fn wait_exit(&mut self, i: usize, limit: Duration) -> ExitStatus {
        let child = self.child_mut(i);
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => {
                self.instances[i].child = None;
                status.expect("wait for the instance")
            }
            Err(_) => {
                let _ = child.kill().await;
                self.instances[i].child = None;
                panic!("instance {i} still running after {limit:?}")
            }
        }
    }

    /// Runs the binary with `args` (e.g. `["migrate"]`) and the cluster's environment, and
    /// returns its exit status and captured output.
    pub async fn run_cli(&self, args: &[&str]) -> Output {
        command_with_env(&self.env)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run the flashmart binary")
    }

    /// Everything instance `i` has logged so far, over all its (re)starts.
    pub fn log(&self, i: usize) -> String {
        read_log(&self.instances[i].log_path)
    }

    /// `METHOD path` on instance `i` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base(i)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /api/v1/auth/signup` on instance `i`.
    pub async fn signup(&self, i: usize, email: &str, password: &str, name: &str) -> Response {
        let body = json!({"email": email, "password": password, "name": name});
        self.call(i, Method::POST, "/api/v1/auth/signup", None, Some(body))
            .await
    }

    /// `POST /api/v1/auth/login` on instance `i`.
    pub async fn login(&self, i: usize, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        self.call(i, Method::POST, "/api/v1/auth/login", None, Some(body))
            .await
    }

    /// Logs in on instance `i` and returns the access token (asserts 200).
    pub async fn token(&self, i: usize, email: &str, password: &str) -> String {
        let response = self.login(i, email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login on instance {i}");
        json_of(response).await["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned()
    }

    /// Signs up a new user on instance `i` and logs them in there.
    pub async fn new_user(&self, i: usize) -> TestUser {
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self.signup(i, &email, TEST_PASSWORD, "Test User").await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "signup on instance {i}"
        );
        let id = json_of(response).await["userId"].as_i64().expect("userId");
        let token = self.token(i, &email, TEST_PASSWORD).await;
        TestUser { id, email, token }
    }

    /// Makes a new admin on instance `i` (signs up, promotes in the database, logs in again).
    pub async fn new_admin(&self, i: usize) -> TestUser {
        let user = self.new_user(i).await;
        sqlx::query("UPDATE users SET role = 'ADMIN' WHERE id = ?")
            .bind(user.id)
            .execute(&self.db)
            .await
            .expect("promote the user to admin");
        let token = self.token(i, &user.email, TEST_PASSWORD).await;
        TestUser { token, ..user }
    }

    /// `POST /api/v1/admin/products` on instance `i` as `admin`; returns the product id.
    pub async fn create_product(
        &self,
        i: usize,
        admin: &TestUser,
        name: &str,
        price: i64,
        stock: i64,
    ) -> i64 {
        let body = json!({"name": name, "price": price, "stock": stock});
        let response = self
            .call(
                i,
                Method::POST,
                "/api/v1/admin/products",
                Some(&admin.token),
                Some(body),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "create product");
        json_of(response).await["id"].as_i64().expect("id")
    }
}

impl Drop for Cluster {
    /// Kills every instance still running (SIGKILL, not waited for).
    fn drop(&mut self) {
        for instance in &mut self.instances {
            if let Some(child) = instance.child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }
}

impl Cluster {
    /// Bulk-creates `count` users with `flashmart seed --users` and reads their tokens back.
    pub async fn seed_users(&self, count: usize, prefix: &str) -> Vec<TestUser> {
        let file = std::env::temp_dir().join(format!("flashmart-{}-{prefix}.csv", self.prefix));
        let path = file.to_str().expect("the temporary directory is UTF-8");
        let count_arg = count.to_string();
        let seeded = self
            .run_cli(&[
                "seed",
                "--users",
                &count_arg,
                "--user-prefix",
                prefix,
                "--tokens-out",
                path,
            ])
            .await;
        assert!(
            seeded.status.success(),
            "seed --users {count} failed: {}\n{}",
            String::from_utf8_lossy(&seeded.stdout),
            String::from_utf8_lossy(&seeded.stderr)
        );
        let text = std::fs::read_to_string(&file).expect("seed wrote the tokens file");
        std::fs::remove_file(&file).expect("remove the tokens file");
        let users: Vec<TestUser> = text
            .lines()
            .map(|line| {
                let mut fields = line.splitn(3, ',');
                let id = fields.next().expect("a userId field");
                let email = fields.next().expect("an email field");
                let token = fields.next().expect("an accessToken field");
                TestUser {
                    id: id.parse().expect("userId is an integer"),
                    email: email.to_owned(),
                    token: token.to_owned(),
                }
            })
            .collect();
        assert_eq!(users.len(), count, "one token line per seeded user");
        let distinct: HashSet<i64> = users.iter().map(|u| u.id).collect();
        assert_eq!(distinct.len(), count, "seeded users are distinct");
        users
    }
}
