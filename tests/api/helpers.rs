//! Test harness: spawns the app on port 0 with an isolated database and Redis key prefix, and
//! offers typed helpers per endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;

use axum::routing::get;
use axum::Router;
use flashmart::clock::Clock;
use flashmart::config::Config;
use flashmart::startup::Application;
use flashmart::state::AppState;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

/// Signing key of every test app (tests forge tokens with it).
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// Password of users made by [`TestApp::new_user`].
pub const TEST_PASSWORD: &str = "correct-horse-battery";

/// A running app with its own database and Redis prefix.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// HTTP client (no redirects, no default headers).
    pub http: reqwest::Client,
    /// The app's state (database pool, cache, token keys, clock).
    pub state: AppState,
    /// Name of this test's database.
    #[allow(dead_code)]
    pub db_name: String,
    shutdown: CancellationToken,
    /// Declared last: the app is told to stop before its database is dropped.
    _database: DatabaseGuard,
}

/// A user made for a test, with a valid token.
#[derive(Clone, Debug)]
pub struct TestUser {
    /// Id.
    pub id: i64,
    /// E-mail.
    pub email: String,
    /// Bearer token.
    pub token: String,
}

fn base_database_url() -> String {
    std::env::var("DATABASE_URL").expect("DATABASE_URL must be set: run the tests with `make test`")
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with `make test`")
}

/// Drops its test database when it goes out of scope, unless the test is failing (then the
/// database stays for a look, and its name is printed).
pub struct DatabaseGuard {
    name: String,
}

impl DatabaseGuard {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept its database {}", self.name);
            return;
        }
        let name = std::mem::take(&mut self.name);
        let base = base_database_url();
        // A thread of its own: `drop` cannot await, and the app's last connections live on the
        // test's runtime, which must stay free to close them while DROP waits for their locks.
        // Best effort: a database left behind (the process exited first, a lock wait timed out)
        // costs disk space, never a test result.
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(drop_database(&base, &name));
        });
    }
}

async fn drop_database(base: &str, name: &str) {
    let Ok(options) = MySqlConnectOptions::from_str(base) else {
        return;
    };
    let Ok(mut conn) = options.connect().await else {
        return;
    };
    let _ = sqlx::raw_sql("SET SESSION lock_wait_timeout = 60")
        .execute(&mut conn)
        .await;
    let drop = format!("DROP DATABASE IF EXISTS `{name}`");
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut conn)
        .await;
    conn.close().await.ok();
}

/// Creates a fresh, migrated database and returns its URL and the guard that drops it.
pub async fn fresh_database() -> (String, DatabaseGuard) {
    let base = base_database_url();
    let name = format!("fmtest_{}", uuid::Uuid::new_v4().simple());
    let options = MySqlConnectOptions::from_str(&base).expect("valid DATABASE_URL");
    let mut conn = options.connect().await.expect("connect to the test server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{name}`")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.ok();
    let url = database_url_for(&base, &name);
    let pool = MySqlPool::connect(&url)
        .await
        .expect("connect to the test database");
    flashmart::store::migrate(&pool)
        .await
        .expect("migrate the test database");
    pool.close().await;
    (url, DatabaseGuard { name })
}

fn database_url_for(base: &str, name: &str) -> String {
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    format!("{server}/{name}")
}

/// `host:port` of the test MariaDB, from `DATABASE_URL` (`mysql://user:pass@host:port/db`),
/// for putting a proxy in front of it.
pub fn database_server() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL")
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host.to_owned())
        .expect("DATABASE_URL is mysql://user:pass@host:port/db")
}

/// An HTTP client for tests: no redirects followed, and idle pooled connections dropped after
/// [`CLIENT_POOL_IDLE`].
///
/// The server closes a keep-alive connection idle for `HEADER_READ_TIMEOUT_SECS` (10 s by
/// default, 2 s in one test); a client that keeps it longer can send a request at the instant the
/// server closes it and get a reset. Real clients and load balancers must likewise idle out
/// sooner than the server does (see OPERATIONS.md).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(CLIENT_POOL_IDLE)
        .build()
        .expect("build the HTTP client")
}

