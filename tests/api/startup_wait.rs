//! `flashmart serve` started while MySQL and Redis are down stays up: `/health/live` answers
//! 200, `/health/ready` and the API 503 with Retry-After, it logs what it waits for, and it
//! serves once they are back. With `STARTUP_TIMEOUT_SECS` it gives up and exits 1.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::fault_proxy::FaultProxy;
use crate::helpers::database_server;
use crate::instances::{spawn_cluster, Cluster};

/// A one-instance cluster whose database and Redis connections go through proxies.
async fn instance_behind_proxies(
    extra: &'static [(&'static str, &'static str)],
) -> (Cluster, FaultProxy, FaultProxy) {
    let redis = FaultProxy::start(&std::env::var("REDIS_URL").expect("REDIS_URL")).await;
    let server = database_server();
    let db = FaultProxy::start_tcp(&server).await;
    let (db_addr, redis_url) = (db.url.clone(), redis.url.clone());
    let cluster = spawn_cluster(1, |env| {
        let url = env["DATABASE_URL"].replacen(&server, &db_addr, 1);
        env.insert("DATABASE_URL", url);
        env.insert("REDIS_URL", redis_url);
        for (k, v) in extra {
            env.insert(k, (*v).to_owned());
        }
    })
    .await;
    (cluster, db, redis)
}

/// Polls `path` on instance 0 until it answers `status` (panics after 30 s).
async fn wait_for_status(cluster: &Cluster, path: &str, status: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = cluster
            .http
            .get(format!("{}{path}", cluster.base(0)))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.as_ref().is_ok_and(|r| r.status() == status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered {status}; last: {answer:?}\n{}",
            cluster.log(0)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts `GET path` on instance 0 answers 503 with Retry-After and the stable code.
async fn assert_unavailable(cluster: &Cluster, path: &str) {
    let response = cluster
        .http
        .get(format!("{}{path}", cluster.base(0)))
        .send()
        .await
        .expect("the instance answers while it waits");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
    assert!(retry_after.is_some(), "{path}: no Retry-After");
    assert!(body.contains("SERVICE_UNAVAILABLE"), "{path}: {body}");
}

#[tokio::test]
async fn serve_started_while_both_dependencies_are_down_waits_for_them_then_serves() {
    let (mut cluster, db, redis) = instance_behind_proxies(&[]).await;
    let user = cluster.new_user(0).await;
    cluster.kill(0).await;
    db.cut();
    redis.cut();
    cluster.start(0).await;

    wait_for_status(&cluster, "/health/live", StatusCode::OK).await;
    assert_unavailable(&cluster, "/health/ready").await;
    assert_unavailable(&cluster, "/api/v1/products").await;
    let waits = cluster.log(0);
    assert!(
        waits.contains("dependencies not ready") && waits.contains("database"),
        "the instance logs what it waits for:\n{waits}"
    );

    // The database alone is not enough: Redis decides.
    db.restore();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_unavailable(&cluster, "/health/ready").await;

    redis.restore();
    cluster.wait_ready(0).await;
    let charged = cluster
        .http
        .post(format!(
            "{}/api/v1/users/{}/balance/charge",
            cluster.base(0),
            user.id
        ))
        .bearer_auth(&user.token)
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&json!({ "amount": 7000 }))
        .send()
        .await
        .expect("charge sent");
    assert_eq!(charged.status(), StatusCode::OK, "{}", cluster.log(0));
    let path = format!("/api/v1/users/{}/balance", user.id);
    let balance = cluster
        .call(0, Method::GET, &path, Some(&user.token), None)
        .await;
    let balance: serde_json::Value = balance.json().await.expect("balance JSON");
    assert_eq!(balance["balance"], 7000, "{balance}");
    let audit = cluster.run_cli(&["audit"]).await;
    assert!(
        audit.status.success(),
        "audit after the start-up wait:\n{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[tokio::test]
async fn serve_gives_up_after_the_startup_timeout_with_a_clear_error() {
    let (mut cluster, db, redis) = instance_behind_proxies(&[]).await;
    cluster.kill(0).await;
    cluster.env.insert("STARTUP_TIMEOUT_SECS", "2".to_owned());
    redis.cut();
    cluster.start(0).await;
    let status = cluster.wait_exit(0, Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(1), "{}", cluster.log(0));
    assert!(
        cluster.log(0).contains("STARTUP_TIMEOUT_SECS"),
        "the error names the setting:\n{}",
        cluster.log(0)
    );
    drop(db);
}
