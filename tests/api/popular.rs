//! Popular products: exact top-5 over the last 72 hours, ties, fewer than five, unpaid orders
//! not counted, and the Redis ranking rebuilt from MySQL's hourly sales.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{json_of, spawn_app, wait_for_drain, TestApp, TestUser};

const HOUR_MS: i64 = 3_600_000;

async fn buy(app: &TestApp, user: &TestUser, product: i64, units: i64, pay: bool) -> String {
    let id = app.order_one(user, product, units).await["orderId"]
        .as_str()
        .expect("id")
        .to_owned();
    if pay {
        let path = format!("/api/v1/orders/{id}/payment");
        let paid = app.call(Method::POST, &path, Some(&user.token), None).await;
        assert_eq!(paid.status(), 200);
    }
    id
}

/// Buys at a moment `hours_ago` in the past (the clock is moved there and back).
async fn buy_at(app: &TestApp, user: &TestUser, product: i64, units: i64, hours_ago: i64) {
    app.state.clock.advance_ms(-hours_ago * HOUR_MS);
    buy(app, user, product, units, true).await;
    app.state.clock.advance_ms(hours_ago * HOUR_MS);
}

async fn popular(app: &TestApp, user: &TestUser) -> Value {
    let response = app
        .call(
            Method::GET,
            "/api/v1/products/popular",
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    json_of(response).await
}

fn ranking(body: &Value) -> Vec<(i64, i64)> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["productId"].as_i64().expect("id"),
                i["soldQuantity"].as_i64().expect("sold"),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_top_five_counts_paid_units_of_the_last_72_hours_with_ties_by_lower_id() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let _ = app.charge(&user, json!(10_000_000), None).await;
    let mut p = Vec::new();
    for i in 0..7 {
        p.push(
            app.create_product(&admin, &format!("P{i}"), 1_000, 100)
                .await,
        );
    }
    buy_at(&app, &user, p[0], 5, 72).await; // outside the window
    buy(&app, &user, p[0], 1, true).await;
    buy_at(&app, &user, p[1], 4, 71).await; // the oldest bucket still inside
    buy(&app, &user, p[2], 4, true).await; // ties with p1: lower id first
    buy_at(&app, &user, p[3], 6, 10).await;
    let cancelled = buy(&app, &user, p[4], 9, false).await;
    let path = format!("/api/v1/orders/{cancelled}/cancel");
    assert_eq!(
        app.call(Method::POST, &path, Some(&user.token), None)
            .await
            .status(),
        200
    );
    buy(&app, &user, p[4], 2, true).await;
    buy(&app, &user, p[5], 50, false).await; // reserved, never paid: not counted
    buy(&app, &user, p[6], 1, true).await; // ties with p0 but loses the fifth place

    // A payment counts once the settlement worker has read it (it commits the units).
    wait_for_drain(&app.state.cache).await;
    let body = popular(&app, &user).await;
    assert_eq!(
        ranking(&body),
        vec![(p[3], 6), (p[1], 4), (p[2], 4), (p[4], 2), (p[0], 1)]
    );
    let ranks: Vec<i64> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["rank"].as_i64().expect("rank"))
        .collect();
    assert_eq!(ranks, vec![1, 2, 3, 4, 5]);
    assert_eq!(body["items"][0]["name"], "P3");
    assert_eq!(body["items"][0]["price"], 1000);
    assert_eq!(body["items"][0]["stock"], 94);
    let from: chrono::DateTime<chrono::Utc> = body["from"]
        .as_str()
        .expect("from")
        .parse()
        .expect("rfc3339");
    let to: chrono::DateTime<chrono::Utc> =
        body["to"].as_str().expect("to").parse().expect("rfc3339");
    let span = (to - from).num_minutes();
    assert!(
        (71 * 60..=72 * 60).contains(&span),
        "window spans 71-72 hours: {span} min"
    );

    // MySQL's hourly sales rebuild the same ranking in a cold Redis.
    app.assert_audit_passes().await;
    for hour in 0..80 {
        for bucket in app.state.cache.keys.buckets() {
            let key = app.state.cache.keys.popularity(
                bucket,
                chrono::Utc::now().timestamp_millis() / HOUR_MS - hour,
            );
            let _: i64 = fred::prelude::KeysInterface::del(app.state.cache.client(), key)
                .await
                .expect("del");
        }
    }
    assert!(flashmart::service::popular::compute(&app.state)
        .await
        .expect("compute")
        .items
        .is_empty());
    flashmart::ops::rebuild::run(&app.state.db, &app.state.cache)
        .await
        .expect("rebuild");
    let rebuilt = flashmart::service::popular::compute(&app.state)
        .await
        .expect("compute");
    let rebuilt: Vec<(i64, i64)> = rebuilt
        .items
        .iter()
        .map(|r| (r.product.id, r.sold))
        .collect();
    assert_eq!(
        rebuilt,
        vec![(p[3], 6), (p[1], 4), (p[2], 4), (p[4], 2), (p[0], 1)]
    );
}

#[tokio::test]
async fn fewer_sales_give_a_shorter_ranking_and_none_an_empty_one() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    assert_eq!(ranking(&popular(&app, &user).await), vec![]);
    let _ = app.charge(&user, json!(100_000), None).await;
    let a = app.create_product(&admin, "A", 1_000, 10).await;
    let b = app.create_product(&admin, "B", 1_000, 10).await;
    buy(&app, &user, b, 2, true).await;
    buy(&app, &user, a, 1, true).await;
    wait_for_drain(&app.state.cache).await; // the worker has committed the units
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // past the cache age
    assert_eq!(ranking(&popular(&app, &user).await), vec![(b, 2), (a, 1)]);
}

#[tokio::test]
async fn a_storm_of_readers_is_served_from_one_refresh_per_second() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let _ = popular(&app, &user).await;
    let reads = (0..200).map(|_| popular(&app, &user));
    let bodies = futures::future::join_all(reads).await;
    assert!(bodies.iter().all(|b| b["items"] == json!([])));
    let to: std::collections::HashSet<String> = bodies
        .iter()
        .map(|b| b["to"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        to.len() <= 3,
        "200 reads within ~a second share few computations: {}",
        to.len()
    );
}
