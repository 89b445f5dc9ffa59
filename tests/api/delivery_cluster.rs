//! Delivery of paid orders to the external data platform, end to end: two real
//! `flashmart serve` processes relay the MySQL outbox to a receiver running inside the test.
//!
//! The receiver plays a flaky platform (500s, answers slower than the relay's timeout) or one
//! that is down (a port reserved but not listening, so every connection is refused). Each test
//! proves at-least-once delivery: every paid order arrives, duplicates share their event id,
//! every request is correctly signed, and `flashmart audit` passes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as HttpStatus};
use axum::routing::post;
use axum::Router;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

use crate::helpers::{wait_for_drain, TestUser};
use crate::instances::{spawn_cluster, Cluster};

/// HMAC key shared by the cluster and the receiver (32 characters).
const SECRET: &str = "delivery-cluster-secret-32-chars";
/// `DELIVERY_TIMEOUT_MS` of the cluster.
const RELAY_TIMEOUT: Duration = Duration::from_millis(300);
/// How long a "slow" answer of the flaky platform takes: twice the relay's timeout.
const SLOW_ANSWER: Duration = Duration::from_millis(600);
/// Signature timestamps further than this from now are refused (as the platform would).
const TOLERANCE_SECS: i64 = 300;
/// Longest a single API request of the test may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The flaky platform never fails one event more than this many times in a row, so the relay's
/// exponential backoff (20 ms doubling) stays within seconds: without a cap, 11 failures in a
/// row (p = 0.4^11 per event, ~1 % per run of 200 events) would push the next try past 90 s.
const MAX_FAILURE_STREAK: u32 = 8;

// ---------------------------------------------------------------------------------------------
// The platform (receiver)
// ---------------------------------------------------------------------------------------------

/// How the platform answers.
#[derive(Clone, Copy, Debug)]
struct Behaviour {
    /// Percentage of requests answered 500.
    fail_pct: u32,
    /// Percentage of requests answered 200 only after [`SLOW_ANSWER`].
    slow_pct: u32,
}

/// What the platform saw.
#[derive(Default, Debug)]
struct Seen {
    /// Every request to `POST /events`.
    requests: usize,
    /// Requests refused with 401: signature missing, wrong or out of tolerance.
    bad_signatures: usize,
    /// Requests refused with 400, with why (body not JSON, ids disagree, wrong type, …).
    malformed: Vec<String>,
    /// Answers given, by status (slow answers counted when decided).
    answers: BTreeMap<u16, usize>,
    /// Valid requests per event id: the `order.orderId` of each (failed ones too).
    requests_by_event: HashMap<String, Vec<String>>,
    /// When each valid request of an event arrived (wall clock, as the relay's `delivered_at`).
    arrivals_by_event: HashMap<String, Vec<chrono::DateTime<chrono::Utc>>>,
    /// Event ids of valid requests per order id (failed ones too).
    events_by_order: HashMap<String, HashSet<String>>,
    /// Accepted (2xx) events: event id → (times accepted, order id). A slow answer counts as
    /// accepted when it is decided: the platform stored the event, the relay never heard.
    accepted: HashMap<String, (u32, String)>,
    /// Prompt 204s per event id (what the relay hears as delivered).
    prompt_accepts: HashMap<String, u32>,
    /// Slow answers decided / actually finished sleeping and answered.
    slow_decided: usize,
    slow_answered: usize,
    /// Consecutive failures (500 or slow) per event id.
    streak: HashMap<String, u32>,
    /// Times [`MAX_FAILURE_STREAK`] forced a success.
    forced_successes: usize,
}

/// The receiver's shared state.
#[derive(Clone)]
struct Platform {
    secret: Arc<Vec<u8>>,
    behaviour: Behaviour,
    rng: Arc<Mutex<StdRng>>,
    seen: Arc<Mutex<Seen>>,
}

/// What the platform decided for one valid request.
enum Verdict {
    Fail,
    Slow,
    Accept,
}

