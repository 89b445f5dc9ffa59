//! A refused order costs Redis only the calls that change something: a product bucket that
//! answered "not enough stock" holds nothing of the order, so nothing is released there, while
//! a bucket that did hold gives its units back (measured on a real `flashmart serve` process
//! through its `lua_script_calls_total` metric).

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of};
use crate::instances::{counter_total, spawn_one_with_metrics, Cluster};

/// `stock_settle.lua` calls the instance has made so far.
async fn settle_calls(http: &reqwest::Client, metrics: &str) -> u64 {
    counter_total(
        http,
        metrics,
        "lua_script_calls_total",
        "script=\"stock_settle.lua\"",
    )
    .await
}

async fn stock(cluster: &Cluster, token: &str, product: i64) -> i64 {
    let path = format!("/api/v1/products/{product}");
    let read = cluster.call(0, Method::GET, &path, Some(token), None).await;
    json_of(read).await["stock"].as_i64().expect("stock")
}

async fn order(cluster: &Cluster, token: &str, body: Value) -> reqwest::Response {
    cluster
        .call(0, Method::POST, "/api/v1/orders", Some(token), Some(body))
        .await
}

#[tokio::test]
async fn a_refused_order_releases_only_the_buckets_that_held() {
    let (cluster, metrics) = spawn_one_with_metrics().await;
    let user = cluster.seed_users(1, "refusals").await.remove(0);
    let admin = cluster.new_admin(0).await;
    let a = cluster.create_product(0, &admin, "A", 1_000, 5).await;
    let b = cluster.create_product(0, &admin, "B", 1_000, 5).await;
    let token = user.token.as_str();
    // Loads both products' stock into Redis (a hold may load it once more otherwise).
    let warm = json!({"items": [{"productId": a, "quantity": 1}, {"productId": b, "quantity": 1}]});
    let warm = json_of(order(&cluster, token, warm).await).await;
    let warm_id = warm["orderId"].as_str().expect("an order").to_owned();
    let cancel = format!("/api/v1/orders/{warm_id}/cancel");
    let cancelled = cluster
        .call(0, Method::POST, &cancel, Some(token), None)
        .await;
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        (
            stock(&cluster, token, a).await,
            stock(&cluster, token, b).await
        ),
        (5, 5)
    );

    // One short line: nothing was held, nothing is released.
    let before = settle_calls(&cluster.http, &metrics).await;
    let short = json!({"items": [{"productId": a, "quantity": 6}]});
    assert_problem(
        order(&cluster, token, short).await,
        409,
        "INSUFFICIENT_STOCK",
    )
    .await;
    assert_eq!(settle_calls(&cluster.http, &metrics).await - before, 0);
    assert_eq!(stock(&cluster, token, a).await, 5);

    // One line held, the other short: the held bucket gives its unit back, in one call.
    let before = settle_calls(&cluster.http, &metrics).await;
    let mixed =
        json!({"items": [{"productId": a, "quantity": 1}, {"productId": b, "quantity": 6}]});
    let problem = assert_problem(
        order(&cluster, token, mixed).await,
        409,
        "INSUFFICIENT_STOCK",
    )
    .await;
    assert_eq!(problem["productId"].as_i64(), Some(b));
    assert_eq!(settle_calls(&cluster.http, &metrics).await - before, 1);
    assert_eq!(
        (
            stock(&cluster, token, a).await,
            stock(&cluster, token, b).await
        ),
        (5, 5)
    );

    // Every unit is there to sell.
    let all = json!({"items": [{"productId": a, "quantity": 5}, {"productId": b, "quantity": 5}]});
    assert_eq!(order(&cluster, token, all).await.status(), 201);
}
