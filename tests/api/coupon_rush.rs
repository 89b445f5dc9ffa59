//! Acceptance of the first-come coupon issue under a rush: thousands of users, each firing
//! several concurrent issue requests spread over two real `flashmart serve` processes that share
//! one Redis and one database. Exactly the campaign's quantity is issued, never two coupons to
//! one user, and the settlement workers write exactly the winners to MySQL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use fred::prelude::*;
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{json_of, wait_for_drain, TestUser};
use crate::instances::{spawn_cluster, Cluster};

/// Concurrent issue requests each user fires.
const REQUESTS_PER_USER: usize = 3;
/// Users whose requests are in flight at once (all of a user's requests fly together), so at
/// most `USERS_IN_FLIGHT * REQUESTS_PER_USER` requests are open: what a 2-core box handles.
const USERS_IN_FLIGHT: usize = 85;
/// Longest a single issue request may take before the test calls it hung.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What one issue request answered.
#[derive(Debug)]
struct Answer {
    /// The user who asked.
    user_id: i64,
    /// The instance asked.
    instance: usize,
    /// HTTP status.
    status: u16,
    /// `code` of a problem+json answer.
    code: Option<String>,
    /// `userCouponId` of a 201.
    user_coupon_id: Option<i64>,
    /// How long the request took.
    latency: Duration,
}

/// The whole rush: every answer and how long the rush took.
struct Rush {
    answers: Vec<Answer>,
    elapsed: Duration,
}

/// Spawns two instances whose per-user issue budget lets a user's concurrent requests through
/// (the general `RATE_LIMIT_*` stay as the harness sets them).
async fn two_instances() -> Cluster {
    spawn_cluster(2, |env| {
        env.insert("COUPON_ISSUE_PER_SECOND", "10".to_owned());
        env.insert("COUPON_ISSUE_BURST", "10".to_owned());
    })
    .await
}

/// Creates, as `admin` on instance 0, a campaign of `total` coupons whose window opened a minute
/// ago and closes in an hour; returns its id.
async fn open_campaign(cluster: &Cluster, admin: &TestUser, total: i64) -> i64 {
    let now = Utc::now();
    let body = json!({
        "name": "Rush 5000",
        "discountType": "FIXED",
        "discountValue": 5000,
        "minOrderAmount": 20000,
        "totalQuantity": total,
        "issueStartsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "issueEndsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
        "validDays": 7
    });
    let response = cluster
        .call(
            0,
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(body),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "create the campaign"
    );
    json_of(response).await["couponId"]
        .as_i64()
        .expect("the campaign answer carries couponId")
}

/// `POST /api/v1/coupons/{id}/issue` as `user` on instance `instance`, with the answer parsed:
/// a 201 must be the issued coupon, anything else a problem+json with a matching status.
async fn issue(cluster: &Cluster, instance: usize, user: &TestUser, coupon_id: i64) -> Answer {
    let url = format!(
        "{}/api/v1/coupons/{coupon_id}/issue",
        cluster.base(instance)
    );
    let started = Instant::now();
    let response = cluster
        .http
        .post(url)
        .bearer_auth(&user.token)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("the issue request gets an answer in time");
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = json_of(response).await;
    let mut answer = Answer {
        user_id: user.id,
        instance,
        status,
        code: None,
        user_coupon_id: None,
        latency,
    };
    if status == 201 {
        assert_eq!(
            body["couponId"], coupon_id,
            "issued coupon's campaign: {body}"
        );
        assert_eq!(
            body["status"], "AVAILABLE",
            "issued coupon's status: {body}"
        );
        let expires = body["expiresAt"].as_str().expect("a 201 carries expiresAt");
        expires
            .parse::<chrono::DateTime<Utc>>()
            .expect("expiresAt is RFC 3339");
        answer.user_coupon_id = Some(body["userCouponId"].as_i64().expect("userCouponId"));
    } else {
        assert_eq!(
            content_type, "application/problem+json",
            "a {status} is problem+json: {body}"
        );
        assert_eq!(
            body["status"], status,
            "problem status matches HTTP: {body}"
        );
        answer.code = body["code"].as_str().map(str::to_owned);
    }
    answer
}

