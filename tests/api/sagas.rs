//! The crash rules of the sagas across buckets (docs/ARCHITECTURE.md §4b), each step cut off
//! where a dying instance would leave it: stock held for an order that never appeared comes back
//! and the order can no longer appear; a paid order whose last step never ran stays sold and is
//! counted for the ranking; a coupon whose grant never ran is found and repaired.

use fred::prelude::*;
use serde_json::json;

use flashmart::cache::coupons::{self as hot_coupons, IssueOutcome, IssueRequest};
use flashmart::cache::orders::{self as hot_orders, ReserveCall, ReserveOutcome};
use flashmart::cache::reservations::{self as held, HoldRequest, ReserveOutcome as Held};
use flashmart::events::OrderLine;

use crate::helpers::{json_of, spawn_app, spawn_app_with, TestApp, TestUser};

/// An app whose orders expire after one second, with no background settlement racing the steps
/// the tests cut off. Its own sweeper still runs every 500 ms, so the tests sweep by hand until
/// the outcome they assert holds ([`swept_until`]), whichever sweep gets there.
async fn app() -> TestApp {
    spawn_app_with(|env| {
        env.insert("ORDER_TTL_SECONDS", "1".into());
        env.insert("SETTLEMENT_WORKER", "off".into());
    })
    .await
}

/// A 10 % campaign of 5 coupons, open for a minute from now; its id.
async fn campaign(app: &TestApp, admin: &TestUser) -> i64 {
    let body = json!({
        "name": "Flash 10%", "discountType": "PERCENT", "discountValue": 10,
        "maxDiscount": 5000, "minOrderAmount": 10000, "totalQuantity": 5,
        "issueStartsAt": chrono::Utc::now().to_rfc3339(),
        "issueEndsAt": (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339(),
        "validDays": 7
    });
    let created = app
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(body),
        )
        .await;
    json_of(created).await["couponId"]
        .as_i64()
        .expect("couponId")
}

