//! First-come coupons: campaigns, issue decisions, a user's coupons, throttling.

use chrono::{Duration, Utc};
use fred::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, count, json_of, spawn_app, spawn_app_with, TestApp, TestUser,
};

fn campaign(total: i64, starts_in_secs: i64, lasts_secs: i64) -> Value {
    let starts = Utc::now() + Duration::seconds(starts_in_secs);
    json!({
        "name": "Flash 10%",
        "discountType": "PERCENT",
        "discountValue": 10,
        "maxDiscount": 5000,
        "minOrderAmount": 10000,
        "totalQuantity": total,
        "issueStartsAt": starts.to_rfc3339(),
        "issueEndsAt": (starts + Duration::seconds(lasts_secs)).to_rfc3339(),
        "validDays": 7
    })
}

async fn create_campaign(app: &TestApp, admin: &TestUser, body: Value) -> i64 {
    let response = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(body),
        )
        .await;
    assert_eq!(response.status(), 201);
    json_of(response).await["couponId"]
        .as_i64()
        .expect("couponId")
}

async fn issue(app: &TestApp, user: &TestUser, coupon_id: i64) -> reqwest::Response {
    let path = format!("/api/v1/coupons/{coupon_id}/issue");
    app.call(Method::POST, &path, Some(&user.token), None).await
}

#[tokio::test]
async fn a_user_gets_one_coupon_and_sees_it_as_available() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let id = create_campaign(&app, &admin, campaign(10, -60, 3600)).await;

    let listed = json_of(
        app.call(Method::GET, "/api/v1/coupons", Some(&user.token), None)
            .await,
    )
    .await;
    assert_eq!(listed["items"][0]["couponId"], id);
    assert_eq!(listed["items"][0]["remainingQuantity"], 10);
    assert_eq!(listed["items"][0]["discountType"], "PERCENT");

    let response = issue(&app, &user, id).await;
    assert_eq!(response.status(), 201);
    let issued = json_of(response).await;
    assert_eq!(issued["couponId"], id);
    assert_eq!(issued["status"], "AVAILABLE");
    let expires: chrono::DateTime<Utc> = issued["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("rfc3339");
    let expected = Utc::now() + Duration::days(7);
    assert!(
        (expires - expected).num_seconds().abs() < 60,
        "expires in 7 days: {expires}"
    );

    assert_problem(issue(&app, &user, id).await, 409, "COUPON_ALREADY_ISSUED").await;
    let listed = json_of(
        app.call(Method::GET, "/api/v1/coupons", Some(&user.token), None)
            .await,
    )
    .await;
    assert_eq!(listed["items"][0]["remainingQuantity"], 9);

    let path = format!("/api/v1/users/{}/coupons", user.id);
    let mine = json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await;
    assert_eq!(mine["items"].as_array().expect("items").len(), 1);
    assert_eq!(mine["items"][0]["userCouponId"], issued["userCouponId"]);
    assert_eq!(mine["items"][0]["name"], "Flash 10%");
    assert_eq!(mine["items"][0]["status"], "AVAILABLE");

    app.assert_audit_passes().await;
    let row: (i64, i64, String) = sqlx::query_as("SELECT id, user_id, status FROM user_coupons")
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert_eq!(
        row,
        (
            issued["userCouponId"].as_i64().expect("id"),
            user.id,
            "AVAILABLE".into()
        )
    );
}

#[tokio::test]
async fn a_user_holding_coupons_of_three_campaigns_sees_all_three_in_issue_order() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let mut issued = Vec::new();
    for _ in 0..3 {
        let id = create_campaign(&app, &admin, campaign(5, -60, 3600)).await;
        let response = issue(&app, &user, id).await;
        assert_eq!(response.status(), 201);
        issued.push(json_of(response).await["userCouponId"].clone());
    }
    let path = format!("/api/v1/users/{}/coupons", user.id);
    let mine = json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await;
    let ids: Vec<_> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["userCouponId"].clone())
        .collect();
    assert_eq!(ids, issued, "every held coupon, oldest first");
    let other = app.new_user().await;
    let path = format!("/api/v1/users/{}/coupons", other.id);
    let none = json_of(app.call(Method::GET, &path, Some(&other.token), None).await).await;
    assert_eq!(none["items"].as_array().expect("items").len(), 0);
}