/// Every user fires [`REQUESTS_PER_USER`] concurrent issue requests (request `k` of the `n`-th
/// user goes to instance `(n + k) % 2`, so each user hits both), [`USERS_IN_FLIGHT`] users at a
/// time.
async fn rush(cluster: &Cluster, users: &[TestUser], coupon_id: i64) -> Rush {
    let started = Instant::now();
    let answers: Vec<Answer> = stream::iter(users.iter().enumerate())
        .map(|(n, user)| {
            join_all(
                (0..REQUESTS_PER_USER)
                    .map(move |k| issue(cluster, (n + k) % cluster.len(), user, coupon_id)),
            )
        })
        .buffer_unordered(USERS_IN_FLIGHT)
        .flat_map(stream::iter)
        .collect()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(
        answers.len(),
        users.len() * REQUESTS_PER_USER,
        "every request answered"
    );
    Rush { answers, elapsed }
}

/// Prints the rush's duration, throughput and latency percentiles.
fn report(name: &str, rush: &Rush) {
    let mut latencies: Vec<Duration> = rush.answers.iter().map(|a| a.latency).collect();
    latencies.sort();
    let at = |p: usize| latencies[(latencies.len() - 1) * p / 100];
    let per_instance: Vec<usize> = (0..2)
        .map(|i| rush.answers.iter().filter(|a| a.instance == i).count())
        .collect();
    eprintln!(
        "{name}: {} requests in {:.3} s = {:.0} requests/s; latency p50 {:?}, p99 {:?}, \
         max {:?}; per instance {per_instance:?}",
        rush.answers.len(),
        rush.elapsed.as_secs_f64(),
        rush.answers.len() as f64 / rush.elapsed.as_secs_f64(),
        at(50),
        at(99),
        at(100),
    );
}

/// How many answers had each (status, code).
fn tally(answers: &[Answer]) -> BTreeMap<(u16, String), usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        let code = answer.code.clone().unwrap_or_default();
        *counts.entry((answer.status, code)).or_insert(0) += 1;
    }
    counts
}

/// The winners: user id → userCouponId; asserts no user won twice and no id was reused.
fn winners_of(answers: &[Answer]) -> HashMap<i64, i64> {
    let wins: Vec<(i64, i64)> = answers
        .iter()
        .filter_map(|a| a.user_coupon_id.map(|id| (a.user_id, id)))
        .collect();
    let winners: HashMap<i64, i64> = wins.iter().copied().collect();
    assert_eq!(winners.len(), wins.len(), "no user won twice");
    let ids: HashSet<i64> = wins.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), wins.len(), "every userCouponId is distinct");
    winners
}

/// Asserts, per user, the only answers a correct issue can give: a winner gets one 201 and
/// 409 COUPON_ALREADY_ISSUED for the rest; a loser gets 410 COUPON_SOLD_OUT for all.
fn assert_each_user_answered_consistently(answers: &[Answer], winners: &HashMap<i64, i64>) {
    let mut by_user: HashMap<i64, Vec<(u16, String)>> = HashMap::new();
    for answer in answers {
        let code = answer.code.clone().unwrap_or_default();
        by_user
            .entry(answer.user_id)
            .or_default()
            .push((answer.status, code));
    }
    for (user_id, mut got) in by_user {
        got.sort();
        let mut expected = vec![(410, "COUPON_SOLD_OUT".to_owned()); REQUESTS_PER_USER];
        if winners.contains_key(&user_id) {
            expected = vec![(409, "COUPON_ALREADY_ISSUED".to_owned()); REQUESTS_PER_USER - 1];
            expected.insert(0, (201, String::new()));
        }
        assert_eq!(got, expected, "answers of user {user_id}");
    }
}

/// After the workers drain: MySQL holds exactly the winners' coupons, Redis counts them, the
/// listing shows what is left, and `flashmart audit` passes.
async fn assert_settled(
    cluster: &Cluster,
    viewer: &TestUser,
    coupon_id: i64,
    total: i64,
    winners: &HashMap<i64, i64>,
) {
    wait_for_drain(&cluster.cache).await;
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, user_id FROM user_coupons WHERE coupon_id = ?")
            .bind(coupon_id)
            .fetch_all(&cluster.db)
            .await
            .expect("read the campaign's user_coupons");
    assert_eq!(rows.len(), winners.len(), "one user_coupons row per winner");
    let stored: HashMap<i64, i64> = rows.iter().map(|(id, user)| (*user, *id)).collect();
    assert_eq!(
        stored.len(),
        winners.len(),
        "user_coupons rows have distinct user_ids"
    );
    assert_eq!(
        &stored, winners,
        "user_coupons rows are exactly the winners' coupons"
    );

    let issued = winners.len() as i64;
    let client = cluster.cache.client();
    let counted: i64 = client
        .hget(cluster.cache.keys.coupon(coupon_id), "issued")
        .await
        .expect("read the campaign's issued count");
    assert_eq!(counted, issued, "Redis campaign `issued`");
    let holders: i64 = client
        .hlen(cluster.cache.keys.coupon_users(coupon_id))
        .await
        .expect("count the campaign's holders");
    assert_eq!(holders, issued, "Redis campaign holders");

    let listed = cluster
        .call(1, Method::GET, "/api/v1/coupons", Some(&viewer.token), None)
        .await;
    assert_eq!(listed.status(), StatusCode::OK, "list campaigns");
    let listed: Value = json_of(listed).await;
    let item = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["couponId"] == coupon_id)
        .expect("the campaign is listed")
        .clone();
    assert_eq!(item["totalQuantity"], total, "{item}");
    assert_eq!(item["remainingQuantity"], total - issued, "{item}");

    let audit = cluster.run_cli(&["audit"]).await;
    let printed = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "audit exits 0:\n{printed}\n{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(printed.contains("audit passed"), "audit output:\n{printed}");
}

