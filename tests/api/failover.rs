//! Nothing acknowledged is lost when a Redis primary dies: two real `flashmart serve` processes
//! on a private Redis Cluster (3 primaries + 3 replicas, `scripts/cluster.sh`), a `kill -9` of
//! the primary that holds the deployment's keys in the middle of a coupon rush and of a
//! charge + order + pay run, its replica promoted, the killed node brought back (it rejoins as
//! the new primary's replica). Clients retry a 503 as they are told to (with the same
//! `Idempotency-Key` where the API has one); a 500 is a failure.
//!
//! Afterwards every answer a client was given holds in MySQL exactly once — every coupon
//! answered 201 (or "already issued" after a 503) is a row, every charge answered 200 is one
//! ledger charge, every payment answered 200 is one PAID order — stock and money add up, and
//! `flashmart audit` passes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{wait_for_drain, TestUser};
use crate::instances::{spawn_cluster, Cluster};

/// How long one client keeps retrying a 503 before the test calls the outage endless.
const RETRY_BUDGET: Duration = Duration::from_secs(90);
/// Pause between a client's retries (the servers answer `Retry-After: 1`; shorter keeps the
/// test quick and is still a retry storm no worse than a real one).
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Clients in flight at once.
const IN_FLIGHT: usize = 24;

/// A Redis Cluster of this test only, on six free loopback ports; removed when dropped.
struct PrivateRedisCluster {
    base: u16,
    dir: PathBuf,
}

