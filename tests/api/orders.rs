//! Orders: reservation, payment, cancellation, expiry, coupons and the order history.

use chrono::{Duration, Utc};
use fred::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, count, json_of, spawn_app, spawn_app_with, wait_for_drain, TestApp, TestUser,
};

async fn order(app: &TestApp, user: &TestUser, body: Value) -> reqwest::Response {
    app.call(
        Method::POST,
        "/api/v1/orders",
        Some(&user.token),
        Some(body),
    )
    .await
}

async fn pay(app: &TestApp, user: &TestUser, order_id: &str) -> reqwest::Response {
    let path = format!("/api/v1/orders/{order_id}/payment");
    app.call(Method::POST, &path, Some(&user.token), None).await
}

async fn stock(app: &TestApp, user: &TestUser, product: i64) -> i64 {
    let path = format!("/api/v1/products/{product}");
    json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await["stock"]
        .as_i64()
        .expect("stock")
}

async fn get_order(app: &TestApp, user: &TestUser, order_id: &str) -> Value {
    let path = format!("/api/v1/orders/{order_id}");
    json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await
}

async fn campaign(
    app: &TestApp,
    admin: &TestUser,
    kind: &str,
    value: i64,
    cap: Option<i64>,
    min: i64,
) -> i64 {
    let starts = Utc::now() - Duration::minutes(1);
    let body = json!({
        "name": format!("{kind} {value}"), "discountType": kind, "discountValue": value,
        "maxDiscount": cap, "minOrderAmount": min, "totalQuantity": 100,
        "issueStartsAt": starts.to_rfc3339(),
        "issueEndsAt": (starts + Duration::hours(1)).to_rfc3339(), "validDays": 7
    });
    let response = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(body),
        )
        .await;
    json_of(response).await["couponId"]
        .as_i64()
        .expect("couponId")
}

async fn take_coupon(app: &TestApp, user: &TestUser, coupon_id: i64) -> i64 {
    let path = format!("/api/v1/coupons/{coupon_id}/issue");
    let response = app.call(Method::POST, &path, Some(&user.token), None).await;
    assert_eq!(response.status(), 201);
    json_of(response).await["userCouponId"]
        .as_i64()
        .expect("userCouponId")
}

async fn coupon_status(app: &TestApp, user: &TestUser) -> String {
    let path = format!("/api/v1/users/{}/coupons", user.id);
    let body = json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await;
    body["items"][0]["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

#[tokio::test]
async fn an_order_reserves_stock_and_payment_settles_balance_and_stock_together() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "Keyboard", 129_000, 5).await;
    let b = app.create_product(&admin, "Mouse", 59_000, 3).await;
    let body = json!({"items": [{"productId": a, "quantity": 2}, {"productId": b, "quantity": 1}]});
    let response = order(&app, &user, body).await;
    assert_eq!(response.status(), 201);
    let created = json_of(response).await;
    let id = created["orderId"].as_str().expect("orderId").to_owned();
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["subtotal"], 317_000);
    assert_eq!(created["discount"], 0);
    assert_eq!(created["total"], 317_000);
    assert_eq!(
        created["items"][0],
        json!({"productId": a, "name": "Keyboard", "unitPrice": 129000, "quantity": 2, "lineTotal": 258000})
    );
    assert!(created["expiresAt"].is_string());
    assert_eq!(
        get_order(&app, &user, &id).await,
        created,
        "the created answer is the order as stored"
    );
    assert_eq!(
        (stock(&app, &user, a).await, stock(&app, &user, b).await),
        (3, 2)
    );

    let short = assert_problem(pay(&app, &user, &id).await, 402, "INSUFFICIENT_BALANCE").await;
    assert_eq!(
        (
            short["required"].as_i64(),
            short["balance"].as_i64(),
            short["shortfall"].as_i64()
        ),
        (Some(317_000), Some(0), Some(317_000))
    );
    assert!(
        short["detail"].as_str().unwrap_or("").contains("charge"),
        "{short}"
    );
    assert_eq!(
        get_order(&app, &user, &id).await["status"],
        "PENDING",
        "nothing changed"
    );

    let _ = app.charge(&user, json!(400_000), None).await;
    let response = pay(&app, &user, &id).await;
    assert_eq!(response.status(), 200);
    let paid = json_of(response).await;
    assert_eq!(
        (
            paid["status"].as_str(),
            paid["amount"].as_i64(),
            paid["balance"].as_i64()
        ),
        (Some("PAID"), Some(317_000), Some(83_000))
    );
    assert_eq!(app.balance(&user).await, 83_000);
    let seen = get_order(&app, &user, &id).await;
    assert_eq!(seen["status"], "PAID");
    assert!(seen["paidAt"].is_string());
    assert_problem(pay(&app, &user, &id).await, 409, "ORDER_NOT_PAYABLE").await;
    assert_eq!(
        (stock(&app, &user, a).await, stock(&app, &user, b).await),
        (3, 2),
        "paid units stay taken"
    );

    app.assert_audit_passes().await;
    let sold: Vec<(i64, i64)> = sqlx::query_as("SELECT id, sold FROM products ORDER BY id")
        .fetch_all(&app.state.db)
        .await
        .expect("sold");
    assert_eq!(sold, vec![(a, 2), (b, 1)]);
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM payments").await,
        1
    );
    assert_eq!(
        count(
            &app.state.db,
            "SELECT balance FROM accounts WHERE code = 'revenue'"
        )
        .await,
        317_000
    );
    let status: (String,) = sqlx::query_as("SELECT status FROM orders WHERE id = ?")
        .bind(&id)
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert_eq!(status.0, "PAID");
}

