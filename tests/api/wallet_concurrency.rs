//! The acceptance test of concurrent charging: two real `flashmart serve` processes, each with
//! its own settlement worker, take thousands of concurrent charges (with idempotency keys and
//! exact duplicates), and afterwards every balance is exact in Redis, over the API and in the
//! MySQL ledger, and `flashmart audit` passes — also when one instance is SIGKILLed midway.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashmart::cache::Cache;
use flashmart::settlement::GROUP;
use fred::prelude::*;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::helpers::{count, json_of, wait_for_drain, TestUser};
use crate::instances::{spawn_cluster, Cluster};

/// Users charging at once.
const USERS: usize = 50;
/// Charge requests per user (all in flight together).
const CHARGES_PER_USER: usize = 40;
/// Longest any single request may take before the test gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// One charge request of the plan.
#[derive(Clone, Debug)]
struct Charge {
    /// Index of the user in the users list.
    user: usize,
    /// Position among the user's requests.
    slot: usize,
    /// Won to charge.
    amount: i64,
    /// Idempotency key, if sent.
    key: Option<String>,
    /// The slot this request repeats exactly (same key and amount), if it is a duplicate.
    repeats: Option<usize>,
}

/// The charges of every user. Every tenth request (slots 9, 19, …) repeats the keyed request
/// two slots earlier with the same key and amount, and must not charge again.
fn plan(every_charge_keyed: bool) -> Vec<Charge> {
    let amount = |i: usize, j: usize| 100 * (1 + ((i * 7 + j) % 13) as i64);
    let key = |i: usize, j: usize| format!("user{i}-charge{j}");
    let mut charges = Vec::with_capacity(USERS * CHARGES_PER_USER);
    for i in 0..USERS {
        for j in 0..CHARGES_PER_USER {
            let charge = if j % 10 == 9 {
                Charge {
                    user: i,
                    slot: j,
                    amount: amount(i, j - 2),
                    key: Some(key(i, j - 2)),
                    repeats: Some(j - 2),
                }
            } else {
                let keyed = every_charge_keyed || j % 2 == 1;
                Charge {
                    user: i,
                    slot: j,
                    amount: amount(i, j),
                    key: keyed.then(|| key(i, j)),
                    repeats: None,
                }
            };
            charges.push(charge);
        }
    }
    charges
}

/// Won each user must end up with: the sum of their distinct charges.
fn expected_balances(plan: &[Charge]) -> Vec<i64> {
    let mut balances = vec![0; USERS];
    for charge in plan.iter().filter(|c| c.repeats.is_none()) {
        balances[charge.user] += charge.amount;
    }
    balances
}

/// Signs up and logs in `USERS` users concurrently, alternating instances.
async fn sign_up_users(cluster: &Cluster) -> Vec<TestUser> {
    join_all((0..USERS).map(|i| cluster.new_user(i % cluster.len()))).await
}

/// Sends one charge to `base` and reads the whole answer.
async fn send_charge(
    http: &reqwest::Client,
    base: &str,
    user: &TestUser,
    charge: &Charge,
) -> Result<(StatusCode, String), reqwest::Error> {
    let mut request = http
        .post(format!("{base}/api/v1/users/{}/balance/charge", user.id))
        .bearer_auth(&user.token)
        .timeout(REQUEST_TIMEOUT)
        .json(&json!({ "amount": charge.amount }));
    if let Some(key) = &charge.key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await?;
    let status = response.status();
    Ok((status, response.text().await?))
}

