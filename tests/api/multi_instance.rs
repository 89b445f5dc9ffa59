//! Claims that must hold across several real `flashmart serve` processes sharing one database
//! and one Redis (see [`crate::instances`]).

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, json_of, TEST_PASSWORD};
use crate::instances::spawn_cluster;

#[tokio::test]
async fn two_serve_processes_share_one_database_and_redis() {
    let cluster = spawn_cluster(2, |_| {}).await;
    assert_ne!(cluster.pid(0), cluster.pid(1), "two distinct processes");

    let signup = cluster
        .signup(0, "shared@example.com", TEST_PASSWORD, "Shared")
        .await;
    assert_eq!(signup.status(), StatusCode::CREATED);
    let user_id = json_of(signup).await["userId"].as_i64().expect("userId");

    let login = cluster.login(1, "shared@example.com", TEST_PASSWORD).await;
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "instance 1 sees the account"
    );
    let login = json_of(login).await;
    assert_eq!(login["userId"], user_id);
    let token = login["accessToken"].as_str().expect("accessToken");

    let products = cluster
        .call(0, Method::GET, "/api/v1/products", Some(token), None)
        .await;
    assert_eq!(
        products.status(),
        StatusCode::OK,
        "a token from instance 1 works on instance 0"
    );

    let rows: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE email = ?")
        .bind("shared@example.com")
        .fetch_one(&cluster.db)
        .await
        .expect("count users");
    assert_eq!(rows.0, 1);
}