/// Sweeps (orders, then reservations: what the app's own sweeper does every 500 ms) until
/// `done` holds, for at most 10 s. The app's background sweep may be resolving the same order
/// at the same moment; what a test asserts is the outcome, not which sweep reached it.
async fn swept_until<F, Fut>(app: &TestApp, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    loop {
        flashmart::service::expiry::sweep_once(&app.state)
            .await
            .expect("sweep");
        if done().await {
            return;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "after 10 s of sweeps: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn stock(app: &TestApp, product: i64) -> i64 {
    flashmart::cache::stock::available(&app.state.cache, &[product])
        .await
        .expect("stock")[0]
        .expect("stock loaded")
}

#[tokio::test]
async fn stock_held_for_an_order_that_never_appeared_comes_back_and_the_order_cannot_appear() {
    let app = app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Kettle", 1_000, 10).await;
    app.order_one(&user, product, 1).await; // loads the stock into Redis
    let before = stock(&app, product).await;

    // Step 1 of a creation whose instance died before step 2.
    let cache = &app.state.cache;
    let order_id = cache.keys.new_order_id(user.id);
    let now = app.state.clock.now_ms();
    let hold = [HoldRequest {
        order_id: order_id.clone(),
        user_id: user.id,
        due_ms: now - 1,
        lines: vec![(product, 3)],
    }];
    assert_eq!(
        held::hold_all(cache, &hold).await.expect("hold"),
        [Held::Held]
    );
    assert_eq!(
        held::hold_all(cache, &hold).await.expect("re-send"),
        [Held::Held]
    );
    assert_eq!(stock(&app, product).await, before - 3, "held once");

    swept_until(&app, "the units are back", || async {
        stock(&app, product).await == before
    })
    .await;
    assert_eq!(
        held::hold_all(cache, &hold).await.expect("late re-send"),
        [Held::Spent],
        "a late re-send of step 1 is told the id is spent"
    );
    assert_eq!(stock(&app, product).await, before, "and holds nothing");

    // Step 2 arriving after the sweeper gave up on the id is refused.
    let items = [OrderLine {
        product_id: product,
        name: "Kettle".into(),
        unit_price: 1_000,
        quantity: 3,
        line_total: 3_000,
    }];
    let create = ReserveCall {
        order_id: &order_id,
        user_id: user.id,
        items: &items,
        subtotal: 3_000,
        discount: 0,
        coupon: None,
        now_ms: now,
        expires_at_ms: now + 1_000,
        idempotency_key: "late",
    };
    assert_eq!(
        hot_orders::reserve(cache, &create).await.expect("step 2"),
        ReserveOutcome::Voided
    );
    assert!(hot_orders::read(cache, &order_id)
        .await
        .expect("read")
        .is_none());
}

#[tokio::test]
async fn a_paid_order_whose_stock_step_was_cut_off_stays_sold_and_is_ranked_by_the_sweeper() {
    let app = app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Lamp", 1_000, 10).await;
    let _ = app.charge(&user, json!(5_000), None).await;
    let order = app.order_one(&user, product, 2).await;
    let order_id = order["orderId"].as_str().expect("id").to_owned();
    let left = stock(&app, product).await;
    assert_eq!(left, 8);

    // Payment decided in the user's bucket; the instance dies before the product bucket's step.
    let cache = &app.state.cache;
    let pay = hot_orders::PayCall {
        order_id: &order_id,
        user_id: user.id,
        now_ms: app.state.clock.now_ms(),
        payment_id: "pay-cut-off",
        idempotency_key: "cut-off",
        coupon: None,
        budget: None,
    };
    assert!(matches!(
        hot_orders::pay(cache, &pay).await.expect("pay"),
        hot_orders::PayOutcome::Paid { .. }
    ));
    let bucket = cache.keys.of_product(product);
    assert!(held::read(cache, bucket, &order_id)
        .await
        .expect("read")
        .is_some());

    // Past the deadline and the grace, the sweeper commits it: sold, and counted.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    swept_until(&app, "the reservation is resolved", || async {
        held::read(cache, bucket, &order_id)
            .await
            .expect("read")
            .is_none()
    })
    .await;
    assert_eq!(stock(&app, product).await, 8, "the units stay sold");
    let ranked = flashmart::cache::popular::top(cache, app.state.clock.now_ms(), 5)
        .await
        .expect("ranking");
    assert_eq!(ranked, vec![(product, 2)]);
}

#[tokio::test]
async fn a_coupon_whose_grant_was_cut_off_is_repaired_when_it_is_used() {
    let app = app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Mug", 20_000, 10).await;
    let _ = app.charge(&user, json!(50_000), None).await;
    let coupon_id = campaign(&app, &admin).await;

    // Step 1 only: issued in the campaign's bucket, never granted into the user's.
    let cache = &app.state.cache;
    let request = IssueRequest::new(coupon_id, user.id, "cut".into(), app.state.clock.now_ms());
    let outcome = hot_coupons::issue_all(cache, &[request])
        .await
        .expect("issue");
    let IssueOutcome::Issued { coupon, .. } = outcome[0] else {
        panic!("issued: {outcome:?}");
    };
    let granted: bool = cache
        .client()
        .exists(cache.keys.user_coupon(coupon_id, user.id))
        .await
        .expect("exists");
    assert!(!granted, "the user's bucket does not hold it yet");

    let response = app
        .call(
            reqwest::Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(json!({"items": [{"productId": product, "quantity": 1}],
                        "userCouponId": coupon.user_coupon_id})),
        )
        .await;
    assert_eq!(response.status(), 201, "{:?}", json_of(response).await);
    let status: Option<String> = cache
        .client()
        .hget(cache.keys.user_coupon(coupon_id, user.id), "status")
        .await
        .expect("hget");
    assert_eq!(status.as_deref(), Some("RESERVED"));
}

