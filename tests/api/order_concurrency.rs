//! Orders under concurrency on two real `flashmart serve` processes sharing one Redis and one
//! database: a flash sale never oversells and conserves money, a payment is taken once however
//! often it is retried, and a payment racing the expiry sweeper or a cancel has exactly one
//! winner. Every test ends with the settlement drained and `flashmart audit` passing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{count, wait_for_drain, TestUser};
use crate::instances::{spawn_cluster, Cluster};

/// Longest a single request may take before the test calls it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A whole HTTP answer: status, content type and JSON body.
#[derive(Debug, Clone)]
struct Reply {
    /// HTTP status.
    status: StatusCode,
    /// `content-type` header.
    content_type: String,
    /// The JSON body (`Value::Null` when empty).
    body: Value,
}

impl Reply {
    /// Asserts a problem+json answer with this status and code; returns the body.
    fn problem(&self, status: StatusCode, code: &str) -> &Value {
        assert_eq!(self.status, status, "status of {}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "a {status} is problem+json: {}",
            self.body
        );
        assert_eq!(self.body["code"], code, "problem code: {}", self.body);
        assert_eq!(
            self.body["status"],
            status.as_u16(),
            "problem status: {}",
            self.body
        );
        &self.body
    }

    /// The `code` of a problem answer, or "" for a success.
    fn code(&self) -> String {
        self.body["code"].as_str().unwrap_or_default().to_owned()
    }
}

/// `METHOD path` on instance `instance` as `user`, with an optional body and idempotency key.
async fn send(
    cluster: &Cluster,
    instance: usize,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
    key: Option<&str>,
) -> Reply {
    let mut request = cluster
        .http
        .request(method, format!("{}{path}", cluster.base(instance)))
        .bearer_auth(&user.token)
        .timeout(REQUEST_TIMEOUT);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path} on instance {instance} gets an answer: {e}"));
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("the answer's body is read");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"))
    };
    Reply {
        status,
        content_type,
        body,
    }
}

/// `POST /api/v1/users/{id}/balance/charge`; asserts 200 and returns the balance after.
async fn charge(cluster: &Cluster, instance: usize, user: &TestUser, amount: i64) -> i64 {
    let path = format!("/api/v1/users/{}/balance/charge", user.id);
    let body = Some(json!({ "amount": amount }));
    let reply = send(cluster, instance, Method::POST, &path, user, body, None).await;
    assert_eq!(reply.status, StatusCode::OK, "charge: {}", reply.body);
    assert_eq!(reply.body["chargedAmount"], amount, "{}", reply.body);
    reply.body["balance"]
        .as_i64()
        .expect("a charge answers the balance")
}

/// `GET /api/v1/users/{id}/balance` on instance `instance`.
async fn balance(cluster: &Cluster, instance: usize, user: &TestUser) -> i64 {
    let path = format!("/api/v1/users/{}/balance", user.id);
    let reply = send(cluster, instance, Method::GET, &path, user, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "balance: {}", reply.body);
    reply.body["balance"].as_i64().expect("balance")
}

/// `POST /api/v1/orders` for `quantity` units of one product.
async fn create_order(
    cluster: &Cluster,
    instance: usize,
    user: &TestUser,
    product_id: i64,
    quantity: i64,
) -> Reply {
    let body = json!({"items": [{"productId": product_id, "quantity": quantity}]});
    send(
        cluster,
        instance,
        Method::POST,
        "/api/v1/orders",
        user,
        Some(body),
        None,
    )
    .await
}

/// Creates an order of one unit and asserts `201 PENDING` at `price`; returns the order id.
async fn create_pending(
    cluster: &Cluster,
    instance: usize,
    user: &TestUser,
    product_id: i64,
    price: i64,
) -> String {
    let reply = create_order(cluster, instance, user, product_id, 1).await;
    assert_eq!(reply.status, StatusCode::CREATED, "order: {}", reply.body);
    assert_pending_order(&reply.body, product_id, price);
    reply.body["orderId"]
        .as_str()
        .expect("a new order carries orderId")
        .to_owned()
}

