//! Catalog: empty message, pagination, product by id, admin create/update/restock.

use std::collections::BTreeSet;

use fred::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, json_of, spawn_app};

#[tokio::test]
async fn an_empty_catalog_says_no_products_available() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let body = json_of(app.list_products(&user.token, "").await).await;
    assert_eq!(
        body,
        json!({"items": [], "nextCursor": null, "message": "no products available"})
    );
}

#[tokio::test]
async fn pagination_covers_every_product_exactly_once() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let mut created = BTreeSet::new();
    for i in 0..23 {
        created.insert(
            app.create_product(&admin, &format!("P{i}"), 100 + i, i)
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=5&cursor={c}"),
            None => "?limit=5".into(),
        };
        let body = json_of(app.list_products(&admin.token, &query).await).await;
        assert!(
            body.get("message").is_none(),
            "only an empty catalog has a message"
        );
        for item in body["items"].as_array().expect("items") {
            seen.push(item["id"].as_i64().expect("id"));
        }
        pages += 1;
        match body["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 23, "no product twice");
    assert_eq!(seen.iter().copied().collect::<BTreeSet<_>>(), created);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "id order");
}

#[tokio::test]
async fn products_show_price_and_live_stock_from_redis() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = app.create_product(&admin, "Sneakers", 219_000, 10).await;
    let path = format!("/api/v1/products/{id}");
    let body = json_of(app.call(Method::GET, &path, Some(&admin.token), None).await).await;
    assert_eq!(
        body,
        json!({"id": id, "name": "Sneakers", "price": 219000, "stock": 10})
    );

    // Redis is the live view: a reservation made there shows immediately.
    let key = app.state.cache.keys.stock(id);
    let _: i64 = app
        .state
        .cache
        .client()
        .decr_by(&key, 3)
        .await
        .expect("decr");
    let body = json_of(app.call(Method::GET, &path, Some(&admin.token), None).await).await;
    assert_eq!(body["stock"], 7);
}

#[tokio::test]
async fn a_product_missing_from_redis_is_loaded_from_mysql() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = app.create_product(&admin, "Lamp", 29_000, 12).await;
    sqlx::query("UPDATE products SET sold = 2 WHERE id = ?")
        .bind(id)
        .execute(&app.state.db)
        .await
        .expect("sold");
    let _: i64 = app
        .state
        .cache
        .client()
        .del(app.state.cache.keys.stock(id))
        .await
        .expect("del");
    let body = json_of(app.list_products(&admin.token, "").await).await;
    assert_eq!(body["items"][0]["stock"], 10, "total 12 - sold 2");
    let live: i64 = app
        .state
        .cache
        .client()
        .get(app.state.cache.keys.stock(id))
        .await
        .expect("get");
    assert_eq!(live, 10);
}

#[tokio::test]
async fn unknown_and_malformed_product_ids() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let missing = app
        .call(
            Method::GET,
            "/api/v1/products/999999",
            Some(&user.token),
            None,
        )
        .await;
    assert_problem(missing, 404, "PRODUCT_NOT_FOUND").await;
    for bad in ["abc", "-1", "1.5", "99999999999999999999"] {
        let response = app
            .call(
                Method::GET,
                &format!("/api/v1/products/{bad}"),
                Some(&user.token),
                None,
            )
            .await;
        assert_problem(response, 400, "VALIDATION_FAILED").await;
    }
}

#[tokio::test]
async fn restock_adds_units_in_mysql_and_redis_and_renames() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = app.create_product(&admin, "Kettle", 55_000, 5).await;
    let path = format!("/api/v1/admin/products/{id}");
    let body = json!({"name": "Electric Kettle", "price": 50000, "addStock": 7});
    let response = app
        .call(Method::PATCH, &path, Some(&admin.token), Some(body))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json_of(response).await,
        json!({"id": id, "name": "Electric Kettle", "price": 50000, "stock": 12})
    );
    app.assert_audit_passes().await;
    let row: (i64, i64) = sqlx::query_as("SELECT stock_total, price FROM products WHERE id = ?")
        .bind(id)
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert_eq!(row, (12, 50000));
}

#[tokio::test]
async fn a_retried_restock_with_the_same_idempotency_key_adds_once() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = app.create_product(&admin, "Grinder", 99_000, 5).await;
    let url = format!("{}/api/v1/admin/products/{id}", app.base);
    for _ in 0..3 {
        let response = app
            .http
            .patch(&url)
            .bearer_auth(&admin.token)
            .header("idempotency-key", "restock-grinder-1")
            .json(&json!({"addStock": 10}))
            .send()
            .await
            .expect("sent");
        assert_eq!(json_of(response).await["stock"], 15);
    }
    app.assert_audit_passes().await;
    let total = crate::helpers::count(&app.state.db, "SELECT stock_total FROM products").await;
    assert_eq!(total, 15);
}

#[tokio::test]
async fn invalid_product_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let id = app.create_product(&admin, "Mouse", 59_000, 5).await;
    let bad_creates = [
        json!({"name": "", "price": 1, "stock": 1}),
        json!({"name": "X", "price": -1, "stock": 1}),
        json!({"name": "X", "price": 1, "stock": 1_000_001}),
        json!({"name": "x".repeat(201), "price": 1, "stock": 1}),
    ];
    for body in bad_creates {
        let response = app
            .call(
                Method::POST,
                "/api/v1/admin/products",
                Some(&admin.token),
                Some(body),
            )
            .await;
        assert_problem(response, 400, "VALIDATION_FAILED").await;
    }
    let path = format!("/api/v1/admin/products/{id}");
    for body in [
        json!({"addStock": 0}),
        json!({"addStock": -5}),
        json!({"price": 2_000_000_000}),
    ] {
        let response = app
            .call(Method::PATCH, &path, Some(&admin.token), Some(body))
            .await;
        assert_problem(response, 400, "VALIDATION_FAILED").await;
    }
    let missing = app
        .call(
            Method::PATCH,
            "/api/v1/admin/products/424242",
            Some(&admin.token),
            Some(json!({"addStock": 1})),
        )
        .await;
    assert_problem(missing, 404, "PRODUCT_NOT_FOUND").await;
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as("SELECT id, price, stock_total FROM products")
        .fetch_all(&app.state.db)
        .await
        .expect("rows");
    assert_eq!(rows, vec![(id, 59_000, 5)]);
    let live: i64 = app
        .state
        .cache
        .client()
        .get(app.state.cache.keys.stock(id))
        .await
        .expect("get");
    assert_eq!(live, 5);
}

#[tokio::test]
async fn a_tampered_cursor_or_bad_limit_is_a_400_not_a_500() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for query in [
        "?cursor=%27%20OR%201%3D1--",
        "?cursor=cDE6LTE",
        "?limit=0",
        "?limit=101",
        "?limit=abc",
        "?foo=1",
    ] {
        let response = app.list_products(&user.token, query).await;
        assert_problem(response, 400, "VALIDATION_FAILED").await;
    }
}
