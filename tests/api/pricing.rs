//! The pricing cache: orders are priced from Redis (no MySQL read per line), a price change
//! reaches the very next order on every instance, and the newest version always wins.

use fred::prelude::*;
use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use flashmart::cache::products::{self, ProductTerms, PRODUCT_TTL_SECS};

use crate::helpers::{json_of, spawn_app, TestApp, TestUser};
use crate::instances::spawn_cluster;

fn terms(name: &str, price: i64) -> ProductTerms {
    ProductTerms {
        name: name.into(),
        price,
    }
}

#[tokio::test]
async fn product_put_keeps_only_the_newest_version() {
    let app = spawn_app().await;
    let cache = &app.state.cache;
    assert!(products::put(cache, 9, &terms("v2", 200), 2)
        .await
        .expect("put v2"));
    assert!(
        !products::put(cache, 9, &terms("v1", 100), 1)
            .await
            .expect("put v1"),
        "an older version is refused"
    );
    assert!(!products::put(cache, 9, &terms("again", 999), 2)
        .await
        .expect("same version"));
    assert_eq!(
        products::get_many(cache, &[9, 10]).await.expect("get"),
        vec![Some(terms("v2", 200)), None]
    );
    assert!(products::put(cache, 9, &terms("v3", 300), 3)
        .await
        .expect("put v3"));
    assert_eq!(
        products::get_many(cache, &[9]).await.expect("get"),
        vec![Some(terms("v3", 300))]
    );
    let ttl: i64 = cache
        .client()
        .ttl(cache.keys.product(9))
        .await
        .expect("ttl");
    assert!(ttl > 0 && ttl <= PRODUCT_TTL_SECS, "ttl {ttl}");
    assert!(products::put(cache, 9, &terms("bad", 1), 0).await.is_err());
}

/// Orders `quantity` units of one product in-process; returns the total.
async fn order_total(app: &TestApp, user: &TestUser, id: i64, quantity: i64) -> i64 {
    let order = app.order_one(user, id, quantity).await;
    order["total"].as_i64().expect("total")
}

#[tokio::test]
async fn an_order_is_priced_from_the_cache_and_a_lost_entry_is_reloaded_from_mysql() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let id = app.create_product(&admin, "Teapot", 31_000, 10).await;
    let cache = &app.state.cache;
    assert_eq!(
        products::get_many(cache, &[id]).await.expect("get"),
        vec![Some(terms("Teapot", 31_000))],
        "creating a product caches its terms"
    );

    // The cache is what prices an order: a (deliberately) different cached price is used.
    let _: i64 = cache
        .client()
        .hset(cache.keys.product(id), ("price", 30_000))
        .await
        .expect("hset");
    assert_eq!(order_total(&app, &user, id, 2).await, 60_000);

    let _: i64 = cache
        .client()
        .del(cache.keys.product(id))
        .await
        .expect("del");
    assert_eq!(
        order_total(&app, &user, id, 1).await,
        31_000,
        "MySQL's price"
    );
    assert_eq!(
        products::get_many(cache, &[id]).await.expect("get"),
        vec![Some(terms("Teapot", 31_000))],
        "the miss cached the terms again"
    );

    let body =
        json!({"items": [{"productId": id, "quantity": 1}, {"productId": 999_999, "quantity": 1}]});
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(body),
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn cluster_order_total(
    cluster: &crate::instances::Cluster,
    i: usize,
    token: &str,
    id: i64,
) -> i64 {
    let body = json!({"items": [{"productId": id, "quantity": 1}]});
    let response = cluster
        .call(i, Method::POST, "/api/v1/orders", Some(token), Some(body))
        .await;
    assert_eq!(response.status(), 201);
    let order: Value = json_of(response).await;
    order["total"].as_i64().expect("total")
}

#[tokio::test]
async fn a_price_change_on_one_instance_prices_the_next_order_on_the_other_and_the_newest_wins() {
    let cluster = spawn_cluster(2, |_| {}).await;
    let admin = cluster.new_admin(0).await;
    let user = cluster.new_user(1).await;
    let id = cluster
        .create_product(0, &admin, "Lantern", 10_000, 1_000)
        .await;
    assert_eq!(
        cluster_order_total(&cluster, 1, &user.token, id).await,
        10_000
    );

    let path = format!("/api/v1/admin/products/{id}");
    for price in [12_000, 9_000, 15_500] {
        let patched = cluster
            .call(
                0,
                Method::PATCH,
                &path,
                Some(&admin.token),
                Some(json!({ "price": price })),
            )
            .await;
        assert_eq!(patched.status(), 200);
        assert_eq!(
            cluster_order_total(&cluster, 1, &user.token, id).await,
            price,
            "the other instance prices the next order at the new price"
        );
    }

    // Admins on both instances change the price at once while orders are priced: whatever
    // order the changes land in, the cache ends on MySQL's final price.
    for round in 0..10 {
        let changes = (0..6).map(|k| {
            let body = json!({ "price": 20_000 + round * 100 + k });
            cluster.call(
                (k % 2) as usize,
                Method::PATCH,
                &path,
                Some(&admin.token),
                Some(body),
            )
        });
        let orders = (0..2).map(|i| cluster_order_total(&cluster, i, &user.token, id));
        let (changed, _) = tokio::join!(join_all(changes), join_all(orders));
        assert!(changed.iter().all(|r| r.status() == 200));
        let (price, version): (i64, i64) =
            sqlx::query_as("SELECT price, version FROM products WHERE id = ?")
                .bind(id)
                .fetch_one(&cluster.db)
                .await
                .expect("row");
        let cached = products::get_many(&cluster.cache, &[id])
            .await
            .expect("get");
        let cached_price = cached[0].as_ref().map(|t| t.price);
        assert_eq!(
            cached_price,
            Some(price),
            "round {round}: the cache holds MySQL's final price (v{version})"
        );
        assert_eq!(
            cluster_order_total(&cluster, round as usize % 2, &user.token, id).await,
            price
        );
    }
}

#[tokio::test]
async fn the_audit_catches_a_cached_price_that_differs_from_mysql() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = app.create_product(&admin, "Kettle", 20_000, 3).await;
    app.assert_audit_passes().await;

    let cache = &app.state.cache;
    let _: i64 = cache
        .client()
        .hset(cache.keys.product(id), ("price", 1))
        .await
        .expect("hset");
    let wait = std::time::Duration::from_secs(5);
    let report = flashmart::ops::audit::run(&app.state.db, cache, wait)
        .await
        .expect("audit runs");
    assert!(!report.passed());
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.contains(&format!("product {id}: pricing cache"))),
        "{:?}",
        report.violations
    );
}