/// Asserts a freshly created order of one unit of `product_id` at `price`.
fn assert_pending_order(body: &Value, product_id: i64, price: i64) {
    assert_eq!(body["status"], "PENDING", "{body}");
    assert_eq!(body["items"][0]["productId"], product_id, "{body}");
    assert_eq!(body["items"][0]["quantity"], 1, "{body}");
    assert_eq!(body["items"][0]["unitPrice"], price, "{body}");
    assert_eq!(body["total"], price, "{body}");
}

/// `POST /api/v1/orders/{id}/payment` with an optional idempotency key.
async fn pay(
    cluster: &Cluster,
    instance: usize,
    user: &TestUser,
    order_id: &str,
    key: Option<&str>,
) -> Reply {
    let path = format!("/api/v1/orders/{order_id}/payment");
    send(cluster, instance, Method::POST, &path, user, None, key).await
}

/// Asserts a `200` payment of `order_id` for `amount` leaving `balance`.
fn assert_paid(reply: &Reply, order_id: &str, amount: i64, balance: i64) {
    assert_eq!(reply.status, StatusCode::OK, "payment: {}", reply.body);
    assert_eq!(reply.body["orderId"], order_id, "{}", reply.body);
    assert_eq!(reply.body["status"], "PAID", "{}", reply.body);
    assert_eq!(reply.body["amount"], amount, "{}", reply.body);
    assert_eq!(reply.body["balance"], balance, "{}", reply.body);
    assert!(reply.body["paymentId"].is_string(), "{}", reply.body);
    assert!(reply.body["paidAt"].is_string(), "{}", reply.body);
}

/// `POST /api/v1/orders/{id}/cancel`.
async fn cancel(cluster: &Cluster, instance: usize, user: &TestUser, order_id: &str) -> Reply {
    let path = format!("/api/v1/orders/{order_id}/cancel");
    send(cluster, instance, Method::POST, &path, user, None, None).await
}

/// `GET /api/v1/orders/{id}` on instance `instance`; returns its status.
async fn order_status(
    cluster: &Cluster,
    instance: usize,
    user: &TestUser,
    order_id: &str,
) -> String {
    let path = format!("/api/v1/orders/{order_id}");
    let reply = send(cluster, instance, Method::GET, &path, user, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "order: {}", reply.body);
    reply.body["status"]
        .as_str()
        .expect("an order has a status")
        .to_owned()
}

/// Polls the order until it shows `wanted` (panics after 10 s).
async fn wait_for_status(
    cluster: &Cluster,
    instance: usize,
    user: &TestUser,
    order_id: &str,
    wanted: &str,
) {
    let started = Instant::now();
    loop {
        let status = order_status(cluster, instance, user, order_id).await;
        if status == wanted {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "order {order_id} still {status}, not {wanted}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/v1/products/{id}` on instance `instance`; returns its stock.
async fn api_stock(cluster: &Cluster, instance: usize, user: &TestUser, product_id: i64) -> i64 {
    let path = format!("/api/v1/products/{product_id}");
    let reply = send(cluster, instance, Method::GET, &path, user, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "product: {}", reply.body);
    reply.body["stock"].as_i64().expect("a product has stock")
}

/// The product's available units as Redis holds them.
async fn redis_stock(cluster: &Cluster, product_id: i64) -> i64 {
    flashmart::cache::stock::available(&cluster.cache, &[product_id])
        .await
        .expect("read the stock from Redis")[0]
        .expect("Redis holds the product's stock")
}

/// `(stock_total, sold)` of a product in MySQL.
async fn mysql_product(cluster: &Cluster, product_id: i64) -> (i64, i64) {
    sqlx::query_as("SELECT stock_total, sold FROM products WHERE id = ?")
        .bind(product_id)
        .fetch_one(&cluster.db)
        .await
        .expect("read the product row")
}

/// The balance of a ledger account in MySQL (0 if it has no row).
async fn mysql_account(cluster: &Cluster, code: &str) -> i64 {
    let row: Option<(i64,)> = sqlx::query_as("SELECT balance FROM accounts WHERE code = ?")
        .bind(code)
        .fetch_optional(&cluster.db)
        .await
        .expect("read the account");
    row.map_or(0, |(balance,)| balance)
}

/// Every user account in MySQL: user id → balance.
async fn mysql_user_balances(cluster: &Cluster) -> HashMap<i64, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, balance FROM accounts WHERE code LIKE 'user:%'")
            .fetch_all(&cluster.db)
            .await
            .expect("read the user accounts");
    rows.into_iter()
        .map(|(code, balance)| {
            let id = code
                .strip_prefix("user:")
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("a user account code: {code}"));
            (id, balance)
        })
        .collect()
}

/// Status of every order in MySQL: order id → status.
async fn mysql_order_statuses(cluster: &Cluster) -> HashMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM orders")
        .fetch_all(&cluster.db)
        .await
        .expect("read the orders");
    rows.into_iter().collect()
}

