//! An order of unknown products costs one MySQL read, not one per line (measured on a real
//! `flashmart serve` process through its `db_product_reads_total` metric).

use reqwest::Method;
use serde_json::json;

use crate::helpers::assert_problem;
use crate::instances::{counter_total, spawn_one_with_metrics};

async fn product_reads(http: &reqwest::Client, metrics: &str) -> u64 {
    counter_total(http, metrics, "db_product_reads_total", "").await
}

#[tokio::test]
async fn an_order_of_fifty_unknown_products_is_one_mysql_read() {
    let (cluster, metrics) = spawn_one_with_metrics().await;
    let user = cluster.seed_users(1, "reads").await.remove(0);
    let admin = cluster.new_admin(0).await;
    let known = cluster.create_product(0, &admin, "Lamp", 1_000, 5).await;
    let items: Vec<_> = (0..50)
        .map(|i| json!({"productId": 900_000 + i, "quantity": 1}))
        .collect();
    for attempt in 0..3 {
        let before = product_reads(&cluster.http, &metrics).await;
        let order = cluster
            .call(
                0,
                Method::POST,
                "/api/v1/orders",
                Some(&user.token),
                Some(json!({"items": items})),
            )
            .await;
        assert_problem(order, 404, "PRODUCT_NOT_FOUND").await;
        let reads = product_reads(&cluster.http, &metrics).await - before;
        assert_eq!(
            reads, 1,
            "attempt {attempt}: MySQL product reads for 50 unknown lines"
        );
    }
    // one known product among unknown ones: still one read, and nothing reserved
    let mut mixed = items.clone();
    mixed[0] = json!({"productId": known, "quantity": 1});
    let before = product_reads(&cluster.http, &metrics).await;
    let order = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/orders",
            Some(&user.token),
            Some(json!({"items": mixed})),
        )
        .await;
    assert_problem(order, 404, "PRODUCT_NOT_FOUND").await;
    assert!(product_reads(&cluster.http, &metrics).await - before <= 1);
    let product = cluster
        .call(
            0,
            Method::GET,
            &format!("/api/v1/products/{known}"),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(crate::helpers::json_of(product).await["stock"], 5);
}