impl Platform {
    fn new(behaviour: Behaviour, seed: u64) -> Self {
        Self {
            secret: Arc::new(SECRET.as_bytes().to_vec()),
            behaviour,
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
            seen: Arc::new(Mutex::new(Seen::default())),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn roll(&self) -> u32 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random_range(0..100)
    }

    /// Checks a request; `Err` is the refusal.
    fn check(&self, headers: &HeaderMap, body: &Bytes) -> Result<(String, String), HttpStatus> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let Ok(text) = std::str::from_utf8(body) else {
            self.seen().malformed.push("body is not UTF-8".to_owned());
            return Err(HttpStatus::BAD_REQUEST);
        };
        let now = chrono::Utc::now().timestamp();
        let signature = header("x-flashmart-signature");
        if !flashmart::delivery::signature::verify(
            &self.secret,
            &signature,
            text,
            now,
            TOLERANCE_SECS,
        ) {
            self.seen().bad_signatures += 1;
            return Err(HttpStatus::UNAUTHORIZED);
        }
        let event_header = header("x-flashmart-event-id");
        let parsed: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.seen()
                    .malformed
                    .push(format!("not JSON ({e}): {text}"));
                return Err(HttpStatus::BAD_REQUEST);
            }
        };
        let problem = if parsed["eventId"].as_str() != Some(event_header.as_str()) {
            Some(format!(
                "eventId {} ≠ header {event_header:?}",
                parsed["eventId"]
            ))
        } else if parsed["type"] != "order.paid" {
            Some(format!("type {}", parsed["type"]))
        } else if !parsed["order"]["orderId"].is_string() {
            Some("no order.orderId".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.seen().malformed.push(format!("{problem}: {text}"));
            return Err(HttpStatus::BAD_REQUEST);
        }
        let order_id = parsed["order"]["orderId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok((event_header, order_id))
    }

    /// Records a valid request and decides its answer.
    fn decide(&self, event_id: &str, order_id: &str) -> Verdict {
        let roll = self.roll();
        let mut seen = self.seen();
        seen.requests_by_event
            .entry(event_id.to_owned())
            .or_default()
            .push(order_id.to_owned());
        seen.arrivals_by_event
            .entry(event_id.to_owned())
            .or_default()
            .push(chrono::Utc::now());
        seen.events_by_order
            .entry(order_id.to_owned())
            .or_default()
            .insert(event_id.to_owned());
        let streak = seen.streak.get(event_id).copied().unwrap_or(0);
        let Behaviour { fail_pct, slow_pct } = self.behaviour;
        let verdict = if streak >= MAX_FAILURE_STREAK {
            seen.forced_successes += 1;
            Verdict::Accept
        } else if roll < fail_pct {
            Verdict::Fail
        } else if roll < fail_pct + slow_pct {
            Verdict::Slow
        } else {
            Verdict::Accept
        };
        match verdict {
            Verdict::Fail => {
                *seen.streak.entry(event_id.to_owned()).or_default() += 1;
                *seen.answers.entry(500).or_default() += 1;
            }
            Verdict::Slow => {
                *seen.streak.entry(event_id.to_owned()).or_default() += 1;
                *seen.answers.entry(200).or_default() += 1;
                seen.slow_decided += 1;
                accept(&mut seen, event_id, order_id);
            }
            Verdict::Accept => {
                seen.streak.insert(event_id.to_owned(), 0);
                *seen.answers.entry(204).or_default() += 1;
                *seen.prompt_accepts.entry(event_id.to_owned()).or_default() += 1;
                accept(&mut seen, event_id, order_id);
            }
        }
        verdict
    }
}

fn accept(seen: &mut Seen, event_id: &str, order_id: &str) {
    let entry = seen
        .accepted
        .entry(event_id.to_owned())
        .or_insert_with(|| (0, order_id.to_owned()));
    entry.0 += 1;
}