/// Asserts every answer was `200 {userId, balance, chargedAmount}` for its request, that a
/// duplicate answered exactly what the request it repeats answered, and that each user's
/// charges form one serial chain: sorted by the balance they report, each balance is the
/// previous one plus that charge, ending at the expected balance.
fn assert_answers(
    plan: &[Charge],
    answers: &[(StatusCode, String)],
    users: &[TestUser],
    expected: &[i64],
) {
    let bodies: Vec<Value> = plan
        .iter()
        .zip(answers)
        .map(|(charge, (status, text))| {
            assert_eq!(*status, StatusCode::OK, "{charge:?}: {text}");
            let body: Value = serde_json::from_str(text).expect("a charge answers JSON");
            assert_eq!(body["userId"], users[charge.user].id, "{charge:?}");
            assert_eq!(body["chargedAmount"], charge.amount, "{charge:?}");
            body
        })
        .collect();
    let at = |user: usize, slot: usize| user * CHARGES_PER_USER + slot;
    let mut chains: Vec<Vec<(i64, i64)>> = vec![Vec::new(); USERS];
    for (charge, body) in plan.iter().zip(&bodies) {
        let balance = body["balance"].as_i64().expect("balance is an integer");
        match charge.repeats {
            Some(first) => assert_eq!(
                body,
                &bodies[at(charge.user, first)],
                "a duplicate answers the first outcome: {charge:?}"
            ),
            None => chains[charge.user].push((balance, charge.amount)),
        }
    }
    for (user, chain) in chains.iter_mut().enumerate() {
        chain.sort_unstable();
        let mut running = 0;
        for (balance, amount) in chain.iter() {
            running += amount;
            assert_eq!(
                *balance, running,
                "user {user}: charges applied one at a time"
            );
        }
        assert_eq!(running, expected[user], "user {user}: final balance");
    }
}