#[tokio::test]
async fn one_call_holds_and_settles_a_batch_of_orders_each_whole_or_not_at_all() {
    let app = app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    // Two products of one bucket (ids 16 apart share a bucket of 16).
    let first = app.create_product(&admin, "Cup", 1_000, 5).await;
    let mut second = app.create_product(&admin, "Saucer", 1_000, 5).await;
    while app.state.cache.keys.of_product(second) != app.state.cache.keys.of_product(first) {
        second = app.create_product(&admin, "Saucer", 1_000, 5).await;
    }
    app.order_one(&user, first, 1).await;
    app.order_one(&user, second, 1).await;
    let cache = &app.state.cache;
    let (a, b) = (stock(&app, first).await, stock(&app, second).await);
    let request = |id: &str, lines: Vec<(i64, i64)>| HoldRequest {
        order_id: id.to_owned(),
        user_id: user.id,
        due_ms: app.state.clock.now_ms() + 60_000,
        lines,
    };
    let ids: Vec<String> = (0..3).map(|_| cache.keys.new_order_id(user.id)).collect();
    let batch = [
        request(&ids[0], vec![(first, 2), (second, 1)]),
        request(&ids[1], vec![(first, 1), (second, 100)]), // the second line is short
        request(&ids[2], vec![(first, a - 2)]),            // sees what the first took
        request(&ids[0], vec![(first, 2), (second, 1)]),   // a re-send inside the batch
    ];
    let outcomes = held::hold_all(cache, &batch).await.expect("holds");
    assert_eq!(outcomes[0], Held::Held);
    assert_eq!(
        outcomes[1],
        Held::InsufficientStock {
            product_id: second,
            requested: 100,
            available: b - 1
        }
    );
    assert_eq!(outcomes[2], Held::Held);
    assert_eq!(outcomes[3], Held::Held);
    assert_eq!(
        stock(&app, first).await,
        0,
        "2 + (a - 2) held, nothing of the refusal"
    );
    assert_eq!(stock(&app, second).await, b - 1);

    // One call ends them: a commit, a release, and a second release of the same order
    // (counted once).
    use flashmart::cache::reservations::{Settle, SettleRequest};
    let bucket = cache.keys.of_product(first);
    let settle = |id: &str, how| SettleRequest {
        order_id: id.to_owned(),
        products: vec![first, second],
        how,
    };
    let ended = held::settle_all(
        cache,
        bucket,
        &[
            settle(&ids[0], Settle::Release),
            settle(&ids[2], Settle::Release),
            settle(&ids[2], Settle::Release),
            settle(&ids[1], Settle::Release),
        ],
    )
    .await
    .expect("settle");
    assert_eq!(ended, [true, true, false, false]);
    assert_eq!(
        (stock(&app, first).await, stock(&app, second).await),
        (a, b)
    );

    // A release that lacks a stock key of its reservation is refused whole.
    let refill = [request(
        &cache.keys.new_order_id(user.id),
        vec![(first, 1), (second, 1)],
    )];
    held::hold_all(cache, &refill).await.expect("hold");
    let short = SettleRequest {
        order_id: refill[0].order_id.clone(),
        products: vec![first],
        how: Settle::Release,
    };
    assert!(held::settle_all(cache, bucket, &[short]).await.is_err());
    assert_eq!(stock(&app, first).await, a - 1, "nothing changed");
}

#[tokio::test]
async fn a_retry_after_a_refusal_gave_its_stock_back_holds_the_stock_again() {
    let app = app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let plenty = app.create_product(&admin, "Plate", 1_000, 5).await;
    let mut scarce = app.create_product(&admin, "Bowl", 1_000, 1).await;
    while app.state.cache.keys.of_product(scarce) == app.state.cache.keys.of_product(plenty) {
        scarce = app.create_product(&admin, "Bowl", 1_000, 1).await;
    }
    let order = |key: &'static str| {
        let body = json!({"items": [{"productId": plenty, "quantity": 2},
                                    {"productId": scarce, "quantity": 2}]});
        let request = app
            .http
            .post(format!("{}/api/v1/orders", app.base))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { request.send().await.expect("sent") }
    };
    // Refused in the scarce product's bucket: the plenty bucket's hold is given back.
    assert_eq!(order("same-key").await.status(), 409);
    assert_eq!(stock(&app, plenty).await, 5);

    // Restocked, the same request is retried with the same key: it holds both lines again
    // (the first attempt's id is spent, so it goes on under a new one).
    let path = format!("/api/v1/admin/products/{scarce}");
    let restock = app
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&admin.token),
            Some(json!({"addStock": 5})),
        )
        .await;
    assert_eq!(restock.status(), 200);
    let created = order("same-key").await;
    assert_eq!(created.status(), 201);
    let first = json_of(created).await;
    assert_eq!(stock(&app, plenty).await, 3, "2 held for the new order");
    assert_eq!(stock(&app, scarce).await, 4);

    // And a third send of the same key answers the same order without holding more.
    let again = json_of(order("same-key").await).await;
    assert_eq!(again["orderId"], first["orderId"]);
    assert_eq!(
        (stock(&app, plenty).await, stock(&app, scarce).await),
        (3, 4)
    );
}