#[tokio::test]
async fn an_order_with_one_short_line_reserves_nothing() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 1_000, 5).await;
    let b = app.create_product(&admin, "B", 1_000, 1).await;
    let body = json!({"items": [{"productId": a, "quantity": 2}, {"productId": b, "quantity": 2}]});
    let problem = assert_problem(order(&app, &user, body).await, 409, "INSUFFICIENT_STOCK").await;
    assert_eq!(
        (
            problem["productId"].as_i64(),
            problem["requested"].as_i64(),
            problem["available"].as_i64()
        ),
        (Some(b), Some(2), Some(1))
    );
    assert_eq!(
        (stock(&app, &user, a).await, stock(&app, &user, b).await),
        (5, 1)
    );
    app.assert_audit_passes().await;
    assert_eq!(count(&app.state.db, "SELECT COUNT(*) FROM orders").await, 0);
}

#[tokio::test]
async fn bad_order_requests_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 1_000, 500).await;
    let fifty_one: Vec<Value> = (0..51)
        .map(|i| json!({"productId": i + 1, "quantity": 1}))
        .collect();
    let bad = vec![
        json!({"items": []}),
        json!({"items": fifty_one}),
        json!({"items": [{"productId": a, "quantity": 1}, {"productId": a, "quantity": 2}]}),
        json!({"items": [{"productId": a, "quantity": 0}]}),
        json!({"items": [{"productId": a, "quantity": 101}]}),
        json!({"items": [{"productId": -4, "quantity": 1}]}),
        json!({"items": [{"productId": a, "quantity": 1}], "userCouponId": 0}),
    ];
    for body in bad {
        assert_problem(order(&app, &user, body).await, 400, "VALIDATION_FAILED").await;
    }
    let shapes = vec![
        json!({}),
        json!({"items": [{"productId": a}]}),
        json!({"items": [{"productId": a, "quantity": "1"}]}),
        json!({"items": [], "x": 1}),
    ];
    for body in shapes {
        let response = order(&app, &user, body).await;
        assert_eq!(response.status(), 400);
    }
    let missing = json!({"items": [{"productId": 424242, "quantity": 1}]});
    assert_problem(order(&app, &user, missing).await, 404, "PRODUCT_NOT_FOUND").await;
    assert_eq!(stock(&app, &user, a).await, 500);
    for bad_id in ["nope", "12345678-1234-1234-1234-12345678901z"] {
        let path = format!("/api/v1/orders/{bad_id}");
        assert_problem(
            app.call(Method::GET, &path, Some(&user.token), None).await,
            400,
            "VALIDATION_FAILED",
        )
        .await;
    }
    let path = "/api/v1/orders/01900000-0000-7000-8000-000000000000";
    assert_problem(
        app.call(Method::GET, path, Some(&user.token), None).await,
        404,
        "ORDER_NOT_FOUND",
    )
    .await;
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn the_same_idempotency_key_creates_one_order() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 1_000, 10).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = app
            .http
            .post(format!("{}/api/v1/orders", app.base))
            .bearer_auth(&user.token)
            .header("idempotency-key", "order-once")
            .json(&json!({"items": [{"productId": a, "quantity": 4}]}))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201);
        ids.push(
            json_of(response).await["orderId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let other = app
        .http
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&user.token)
        .header("idempotency-key", "order-once")
        .json(&json!({"items": [{"productId": a, "quantity": 1}]}))
        .send()
        .await
        .expect("sent");
    assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!(stock(&app, &user, a).await, 6);
    app.assert_audit_passes().await;
    assert_eq!(count(&app.state.db, "SELECT COUNT(*) FROM orders").await, 1);
}