/// Prints the WARN and ERROR lines each instance logged (none are expected).
fn report_log_problems(cluster: &Cluster) {
    for i in 0..cluster.len() {
        let log = cluster.log(i);
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"level\":\"ERROR\"") || l.contains("\"level\":\"WARN\""))
            .collect();
        eprintln!("instance {i}: {} WARN/ERROR log lines", problems.len());
        for line in problems.iter().take(5) {
            eprintln!("  {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_under_a_rush_issue_exactly_the_limit_and_one_per_user() {
    const USERS: usize = 2_000;
    const TOTAL: i64 = 100;
    let cluster = two_instances().await;
    let admin = cluster.new_admin(0).await;
    let coupon_id = open_campaign(&cluster, &admin, TOTAL).await;
    let users = cluster.seed_users(USERS, "rush").await;

    let rush = rush(&cluster, &users, coupon_id).await;
    report("rush of 2,000 users x 3 on 100 coupons", &rush);

    let counts = tally(&rush.answers);
    let created = counts.get(&(201, String::new())).copied().unwrap_or(0);
    let already = counts
        .get(&(409, "COUPON_ALREADY_ISSUED".to_owned()))
        .copied()
        .unwrap_or(0);
    let sold_out = counts
        .get(&(410, "COUPON_SOLD_OUT".to_owned()))
        .copied()
        .unwrap_or(0);
    assert_eq!(created, 100, "exactly the quantity is issued: {counts:?}");
    assert_eq!(
        created + already + sold_out,
        USERS * REQUESTS_PER_USER,
        "only 201, 409 COUPON_ALREADY_ISSUED and 410 COUPON_SOLD_OUT (no 5xx, no 429): \
         {counts:?}"
    );
    let winners = winners_of(&rush.answers);
    assert_eq!(winners.len(), 100, "100 distinct winners");
    assert_each_user_answered_consistently(&rush.answers, &winners);
    assert_eq!(already, 200, "each winner's other two requests: {counts:?}");
    assert_eq!(sold_out, 5_700, "every loser's three requests: {counts:?}");

    assert_settled(&cluster, &admin, coupon_id, TOTAL, &winners).await;
    report_log_problems(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rush_where_everyone_fits_gives_each_user_exactly_one_coupon() {
    const USERS: usize = 300;
    const TOTAL: i64 = 1_000;
    let cluster = two_instances().await;
    let admin = cluster.new_admin(0).await;
    let coupon_id = open_campaign(&cluster, &admin, TOTAL).await;
    let users = cluster.seed_users(USERS, "fits").await;

    let rush = rush(&cluster, &users, coupon_id).await;
    report("rush of 300 users x 3 on 1,000 coupons", &rush);

    let counts = tally(&rush.answers);
    let expected = BTreeMap::from([
        ((201, String::new()), 300),
        ((409, "COUPON_ALREADY_ISSUED".to_owned()), 600),
    ]);
    assert_eq!(counts, expected, "one 201 and two 409s per user");
    let winners = winners_of(&rush.answers);
    let everyone: HashSet<i64> = users.iter().map(|u| u.id).collect();
    let won: HashSet<i64> = winners.keys().copied().collect();
    assert_eq!(won, everyone, "every user got a coupon");
    assert_each_user_answered_consistently(&rush.answers, &winners);

    assert_settled(&cluster, &admin, coupon_id, TOTAL, &winners).await;
    report_log_problems(&cluster);
}