/// How long a test client keeps an idle connection: below the shortest header-read timeout any
/// test gives the server.
pub const CLIENT_POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Environment of a test app, as `serve` would read it.
pub fn test_env(database_url: &str, prefix: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", redis_url()),
        ("JWT_SECRET", TEST_JWT_SECRET.to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "off".to_owned()),
        ("REDIS_KEY_PREFIX", prefix.to_owned()),
        ("RATE_LIMIT_PER_SECOND", "100000".to_owned()),
        ("RATE_LIMIT_BURST", "100000".to_owned()),
        ("AUTH_RATE_PER_SECOND", "100000".to_owned()),
        ("AUTH_RATE_BURST", "100000".to_owned()),
        ("ORDER_RATE_PER_SECOND", "100000".to_owned()),
        ("ORDER_RATE_BURST", "100000".to_owned()),
        ("PAYMENT_RATE_PER_SECOND", "100000".to_owned()),
        ("PAYMENT_RATE_BURST", "100000".to_owned()),
        ("DB_MAX_CONNECTIONS", "10".to_owned()),
    ])
}

/// Spawns an app with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns an app whose settlement worker is off, so the streams keep what the scripts append
/// (for tests of the scripts themselves).
pub async fn spawn_app_without_worker() -> TestApp {
    spawn_app_with(|env| {
        env.insert("SETTLEMENT_WORKER", "off".into());
    })
    .await
}

/// Spawns an app after letting the test change its environment.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut HashMap<&'static str, String>)) -> TestApp {
    let (url, database) = fresh_database().await;
    let db_name = database.name().to_owned();
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut env = test_env(&url, &prefix);
    adjust(&mut env);
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("valid test config");
    let panic_route: Router<AppState> = Router::new().route(
        "/api/v1/test/panic",
        get(|| async { panic!("forced") as &'static str }),
    );
    let app = Application::build_with_routes(config, Clock::system(), panic_route)
        .await
        .expect("app builds");
    let addr: SocketAddr = app.local_addr().expect("bound");
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base: format!("http://{addr}"),
        http: http_client(),
        state,
        db_name,
        shutdown,
        _database: database,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// `METHOD path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /api/v1/auth/signup`.
    pub async fn signup(&self, email: &str, password: &str, name: &str) -> Response {
        let body = json!({"email": email, "password": password, "name": name});
        self.call(
            reqwest::Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(body),
        )
        .await
    }

    /// `POST /api/v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        let body = json!({"email": email, "password": password});
        self.call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(body),
        )
        .await
    }

    /// Signs up a new user and logs them in.
    pub async fn new_user(&self) -> TestUser {
        let email = format!("u{}@example.com", uuid::Uuid::new_v4().simple());
        let response = self.signup(&email, TEST_PASSWORD, "Test User").await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let id = json_of(response).await["userId"].as_i64().expect("userId");
        let login = json_of(self.login(&email, TEST_PASSWORD).await).await;
        let token = login["accessToken"].as_str().expect("token").to_owned();
        TestUser { id, email, token }
    }

    /// Makes a new admin (signs up, promotes in the database, logs in again).
    pub async fn new_admin(&self) -> TestUser {
        let user = self.new_user().await;
        sqlx::query("UPDATE users SET role = 'ADMIN' WHERE id = ?")
            .bind(user.id)
            .execute(&self.state.db)
            .await
            .expect("promote");
        let login = json_of(self.login(&user.email, TEST_PASSWORD).await).await;
        let token = login["accessToken"].as_str().expect("token").to_owned();
        TestUser { token, ..user }
    }

    /// `POST /api/v1/admin/products` as an admin; returns the product id.
    pub async fn create_product(
        &self,
        admin: &TestUser,
        name: &str,
        price: i64,
        stock: i64,
    ) -> i64 {
        let body = json!({"name": name, "price": price, "stock": stock});
        let response = self
            .call(
                reqwest::Method::POST,
                "/api/v1/admin/products",
                Some(&admin.token),
                Some(body),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        json_of(response).await["id"].as_i64().expect("id")
    }

    /// `GET /api/v1/products?…`.
    pub async fn list_products(&self, token: &str, query: &str) -> Response {
        self.call(
            reqwest::Method::GET,
            &format!("/api/v1/products{query}"),
            Some(token),
            None,
        )
        .await
    }
}