/// Sum of every charge recorded in MySQL.
async fn mysql_charged(cluster: &Cluster) -> i64 {
    let (sum,): (Option<i64>,) =
        sqlx::query_as("SELECT CAST(SUM(amount) AS SIGNED) FROM wallet_charges")
            .fetch_one(&cluster.db)
            .await
            .expect("sum the charges");
    sum.unwrap_or(0)
}

/// Pending orders in Redis (the deadlines zset).
async fn redis_pending(cluster: &Cluster) -> i64 {
    flashmart::cache::orders::pending_count(&cluster.cache)
        .await
        .expect("count pending orders in Redis")
}

/// Runs `flashmart audit` and asserts it exits 0 printing "audit passed".
async fn assert_cli_audit_passes(cluster: &Cluster) {
    let audit = cluster.run_cli(&["audit"]).await;
    let printed = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "audit exits 0:\n{printed}\n{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(printed.contains("audit passed"), "audit output:\n{printed}");
}

/// Charges every user `amount`, `in_flight` at a time, alternating instances.
async fn charge_all(cluster: &Cluster, users: &[TestUser], amount: i64, in_flight: usize) {
    let balances: Vec<i64> = stream::iter(users.iter().enumerate())
        .map(|(i, user)| charge(cluster, i % cluster.len(), user, amount))
        .buffer_unordered(in_flight)
        .collect()
        .await;
    assert!(
        balances.iter().all(|b| *b == amount),
        "every fresh user's balance is the charge"
    );
}

