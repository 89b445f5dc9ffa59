//! Delivery of paid orders: the outbox row written with the payment, waiting while no platform
//! is configured, the relay's signed requests, and retrying dead deliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{count, spawn_app_with, wait_for_drain, TestApp, TestUser};

const SECRET: &str = "platform-secret-0123456789abcdef";

type Seen = Arc<Mutex<HashMap<String, (u32, Value)>>>;

/// A receiver that checks signatures and records accepted bodies by event id.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let text = String::from_utf8_lossy(&body).into_owned();
                let sig = headers
                    .get("x-flashmart-signature")
                    .and_then(|v| v.to_str().ok());
                let now = chrono::Utc::now().timestamp();
                let valid = sig.is_some_and(|s| {
                    flashmart::delivery::signature::verify(SECRET.as_bytes(), s, &text, now, 300)
                });
                if !valid {
                    return StatusCode::UNAUTHORIZED;
                }
                let id = headers["x-flashmart-event-id"]
                    .to_str()
                    .unwrap_or("")
                    .to_owned();
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let mut map = store.lock().unwrap_or_else(|e| e.into_inner());
                map.entry(id).or_insert((0, value)).0 += 1;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn paid_order(app: &TestApp, admin: &TestUser, user: &TestUser) -> String {
    let product = app.create_product(admin, "Thing", 2_500, 10).await;
    let _ = app.charge(user, json!(10_000), None).await;
    let id = app.order_one(user, product, 2).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/api/v1/orders/{id}/payment");
    assert_eq!(
        app.call(Method::POST, &path, Some(&user.token), None)
            .await
            .status(),
        200
    );
    id
}

async fn wait_delivered(app: &TestApp, expected: i64) {
    let started = std::time::Instant::now();
    loop {
        let delivered = count(
            &app.state.db,
            "SELECT COUNT(*) FROM outbox WHERE status = 'DELIVERED'",
        )
        .await;
        if delivered == expected {
            return;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "{delivered}/{expected} delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_paid_order_is_delivered_signed_with_its_event_id() {
    let (url, seen) = receiver().await;
    let app = spawn_app_with(|env| {
        env.insert("EXTERNAL_PLATFORM_URL", url.clone());
        env.insert("EXTERNAL_PLATFORM_SECRET", SECRET.into());
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let order_id = paid_order(&app, &admin, &user).await;
    wait_delivered(&app, 1).await;
    let (event_id,): (String,) = sqlx::query_as("SELECT event_id FROM outbox")
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    let map = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (times, body) = map.get(&event_id).expect("received under its event id");
    assert_eq!(*times, 1);
    assert_eq!(body["eventId"], event_id.as_str());
    assert_eq!(body["type"], "order.paid");
    assert_eq!(body["order"]["orderId"], order_id.as_str());
    assert_eq!(body["order"]["userId"], user.id);
    assert_eq!(body["order"]["total"], 5_000);
    assert_eq!(body["order"]["items"][0]["quantity"], 2);
    assert!(body["order"]["paidAt"].is_string() && body["occurredAt"].is_string());
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn without_a_platform_deliveries_wait_in_the_outbox() {
    let app = spawn_app_with(|_| {}).await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    paid_order(&app, &admin, &user).await;
    wait_for_drain(&app.state.cache).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let rows: Vec<(String, i32)> = sqlx::query_as("SELECT status, attempts FROM outbox")
        .fetch_all(&app.state.db)
        .await
        .expect("rows");
    assert_eq!(rows, vec![("PENDING".to_owned(), 0)]);
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn a_dead_delivery_fails_the_audit_until_it_is_retried() {
    let (url, seen) = receiver().await;
    let wrong = url.replace("/events", "/nowhere");
    let app = spawn_app_with(|env| {
        env.insert("EXTERNAL_PLATFORM_URL", wrong.clone());
        env.insert("EXTERNAL_PLATFORM_SECRET", SECRET.into());
        env.insert("DELIVERY_MAX_ATTEMPTS", "2".into());
        env.insert("DELIVERY_BACKOFF_BASE_MS", "10".into());
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    paid_order(&app, &admin, &user).await;
    let started = std::time::Instant::now();
    while count(
        &app.state.db,
        "SELECT COUNT(*) FROM outbox WHERE status = 'DEAD'",
    )
    .await
        == 0
    {
        assert!(
            started.elapsed().as_secs() < 20,
            "the delivery dies after 2 attempts"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    wait_for_drain(&app.state.cache).await;
    let wait = std::time::Duration::from_secs(1);
    let report = flashmart::ops::audit::run(&app.state.db, &app.state.cache, wait)
        .await
        .expect("audit");
    assert!(
        report.violations.iter().any(|v| v.contains("DEAD")),
        "{:?}",
        report.violations
    );
    assert!(seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
    let requeued = flashmart::store::outbox::retry_dead(&app.state.db, chrono::Utc::now())
        .await
        .expect("retry");
    assert_eq!(requeued, 1);
    let pending = count(
        &app.state.db,
        "SELECT COUNT(*) FROM outbox WHERE status = 'PENDING'",
    )
    .await;
    assert_eq!(pending, 1);
}