#[tokio::test]
async fn only_the_owner_or_an_admin_touches_an_order() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let a = app.create_product(&admin, "A", 1_000, 10).await;
    let created = json_of(
        order(
            &app,
            &alice,
            json!({"items": [{"productId": a, "quantity": 1}]}),
        )
        .await,
    )
    .await;
    let id = created["orderId"].as_str().expect("id");
    let _ = app.charge(&bob, json!(10_000), None).await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/orders/{id}")),
        (Method::POST, format!("/api/v1/orders/{id}/payment")),
        (Method::POST, format!("/api/v1/orders/{id}/cancel")),
        (Method::GET, format!("/api/v1/users/{}/orders", alice.id)),
    ] {
        assert_problem(
            app.call(method, &path, Some(&bob.token), None).await,
            403,
            "FORBIDDEN",
        )
        .await;
    }
    assert_eq!(get_order(&app, &admin, id).await["status"], "PENDING");
    assert_eq!(app.balance(&bob).await, 10_000);
    app.assert_audit_passes().await;
}

/// A payment names the order without reading it first (order_pay.lua checks the owner), so the
/// refusals must hold for a stranger whose keys share the owner's bucket, and an admin's
/// payment of someone else's order takes the path that reads it.
#[tokio::test]
async fn a_payment_is_the_owners_even_for_a_stranger_in_the_same_bucket() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_user().await;
    let keys = &app.state.cache.keys;
    let mut stranger = app.new_user().await;
    while keys.of_user(stranger.id) != keys.of_user(alice.id) {
        stranger = app.new_user().await;
    }
    let a = app.create_product(&admin, "A", 1_000, 10).await;
    let _ = app.charge(&alice, json!(5_000), None).await;
    let _ = app.charge(&stranger, json!(5_000), None).await;
    let id = app.order_one(&alice, a, 2).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_problem(pay(&app, &stranger, &id).await, 403, "FORBIDDEN").await;
    assert_eq!(get_order(&app, &alice, &id).await["status"], "PENDING");
    assert_eq!(app.balance(&stranger).await, 5_000);
    assert_eq!(app.balance(&alice).await, 5_000);

    let paid = json_of(pay(&app, &admin, &id).await).await;
    assert_eq!(
        (paid["amount"].as_i64(), paid["balance"].as_i64()),
        (Some(2_000), Some(3_000))
    );
    assert_eq!(app.balance(&alice).await, 3_000, "the owner's balance pays");
    assert_eq!(stock(&app, &alice, a).await, 8);
    assert_problem(pay(&app, &alice, &id).await, 409, "ORDER_NOT_PAYABLE").await;
    app.assert_audit_passes().await;
}

/// A retried payment answers the first outcome even once Redis no longer holds the order.
#[tokio::test]
async fn a_payment_replays_after_the_order_left_redis() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 1_000, 10).await;
    let _ = app.charge(&user, json!(5_000), None).await;
    let id = app.order_one(&user, a, 1).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/orders/{id}/payment");
    let send = || {
        app.http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&user.token)
            .header("idempotency-key", "pay-once")
            .send()
    };
    let first = json_of(send().await.expect("sent")).await;
    let cache = &app.state.cache;
    // Redis lets an ended order go once MySQL holds it.
    wait_for_drain(cache).await;
    let bucket = cache.keys.of_order(&id).expect("bucket");
    let dropped: i64 = cache
        .client()
        .del(cache.keys.order(bucket, &id))
        .await
        .expect("del");
    assert_eq!(dropped, 1);
    let again = json_of(send().await.expect("sent")).await;
    assert_eq!(again, first, "the same payment, not a second one");
    assert_eq!(app.balance(&user).await, 4_000);
    assert_problem(pay(&app, &user, &id).await, 409, "ORDER_NOT_PAYABLE").await;
    assert_eq!(app.balance(&user).await, 4_000);
}

