//! Budgets hold across instances: two and three `flashmart serve` processes sharing one Redis
//! accept together what one would (GCRA in `lua/rate_gcra.lua`), not N times as much.

use std::time::Instant;

use reqwest::{Method, Response};
use serde_json::json;

use crate::helpers::{assert_problem, TEST_PASSWORD};
use crate::instances::{spawn_cluster, Cluster};

/// Burst of every budget under test (1 request per second sustained).
const BURST: usize = 4;
/// Login attempts per (account, client) per minute under test.
const LOGIN_PER_MINUTE: usize = 2;

/// One request of a budget, sent from `ip` to instance `i`.
async fn send(
    cluster: &Cluster,
    i: usize,
    ip: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> Response {
    let mut request = cluster
        .http
        .request(method, format!("{}{path}", cluster.base(i)))
        .header("x-forwarded-for", ip)
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

/// Sends `total` requests round-robin over the instances; returns how many passed the limiter
/// (anything but 429) and the seconds it took. Every 429 carries `Retry-After`.
async fn spread<F, Fut>(cluster: &Cluster, total: usize, mut one: F) -> (usize, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    let mut accepted = 0;
    for k in 0..total {
        let response = one(k % cluster.len()).await;
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_problem(response, 429, "RATE_LIMITED").await;
        } else {
            accepted += 1;
        }
    }
    (accepted, started.elapsed().as_secs_f64())
}

/// GCRA's bound: the burst, plus what refilled during the run (1 per second).
fn assert_within(what: &str, accepted: usize, burst: usize, per_second: f64, elapsed: f64) {
    let bound = burst + (elapsed * per_second).ceil() as usize;
    assert!(
        accepted >= burst.min(1) && accepted <= bound,
        "{what}: {accepted} accepted over all instances, budget {burst} + {elapsed:.1} s of refill"
    );
}

/// `fused`: `REDIS_FUSED_CALLS` (`on`: the coupon budget is taken in the issue's own call).
async fn budgets_hold_across(n: usize, fused: &str) {
    let cluster = spawn_cluster(n, |env| {
        env.insert("TRUSTED_PROXIES", "127.0.0.1".into());
        env.insert("REDIS_FUSED_CALLS", fused.into());
        for (rate, burst) in [
            ("COUPON_ISSUE_PER_SECOND", "COUPON_ISSUE_BURST"),
            ("ORDER_RATE_PER_SECOND", "ORDER_RATE_BURST"),
            ("PAYMENT_RATE_PER_SECOND", "PAYMENT_RATE_BURST"),
            ("AUTH_RATE_PER_SECOND", "AUTH_RATE_BURST"),
        ] {
            env.insert(rate, "1".into());
            env.insert(burst, BURST.to_string());
        }
        env.insert("LOGIN_ATTEMPTS_PER_MINUTE", LOGIN_PER_MINUTE.to_string());
    })
    .await;
    // a user made directly in the database and logged in on instance 0 from its own address
    let user = cluster.seed_users(1, "budget").await.remove(0);
    let token = user.token.as_str();
    let total = BURST * n * 2; // twice what each instance alone would accept

    let (accepted, secs) = spread(&cluster, total, |i| {
        send(
            &cluster,
            i,
            "10.0.0.1",
            Method::POST,
            "/api/v1/coupons/999/issue",
            Some(token),
            json!({}),
        )
    })
    .await;
    assert_within("coupon issue", accepted, BURST, 1.0, secs);

    let (accepted, secs) = spread(&cluster, total, |i| {
        let body = json!({"items": [{"productId": 999_999, "quantity": 1}]});
        send(
            &cluster,
            i,
            "10.0.0.1",
            Method::POST,
            "/api/v1/orders",
            Some(token),
            body,
        )
    })
    .await;
    assert_within("orders", accepted, BURST, 1.0, secs);

    // Payments (their budget taken inside the payment's script: an order id of the user's own
    // bucket, not an order) and charges (a route layer) alternate: one budget holds both.
    let charge = format!("/api/v1/users/{}/balance/charge", user.id);
    let pay = format!(
        "/api/v1/orders/{}/payment",
        cluster.cache.keys.new_order_id(user.id)
    );
    let mut sent = 0;
    let (accepted, secs) = spread(&cluster, total, |i| {
        sent += 1;
        let (path, body) = if sent % 2 == 0 {
            (&pay, json!({}))
        } else {
            (&charge, json!({"amount": 1}))
        };
        send(
            &cluster,
            i,
            "10.0.0.1",
            Method::POST,
            path,
            Some(token),
            body,
        )
    })
    .await;
    assert_within("payments and charges", accepted, BURST, 1.0, secs);

    let (accepted, secs) = spread(&cluster, total, |i| {
        let body = json!({"email": "not-an-address", "password": TEST_PASSWORD, "name": "X"});
        send(
            &cluster,
            i,
            "10.0.0.2",
            Method::POST,
            "/api/v1/auth/signup",
            None,
            body,
        )
    })
    .await;
    assert_within("sign-up per IP", accepted, BURST, 1.0, secs);

    let login = json!({"email": user.email, "password": "wrong-password"});
    let (accepted, secs) = spread(&cluster, LOGIN_PER_MINUTE * n * 2, |i| {
        send(
            &cluster,
            i,
            "10.0.0.3",
            Method::POST,
            "/api/v1/auth/login",
            None,
            login.clone(),
        )
    })
    .await;
    assert_within(
        "log-in per account and client",
        accepted,
        LOGIN_PER_MINUTE,
        1.0 / 30.0,
        secs,
    );
}

#[tokio::test]
async fn budgets_hold_across_two_instances() {
    budgets_hold_across(2, "on").await;
}

#[tokio::test]
async fn budgets_hold_across_three_instances_each_step_a_call_of_its_own() {
    budgets_hold_across(3, "off").await;
}