#[tokio::test]
async fn a_rebuild_from_mysql_restores_pending_orders_with_their_reservations_and_coupons() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Teapot", 30_000, 10).await;
    let _ = app.charge(&user, json!(100_000), None).await;
    let coupon_id = campaign(&app, &admin).await;
    let issued = app
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/coupons/{coupon_id}/issue"),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(issued.status(), 201);
    let user_coupon_id = json_of(issued).await["userCouponId"]
        .as_i64()
        .expect("userCouponId");
    let created = app
        .call(
            reqwest::Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(json!({"items": [{"productId": product, "quantity": 2}],
                        "userCouponId": user_coupon_id})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let order_id = json_of(created).await["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned();
    app.assert_audit_passes().await;

    // A cold Redis (a fresh prefix: nothing of this deployment in it) rebuilt from MySQL.
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let prefix = format!("rb{}", uuid::Uuid::new_v4().simple());
    let cold = flashmart::cache::Cache::connect(&url, 2, &prefix[..20], 16)
        .await
        .expect("connect");
    flashmart::ops::rebuild::run(&app.state.db, &cold)
        .await
        .expect("rebuild");
    let report = flashmart::ops::audit::run(&app.state.db, &cold, std::time::Duration::ZERO)
        .await
        .expect("audit");
    assert!(
        report.passed(),
        "audit of the rebuilt Redis: {:?}",
        report.violations
    );

    let rebuilt = hot_orders::read(&cold, &order_id)
        .await
        .expect("read")
        .expect("the pending order is back");
    assert_eq!(rebuilt.user_coupon_id, Some(user_coupon_id));
    let bucket = cold.keys.of_product(product);
    let held = held::read(&cold, bucket, &order_id)
        .await
        .expect("read")
        .expect("its reservation is back");
    assert_eq!(held.lines, vec![(product, 2)]);
    assert_eq!(
        flashmart::cache::stock::available(&cold, &[product])
            .await
            .expect("stock")[0],
        Some(8)
    );
    let owner = hot_coupons::owner_of(&cold, user.id, user_coupon_id)
        .await
        .expect("owner")
        .expect("the coupon is back");
    assert!(owner.granted && owner.user_id == user.id && owner.coupon_id == coupon_id);
    let holder = hot_coupons::issued_to(&cold, coupon_id, user.id)
        .await
        .expect("holder");
    assert_eq!(holder.map(|c| c.user_coupon_id), Some(user_coupon_id));
}

#[tokio::test]
async fn with_one_bucket_the_sweeps_expire_an_order_and_give_its_stock_back() {
    let app = spawn_app_with(|env| {
        env.insert("ORDER_TTL_SECONDS", "1".into());
        env.insert("REDIS_BUCKETS", "1".into());
    })
    .await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Spoon", 1_000, 10).await;
    let order = app.order_one(&user, product, 4).await;
    assert_eq!(stock(&app, product).await, 6);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    swept_until(&app, "the units are back", || async {
        stock(&app, product).await == 10
    })
    .await;
    let order_id = order["orderId"].as_str().expect("id");
    let ended = hot_orders::read(&app.state.cache, order_id)
        .await
        .expect("read")
        .expect("hot");
    assert_eq!(ended.status, flashmart::events::OrderStatus::Expired);
    assert_eq!(stock(&app, product).await, 10, "the units are back");
    assert_eq!(
        flashmart::cache::reservations::live_count(&app.state.cache)
            .await
            .expect("count"),
        0
    );
    app.assert_audit_passes().await;
}