#[tokio::test]
async fn an_admin_restock_on_one_instance_is_visible_on_the_other() {
    let cluster = spawn_cluster(2, |_| {}).await;
    let admin = cluster.new_admin(0).await;
    let id = cluster.create_product(0, &admin, "Lamp", 12_000, 5).await;

    let patched = cluster
        .call(
            1,
            Method::PATCH,
            &format!("/api/v1/admin/products/{id}"),
            Some(&admin.token),
            Some(json!({"addStock": 3})),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    assert_eq!(json_of(patched).await["stock"], 8, "instance 1 answers 8");

    let seen = cluster
        .call(
            0,
            Method::GET,
            &format!("/api/v1/products/{id}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(seen.status(), StatusCode::OK);
    assert_eq!(
        json_of(seen).await["stock"],
        8,
        "instance 0 sees the restock"
    );

    crate::helpers::wait_for_drain(&cluster.cache).await;
    let total: (i64,) = sqlx::query_as("SELECT stock_total FROM products WHERE id = ?")
        .bind(id)
        .fetch_one(&cluster.db)
        .await
        .expect("product row");
    assert_eq!(total.0, 8, "MySQL stock_total");
    let available = flashmart::cache::stock::available(&cluster.cache, &[id])
        .await
        .expect("read Redis stock");
    assert_eq!(available, vec![Some(8)], "Redis available stock");
}

#[tokio::test]
async fn sigterm_stops_an_instance_gracefully_and_the_other_keeps_serving() {
    let mut cluster = spawn_cluster(2, |_| {}).await;

    let status = cluster.terminate(0).await;
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_eq!(status.code(), Some(0));
    assert!(
        cluster.log(0).contains("shutdown signal received"),
        "the instance logged its graceful shutdown:\n{}",
        cluster.log(0)
    );
    assert!(
        cluster.log(0).contains("background tasks stopped"),
        "the instance waited for its sweeper, relay and settlement thread:\n{}",
        cluster.log(0)
    );
    let gone = cluster
        .http
        .get(format!("{}/health/live", cluster.base(0)))
        .send()
        .await;
    assert!(gone.is_err(), "instance 0 no longer listens");

    let live = cluster
        .call(1, Method::GET, "/health/live", None, None)
        .await;
    assert_eq!(live.status(), StatusCode::OK, "instance 1 keeps serving");
    let user = cluster.new_user(1).await;
    let products = cluster
        .call(1, Method::GET, "/api/v1/products", Some(&user.token), None)
        .await;
    assert_eq!(products.status(), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_signups_across_instances_never_duplicate_an_email() {
    const ATTEMPTS: usize = 40;
    let cluster = spawn_cluster(2, |_| {}).await;
    let email = "race@example.com";

    let responses = join_all((0..ATTEMPTS).map(|n| {
        let cluster = &cluster;
        async move {
            cluster
                .signup(
                    n % cluster.len(),
                    email,
                    TEST_PASSWORD,
                    &format!("Racer {n}"),
                )
                .await
        }
    }))
    .await;

    let mut created = 0;
    for response in responses {
        if response.status() == StatusCode::CREATED {
            created += 1;
        } else {
            assert_problem(response, 409, "EMAIL_TAKEN").await;
        }
    }
    assert_eq!(created, 1, "exactly one sign-up wins");

    let rows: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users WHERE email = ?")
        .bind(email)
        .fetch_one(&cluster.db)
        .await
        .expect("count users");
    assert_eq!(rows.0, 1, "exactly one users row");
    let everyone: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&cluster.db)
        .await
        .expect("count all users");
    assert_eq!(everyone.0, 1, "no other row was created");
}

#[tokio::test]
async fn a_killed_instance_restarts_on_its_port_with_the_shared_state() {
    let mut cluster = spawn_cluster(1, |_| {}).await;
    let user = cluster.new_user(0).await;

    let status = cluster.kill(0).await;
    assert!(!status.success(), "SIGKILL is not a clean exit: {status}");
    assert_eq!(cluster.pid(0), None);

    cluster.restart(0).await;
    let again = cluster.login(0, &user.email, TEST_PASSWORD).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "the account survived the restart"
    );
    let served = cluster
        .log(0)
        .lines()
        .filter(|line| line.contains("flashmart serving"))
        .count();
    assert_eq!(served, 2, "one log holds both starts:\n{}", cluster.log(0));

    let migrate = cluster.run_cli(&["migrate"]).await;
    assert!(
        migrate.status.success(),
        "migrate with the cluster's environment: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("migrations applied"));
}

/// A log-out revokes the user's tokens at once on the instance that served it, and on every
/// other instance once that instance's copy of the generation (`SESSION_CACHE_MS`) is older
/// than its limit; other users keep their sessions everywhere.
#[tokio::test]
async fn a_log_out_on_one_instance_revokes_the_tokens_on_the_other_within_the_session_cache_limit()
{
    const CACHE_MS: u64 = 1_500;
    let cluster = spawn_cluster(2, |env| {
        env.insert("SESSION_CACHE_MS", CACHE_MS.to_string());
    })
    .await;
    let user = cluster.new_user(0).await;
    let other = cluster.new_user(1).await;
    let balance = |id: i64| format!("/api/v1/users/{id}/balance");
    for i in 0..2 {
        // Both instances now hold a copy of both users' generations.
        for who in [&user, &other] {
            let response = cluster
                .call(i, Method::GET, &balance(who.id), Some(&who.token), None)
                .await;
            assert_eq!(response.status(), StatusCode::OK, "instance {i}");
        }
    }
    log_out(&cluster, 0, &user.token).await;
    let here = cluster
        .call(0, Method::GET, &balance(user.id), Some(&user.token), None)
        .await;
    assert_problem(here, 401, "UNAUTHORIZED").await;

    // Every copy read before the log-out is now older than the limit.
    tokio::time::sleep(std::time::Duration::from_millis(CACHE_MS)).await;
    let there = cluster
        .call(1, Method::GET, &balance(user.id), Some(&user.token), None)
        .await;
    assert_problem(there, 401, "UNAUTHORIZED").await;
    for i in 0..2 {
        let response = cluster
            .call(i, Method::GET, &balance(other.id), Some(&other.token), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "other users keep theirs");
    }
    let fresh = cluster.token(1, &user.email, TEST_PASSWORD).await;
    for i in 0..2 {
        let response = cluster
            .call(i, Method::GET, &balance(user.id), Some(&fresh), None)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "a new log-in works on {i}"
        );
    }
}

/// Cuts instance `i`'s log-out feed, as a network blip would: on every Redis node, the
/// subscriber connections named as its log says (`CLIENT LIST TYPE pubsub`, `CLIENT KILL ID`).
/// Other tests' instances keep theirs. Returns how many connections were cut.
async fn cut_log_out_feed(cluster: &crate::instances::Cluster, i: usize) -> usize {
    use fred::prelude::*;
    use fred::types::{ClusterHash, CustomCommand};
    let log = cluster.log(i);
    let name = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "log-out feed subscribed")
        .and_then(|event| event["connection_name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("instance {i} logged its feed's connection name:\n{log}"));
    let client = cluster.cache.client();
    let mut cut = 0;
    for server in client.active_connections() {
        let node = client.with_cluster_node(server.clone());
        let list: String = node
            .custom(
                CustomCommand::new_static("CLIENT", ClusterHash::Random, false),
                vec!["LIST", "TYPE", "pubsub"],
            )
            .await
            .unwrap_or_else(|e| panic!("CLIENT LIST on {server}: {e}"));
        for line in list.lines() {
            let field = |key: &str| {
                line.split(' ')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .map(str::to_owned)
            };
            if field("name").as_deref() != Some(name.as_str()) {
                continue;
            }
            let id = field("id").expect("a client id");
            let _: Value = node
                .custom(
                    CustomCommand::new_static("CLIENT", ClusterHash::Random, false),
                    vec!["KILL", "ID", id.as_str()],
                )
                .await
                .unwrap_or_else(|e| panic!("CLIENT KILL ID {id} on {server}: {e}"));
            cut += 1;
        }
    }
    cut
}

/// Logs `token` out on instance `i` (`204`).
async fn log_out(cluster: &crate::instances::Cluster, i: usize, token: &str) {
    let out = cluster
        .call(i, Method::POST, "/api/v1/auth/logout", Some(token), None)
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT, "log-out on {i}");
}

/// Asks instance `i` for `user`'s balance with `token` every 100 ms until the answer is
/// `want`, for at most `limit`; returns how long that took.
async fn until_answered(
    cluster: &crate::instances::Cluster,
    i: usize,
    user: i64,
    token: &str,
    want: StatusCode,
    limit: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    let path = format!("/api/v1/users/{user}/balance");
    loop {
        let status = cluster
            .call(i, Method::GET, &path, Some(token), None)
            .await
            .status();
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "instance {i} still answers {status} after {limit:?}, want {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The log-out feed: a log-out served by one instance revokes the user's tokens on the other
/// as soon as it is heard there, before that instance would read its copy of the generation
/// again on its own (after a quarter of `SESSION_CACHE_MS`, 10 s here).
#[tokio::test]
async fn a_log_out_is_heard_by_the_other_instance_before_its_copy_expires() {
    const CACHE: std::time::Duration = std::time::Duration::from_secs(10);
    let cluster = spawn_cluster(2, |env| {
        env.insert("SESSION_CACHE_MS", CACHE.as_millis().to_string());
        env.insert("SESSION_FEED_TRUST_MS", "600000".to_owned());
    })
    .await;
    let user = cluster.new_user(0).await;
    // Instance 1 reads its copy now, and would serve it unread for a quarter of `CACHE`.
    let copy_read = std::time::Instant::now();
    until_answered(&cluster, 1, user.id, &user.token, StatusCode::OK, CACHE).await;
    log_out(&cluster, 0, &user.token).await;
    until_answered(
        &cluster,
        1,
        user.id,
        &user.token,
        StatusCode::UNAUTHORIZED,
        CACHE / 2,
    )
    .await;
    assert!(
        copy_read.elapsed() < CACHE / 4,
        "refused before the copy would have been read again: {:?}",
        copy_read.elapsed()
    );
}

/// While the feed vouches for it, an instance serves its copy of a generation past
/// `SESSION_CACHE_MS` (a raise written behind the feed's back, which no log-out does, goes
/// unseen: that is the copy at work); once the feed is cut, the copy is only trusted for
/// `SESSION_CACHE_MS` again, so the instance reads Redis and refuses the token.
#[tokio::test]
async fn a_cut_log_out_feed_stops_vouching_for_the_copy() {
    let cluster = spawn_cluster(1, |env| {
        env.insert("SESSION_CACHE_MS", "300".to_owned());
        env.insert("SESSION_FEED_TRUST_MS", "600000".to_owned());
    })
    .await;
    let user = cluster.new_user(0).await;
    let path = format!("/api/v1/users/{}/balance", user.id);
    // Used for longer than the cache limit, so the copy is read again once the feed is up.
    for _ in 0..10 {
        let response = cluster
            .call(0, Method::GET, &path, Some(&user.token), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    // A raise behind the feed's back, as a lost announcement would be.
    let key = cluster.cache.keys.token_generation(user.id);
    let held: i64 = {
        use fred::prelude::*;
        let client = cluster.cache.client();
        let held: i64 = client.get(&key).await.expect("the held generation");
        let () = client
            .set(&key, held + 1, None, None, false)
            .await
            .expect("raise it silently");
        held
    };
    let mut served = 0;
    for _ in 0..6 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let response = cluster
            .call(0, Method::GET, &path, Some(&user.token), None)
            .await;
        if response.status() == StatusCode::OK {
            served += 1;
        }
    }
    assert!(
        served == 6,
        "the vouched copy (generation {held}) was served past SESSION_CACHE_MS: {served} of 6"
    );
    assert!(
        cut_log_out_feed(&cluster, 0).await > 0,
        "the feed's connections were found"
    );
    until_answered(
        &cluster,
        0,
        user.id,
        &user.token,
        StatusCode::UNAUTHORIZED,
        std::time::Duration::from_secs(10),
    )
    .await;
}