#[tokio::test]
async fn when_the_quantity_is_gone_the_first_come_event_is_over() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = create_campaign(&app, &admin, campaign(2, -60, 3600)).await;
    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(app.new_user().await);
    }
    assert_eq!(issue(&app, &users[0], id).await.status(), 201);
    assert_eq!(issue(&app, &users[1], id).await.status(), 201);
    let over = assert_problem(issue(&app, &users[2], id).await, 410, "COUPON_SOLD_OUT").await;
    assert!(
        over["detail"]
            .as_str()
            .unwrap_or("")
            .contains("first-come event is over"),
        "{over}"
    );
    let listed = json_of(
        app.call(Method::GET, "/api/v1/coupons", Some(&admin.token), None)
            .await,
    )
    .await;
    assert_eq!(listed["items"][0]["remainingQuantity"], 0);
    app.assert_audit_passes().await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM user_coupons").await,
        2
    );
}

#[tokio::test]
async fn outside_the_issue_window_nothing_is_issued() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let future = create_campaign(&app, &admin, campaign(5, 3600, 3600)).await;
    let past = create_campaign(&app, &admin, campaign(5, -7200, 3600)).await;
    assert_problem(issue(&app, &user, future).await, 409, "COUPON_NOT_ACTIVE").await;
    assert_problem(issue(&app, &user, past).await, 409, "COUPON_NOT_ACTIVE").await;
    assert_problem(issue(&app, &user, 999_999).await, 404, "COUPON_NOT_FOUND").await;
    app.assert_audit_passes().await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM user_coupons").await,
        0
    );
    for id in [future, past] {
        let issued: i64 = app
            .state
            .cache
            .client()
            .hget(app.state.cache.keys.coupon(id), "issued")
            .await
            .expect("hget");
        assert_eq!(issued, 0);
    }
}

#[tokio::test]
async fn an_issued_coupon_shows_expired_after_its_validity() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let id = create_campaign(&app, &admin, campaign(5, -60, 3600)).await;
    assert_eq!(issue(&app, &user, id).await.status(), 201);
    app.state.clock.advance_ms(8 * 86_400_000);
    let path = format!("/api/v1/users/{}/coupons", user.id);
    let mine = json_of(app.call(Method::GET, &path, Some(&user.token), None).await).await;
    assert_eq!(mine["items"][0]["status"], "EXPIRED");
}

#[tokio::test]
async fn coupon_lists_are_private_and_campaigns_admin_only() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let path = format!("/api/v1/users/{}/coupons", alice.id);
    assert_problem(
        app.call(Method::GET, &path, Some(&bob.token), None).await,
        403,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(
        app.call(Method::GET, &path, Some(&admin.token), None)
            .await
            .status(),
        200
    );
    let as_user = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&alice.token),
            Some(campaign(5, 0, 60)),
        )
        .await;
    assert_problem(as_user, 403, "FORBIDDEN").await;
    let mut bad = campaign(0, 0, 60);
    bad["discountType"] = json!("BOGUS");
    bad["validDays"] = json!(0);
    let refused = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(bad),
        )
        .await;
    let problem = assert_problem(refused, 400, "VALIDATION_FAILED").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["discountType", "totalQuantity", "validDays"]);
    let backwards = campaign(5, 60, -120);
    let refused = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(backwards),
        )
        .await;
    assert_problem(refused, 400, "VALIDATION_FAILED").await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM coupons").await,
        0
    );
}

#[tokio::test]
async fn one_user_flooding_the_issue_endpoint_is_throttled_and_changes_nothing() {
    let app = spawn_app_with(|env| {
        env.insert("COUPON_ISSUE_PER_SECOND", "1".into());
        env.insert("COUPON_ISSUE_BURST", "2".into());
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(create_campaign(&app, &admin, campaign(5, -60, 3600)).await);
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let response = issue(&app, &user, *id).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_problem(response, 429, "RATE_LIMITED").await;
        }
    }
    assert_eq!(statuses, vec![201, 201, 429, 429]);
    // Another user is not affected by this user's budget.
    let other = app.new_user().await;
    assert_eq!(issue(&app, &other, ids[3]).await.status(), 201);
    app.assert_audit_passes().await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM user_coupons").await,
        3
    );
}