impl PrivateRedisCluster {
    /// Starts six nodes and creates the cluster (about 3 s).
    fn start() -> Self {
        let base = free_base_port();
        let dir = std::env::temp_dir().join(format!(
            "flashmart-cluster-{base}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let cluster = Self { base, dir };
        cluster.script("up");
        cluster
    }

    /// `REDIS_URL` selecting this cluster.
    fn url(&self) -> String {
        self.script("url").trim().to_owned()
    }

    /// `scripts/cluster.sh <command>` for this cluster, not yet run.
    fn command(&self, command: &str) -> Command {
        let mut script = Command::new("bash");
        script
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh"))
            .arg(command)
            .env("FM_CLUSTER_PORT", self.base.to_string())
            .env("FM_CLUSTER_DIR", &self.dir);
        script
    }

    /// Runs `scripts/cluster.sh <command>` for this cluster and returns its stdout.
    fn script(&self, command: &str) -> String {
        let output = self
            .command(command)
            .output()
            .expect("run scripts/cluster.sh");
        assert!(
            output.status.success(),
            "scripts/cluster.sh {command} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `redis-cli -p <port> <args…>` on one node.
    fn cli(port: u16, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The port of the live primary that serves `key`'s slot now, as a live node sees it.
    fn primary_of(&self, key: &str) -> Option<u16> {
        let slot = fred::util::redis_keyslot(key.as_bytes());
        (self.base..self.base + 6).find_map(|port| {
            let nodes = Self::cli(port, &["cluster", "nodes"]);
            nodes.lines().find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = *fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let serves = fields[8..].iter().any(|range| {
                    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                    matches!((lo.parse::<u16>(), hi.parse::<u16>()),
                        (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
                });
                let port = fields[1]
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                serves.then_some(port)
            })
        })
    }

    /// `kill -9` of the node on `port`.
    fn kill_node(&self, port: u16) {
        let info = Self::cli(port, &["info", "server"]);
        let pid = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("process_id:"))
            .expect("INFO server has process_id")
            .to_owned();
        let killed = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success(), "kill -9 {pid} (node {port})");
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        let _ = self.command("down").output();
    }
}

/// Bases handed out in this process: two tests starting at once never get the same one.
static NEXT_BASE: AtomicUsize = AtomicUsize::new(0);

/// A first port such that the six node ports and their bus ports (+10000) are free now, never
/// one already handed to another test of this process.
fn free_base_port() -> u16 {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let seed = (std::process::id() % 97) as usize * 40;
    (0..400)
        .map(|_| NEXT_BASE.fetch_add(1, Ordering::SeqCst))
        .map(|n| 21000 + ((seed + n * 10) % 4000) as u16)
        .find(|&base| (base..base + 6).all(|p| free(p) && free(p + 10000)))
        .expect("six free loopback ports for a Redis Cluster")
}

/// Kills the primary of the deployment's keys once `started` requests have been answered,
/// waits for its replica to be promoted, and brings the killed node back as a replica. Returns
/// how many requests had been answered when the kill happened.
async fn kill_primary_when(
    redis: Arc<PrivateRedisCluster>,
    prefix: String,
    answered: Arc<AtomicUsize>,
    after: usize,
) -> (usize, u16, u16) {
    while answered.load(Ordering::SeqCst) < after {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let key = format!("{{{prefix}}}:events");
    tokio::task::spawn_blocking(move || {
        let old = redis.primary_of(&key).expect("a primary serves the keys");
        let at = answered.load(Ordering::SeqCst);
        redis.kill_node(old);
        let deadline = Instant::now() + Duration::from_secs(60);
        let new = loop {
            match redis.primary_of(&key) {
                Some(port) if port != old => break port,
                _ if Instant::now() > deadline => panic!("no replica was promoted in 60 s"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        // The shop has no redundancy until the node is back: every decision answers 503 then
        // (one replica per primary, REDIS_MIN_REPLICA_ACKS=1), which is the safe answer.
        redis.script("up");
        (at, old, new)
    })
    .await
    .expect("the killer task")
}

/// Every status answered so far, by code.
type Seen = std::sync::Mutex<BTreeMap<u16, usize>>;

/// The answer counter, the status tally and the task that kills the keys' primary once
/// `after` answers are in (see [`kill_primary_when`]).
fn arm_killer(
    redis: &Arc<PrivateRedisCluster>,
    cluster: &Cluster,
    after: usize,
) -> (
    Arc<AtomicUsize>,
    Seen,
    tokio::task::JoinHandle<(usize, u16, u16)>,
) {
    let answered = Arc::new(AtomicUsize::new(0));
    let killer = tokio::spawn(kill_primary_when(
        redis.clone(),
        cluster.prefix.clone(),
        answered.clone(),
        after,
    ));
    (answered, Seen::default(), killer)
}

/// One API call of one shopper.
struct Call<'a> {
    method: Method,
    path: String,
    body: Option<Value>,
    /// `Idempotency-Key`, kept for every retry.
    idempotency_key: Option<String>,
    user: &'a TestUser,
}

/// One call retried while it answers 503 (or the connection fails); every status seen is
/// counted in `seen`. Returns the final status and body.
async fn until_definitive(
    cluster: &Cluster,
    instance: usize,
    call: Call<'_>,
    seen: &Seen,
) -> (u16, Value) {
    let Call {
        method,
        path,
        body,
        idempotency_key,
        user,
    } = call;
    let deadline = Instant::now() + RETRY_BUDGET;
    let mut attempt = 0usize;
    loop {
        // Alternate instances on retries, as a load balancer would.
        let i = (instance + attempt) % cluster.len();
        attempt += 1;
        let mut request = cluster
            .http
            .request(method.clone(), format!("{}{path}", cluster.base(i)))
            .bearer_auth(&user.token)
            .timeout(Duration::from_secs(30));
        if let Some(key) = &idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let status = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                *seen.lock().expect("tally").entry(status).or_default() += 1;
                if status != 503 {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    return (status, body);
                }
                status
            }
            Err(_) => 0,
        };
        assert!(
            Instant::now() < deadline,
            "{method} {path} still answered {status} after {RETRY_BUDGET:?}"
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Two instances on `redis`, with budgets that let the run through.
async fn instances_on(redis: &PrivateRedisCluster) -> Cluster {
    let url = redis.url();
    spawn_cluster(2, |env| {
        env.insert("REDIS_URL", url);
        env.insert("REDIS_REPLICA_ACK_TIMEOUT_MS", "1000".to_owned());
        env.insert("COUPON_ISSUE_PER_SECOND", "100".to_owned());
        env.insert("COUPON_ISSUE_BURST", "100".to_owned());
    })
    .await
}

async fn assert_audit_passes(cluster: &Cluster) {
    let audit = cluster.run_cli(&["audit"]).await;
    assert!(
        audit.status.success(),
        "audit failed after the failover:\n{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}

fn no_server_errors(seen: &Seen) -> BTreeMap<u16, usize> {
    let seen = seen.lock().expect("tally").clone();
    let errors: Vec<_> = seen
        .iter()
        .filter(|(s, _)| **s >= 500 && **s != 503)
        .collect();
    assert!(
        errors.is_empty(),
        "server errors during the failover: {seen:?}"
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_coupons_survive_a_killed_primary() {
    let redis = Arc::new(PrivateRedisCluster::start());
    let cluster = instances_on(&redis).await;
    let admin = cluster.new_admin(0).await;
    let total = 120i64;
    let now = Utc::now();
    let created = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(json!({
                "name": "Failover rush",
                "discountType": "FIXED",
                "discountValue": 1000,
                "totalQuantity": total,
                "issueStartsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "issueEndsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
                "validDays": 7
            })),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let coupon_id = crate::helpers::json_of(created).await["couponId"]
        .as_i64()
        .expect("couponId");
    let users = cluster.seed_users(240, "focoupon").await;

    let (answered, seen, killer) = arm_killer(&redis, &cluster, 40);
    let path = format!("/api/v1/coupons/{coupon_id}/issue");
    let finals: Vec<(i64, u16, Value)> = stream::iter(users.iter().enumerate())
        .map(|(n, user)| {
            let (cluster, path, seen, answered) = (&cluster, &path, &seen, answered.clone());
            async move {
                let call = Call {
                    method: Method::POST,
                    path: path.clone(),
                    body: None,
                    idempotency_key: None,
                    user,
                };
                let (status, body) = until_definitive(cluster, n % 2, call, seen).await;
                answered.fetch_add(1, Ordering::SeqCst);
                (user.id, status, body)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let (killed_at, old, new) = killer.await.expect("killer");
    let seen = no_server_errors(&seen);
    println!(
        "coupon rush: primary {old} killed after {killed_at} of {} answers, {new} promoted; \
         statuses seen {seen:?}",
        users.len()
    );
    assert!(
        killed_at < users.len(),
        "the primary died in the middle of the rush"
    );

    // Who was told they hold a coupon: 201 (with its id), or "already issued" after a 503
    // whose decision stood.
    let mut issued: HashMap<i64, i64> = HashMap::new();
    let mut already = Vec::new();
    for (user_id, status, body) in &finals {
        match (*status, body["code"].as_str()) {
            (201, _) => {
                issued.insert(*user_id, body["userCouponId"].as_i64().expect("id"));
            }
            (409, Some("COUPON_ALREADY_ISSUED")) => already.push(*user_id),
            (410, Some("COUPON_SOLD_OUT")) => {}
            other => panic!("user {user_id}: unexpected final answer {other:?}: {body}"),
        }
    }
    let holders = issued.len() + already.len();
    assert_eq!(
        holders as i64,
        total,
        "every coupon ends with a user who was told so ({} issued, {} already issued)",
        issued.len(),
        already.len()
    );

    wait_for_drain(&cluster.cache).await;
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT user_id, id FROM user_coupons WHERE coupon_id = ?")
            .bind(coupon_id)
            .fetch_all(&cluster.db)
            .await
            .expect("read user_coupons");
    let in_mysql: HashMap<i64, i64> = rows.into_iter().collect();
    assert_eq!(
        in_mysql.len() as i64,
        total,
        "MySQL holds exactly the campaign's quantity"
    );
    for (user, coupon) in &issued {
        assert_eq!(
            in_mysql.get(user),
            Some(coupon),
            "user {user} was answered 201 with coupon {coupon}"
        );
    }
    for user in &already {
        assert!(
            in_mysql.contains_key(user),
            "user {user} was told they hold one"
        );
    }
    assert_audit_passes(&cluster).await;
}

/// What one shopper was told, step by step.
#[derive(Debug, Default)]
struct Shopper {
    charged: bool,
    order: Option<String>,
    paid: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_charges_and_payments_survive_a_killed_primary() {
    let redis = Arc::new(PrivateRedisCluster::start());
    let cluster = instances_on(&redis).await;
    let admin = cluster.new_admin(0).await;
    let (price, stock, charge) = (10_000i64, 60i64, 25_000i64);
    let product = cluster
        .create_product(0, &admin, "Failover gadget", price, stock)
        .await;
    let users = cluster.seed_users(90, "fopay").await;

    let (answered, seen, killer) = arm_killer(&redis, &cluster, 60);
    let shoppers: Vec<(i64, Shopper)> = stream::iter(users.iter().enumerate())
        .map(|(n, user)| {
            let (cluster, seen, answered) = (&cluster, &seen, answered.clone());
            async move {
                let mut told = Shopper::default();
                let step = |method: Method, path: String, body: Option<Value>, key: String| {
                    let answered = answered.clone();
                    async move {
                        let call = Call {
                            method,
                            path,
                            body,
                            idempotency_key: Some(key),
                            user,
                        };
                        let answer = until_definitive(cluster, n % 2, call, seen).await;
                        answered.fetch_add(1, Ordering::SeqCst);
                        answer
                    }
                };
                let (status, body) = step(
                    Method::POST,
                    format!("/api/v1/users/{}/balance/charge", user.id),
                    Some(json!({"amount": charge})),
                    format!("charge-{}", user.id),
                )
                .await;
                assert_eq!(status, 200, "charge: {body}");
                told.charged = true;
                let (status, body) = step(
                    Method::POST,
                    "/api/v1/orders".to_owned(),
                    Some(json!({"items": [{"productId": product, "quantity": 1}]})),
                    format!("order-{}", user.id),
                )
                .await;
                match (status, body["code"].as_str()) {
                    (201, _) => told.order = body["orderId"].as_str().map(str::to_owned),
                    (409, Some("INSUFFICIENT_STOCK")) => return (user.id, told),
                    other => panic!("order: {other:?} {body}"),
                }
                let order = told.order.clone().expect("order id");
                let (status, body) = step(
                    Method::POST,
                    format!("/api/v1/orders/{order}/payment"),
                    None,
                    format!("pay-{}", user.id),
                )
                .await;
                assert_eq!(status, 200, "payment of {order}: {body}");
                told.paid = true;
                (user.id, told)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let (killed_at, old, new) = killer.await.expect("killer");
    let seen = no_server_errors(&seen);
    println!(
        "charge + order + pay: primary {old} killed after {killed_at} answers, {new} promoted; \
         statuses seen {seen:?}"
    );
    assert!(
        killed_at < 3 * users.len(),
        "the primary died in the middle of the run"
    );
    let paid: Vec<&String> = shoppers
        .iter()
        .filter(|(_, s)| s.paid)
        .filter_map(|(_, s)| s.order.as_ref())
        .collect();
    assert_eq!(
        paid.len() as i64,
        stock,
        "every unit was sold to a shopper who was told so"
    );

    wait_for_drain(&cluster.cache).await;
    for (user_id, told) in &shoppers {
        assert!(told.charged);
        let (charges, credited): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(amount) AS SIGNED) FROM wallet_charges WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_one(&cluster.db)
        .await
        .expect("read wallet_charges");
        assert_eq!(
            (charges, credited),
            (1, Some(charge)),
            "user {user_id}: one charge"
        );
        let balance: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE code = ?")
            .bind(format!("user:{user_id}"))
            .fetch_one(&cluster.db)
            .await
            .expect("read the user's ledger account");
        let spent = if told.paid { price } else { 0 };
        assert_eq!(balance, charge - spent, "user {user_id}'s balance in MySQL");
    }
    for order in &paid {
        let (status, payments): (String, i64) = sqlx::query_as(
            "SELECT o.status, (SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id) \
             FROM orders o WHERE o.id = ?",
        )
        .bind(order.as_str())
        .fetch_one(&cluster.db)
        .await
        .expect("read the order");
        assert_eq!((status.as_str(), payments), ("PAID", 1), "order {order}");
    }
    let sold: i64 = sqlx::query_scalar("SELECT sold FROM products WHERE id = ?")
        .bind(product)
        .fetch_one(&cluster.db)
        .await
        .expect("read the product");
    assert_eq!(sold, stock, "MySQL sold exactly the stock");
    assert_audit_passes(&cluster).await;
}