/// Asserts each user's balance as the API answers it on instance `instance`.
async fn assert_api_balances(
    cluster: &Cluster,
    instance: usize,
    users: &[TestUser],
    expected: &[i64],
) {
    let answers = join_all(users.iter().map(|user| {
        let path = format!("/api/v1/users/{}/balance", user.id);
        async move {
            let response = cluster
                .call(
                    instance,
                    reqwest::Method::GET,
                    &path,
                    Some(&user.token),
                    None,
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            json_of(response).await["balance"]
                .as_i64()
                .expect("balance")
        }
    }))
    .await;
    assert_eq!(answers, expected, "API balances on instance {instance}");
}

/// After the stream drains: every user account in MySQL holds exactly its expected balance,
/// each distinct charge is one `wallet_charges` row, one `applied_events` row and two ledger
/// entries, `cash_in` moved by the total, and `flashmart audit` passes.
async fn assert_ledger_exact(cluster: &Cluster, users: &[TestUser], expected: &[i64]) {
    wait_for_drain(&cluster.cache).await;
    let distinct = i64::try_from(USERS * CHARGES_PER_USER * 9 / 10).expect("small");
    let total: i64 = expected.iter().sum();

    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT code, balance FROM accounts WHERE code LIKE 'user:%'")
            .fetch_all(&cluster.db)
            .await
            .expect("read the user accounts");
    let stored: HashMap<String, i64> = rows.into_iter().collect();
    let wanted: HashMap<String, i64> = users
        .iter()
        .zip(expected)
        .map(|(user, balance)| (format!("user:{}", user.id), *balance))
        .collect();
    assert_eq!(stored, wanted, "MySQL user accounts");

    let db = &cluster.db;
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM wallet_charges").await,
        distinct
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM applied_events").await,
        distinct
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM ledger_entries").await,
        2 * distinct
    );
    let cash_in = count(db, "SELECT balance FROM accounts WHERE code = 'cash_in'").await;
    assert_eq!(cash_in, -total, "cash_in moved by everything charged");

    let audit = cluster.run_cli(&["audit"]).await;
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "audit exit {}:\n{stdout}\n{}",
        audit.status,
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(stdout.contains("audit passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_charges_on_two_instances_settle_exactly() {
    let cluster = spawn_cluster(2, |_| {}).await;
    let users = sign_up_users(&cluster).await;
    let plan = plan(false);
    let expected = expected_balances(&plan);

    let started = Instant::now();
    let answers = join_all(plan.iter().map(|charge| {
        let instance = (charge.user + charge.slot) % cluster.len();
        let (http, base, user) = (&cluster.http, cluster.base(instance), &users[charge.user]);
        async move {
            // An overloaded machine may answer 503 (the contract): a keyed charge is re-sent
            // with its key until it is answered; a key-less one stays unknown.
            loop {
                let answer = send_charge(http, base, user, charge)
                    .await
                    .unwrap_or_else(|e| panic!("{charge:?} on instance {instance}: {e}"));
                if answer.0 != StatusCode::SERVICE_UNAVAILABLE || charge.key.is_none() {
                    return answer;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }))
    .await;
    eprintln!("{} charges answered in {:?}", plan.len(), started.elapsed());

    let unknown: Vec<&Charge> = plan
        .iter()
        .zip(&answers)
        .filter(|(_, (status, _))| *status == StatusCode::SERVICE_UNAVAILABLE)
        .map(|(charge, _)| charge)
        .collect();
    if unknown.is_empty() {
        assert_answers(&plan, &answers, &users, &expected);
        assert_api_balances(&cluster, 0, &users, &expected).await;
        assert_api_balances(&cluster, 1, &users, &expected).await;
        assert_ledger_exact(&cluster, &users, &expected).await;
        return;
    }
    // Some key-less charges answered 503: each either happened once or not at all. Every
    // balance must be the answered charges plus a subset of its unknown ones, the same in
    // Redis on both instances and in MySQL, and the audit must pass.
    eprintln!(
        "{} key-less charges answered 503 (unknown outcome)",
        unknown.len()
    );
    let known = plan
        .iter()
        .zip(&answers)
        .filter(|(c, (status, _))| c.repeats.is_none() && *status == StatusCode::OK)
        .fold(vec![0i64; USERS], |mut sums, (c, _)| {
            sums[c.user] += c.amount;
            sums
        });
    wait_for_drain(&cluster.cache).await;
    let mut actual = Vec::with_capacity(USERS);
    for (i, user) in users.iter().enumerate() {
        let stored: Option<(i64,)> = sqlx::query_as("SELECT balance FROM accounts WHERE code = ?")
            .bind(format!("user:{}", user.id))
            .fetch_optional(&cluster.db)
            .await
            .expect("read the account");
        let balance = stored.map_or(0, |(b,)| b);
        let mut reachable = std::collections::HashSet::from([0i64]);
        for charge in unknown.iter().filter(|c| c.user == i) {
            let more: Vec<i64> = reachable.iter().map(|s| s + charge.amount).collect();
            reachable.extend(more);
        }
        assert!(
            reachable.contains(&(balance - known[i])),
            "user {i}: balance {balance} is not the {} answered plus a subset of the unknown",
            known[i]
        );
        actual.push(balance);
    }
    assert_api_balances(&cluster, 0, &users, &actual).await;
    assert_api_balances(&cluster, 1, &users, &actual).await;
    let audit = cluster.run_cli(&["audit"]).await;
    assert!(
        audit.status.success(),
        "audit:\n{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

/// The settlement consumer name instance `i` logged when its worker started.
fn worker_consumer(cluster: &Cluster, i: usize) -> String {
    cluster
        .log(i)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["message"] == "settlement worker started")
        .and_then(|line| line["consumer"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("instance {i} logged its consumer name:\n{}", cluster.log(i)))
}

/// Entries instance `i`'s worker logged as reclaimed from other consumers, in total.
fn reclaimed_by(cluster: &Cluster, i: usize) -> u64 {
    cluster
        .log(i)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "reclaimed idle settlement entries")
        .filter_map(|line| line["count"].as_u64())
        .sum()
}

/// Entries pending in one consumer's list (0 when the group does not know the consumer).
async fn pending_of(cache: &Cache, consumer: &str) -> u64 {
    let mut total = 0;
    for bucket in cache.keys.buckets() {
        let consumers: Vec<HashMap<String, fred::types::Value>> = cache
            .client()
            .xinfo_consumers(cache.keys.events(bucket), GROUP)
            .await
            .expect("XINFO CONSUMERS");
        total += consumers
            .iter()
            .find(|c| c.get("name").and_then(|v| v.as_string()).as_deref() == Some(consumer))
            .and_then(|c| c.get("pending").and_then(|v| v.as_u64()))
            .unwrap_or(0);
    }
    total
}

/// Requests answered before instance 1 is killed (of the first half, which is sent at once).
const KILL_AFTER_ANSWERS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_survive_an_instance_killed_midway_and_its_pending_events_are_reclaimed() {
    let mut cluster = spawn_cluster(2, |env| {
        env.insert("SETTLEMENT_CLAIM_IDLE_MS", "1000".into());
    })
    .await;
    let users = Arc::new(sign_up_users(&cluster).await);
    let doomed_consumer = worker_consumer(&cluster, 1);
    let plan = plan(true);
    let expected = expected_balances(&plan);

    // The first half of each user's charges goes out at once, alternating instances; the
    // second half waits for the kill and goes to instance 0 only. A request that fails
    // because instance 1 died is retried on instance 0 with the same key.
    let (killed_tx, killed_rx) = watch::channel(false);
    let answered = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let threshold = Arc::new(Notify::new());
    let bases: Arc<Vec<String>> = Arc::new(cluster.bases.clone());
    let tasks: Vec<_> = plan
        .iter()
        .cloned()
        .map(|charge| {
            let (http, bases, users) = (cluster.http.clone(), bases.clone(), users.clone());
            let (answered, retried) = (answered.clone(), retried.clone());
            let threshold = threshold.clone();
            let mut killed = killed_rx.clone();
            tokio::spawn(async move {
                let after_kill = charge.slot >= CHARGES_PER_USER / 2;
                if after_kill {
                    killed
                        .wait_for(|k| *k)
                        .await
                        .expect("the kill is announced");
                }
                let instance = if after_kill || *killed.borrow() {
                    0
                } else {
                    (charge.user + charge.slot) % 2
                };
                let user = &users[charge.user];
                let mut answer = match send_charge(&http, &bases[instance], user, &charge).await {
                    Ok(answer) => answer,
                    Err(e) if instance == 1 => {
                        retried.fetch_add(1, Ordering::Relaxed);
                        send_charge(&http, &bases[0], user, &charge)
                            .await
                            .unwrap_or_else(|e2| panic!("{charge:?} retried: {e2} (first: {e})"))
                    }
                    Err(e) => panic!("{charge:?} on instance 0: {e}"),
                };
                // Every charge here is keyed: a 503 from an overloaded machine is re-sent with
                // the same key (what the contract tells a client to do) until it is answered.
                while answer.0 == StatusCode::SERVICE_UNAVAILABLE {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    answer = send_charge(&http, &bases[0], user, &charge)
                        .await
                        .unwrap_or_else(|e| panic!("{charge:?} re-sent after a 503: {e}"));
                }
                if answered.fetch_add(1, Ordering::Relaxed) + 1 == KILL_AFTER_ANSWERS {
                    threshold.notify_one();
                }
                answer
            })
        })
        .collect();

    // Kill as soon as KILL_AFTER_ANSWERS charges are answered: the rest of the first half
    // (hundreds of requests, about half of them on instance 1) is still in flight.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), threshold.notified())
        .await
        .expect("the first charges are answered within a minute");
    let answered_at_kill = answered.load(Ordering::Relaxed);
    let status = cluster.kill(1).await;
    killed_tx.send(true).expect("tasks are listening");
    assert!(!status.success(), "SIGKILL is not a clean exit: {status}");
    let stranded = pending_of(&cluster.cache, &doomed_consumer).await;

    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("a charge task completes"));
    }
    let retried = retried.load(Ordering::Relaxed);
    eprintln!(
        "{} charges answered in {:?}; instance 1 killed after {answered_at_kill} answers; \
         {retried} requests retried on instance 0; {stranded} events pending with it",
        plan.len(),
        started.elapsed()
    );
    // The scenario needs the kill to cut instance 1 off midway with work unfinished: charges
    // in flight (their clients saw the connection drop and re-sent) or settlement events read
    // and not yet acknowledged (the survivor must reclaim them). Which of the two a kill
    // catches depends on the scheduler, so either one counts (CI once saw 0 in flight and 31
    // pending on a busy box).
    assert!(
        answered_at_kill < plan.len() / 2 && (retried > 0 || stranded > 0),
        "the kill came midway with instance 1's work unfinished ({answered_at_kill} answered, \
         {retried} in flight, {stranded} events pending)"
    );

    assert_answers(&plan, &answers, &users, &expected);
    assert_api_balances(&cluster, 0, &users, &expected).await;
    assert_ledger_exact(&cluster, &users, &expected).await;
    assert_eq!(
        pending_of(&cluster.cache, &doomed_consumer).await,
        0,
        "nothing is left with the dead consumer"
    );
    let reclaimed = reclaimed_by(&cluster, 0);
    eprintln!("instance 0 reclaimed {reclaimed} events from the dead consumer");
    assert!(
        reclaimed >= stranded,
        "the survivor reclaimed what the dead worker held ({stranded}):\n{}",
        cluster.log(0)
    );
}