#[tokio::test]
async fn a_coupon_discounts_the_whole_order_and_moves_through_its_states() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 30_000, 10).await;
    let b = app.create_product(&admin, "B", 15_000, 10).await;
    let coupon = campaign(&app, &admin, "PERCENT", 10, Some(4_000), 20_000).await;
    let ucid = take_coupon(&app, &user, coupon).await;
    let body = json!({"items": [{"productId": a, "quantity": 1}, {"productId": b, "quantity": 1}], "userCouponId": ucid});
    let first = json_of(order(&app, &user, body.clone()).await).await;
    assert_eq!(
        (
            first["subtotal"].as_i64(),
            first["discount"].as_i64(),
            first["total"].as_i64()
        ),
        (Some(45_000), Some(4_000), Some(41_000)),
        "10% of 45,000 capped at 4,000"
    );
    let first_id = first["orderId"].as_str().expect("id");
    assert_eq!(
        get_order(&app, &user, first_id).await,
        first,
        "the created answer (coupon included) is the order as stored"
    );
    assert_eq!(coupon_status(&app, &user).await, "RESERVED");
    // The reservation reaches MySQL too (a newer version than the issue), and the audit agrees.
    app.assert_audit_passes().await;
    let reserved: (String,) = sqlx::query_as("SELECT status FROM user_coupons")
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert_eq!(reserved.0, "RESERVED");
    let second = assert_problem(
        order(&app, &user, body.clone()).await,
        422,
        "INVALID_COUPON",
    )
    .await;
    assert_eq!(second["reason"], "NOT_AVAILABLE");

    let path = format!("/api/v1/orders/{first_id}/cancel");
    let cancelled = json_of(app.call(Method::POST, &path, Some(&user.token), None).await).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(coupon_status(&app, &user).await, "AVAILABLE");
    assert_eq!(stock(&app, &user, a).await, 10);
    assert_problem(
        app.call(Method::POST, &path, Some(&user.token), None).await,
        409,
        "ORDER_NOT_CANCELLABLE",
    )
    .await;

    let again = json_of(order(&app, &user, body.clone()).await).await;
    let _ = app.charge(&user, json!(100_000), None).await;
    assert_eq!(
        pay(&app, &user, again["orderId"].as_str().expect("id"))
            .await
            .status(),
        200
    );
    assert_eq!(coupon_status(&app, &user).await, "USED");
    assert_eq!(app.balance(&user).await, 59_000);
    let used = assert_problem(order(&app, &user, body).await, 422, "INVALID_COUPON").await;
    assert_eq!(used["reason"], "NOT_AVAILABLE");
    app.assert_audit_passes().await;
    let row: (String, Option<String>) = sqlx::query_as("SELECT status, order_id FROM user_coupons")
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert_eq!(
        row,
        (
            "USED".to_owned(),
            again["orderId"].as_str().map(str::to_owned)
        )
    );
}

#[tokio::test]
async fn unusable_coupons_are_refused_with_a_reason() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let a = app.create_product(&admin, "A", 10_000, 10).await;
    let fixed = campaign(&app, &admin, "FIXED", 3_000, None, 50_000).await;
    let alices = take_coupon(&app, &alice, fixed).await;
    let line = json!([{"productId": a, "quantity": 1}]);
    let not_yours = assert_problem(
        order(&app, &bob, json!({"items": line, "userCouponId": alices})).await,
        422,
        "INVALID_COUPON",
    )
    .await;
    assert_eq!(not_yours["reason"], "NOT_YOURS");
    let unknown = assert_problem(
        order(&app, &bob, json!({"items": line, "userCouponId": 987654})).await,
        422,
        "INVALID_COUPON",
    )
    .await;
    assert_eq!(unknown["reason"], "NOT_FOUND");
    let below = assert_problem(
        order(&app, &alice, json!({"items": line, "userCouponId": alices})).await,
        422,
        "INVALID_COUPON",
    )
    .await;
    assert_eq!(below["reason"], "BELOW_MINIMUM");
    app.state.clock.advance_ms(8 * 86_400_000);
    let five = json!([{"productId": a, "quantity": 5}]);
    let expired = assert_problem(
        order(&app, &alice, json!({"items": five, "userCouponId": alices})).await,
        422,
        "INVALID_COUPON",
    )
    .await;
    assert_eq!(expired["reason"], "EXPIRED");
    assert_eq!(
        stock(&app, &alice, a).await,
        10,
        "refused orders reserve nothing"
    );
}