/// The JSON body of a response.
pub async fn json_of(response: Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts a problem+json answer with this status and code; returns the body.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body = json_of(response).await;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    body
}

/// Waits until the settlement stream is drained (every event applied and acknowledged).
pub async fn wait_for_drain(cache: &flashmart::cache::Cache) {
    let started = std::time::Instant::now();
    loop {
        let lag = flashmart::settlement::stream::lag(cache)
            .await
            .expect("lag");
        if lag.drained() {
            return;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "stream not drained after 30 s: {lag:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl TestApp {
    /// Waits for the worker to drain the stream, then runs the audit and asserts it passed.
    pub async fn assert_audit_passes(&self) -> flashmart::ops::audit::AuditReport {
        wait_for_drain(&self.state.cache).await;
        let wait = std::time::Duration::from_secs(5);
        let report = flashmart::ops::audit::run(&self.state.db, &self.state.cache, wait)
            .await
            .expect("audit runs");
        assert!(report.passed(), "audit failed: {:?}", report.violations);
        report
    }

    /// `POST /api/v1/users/{id}/balance/charge` with an optional idempotency key.
    pub async fn charge(&self, user: &TestUser, amount: Value, key: Option<&str>) -> Response {
        let mut request = self
            .http
            .post(format!(
                "{}/api/v1/users/{}/balance/charge",
                self.base, user.id
            ))
            .bearer_auth(&user.token)
            .json(&json!({ "amount": amount }));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /api/v1/orders` for `quantity` units of one product as `user`; asserts `201` and
    /// returns the created order.
    pub async fn order_one(&self, user: &TestUser, product_id: i64, quantity: i64) -> Value {
        let body = json!({"items": [{"productId": product_id, "quantity": quantity}]});
        let response = self
            .call(
                reqwest::Method::POST,
                "/api/v1/orders",
                Some(&user.token),
                Some(body),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "order created");
        json_of(response).await
    }

    /// `GET /api/v1/users/{id}/balance` as `user`; returns the balance.
    pub async fn balance(&self, user: &TestUser) -> i64 {
        let path = format!("/api/v1/users/{}/balance", user.id);
        let response = self
            .call(reqwest::Method::GET, &path, Some(&user.token), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        json_of(response).await["balance"]
            .as_i64()
            .expect("balance")
    }
}

/// A number of rows from a `SELECT COUNT(*) …` (or any single BIGINT) query.
pub async fn count(db: &MySqlPool, sql: &'static str) -> i64 {
    let row: (i64,) = sqlx::query_as(sql)
        .fetch_one(db)
        .await
        .expect("count query");
    row.0
}

/// A single BIGINT from a query with one `?` bound to `id` (e.g. rows of one user).
pub async fn count_for(app: &TestApp, sql: &'static str, id: i64) -> i64 {
    let row: (i64,) = sqlx::query_as(sql)
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .expect("count query");
    row.0
}

/// Entries in every bucket's settlement stream together.
pub async fn events_len(cache: &flashmart::cache::Cache) -> u64 {
    use fred::prelude::*;
    let mut total = 0;
    for bucket in cache.keys.buckets() {
        let n: u64 = cache
            .client()
            .xlen(cache.keys.events(bucket))
            .await
            .expect("XLEN");
        total += n;
    }
    total
}

/// The one settlement stream of an app started with `REDIS_BUCKETS=1` (tests that inspect one
/// stream's entries, pending lists and trimming).
pub fn only_stream(cache: &flashmart::cache::Cache) -> flashmart::settlement::stream::Stream {
    assert_eq!(
        cache.keys.bucket_count(),
        1,
        "start this app with REDIS_BUCKETS=1"
    );
    flashmart::settlement::stream::Stream::of(&cache.keys, flashmart::cache::keys::Bucket(0))
}