async fn receive(State(platform): State<Platform>, headers: HeaderMap, body: Bytes) -> HttpStatus {
    platform.seen().requests += 1;
    let (event_id, order_id) = match platform.check(&headers, &body) {
        Ok(ids) => ids,
        Err(refusal) => {
            *platform.seen().answers.entry(refusal.as_u16()).or_default() += 1;
            return refusal;
        }
    };
    match platform.decide(&event_id, &order_id) {
        Verdict::Fail => HttpStatus::INTERNAL_SERVER_ERROR,
        Verdict::Slow => {
            tokio::time::sleep(SLOW_ANSWER).await;
            platform.seen().slow_answered += 1;
            HttpStatus::OK
        }
        Verdict::Accept => HttpStatus::NO_CONTENT,
    }
}

/// Serves the platform at `POST /events` on `listener` until the handle is aborted.
fn serve_platform(listener: TcpListener, platform: Platform) -> JoinHandle<()> {
    let app = Router::new()
        .route("/events", post(receive))
        .with_state(platform);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the platform serves");
    })
}

/// Aborts the platform's server when dropped (also on a failed assertion).
struct Serving(JoinHandle<()>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Cluster environment pointing the relay at `addr`.
fn delivery_env(env: &mut HashMap<&'static str, String>, addr: SocketAddr) {
    env.insert("EXTERNAL_PLATFORM_URL", format!("http://{addr}/events"));
    env.insert("EXTERNAL_PLATFORM_SECRET", SECRET.to_owned());
    env.insert("DELIVERY_TIMEOUT_MS", RELAY_TIMEOUT.as_millis().to_string());
    env.insert("DELIVERY_BACKOFF_BASE_MS", "20".to_owned());
    env.insert("DELIVERY_MAX_ATTEMPTS", "50".to_owned());
}

// ---------------------------------------------------------------------------------------------
// The shop side: users, charges, orders, payments
// ---------------------------------------------------------------------------------------------

/// `METHOD path` on instance `instance` as `user`; returns status and JSON body.
async fn send(
    cluster: &Cluster,
    instance: usize,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = cluster
        .http
        .request(method, format!("{}{path}", cluster.base(instance)))
        .bearer_auth(&user.token)
        .timeout(REQUEST_TIMEOUT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path} on instance {instance} gets an answer: {e}"));
    let status = response.status();
    let text = response.text().await.expect("the answer's body is read");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"))
    };
    (status, body)
}

/// Seeds `count` users, charges each, and has each order one unit of one product on one
/// instance and pay on the other (alternating), `in_flight` users at a time. Returns the ids of
/// the paid orders as the API answered them.
async fn paid_orders(
    cluster: &Cluster,
    count: usize,
    prefix: &str,
    in_flight: usize,
) -> Vec<String> {
    const PRICE: i64 = 1_000;
    const CHARGE: i64 = 5_000;
    let admin = cluster.new_admin(0).await;
    let product_id = cluster
        .create_product(0, &admin, "Delivered Goods", PRICE, count as i64 + 10)
        .await;
    let users = cluster.seed_users(count, prefix).await;
    let n = cluster.len();
    stream::iter(users.iter().enumerate())
        .map(|(i, user)| async move {
            let (a, b) = (i % n, (i + 1) % n);
            let path = format!("/api/v1/users/{}/balance/charge", user.id);
            let (status, body) = send(
                cluster,
                a,
                Method::POST,
                &path,
                user,
                Some(json!({ "amount": CHARGE })),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "charge: {body}");
            let order = json!({"items": [{"productId": product_id, "quantity": 1}]});
            let (status, body) = send(
                cluster,
                a,
                Method::POST,
                "/api/v1/orders",
                user,
                Some(order),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "order: {body}");
            let order_id = body["orderId"].as_str().expect("orderId").to_owned();
            let path = format!("/api/v1/orders/{order_id}/payment");
            let (status, body) = send(cluster, b, Method::POST, &path, user, None).await;
            assert_eq!(status, StatusCode::OK, "payment: {body}");
            assert_eq!(body["status"], "PAID", "{body}");
            order_id
        })
        .buffer_unordered(in_flight)
        .collect()
        .await
}

// ---------------------------------------------------------------------------------------------
// The outbox
// ---------------------------------------------------------------------------------------------

