//! One settlement batch holding a whole small sale — charges, a coupon issue, a restock,
//! reservations, payments and a cancellation, with several events per order, product and
//! account — is written as aggregated rows that add up exactly; and two workers applying the
//! same batch at once still apply every event once.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use flashmart::settlement::apply::{apply_batch, BatchOutcome};
use flashmart::settlement::stream;
use flashmart::store::ledger;

use crate::helpers::{count, json_of, TestApp, TestUser};
use crate::settlement::{app_without_worker, envelopes, read_as};

const PRICE_A: i64 = 1_000;
const PRICE_B: i64 = 2_500;
const COUPON_OFF: i64 = 500;
const CHARGE: i64 = 100_000;

async fn post(app: &TestApp, user: &TestUser, path: &str, body: Option<Value>) -> Value {
    let response = app.call(Method::POST, path, Some(&user.token), body).await;
    let status = response.status().as_u16();
    let body = json_of(response).await;
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

async fn sql_pairs(app: &TestApp, sql: &'static str) -> Vec<(i64, i64)> {
    sqlx::query_as(sql)
        .fetch_all(&app.state.db)
        .await
        .expect("query")
}

async fn account(app: &TestApp, code: &str) -> i64 {
    ledger::account_balance(&app.state.db, code)
        .await
        .expect("account")
}

/// Six buyers each charge, order 2×A + 1×B and pay, except the last, who cancels; the first
/// uses a coupon; A is restocked in between. Returns (products, buyers, total paid).
async fn small_sale(app: &TestApp) -> ((i64, i64), Vec<TestUser>, i64) {
    let admin = app.new_admin().await;
    let a = app.create_product(&admin, "Batch A", PRICE_A, 50).await;
    let b = app.create_product(&admin, "Batch B", PRICE_B, 20).await;
    let starts = Utc::now() - Duration::minutes(1);
    let coupon = post(
        app,
        &admin,
        "/api/v1/admin/coupons",
        Some(json!({
            "name": "batch", "discountType": "FIXED", "discountValue": COUPON_OFF,
            "totalQuantity": 10, "issueStartsAt": starts.to_rfc3339(),
            "issueEndsAt": (starts + Duration::hours(1)).to_rfc3339(), "validDays": 7
        })),
    )
    .await["couponId"]
        .as_i64()
        .expect("couponId");
    let mut buyers = Vec::new();
    let mut paid_total = 0;
    for i in 0..6 {
        let buyer = app.new_user().await;
        assert_eq!(app.charge(&buyer, json!(CHARGE), None).await.status(), 200);
        let mut body = json!({"items": [
            {"productId": a, "quantity": 2}, {"productId": b, "quantity": 1}
        ]});
        if i == 0 {
            let path = format!("/api/v1/coupons/{coupon}/issue");
            let issued = post(app, &buyer, &path, None).await;
            body["userCouponId"] = issued["userCouponId"].clone();
        }
        if i == 3 {
            let restock = app
                .http
                .patch(format!("{}/api/v1/admin/products/{a}", app.base))
                .bearer_auth(&admin.token)
                .header("idempotency-key", "batch-restock")
                .json(&json!({"addStock": 10}))
                .send()
                .await
                .expect("restock sent");
            assert_eq!(restock.status(), 200);
        }
        let order = post(app, &buyer, "/api/v1/orders", Some(body)).await;
        let id = order["orderId"].as_str().expect("orderId").to_owned();
        if i == 5 {
            post(app, &buyer, &format!("/api/v1/orders/{id}/cancel"), None).await;
        } else {
            post(app, &buyer, &format!("/api/v1/orders/{id}/payment"), None).await;
            paid_total += order["total"].as_i64().expect("total");
        }
        buyers.push(buyer);
    }
    ((a, b), buyers, paid_total)
}

#[tokio::test]
async fn a_whole_sale_in_one_batch_settles_to_exact_aggregated_rows() {
    let app = app_without_worker().await;
    let ((a, b), buyers, paid_total) = small_sale(&app).await;
    assert_eq!(paid_total, 5 * (2 * PRICE_A + PRICE_B) - COUPON_OFF);

    let entries = read_as(&app, "one-batch").await;
    // 6 charges, 1 coupon issue, 1 restock, 6 reservations, 5 payments, 1 cancellation
    assert_eq!(entries.len(), 20, "every decision is one event");
    let mut batch = envelopes(&entries);
    let mut replay = batch[0].clone();
    replay.stream_id = "0-1".into();
    batch.push(replay); // the same event twice in one batch is applied once

    let outcome = apply_batch(&app.state.db, &batch, app.state.clock.now())
        .await
        .expect("the whole batch commits");
    assert_eq!(
        outcome,
        BatchOutcome {
            applied: 20,
            duplicates: 1
        }
    );

    let db = &app.state.db;
    let products = sql_pairs(&app, "SELECT sold, stock_total FROM products ORDER BY id").await;
    assert_eq!(
        products,
        vec![(10, 60), (5, 20)],
        "sold and restocked, summed"
    );
    let sales = sql_pairs(
        &app,
        "SELECT product_id, CAST(SUM(quantity) AS SIGNED) FROM sales_hourly \
         GROUP BY product_id ORDER BY product_id",
    )
    .await;
    assert_eq!(sales, vec![(a, 10), (b, 5)]);
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY status")
            .fetch_all(db)
            .await
            .expect("statuses");
    assert_eq!(
        statuses,
        vec![("CANCELLED".to_owned(), 1), ("PAID".to_owned(), 5)],
        "the later snapshot of each order wins"
    );
    assert_eq!(count(db, "SELECT COUNT(*) FROM order_lines").await, 12);
    assert_eq!(count(db, "SELECT COUNT(*) FROM payments").await, 5);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox").await, 5);
    assert_eq!(count(db, "SELECT COUNT(*) FROM wallet_charges").await, 6);
    assert_eq!(count(db, "SELECT COUNT(*) FROM applied_events").await, 20);
    let coupon: (String, Option<String>) =
        sqlx::query_as("SELECT status, order_id FROM user_coupons")
            .fetch_one(db)
            .await
            .expect("the one coupon");
    assert_eq!(coupon.0, "USED");
    assert!(coupon.1.is_some());

    assert_eq!(account(&app, ledger::CASH_IN).await, -6 * CHARGE);
    assert_eq!(account(&app, ledger::REVENUE).await, paid_total);
    let first = account(&app, &ledger::user_account(buyers[0].id)).await;
    assert_eq!(first, CHARGE - (2 * PRICE_A + PRICE_B - COUPON_OFF));
    let last = account(&app, &ledger::user_account(buyers[5].id)).await;
    assert_eq!(last, CHARGE, "the cancelled order moved no money");
    assert_eq!(
        count(db, "SELECT CAST(SUM(amount) AS SIGNED) FROM ledger_entries").await,
        0,
        "double entry"
    );

    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    stream::ack(
        &app.state.cache,
        &crate::helpers::only_stream(&app.state.cache),
        &ids,
    )
    .await
    .expect("ack");
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn two_workers_applying_the_same_batch_at_once_apply_each_event_once() {
    let app = app_without_worker().await;
    let users = [app.new_user().await, app.new_user().await];
    for round in 0..15 {
        for user in &users {
            let amount = json!(1_000 + round);
            assert_eq!(app.charge(user, amount, None).await.status(), 200);
        }
    }
    let entries = read_as(&app, "racer").await;
    assert_eq!(entries.len(), 30);
    let batch = envelopes(&entries);
    let db = &app.state.db;
    let now = app.state.clock.now();
    let (left, right) = tokio::join!(apply_batch(db, &batch, now), apply_batch(db, &batch, now));

    // Whoever lost the race either saw everything applied or failed as a whole; the worker then
    // retries one by one, and every event is a duplicate by then.
    let mut applied = 0;
    for result in [left, right] {
        match result {
            Ok(outcome) => {
                applied += outcome.applied;
                assert_eq!(outcome.applied + outcome.duplicates, 30);
            }
            Err(_) => {
                for envelope in &batch {
                    let one = std::slice::from_ref(envelope);
                    let again = apply_batch(db, one, now).await.expect("a single retry");
                    assert_eq!(again.duplicates, 1);
                }
            }
        }
    }
    assert_eq!(applied, 30, "every event applied exactly once");
    assert_eq!(count(db, "SELECT COUNT(*) FROM wallet_charges").await, 30);
    assert_eq!(count(db, "SELECT COUNT(*) FROM ledger_entries").await, 60);
    let charged: i64 = 2 * (0..15).map(|round| 1_000 + round).sum::<i64>();
    assert_eq!(account(&app, ledger::CASH_IN).await, -charged);

    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    stream::ack(
        &app.state.cache,
        &crate::helpers::only_stream(&app.state.cache),
        &ids,
    )
    .await
    .expect("ack");
    app.assert_audit_passes().await;
}