/// What one user of the flash sale got: the order answer and, for a 201, the payment answer.
struct Attempt {
    /// The user.
    user_id: i64,
    /// `POST /api/v1/orders`.
    order: Reply,
    /// `POST /api/v1/orders/{id}/payment`, if the order was created.
    payment: Option<Reply>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_oversell_across_two_instances() {
    const USERS: usize = 1_000;
    const STOCK: i64 = 100;
    const PRICE: i64 = 1_000;
    const CHARGE: i64 = 5_000;
    const IN_FLIGHT: usize = 200;
    let started = Instant::now();
    let cluster = spawn_cluster(2, |_| {}).await;
    let admin = cluster.new_admin(0).await;
    let product_id = cluster
        .create_product(0, &admin, "Flash Deal", PRICE, STOCK)
        .await;
    let users = cluster.seed_users(USERS, "oversell").await;
    charge_all(&cluster, &users, CHARGE, IN_FLIGHT).await;
    let ready = started.elapsed();

    // Every user orders one unit on one instance and pays on the other.
    let rush_started = Instant::now();
    let attempts: Vec<Attempt> = stream::iter(users.iter().enumerate())
        .map(|(i, user)| {
            let cluster = &cluster;
            async move {
                let order = create_order(cluster, i % 2, user, product_id, 1).await;
                let payment = if order.status == StatusCode::CREATED {
                    let id = order.body["orderId"].as_str().expect("orderId");
                    Some(pay(cluster, (i + 1) % 2, user, id, None).await)
                } else {
                    None
                };
                Attempt {
                    user_id: user.id,
                    order,
                    payment,
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let rush = rush_started.elapsed();

    let mut tally: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for a in &attempts {
        *tally
            .entry((a.order.status.as_u16(), a.order.code()))
            .or_default() += 1;
    }
    eprintln!(
        "no_oversell: setup {ready:?}, {USERS} order+pay attempts in {rush:?}; \
         orders answered {tally:?}"
    );
    let winners: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.order.status == StatusCode::CREATED)
        .collect();
    assert_eq!(
        winners.len(),
        100,
        "exactly the stock is ordered: {tally:?}"
    );
    let mut winner_ids = HashSet::new();
    for a in &winners {
        assert_pending_order(&a.order.body, product_id, PRICE);
        let id = a.order.body["orderId"].as_str().expect("orderId");
        let payment = a.payment.as_ref().expect("a created order was paid");
        assert_paid(payment, id, PRICE, CHARGE - PRICE);
        winner_ids.insert(a.user_id);
    }
    for a in attempts
        .iter()
        .filter(|a| a.order.status != StatusCode::CREATED)
    {
        let body = a.order.problem(StatusCode::CONFLICT, "INSUFFICIENT_STOCK");
        assert_eq!(body["productId"], product_id, "{body}");
        assert_eq!(body["requested"], 1, "{body}");
        assert_eq!(body["available"], 0, "{body}");
        assert!(a.payment.is_none());
    }
    let paid = winners
        .iter()
        .filter(|a| {
            a.payment
                .as_ref()
                .is_some_and(|p| p.status == StatusCode::OK)
        })
        .count();
    assert_eq!(paid, 100, "every created order was paid");

    for instance in 0..2 {
        assert_eq!(
            api_stock(&cluster, instance, &admin, product_id).await,
            0,
            "GET /products/{product_id} on instance {instance}"
        );
    }

    let drain_started = Instant::now();
    wait_for_drain(&cluster.cache).await;
    let drain = drain_started.elapsed();
    let (stock_total, sold) = mysql_product(&cluster, product_id).await;
    assert_eq!(
        (stock_total, sold),
        (STOCK, 100),
        "MySQL (stock_total, sold)"
    );
    assert_eq!(redis_stock(&cluster, product_id).await, 0, "Redis stock");
    assert_eq!(redis_pending(&cluster).await, 0, "no pending orders left");

    let expected: HashMap<i64, i64> = users
        .iter()
        .map(|u| {
            let spent = if winner_ids.contains(&u.id) { PRICE } else { 0 };
            (u.id, CHARGE - spent)
        })
        .collect();
    let stored = mysql_user_balances(&cluster).await;
    assert_eq!(stored, expected, "MySQL user accounts");
    let revenue = mysql_account(&cluster, "revenue").await;
    assert_eq!(revenue, 100 * PRICE, "revenue");
    let charged = mysql_charged(&cluster).await;
    assert_eq!(charged, CHARGE * USERS as i64, "every charge recorded");
    assert_eq!(
        stored.values().sum::<i64>() + revenue,
        charged,
        "money is conserved"
    );
    assert_eq!(mysql_account(&cluster, "cash_in").await, -charged);
    let db = &cluster.db;
    assert_eq!(count(db, "SELECT COUNT(*) FROM payments").await, 100);
    assert_eq!(count(db, "SELECT COUNT(*) FROM orders").await, 100);
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM orders WHERE status = 'PAID'").await,
        100
    );
    assert_cli_audit_passes(&cluster).await;
    eprintln!(
        "no_oversell: drained in {drain:?}; total {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_payment_charges_once() {
    const PRICE: i64 = 7_000;
    const CHARGE: i64 = 50_000;
    const RACERS: usize = 10;
    let cluster = spawn_cluster(2, |_| {}).await;
    let admin = cluster.new_admin(0).await;
    let product_id = cluster
        .create_product(0, &admin, "Double Pay", PRICE, 10)
        .await;
    let user = cluster.new_user(1).await;
    assert_eq!(charge(&cluster, 0, &user, CHARGE).await, CHARGE);

    // The same key twice, one after the other, on different instances.
    let first = create_pending(&cluster, 0, &user, product_id, PRICE).await;
    let once = pay(&cluster, 0, &user, &first, Some("pay-first")).await;
    assert_paid(&once, &first, PRICE, CHARGE - PRICE);
    let again = pay(&cluster, 1, &user, &first, Some("pay-first")).await;
    assert_eq!(again.status, StatusCode::OK, "a replay: {}", again.body);
    assert_eq!(again.body, once.body, "a replay answers the first outcome");
    let other_key = pay(&cluster, 1, &user, &first, Some("pay-first-b")).await;
    let body = other_key.problem(StatusCode::CONFLICT, "ORDER_NOT_PAYABLE");
    assert_eq!(body["orderStatus"], "PAID", "{body}");
    for instance in 0..2 {
        assert_eq!(balance(&cluster, instance, &user).await, CHARGE - PRICE);
    }

    // The same key ten times at once, over both instances: one payment, ten equal answers.
    let second = create_pending(&cluster, 1, &user, product_id, PRICE).await;
    let same_key: Vec<Reply> =
        join_all((0..RACERS).map(|i| pay(&cluster, i % 2, &user, &second, Some("pay-second"))))
            .await;
    assert_paid(&same_key[0], &second, PRICE, CHARGE - 2 * PRICE);
    for reply in &same_key {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body, same_key[0].body, "one outcome per key");
    }
    for instance in 0..2 {
        assert_eq!(balance(&cluster, instance, &user).await, CHARGE - 2 * PRICE);
    }

    // Ten different keys at once, over both instances: one wins, nine are refused.
    let third = create_pending(&cluster, 0, &user, product_id, PRICE).await;
    let keys: Vec<String> = (0..RACERS).map(|i| format!("pay-third-{i}")).collect();
    let racing: Vec<Reply> = join_all(
        keys.iter()
            .enumerate()
            .map(|(i, key)| pay(&cluster, i % 2, &user, &third, Some(key))),
    )
    .await;
    let winners: Vec<&Reply> = racing
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    let codes: Vec<(u16, String)> = racing
        .iter()
        .map(|r| (r.status.as_u16(), r.code()))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one payment wins: {codes:?}");
    assert_paid(winners[0], &third, PRICE, CHARGE - 3 * PRICE);
    for reply in racing.iter().filter(|r| r.status != StatusCode::OK) {
        let body = reply.problem(StatusCode::CONFLICT, "ORDER_NOT_PAYABLE");
        assert_eq!(body["orderStatus"], "PAID", "{body}");
    }
    for instance in 0..2 {
        assert_eq!(balance(&cluster, instance, &user).await, CHARGE - 3 * PRICE);
        for order in [&first, &second, &third] {
            assert_eq!(order_status(&cluster, instance, &user, order).await, "PAID");
        }
    }

    wait_for_drain(&cluster.cache).await;
    let user_code = format!("user:{}", user.id);
    assert_eq!(
        mysql_account(&cluster, &user_code).await,
        CHARGE - 3 * PRICE
    );
    assert_eq!(mysql_account(&cluster, "revenue").await, 3 * PRICE);
    let db = &cluster.db;
    assert_eq!(count(db, "SELECT COUNT(*) FROM payments").await, 3);
    assert_eq!(
        count(db, "SELECT CAST(SUM(amount) AS SIGNED) FROM payments").await,
        3 * PRICE
    );
    assert_eq!(mysql_product(&cluster, product_id).await, (10, 3));
    assert_eq!(redis_stock(&cluster, product_id).await, 7);
    assert_cli_audit_passes(&cluster).await;
}

/// How one round of a race ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Winner {
    /// The payment won: the order is PAID.
    Payment,
    /// The sweeper (or a cancel) won: the order ended unpaid.
    Release,
}

/// One round of the pay-versus-expire race.
#[derive(Debug)]
struct ExpiryRound {
    /// The round's user.
    user: TestUser,
    /// The round's product (one unit in stock).
    product_id: i64,
    /// The order.
    order_id: String,
    /// How long after the order was answered the payment was sent.
    delay: Duration,
    /// Who won.
    winner: Winner,
}

/// Creates an order, sleeps `delay`, pays, and asserts the answer is one of the two clean
/// outcomes; waits until the order shows that outcome.
async fn pay_near_deadline(
    cluster: &Cluster,
    round: usize,
    user: &TestUser,
    product_id: i64,
    delay: Duration,
) -> ExpiryRound {
    const PRICE: i64 = 1_000;
    const CHARGE: i64 = 10_000;
    let (orders_on, pays_on) = (round % 2, (round + 1) % 2);
    let order_id = create_pending(cluster, orders_on, user, product_id, PRICE).await;
    tokio::time::sleep(delay).await;
    let reply = pay(cluster, pays_on, user, &order_id, Some("pay")).await;
    let winner = if reply.status == StatusCode::OK {
        assert_paid(&reply, &order_id, PRICE, CHARGE - PRICE);
        let status = order_status(cluster, orders_on, user, &order_id).await;
        assert_eq!(status, "PAID", "round {round}: a paid order is PAID");
        Winner::Payment
    } else {
        let body = reply.problem(StatusCode::CONFLICT, "ORDER_NOT_PAYABLE");
        assert_eq!(body["orderStatus"], "EXPIRED", "round {round}: {body}");
        wait_for_status(cluster, orders_on, user, &order_id, "EXPIRED").await;
        Winner::Release
    };
    ExpiryRound {
        user: user.clone(),
        product_id,
        order_id,
        delay,
        winner,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_versus_expire_race_has_exactly_one_winner() {
    const ROUNDS: usize = 40;
    const PRICE: i64 = 1_000;
    const CHARGE: i64 = 10_000;
    /// Rounds running at once (each round has its own user and product).
    const IN_FLIGHT: usize = 8;
    let started = Instant::now();
    let cluster = spawn_cluster(2, |env| {
        env.insert("ORDER_TTL_SECONDS", "1".to_owned());
    })
    .await;
    let admin = cluster.new_admin(0).await;
    let mut products = Vec::with_capacity(ROUNDS);
    for r in 0..ROUNDS {
        let name = format!("Expiring {r}");
        products.push(cluster.create_product(r % 2, &admin, &name, PRICE, 1).await);
    }
    let users = cluster.seed_users(ROUNDS, "expiry").await;
    charge_all(&cluster, &users, CHARGE, IN_FLIGHT).await;

    // Delays from 800 ms to 1,200 ms around the 1 s deadline.
    let rounds: Vec<ExpiryRound> = stream::iter(0..ROUNDS)
        .map(|r| {
            let delay = Duration::from_millis(800 + (400 * r / (ROUNDS - 1)) as u64);
            pay_near_deadline(&cluster, r, &users[r], products[r], delay)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;

    let mut by_delay: BTreeMap<u128, Winner> = BTreeMap::new();
    for round in &rounds {
        by_delay.insert(round.delay.as_millis(), round.winner);
    }
    let paid = rounds
        .iter()
        .filter(|r| r.winner == Winner::Payment)
        .count();
    let expired = ROUNDS - paid;
    eprintln!(
        "pay_versus_expire: {paid} paid, {expired} expired in {:?}; by delay (ms): {by_delay:?}",
        started.elapsed()
    );
    assert!(
        paid > 0 && expired > 0,
        "both outcomes occur across delays of 800-1200 ms: {by_delay:?}"
    );

    // Never both: the final state of every round is its outcome, seen from both instances.
    for round in &rounds {
        let (stock, money, status) = match round.winner {
            Winner::Payment => (0, CHARGE - PRICE, "PAID"),
            Winner::Release => (1, CHARGE, "EXPIRED"),
        };
        for instance in 0..2 {
            let seen = order_status(&cluster, instance, &round.user, &round.order_id).await;
            assert_eq!(seen, status, "{round:?}");
            let held = balance(&cluster, instance, &round.user).await;
            assert_eq!(held, money, "{round:?}");
        }
        assert_eq!(
            redis_stock(&cluster, round.product_id).await,
            stock,
            "{round:?}"
        );
    }
    assert_eq!(redis_pending(&cluster).await, 0, "no pending orders left");

    wait_for_drain(&cluster.cache).await;
    let statuses = mysql_order_statuses(&cluster).await;
    assert_eq!(statuses.len(), ROUNDS, "one MySQL order per round");
    let balances = mysql_user_balances(&cluster).await;
    for round in &rounds {
        let (sold, money, status) = match round.winner {
            Winner::Payment => (1, CHARGE - PRICE, "PAID"),
            Winner::Release => (0, CHARGE, "EXPIRED"),
        };
        assert_eq!(statuses[&round.order_id], status, "MySQL {round:?}");
        assert_eq!(balances[&round.user.id], money, "MySQL {round:?}");
        let (stock_total, stored_sold) = mysql_product(&cluster, round.product_id).await;
        assert_eq!((stock_total, stored_sold), (1, sold), "MySQL {round:?}");
        assert_eq!(
            redis_stock(&cluster, round.product_id).await,
            stock_total - stored_sold,
            "Redis stock = stock_total - paid units: {round:?}"
        );
    }
    let db = &cluster.db;
    let payments = count(db, "SELECT COUNT(*) FROM payments").await;
    assert_eq!(payments, paid as i64);
    assert_eq!(
        mysql_account(&cluster, "revenue").await,
        PRICE * paid as i64
    );
    assert_cli_audit_passes(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancel_and_pay_have_exactly_one_winner() {
    const ROUNDS: usize = 20;
    const PRICE: i64 = 2_000;
    const CHARGE: i64 = 100_000;
    let started = Instant::now();
    let cluster = spawn_cluster(2, |_| {}).await;
    let admin = cluster.new_admin(0).await;
    let stock = ROUNDS as i64;
    let product_id = cluster
        .create_product(1, &admin, "Cancel Or Pay", PRICE, stock)
        .await;
    let user = cluster.new_user(0).await;
    assert_eq!(charge(&cluster, 1, &user, CHARGE).await, CHARGE);

    let mut outcomes: Vec<(String, Winner)> = Vec::with_capacity(ROUNDS);
    let mut paid: i64 = 0;
    for r in 0..ROUNDS {
        let (a, b) = (r % 2, (r + 1) % 2);
        let order_id = create_pending(&cluster, a, &user, product_id, PRICE).await;
        // Alternate which request is sent first.
        let (cancelled, payment) = if r % 2 == 0 {
            tokio::join!(
                cancel(&cluster, a, &user, &order_id),
                pay(&cluster, b, &user, &order_id, None)
            )
        } else {
            let (payment, cancelled) = tokio::join!(
                pay(&cluster, b, &user, &order_id, None),
                cancel(&cluster, a, &user, &order_id)
            );
            (cancelled, payment)
        };
        let winner = match (cancelled.status, payment.status) {
            (StatusCode::OK, _) => {
                assert_eq!(cancelled.body["status"], "CANCELLED", "{}", cancelled.body);
                assert_eq!(cancelled.body["orderId"], order_id.as_str());
                let body = payment.problem(StatusCode::CONFLICT, "ORDER_NOT_PAYABLE");
                assert_eq!(body["orderStatus"], "CANCELLED", "round {r}: {body}");
                Winner::Release
            }
            (_, StatusCode::OK) => {
                paid += 1;
                assert_paid(&payment, &order_id, PRICE, CHARGE - paid * PRICE);
                let body = cancelled.problem(StatusCode::CONFLICT, "ORDER_NOT_CANCELLABLE");
                assert_eq!(body["orderStatus"], "PAID", "round {r}: {body}");
                Winner::Payment
            }
            _ => panic!(
                "round {r}: neither won: cancel {} {}, pay {} {}",
                cancelled.status, cancelled.body, payment.status, payment.body
            ),
        };
        let status = match winner {
            Winner::Payment => "PAID",
            Winner::Release => "CANCELLED",
        };
        for instance in 0..2 {
            let seen = order_status(&cluster, instance, &user, &order_id).await;
            assert_eq!(seen, status, "round {r}");
            assert_eq!(
                balance(&cluster, instance, &user).await,
                CHARGE - paid * PRICE
            );
        }
        assert_eq!(
            redis_stock(&cluster, product_id).await,
            stock - paid,
            "round {r}"
        );
        outcomes.push((order_id, winner));
    }
    let cancelled = ROUNDS as i64 - paid;
    eprintln!(
        "cancel_and_pay: {paid} paid, {cancelled} cancelled in {:?}",
        started.elapsed()
    );

    assert_eq!(redis_pending(&cluster).await, 0, "no pending orders left");
    wait_for_drain(&cluster.cache).await;
    let statuses = mysql_order_statuses(&cluster).await;
    assert_eq!(statuses.len(), ROUNDS, "one MySQL order per round");
    for (order_id, winner) in &outcomes {
        let status = match winner {
            Winner::Payment => "PAID",
            Winner::Release => "CANCELLED",
        };
        assert_eq!(statuses[order_id], status, "MySQL order {order_id}");
    }
    assert_eq!(mysql_product(&cluster, product_id).await, (stock, paid));
    assert_eq!(redis_stock(&cluster, product_id).await, stock - paid);
    let user_code = format!("user:{}", user.id);
    assert_eq!(
        mysql_account(&cluster, &user_code).await,
        CHARGE - paid * PRICE
    );
    assert_eq!(mysql_account(&cluster, "revenue").await, paid * PRICE);
    assert_eq!(
        count(&cluster.db, "SELECT COUNT(*) FROM payments").await,
        paid
    );
    assert_cli_audit_passes(&cluster).await;
}