/// One outbox row.
#[derive(Debug, Clone)]
struct Row {
    event_id: String,
    status: String,
    attempts: i32,
    order_id: String,
    last_error: Option<String>,
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

type RowColumns = (
    String,
    String,
    i32,
    String,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
);

async fn outbox_rows(cluster: &Cluster) -> Vec<Row> {
    let rows: Vec<RowColumns> = sqlx::query_as(
        "SELECT event_id, status, attempts, body, last_error, delivered_at FROM outbox ORDER BY id",
    )
    .fetch_all(&cluster.db)
    .await
    .expect("read the outbox");
    rows.into_iter()
        .map(
            |(event_id, status, attempts, body, last_error, delivered_at)| {
                let body: Value = serde_json::from_str(&body).expect("an outbox body is JSON");
                let order_id = body["order"]["orderId"]
                    .as_str()
                    .expect("body has orderId")
                    .to_owned();
                Row {
                    event_id,
                    status,
                    attempts,
                    order_id,
                    last_error,
                    delivered_at,
                }
            },
        )
        .collect()
}

/// Polls the outbox every 100 ms until `done` holds for its rows; panics after `limit`.
async fn wait_outbox(
    cluster: &Cluster,
    limit: Duration,
    what: &str,
    done: impl Fn(&[Row]) -> bool,
) -> Vec<Row> {
    let started = Instant::now();
    loop {
        let rows = outbox_rows(cluster).await;
        let dead: Vec<&Row> = rows.iter().filter(|r| r.status == "DEAD").collect();
        assert!(dead.is_empty(), "deliveries went DEAD: {dead:?}");
        if done(&rows) {
            return rows;
        }
        if started.elapsed() > limit {
            let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &rows {
                *by_status.entry(r.status.as_str()).or_default() += 1;
            }
            let stuck: Vec<&Row> = rows
                .iter()
                .filter(|r| r.status != "DELIVERED")
                .take(5)
                .collect();
            panic!(
                "{what}: not after {limit:?}; {} rows {by_status:?}; e.g. {stuck:#?}",
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ids of the orders MySQL holds as PAID.
async fn mysql_paid_orders(cluster: &Cluster) -> HashSet<String> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM orders WHERE status = 'PAID'")
        .fetch_all(&cluster.db)
        .await
        .expect("read the paid orders");
    rows.into_iter().map(|(id,)| id).collect()
}

/// Runs `flashmart audit` and asserts it exits 0 printing "audit passed"; returns its output.
async fn assert_cli_audit_passes(cluster: &Cluster) -> String {
    let audit = cluster.run_cli(&["audit"]).await;
    let printed = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert!(
        audit.status.success(),
        "audit exits 0:\n{printed}\n{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(printed.contains("audit passed"), "audit output:\n{printed}");
    printed
}

/// Asserts what both tests require of a finished delivery: every paid order accepted, the
/// accepted events are exactly the outbox's, one event id per order, every outbox row's body
/// names the order the platform saw for that event, and the relay counted every attempt the
/// platform saw.
fn assert_all_delivered(seen: &Seen, rows: &[Row], paid: &HashSet<String>) {
    assert_eq!(seen.bad_signatures, 0, "requests with a bad signature");
    assert!(
        seen.malformed.is_empty(),
        "malformed requests: {:?}",
        seen.malformed
    );

    let accepted_orders: HashSet<&str> = seen.accepted.values().map(|(_, o)| o.as_str()).collect();
    let missing: Vec<&String> = paid
        .iter()
        .filter(|o| !accepted_orders.contains(o.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "paid orders never accepted by the platform: {missing:?}"
    );
    let unpaid: Vec<&&str> = accepted_orders
        .iter()
        .filter(|o| !paid.contains(**o))
        .collect();
    assert!(
        unpaid.is_empty(),
        "the platform accepted orders that are not PAID: {unpaid:?}"
    );

    let outbox_events: HashSet<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        outbox_events.len(),
        rows.len(),
        "outbox event ids are unique"
    );
    let accepted_events: HashSet<&str> = seen.accepted.keys().map(String::as_str).collect();
    assert_eq!(
        accepted_events, outbox_events,
        "accepted event ids = outbox event ids"
    );

    for (order, events) in &seen.events_by_order {
        assert_eq!(
            events.len(),
            1,
            "order {order} arrived under several event ids: {events:?}"
        );
    }
    for row in rows {
        let requests = &seen.requests_by_event[&row.event_id];
        assert!(
            requests.iter().all(|o| *o == row.order_id),
            "event {} carried orders {requests:?}, the outbox says {}",
            row.event_id,
            row.order_id
        );
        assert_eq!(
            seen.accepted[&row.event_id].1, row.order_id,
            "accepted order of event {}",
            row.event_id
        );
        // At least once, not exactly once: a 204 that reaches a relay after its timeout (a busy
        // machine) is rightly retried under the same event id, which the platform de-duplicates.
        let prompt = seen.prompt_accepts.get(&row.event_id).copied().unwrap_or(0);
        assert!(
            prompt >= 1,
            "event {} of a DELIVERED row was never answered 2xx in time: {row:?}",
            row.event_id
        );
        // No attempt after the row was marked DELIVERED (the relay stops at the first 2xx it
        // hears, and no other instance holds the row's lease).
        if let Some(delivered_at) = row.delivered_at {
            let arrivals = &seen.arrivals_by_event[&row.event_id];
            assert!(
                arrivals.iter().all(|at| *at <= delivered_at),
                "event {} was sent again after it was DELIVERED at {delivered_at}: {arrivals:?}",
                row.event_id
            );
        }
        assert!(
            requests.len() <= row.attempts as usize,
            "the platform saw {} requests for {} but the outbox counts {} attempts",
            requests.len(),
            row.event_id,
            row.attempts
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_paid_order_reaches_a_flaky_platform_at_least_once() {
    const ORDERS: usize = 200;
    const IN_FLIGHT: usize = 32;
    let started = Instant::now();
    let platform = Platform::new(
        Behaviour {
            fail_pct: 30,
            slow_pct: 10,
        },
        0x0f1a_5c0d,
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the platform");
    let addr = listener.local_addr().expect("the platform's address");
    let _serving = Serving(serve_platform(listener, platform.clone()));
    let cluster = spawn_cluster(2, |env| delivery_env(env, addr)).await;

    let ordered: HashSet<String> = paid_orders(&cluster, ORDERS, "delivery", IN_FLIGHT)
        .await
        .into_iter()
        .collect();
    let ordering = started.elapsed();
    assert_eq!(ordered.len(), ORDERS, "distinct paid orders");
    wait_for_drain(&cluster.cache).await;
    let paid = mysql_paid_orders(&cluster).await;
    assert_eq!(paid, ordered, "MySQL holds exactly the paid orders as PAID");

    let delivery_started = Instant::now();
    let rows = wait_outbox(
        &cluster,
        Duration::from_secs(90),
        "200 rows all DELIVERED",
        |rows| rows.len() == ORDERS && rows.iter().all(|r| r.status == "DELIVERED"),
    )
    .await;
    let delivering = delivery_started.elapsed();
    // Let slow answers still sleeping finish, so the counts below are final.
    tokio::time::sleep(SLOW_ANSWER + Duration::from_millis(200)).await;

    {
        let seen = platform.seen();
        assert_all_delivered(&seen, &rows, &paid);

        let retried = rows.iter().filter(|r| r.attempts > 1).count();
        let max_attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(0);
        let attempts: i64 = rows.iter().map(|r| i64::from(r.attempts)).sum();
        let valid_requests: usize = seen.requests_by_event.values().map(Vec::len).sum();
        let duplicates = seen.accepted.values().filter(|(n, _)| *n > 1).count();
        let mut attempt_histogram: BTreeMap<i32, usize> = BTreeMap::new();
        for r in &rows {
            *attempt_histogram.entry(r.attempts).or_default() += 1;
        }
        eprintln!(
            "flaky_platform: ordering {ordering:?}, delivering {delivering:?}, total {:?}; \
             {} requests ({valid_requests} valid) for {ORDERS} events, answers {:?}; \
             outbox attempts {attempts} (retried rows {retried}, max {max_attempts}, histogram \
             {attempt_histogram:?}); events accepted more than once {duplicates}; slow answers \
             {} decided / {} finished; forced successes {}",
            started.elapsed(),
            seen.requests,
            seen.answers,
            seen.slow_decided,
            seen.slow_answered,
            seen.forced_successes
        );
        assert!(retried > 0, "some deliveries needed more than one attempt");
        assert!(
            seen.requests > ORDERS,
            "the platform saw retries: {} requests",
            seen.requests
        );
        assert!(
            seen.answers.get(&500).is_some_and(|n| *n > 0),
            "some requests failed with 500"
        );
        assert!(
            seen.slow_decided > 0,
            "some answers were slower than the relay's timeout"
        );
    }

    let audit = assert_cli_audit_passes(&cluster).await;
    assert!(
        audit.contains(&format!("deliveries: {ORDERS} DELIVERED")),
        "audit reports the deliveries:\n{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_wait_while_the_platform_is_down_then_all_arrive() {
    const ORDERS: usize = 20;
    let started = Instant::now();
    // Reserve a port without listening: it stays ours, and every connection to it is refused.
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("reserve a port");
    let addr = socket.local_addr().expect("the reserved address");
    let cluster = spawn_cluster(2, |env| delivery_env(env, addr)).await;
    assert!(
        cluster
            .bases
            .iter()
            .all(|b| !b.ends_with(&format!(":{}", addr.port()))),
        "an instance took the platform's port"
    );

    let ordered: HashSet<String> = paid_orders(&cluster, ORDERS, "down", 4)
        .await
        .into_iter()
        .collect();
    assert_eq!(ordered.len(), ORDERS);
    wait_for_drain(&cluster.cache).await;
    let paid = mysql_paid_orders(&cluster).await;
    assert_eq!(paid, ordered, "MySQL holds exactly the paid orders as PAID");

    let down = wait_outbox(
        &cluster,
        Duration::from_secs(30),
        "every row tried once and its failure recorded",
        |rows| {
            assert!(
                rows.iter().all(|r| r.status == "PENDING"),
                "nothing is delivered while the platform is down: {rows:#?}"
            );
            // An attempt is counted when it is claimed, its error once it has failed.
            rows.len() == ORDERS
                && rows
                    .iter()
                    .all(|r| r.attempts >= 1 && r.last_error.is_some())
        },
    )
    .await;
    let down_for = started.elapsed();
    for row in &down {
        let error = row.last_error.as_deref().unwrap_or("");
        assert!(
            error.starts_with("request failed"),
            "why {} failed: {error:?}",
            row.event_id
        );
    }
    let attempts_down: BTreeMap<i32, usize> = down.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.attempts).or_default() += 1;
        m
    });

    // The platform comes up on that very port.
    let platform = Platform::new(
        Behaviour {
            fail_pct: 0,
            slow_pct: 0,
        },
        7,
    );
    let listener = socket.listen(1024).expect("listen on the reserved port");
    let up_at = Instant::now();
    let _serving = Serving(serve_platform(listener, platform.clone()));
    let rows = wait_outbox(
        &cluster,
        Duration::from_secs(60),
        "all DELIVERED once up",
        |rows| rows.len() == ORDERS && rows.iter().all(|r| r.status == "DELIVERED"),
    )
    .await;
    let catch_up = up_at.elapsed();

    {
        let seen = platform.seen();
        assert_all_delivered(&seen, &rows, &paid);
        for row in &rows {
            let requests = seen.requests_by_event[&row.event_id].len();
            assert_eq!(
                requests, 1,
                "a healthy platform gets each event once: {row:?}"
            );
        }
        assert_eq!(
            seen.requests, ORDERS,
            "one request per event once the platform is up"
        );
        eprintln!(
            "platform_down: first attempts done after {down_for:?} (attempts while down \
             {attempts_down:?}); all {ORDERS} delivered {catch_up:?} after the platform came up; \
             final attempts {:?}; total {:?}",
            rows.iter().map(|r| r.attempts).collect::<Vec<_>>(),
            started.elapsed()
        );
    }
    assert_cli_audit_passes(&cluster).await;
}
