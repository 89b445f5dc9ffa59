//! A dependency that goes away answers 503 with Retry-After, never 500, and the app recovers
//! by itself when it is back.
//!
//! The app's MariaDB and Redis connections go through [`FaultProxy`]s; cutting one resets every
//! open connection (what a `kill -9` or a restart of the server does to its clients) and refuses
//! new ones until it is restored.

use chrono::{Duration, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::json;

use crate::fault_proxy::FaultProxy;
use crate::helpers::{database_server, json_of, spawn_app_with, TestApp, TestUser, TEST_PASSWORD};

/// An app whose database and Redis connections go through their own proxies.
async fn app_behind_proxies() -> (TestApp, FaultProxy, FaultProxy) {
    let redis = FaultProxy::start(&std::env::var("REDIS_URL").expect("REDIS_URL")).await;
    let server = database_server();
    let db = FaultProxy::start_tcp(&server).await;
    let (db_addr, redis_url) = (db.url.clone(), redis.url.clone());
    let app = spawn_app_with(|env| {
        let url = env["DATABASE_URL"].replacen(&server, &db_addr, 1);
        env.insert("DATABASE_URL", url);
        env.insert("REDIS_URL", redis_url);
    })
    .await;
    (app, db, redis)
}

/// Asserts the answer is `503 SERVICE_UNAVAILABLE` with a `Retry-After`.
async fn assert_unavailable(response: Response, what: &str) {
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: no Retry-After");
    assert!(body.contains("SERVICE_UNAVAILABLE"), "{what}: {body}");
}

async fn coupon_for(app: &TestApp, admin: &TestUser, user: &TestUser) -> i64 {
    let starts = Utc::now() - Duration::minutes(1);
    let campaign = json!({
        "name": "Outage 500", "discountType": "FIXED", "discountValue": 500,
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
    let issued = app.call(Method::POST, &path, Some(&user.token), None).await;
    json_of(issued).await["userCouponId"]
        .as_i64()
        .expect("userCouponId")
}

#[tokio::test]
async fn requests_that_need_a_dead_database_get_503_and_work_again_after_it_returns() {
    let (app, db, _redis) = app_behind_proxies().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Outage lamp", 1_000, 10).await;
    let user_coupon = coupon_for(&app, &admin, &user).await;
    let order = json!({"items": [{"productId": product, "quantity": 1}],
        "userCouponId": user_coupon});
    let coupons_path = format!("/api/v1/users/{}/coupons", user.id);

    db.cut();
    let login = app.login(&user.email, TEST_PASSWORD).await;
    assert_unavailable(login, "login").await;
    let products = app.list_products(&user.token, "").await;
    assert_unavailable(products, "product list").await;
    let coupons = app
        .call(Method::GET, &coupons_path, Some(&user.token), None)
        .await;
    assert_unavailable(coupons, "my coupons").await;
    let ordered = app
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(order.clone()),
        )
        .await;
    assert_unavailable(ordered, "order with a coupon").await;
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_unavailable(ready, "readiness").await;

    db.restore();
    let login = app.login(&user.email, TEST_PASSWORD).await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "login after the database returned"
    );
    let ordered = app
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(order),
        )
        .await;
    assert_eq!(
        ordered.status(),
        StatusCode::CREATED,
        "order after the database returned"
    );
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn requests_that_need_a_dead_redis_get_503_and_work_again_after_it_returns() {
    let (app, _db, redis) = app_behind_proxies().await;
    let user = app.new_user().await;
    assert_eq!(
        app.charge(&user, json!(1_000), Some("before"))
            .await
            .status(),
        StatusCode::OK
    );

    redis.cut();
    let charge = app.charge(&user, json!(2_000), Some("during")).await;
    assert_unavailable(charge, "charge").await;
    let ready = app.call(Method::GET, "/health/ready", None, None).await;
    assert_unavailable(ready, "readiness").await;

    redis.restore();
    // The same key again: the outcome of the 503 was unknown to the client, the retry decides.
    let retry = app.charge(&user, json!(2_000), Some("during")).await;
    assert_eq!(
        retry.status(),
        StatusCode::OK,
        "charge after Redis returned"
    );
    assert_eq!(app.balance(&user).await, 3_000, "charged once");
    app.assert_audit_passes().await;
}
