//! Every state-changing script answers a re-send with its first outcome.
//!
//! A proxy between the app and Redis lets the script run, then loses its answer and the
//! connection; fred reconnects and sends the very same command again. The client must get the
//! answer of the first run, and the effect must exist exactly once (in Redis, in MySQL, in the
//! audit).

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::fault_proxy::FaultProxy;
use crate::helpers::{count_for, json_of, spawn_app_with, TestApp, TestUser};

/// An app whose Redis connections all go through a fresh proxy.
async fn app_behind_proxy() -> (TestApp, FaultProxy) {
    let upstream = std::env::var("REDIS_URL").expect("REDIS_URL");
    let proxy = FaultProxy::start(&upstream).await;
    let url = proxy.url.clone();
    let app = spawn_app_with(|env| {
        env.insert("REDIS_URL", url);
    })
    .await;
    (app, proxy)
}

async fn stock_of(app: &TestApp, user: &TestUser, product_id: i64) -> i64 {
    let path = format!("/api/v1/products/{product_id}");
    let response = app.call(Method::GET, &path, Some(&user.token), None).await;
    json_of(response).await["stock"].as_i64().expect("stock")
}

async fn order(app: &TestApp, user: &TestUser, product_id: i64, key: &str) -> reqwest::Response {
    let body = json!({"items": [{"productId": product_id, "quantity": 2}]});
    app.http
        .post(format!("{}/api/v1/orders", app.base))
        .bearer_auth(&user.token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

async fn pay(app: &TestApp, user: &TestUser, order_id: &str, key: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/orders/{order_id}/payment", app.base))
        .bearer_auth(&user.token)
        .header("idempotency-key", key)
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn a_charge_whose_reply_was_lost_is_applied_once() {
    let (app, proxy) = app_behind_proxy().await;
    let user = app.new_user().await;
    let key = format!("charge-{}", uuid::Uuid::new_v4().simple());

    proxy.drop_reply_to(&["EVALSHA", &key]);
    let response = app.charge(&user, json!(7_000), Some(&key)).await;

    assert_eq!(proxy.dropped(), 1, "the first answer was lost");
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_of(response).await;
    assert_eq!(body["balance"], 7_000);
    assert_eq!(body["chargedAmount"], 7_000);
    assert_eq!(app.balance(&user).await, 7_000);
    app.assert_audit_passes().await;
    let charges = count_for(
        &app,
        "SELECT COUNT(*) FROM wallet_charges WHERE user_id = ?",
        user.id,
    );
    assert_eq!(charges.await, 1);
}

#[tokio::test]
async fn a_coupon_issue_whose_reply_was_lost_issues_one_coupon() {
    let (app, proxy) = app_behind_proxy().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let starts = Utc::now() - Duration::minutes(1);
    let campaign = json!({
        "name": "Replay 1000", "discountType": "FIXED", "discountValue": 1000,
        "minOrderAmount": 0, "totalQuantity": 10, "issueStartsAt": starts.to_rfc3339(),
        "issueEndsAt": (starts + Duration::hours(1)).to_rfc3339(), "validDays": 7
    });
    let created = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(campaign),
        )
        .await;
    let coupon_id = json_of(created).await["couponId"].as_i64().expect("id");
    let path = format!("/api/v1/coupons/{coupon_id}/issue");
    // Load the campaign into Redis first, so the trapped call is the deciding one.
    let listed = app
        .call(Method::GET, "/api/v1/coupons", Some(&user.token), None)
        .await;
    assert_eq!(listed.status(), StatusCode::OK);

    proxy.drop_reply_to(&["EVALSHA", &format!(":ucoupon:{coupon_id}:{}", user.id)]);
    let response = app.call(Method::POST, &path, Some(&user.token), None).await;

    assert_eq!(proxy.dropped(), 1, "the first answer was lost");
    assert_eq!(response.status(), StatusCode::CREATED);
    let listed = json_of(
        app.call(Method::GET, "/api/v1/coupons", Some(&user.token), None)
            .await,
    )
    .await;
    assert_eq!(listed["items"][0]["remainingQuantity"], 9);
    app.assert_audit_passes().await;
    let held = count_for(
        &app,
        "SELECT COUNT(*) FROM user_coupons WHERE user_id = ?",
        user.id,
    );
    assert_eq!(held.await, 1);
}

#[tokio::test]
async fn an_order_and_a_payment_whose_replies_were_lost_happen_once() {
    let (app, proxy) = app_behind_proxy().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Replay lamp", 3_000, 10).await;
    assert_eq!(
        app.charge(&user, json!(10_000), None).await.status(),
        StatusCode::OK
    );
    let order_key = format!("order-{}", uuid::Uuid::new_v4().simple());

    proxy.drop_reply_to(&["EVALSHA", &order_key]);
    let response = order(&app, &user, product, &order_key).await;
    assert_eq!(proxy.dropped(), 1, "the order's answer was lost");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = json_of(response).await;
    let order_id = created["orderId"].as_str().expect("orderId").to_owned();
    assert_eq!(stock_of(&app, &user, product).await, 8, "reserved once");

    let pay_key = format!("pay-{}", uuid::Uuid::new_v4().simple());
    proxy.drop_reply_to(&["EVALSHA", &pay_key]);
    let response = pay(&app, &user, &order_id, &pay_key).await;
    assert_eq!(proxy.dropped(), 2, "the payment's answer was lost");
    assert_eq!(response.status(), StatusCode::OK);
    let paid = json_of(response).await;
    assert_eq!(paid["status"], "PAID");
    assert_eq!(paid["balance"], 4_000);
    assert_eq!(app.balance(&user).await, 4_000, "paid once");

    app.assert_audit_passes().await;
    let orders = count_for(
        &app,
        "SELECT COUNT(*) FROM orders WHERE user_id = ?",
        user.id,
    );
    assert_eq!(orders.await, 1);
    let payments = count_for(
        &app,
        "SELECT COUNT(*) FROM payments WHERE user_id = ?",
        user.id,
    );
    assert_eq!(payments.await, 1);
}

#[tokio::test]
async fn a_cancel_whose_reply_was_lost_is_answered_as_cancelled() {
    let (app, proxy) = app_behind_proxy().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Replay chair", 1_000, 5).await;
    let order_key = format!("order-{}", uuid::Uuid::new_v4().simple());
    let created = json_of(order(&app, &user, product, &order_key).await).await;
    let order_id = created["orderId"].as_str().expect("orderId").to_owned();
    assert_eq!(stock_of(&app, &user, product).await, 3);

    proxy.drop_reply_to(&["EVALSHA", &order_id, "cancel"]);
    let path = format!("/api/v1/orders/{order_id}/cancel");
    let response = app.call(Method::POST, &path, Some(&user.token), None).await;

    assert_eq!(proxy.dropped(), 1, "the first answer was lost");
    assert_eq!(response.status(), StatusCode::OK, "the cancel took effect");
    assert_eq!(json_of(response).await["status"], "CANCELLED");
    assert_eq!(stock_of(&app, &user, product).await, 5, "released once");
    app.assert_audit_passes().await;
    let status: (String,) = sqlx::query_as("SELECT status FROM orders WHERE id = ?")
        .bind(&order_id)
        .fetch_one(&app.state.db)
        .await
        .expect("order row");
    assert_eq!(status.0, "CANCELLED");
}