#[tokio::test]
async fn an_unpaid_order_expires_and_releases_stock_and_coupon() {
    let app = spawn_app_with(|env| {
        env.insert("ORDER_TTL_SECONDS", "60".into());
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 20_000, 3).await;
    let coupon = campaign(&app, &admin, "FIXED", 5_000, None, 0).await;
    let ucid = take_coupon(&app, &user, coupon).await;
    let created = json_of(
        order(
            &app,
            &user,
            json!({"items": [{"productId": a, "quantity": 3}], "userCouponId": ucid}),
        )
        .await,
    )
    .await;
    let id = created["orderId"].as_str().expect("id").to_owned();
    assert_eq!(stock(&app, &user, a).await, 0);
    let _ = app.charge(&user, json!(100_000), None).await;

    app.state.clock.advance_ms(61_000);
    let started = std::time::Instant::now();
    while get_order(&app, &user, &id).await["status"] == "PENDING" {
        assert!(
            started.elapsed().as_secs() < 10,
            "the sweeper expires the order"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(get_order(&app, &user, &id).await["status"], "EXPIRED");
    assert_eq!(stock(&app, &user, a).await, 3);
    assert_eq!(coupon_status(&app, &user).await, "AVAILABLE");
    let late = assert_problem(pay(&app, &user, &id).await, 409, "ORDER_NOT_PAYABLE").await;
    assert_eq!(late["orderStatus"], "EXPIRED");
    assert_eq!(app.balance(&user).await, 100_000);
    app.assert_audit_passes().await;
    let row: (String,) = sqlx::query_as("SELECT status FROM orders")
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert_eq!(row.0, "EXPIRED");
    let pending = flashmart::cache::orders::pending_count(&app.state.cache)
        .await
        .expect("pending orders");
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn order_history_lists_every_order_once_newest_first_even_before_settlement() {
    let app = spawn_app_with(|env| {
        env.insert("SETTLEMENT_WORKER", "off".into());
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let a = app.create_product(&admin, "A", 1_000, 100).await;
    let _ = app.charge(&user, json!(100_000), None).await;
    let mut created = Vec::new();
    for i in 0..7 {
        let body = json!({"items": [{"productId": a, "quantity": 1}]});
        let id = json_of(order(&app, &user, body).await).await["orderId"]
            .as_str()
            .expect("id")
            .to_owned();
        if i % 2 == 0 {
            assert_eq!(pay(&app, &user, &id).await.status(), 200);
        }
        created.push(id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let pages = history_ids(&app, &user).await;
    let expected: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(pages.0, expected, "no worker yet: served from Redis");
    assert_eq!(pages.1, 3);

    let mut worker = flashmart::settlement::Worker::new(
        app.state.db.clone(),
        app.state.cache.clone(),
        &std::env::var("REDIS_URL").expect("REDIS_URL"),
        app.state.clock.clone(),
        "history-test".into(),
        flashmart::settlement::WorkerConfig {
            block_ms: 50,
            ..Default::default()
        },
    )
    .await
    .expect("worker");
    loop {
        let step = worker.run_once().await.expect("step");
        assert_eq!((step.failed, step.dead_lettered), (0, 0), "{step:?}");
        if step.read == 0 {
            break;
        }
    }
    assert_eq!(count(&app.state.db, "SELECT COUNT(*) FROM orders").await, 7);
    let _: i64 = app
        .state
        .cache
        .client()
        .del(app.state.cache.keys.user_orders(user.id))
        .await
        .expect("del");
    assert_eq!(
        history_ids(&app, &user).await.0,
        expected,
        "after settlement: served from MySQL"
    );
    let first = json_of(
        app.call(
            Method::GET,
            &format!("/api/v1/users/{}/orders?limit=1", user.id),
            Some(&user.token),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(first["items"][0]["status"], "PAID");
    assert_eq!(first["items"][0]["total"], 1_000);
}

async fn history_ids(app: &TestApp, user: &TestUser) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".to_owned(),
        };
        let path = format!("/api/v1/users/{}/orders{query}", user.id);
        let body = json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await;
        for item in body["items"].as_array().expect("items") {
            ids.push(item["orderId"].as_str().expect("id").to_owned());
        }
        pages += 1;
        assert!(pages < 10);
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (ids, pages),
        }
    }
}
