//! Settlement worker faults, driven step by step: the app runs without a background worker
//! (`SETTLEMENT_WORKER=off`), charges are made over HTTP, and each test builds its own
//! workers and consumers and calls [`Worker::run_once`] or the stream primitives directly.

use std::collections::HashMap;
use std::time::Duration;

use fred::prelude::*;
use serde_json::json;

use flashmart::events::Envelope;
use flashmart::settlement::apply::{apply_batch, BatchOutcome};
use flashmart::settlement::stream::{self, RawEntry};
use flashmart::settlement::{Outcome, Worker, WorkerConfig, GROUP};
use flashmart::store::ledger;

use crate::helpers::{count, only_stream, spawn_app_with, TestApp, TestUser};

/// How long a worker's read for new entries blocks in these tests.
const BLOCK_MS: u64 = 100;
/// Most entries a test consumer reads at once (more than any test appends).
const READ_COUNT: u64 = 1_000;

/// An app whose settlement worker is off, so only the test's workers consume the stream.
pub(crate) async fn app_without_worker() -> TestApp {
    spawn_app_with(|env| {
        env.insert("SETTLEMENT_WORKER", "off".into());
        // These tests inspect one stream's entries, pending lists and trimming.
        env.insert("REDIS_BUCKETS", "1".into());
    })
    .await
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL must be set: run the tests with `make test`")
}

/// The worker settings of these tests: a short blocking read, everything else as configured.
fn quick(config: WorkerConfig) -> WorkerConfig {
    WorkerConfig {
        block_ms: BLOCK_MS,
        ..config
    }
}

/// A worker on the app's database and Redis under `consumer`.
async fn worker(app: &TestApp, consumer: &str, config: WorkerConfig) -> Worker {
    Worker::new(
        app.state.db.clone(),
        app.state.cache.clone(),
        &redis_url(),
        app.state.clock.clone(),
        consumer.to_owned(),
        quick(config),
    )
    .await
    .expect("the worker joins the group")
}

/// Reads every undelivered entry as `consumer` without applying or acknowledging anything.
pub(crate) async fn read_as(app: &TestApp, consumer: &str) -> Vec<RawEntry> {
    let reader = flashmart::cache::build_client(&redis_url())
        .await
        .expect("a dedicated reader connects");
    let entries = stream::read_new(
        &reader,
        &only_stream(&app.state.cache),
        consumer,
        READ_COUNT,
        BLOCK_MS,
    )
    .await
    .expect("read new entries");
    let _ = reader.quit().await;
    entries
}

pub(crate) fn envelopes(entries: &[RawEntry]) -> Vec<Envelope> {
    entries
        .iter()
        .map(|e| Envelope::from_fields(&e.id, &e.fields).expect("a charge entry is an envelope"))
        .collect()
}

/// Charges each amount over HTTP without an idempotency key; asserts every answer is 200.
async fn charge_each(app: &TestApp, user: &TestUser, amounts: &[i64]) {
    for amount in amounts {
        let response = app.charge(user, json!(amount), None).await;
        assert_eq!(response.status(), 200, "charge of {amount} accepted");
    }
}

/// Rows in the settlement tables.
#[derive(Debug, PartialEq, Eq)]
struct LedgerRows {
    charges: i64,
    entries: i64,
    applied: i64,
}

async fn ledger_rows(app: &TestApp) -> LedgerRows {
    let db = &app.state.db;
    LedgerRows {
        charges: count(db, "SELECT COUNT(*) FROM wallet_charges").await,
        entries: count(db, "SELECT COUNT(*) FROM ledger_entries").await,
        applied: count(db, "SELECT COUNT(*) FROM applied_events").await,
    }
}

/// A materialised account balance in MySQL (0 when the account does not exist).
async fn account(app: &TestApp, code: &str) -> i64 {
    ledger::account_balance(&app.state.db, code)
        .await
        .expect("read an account")
}

/// Asserts that MySQL holds exactly these charges: one `wallet_charges` row, two ledger
/// entries and one `applied_events` row each, and the user and cash-in accounts moved by
/// their sum.
async fn assert_settled_once(app: &TestApp, user: &TestUser, amounts: &[i64]) {
    let n = i64::try_from(amounts.len()).expect("a small count");
    let total: i64 = amounts.iter().sum();
    let expected = LedgerRows {
        charges: n,
        entries: 2 * n,
        applied: n,
    };
    assert_eq!(ledger_rows(app).await, expected, "each charge settled once");
    assert_eq!(account(app, &ledger::user_account(user.id)).await, total);
    assert_eq!(account(app, ledger::CASH_IN).await, -total);
}

/// Entries delivered to the group and not yet acknowledged.
async fn pending(app: &TestApp) -> u64 {
    stream::lag(&app.state.cache)
        .await
        .expect("measure the lag")
        .pending
}

/// Entries pending in one consumer's list (0 when the consumer is unknown).
async fn pending_of(app: &TestApp, consumer: &str) -> u64 {
    let cache = &app.state.cache;
    let consumers: Vec<HashMap<String, Value>> = cache
        .client()
        .xinfo_consumers(only_stream(cache).events, GROUP)
        .await
        .expect("XINFO CONSUMERS");
    consumers
        .iter()
        .find(|c| c.get("name").and_then(Value::as_string).as_deref() == Some(consumer))
        .and_then(|c| c.get("pending").and_then(Value::as_u64))
        .unwrap_or(0)
}

async fn stream_len(app: &TestApp, key: String) -> u64 {
    app.state.cache.client().xlen(key).await.expect("XLEN")
}

async fn stream_ids(app: &TestApp) -> Vec<String> {
    let entries: Vec<(String, HashMap<String, String>)> = app
        .state
        .cache
        .client()
        .xrange(only_stream(&app.state.cache).events, "-", "+", None)
        .await
        .expect("XRANGE");
    entries.into_iter().map(|(id, _)| id).collect()
}

#[tokio::test]
async fn a_worker_killed_between_commit_and_ack_is_redelivered_without_double_effects() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    let amounts = [1_000, 2_500, 300, 40_000, 7];
    charge_each(&app, &user, &amounts).await;

    let entries = read_as(&app, "doomed").await;
    assert_eq!(
        entries.len(),
        amounts.len(),
        "the doomed consumer got every entry"
    );
    let committed = apply_batch(&app.state.db, &envelopes(&entries), app.state.clock.now())
        .await
        .expect("the doomed consumer commits");
    assert_eq!(
        committed,
        BatchOutcome {
            applied: 5,
            duplicates: 0
        }
    );
    // The doomed consumer dies here: committed in MySQL, never acknowledged in Redis.
    assert_eq!(pending_of(&app, "doomed").await, 5);

    let reclaim_now = WorkerConfig {
        claim_idle_ms: 0,
        ..WorkerConfig::default()
    };
    let mut rescuer = worker(&app, "rescuer", reclaim_now).await;
    let outcome = rescuer.run_once().await.expect("the rescuer steps");
    assert_eq!(
        outcome,
        Outcome {
            read: 5,
            applied: 0,
            duplicates: 5,
            ..Outcome::default()
        },
        "the redelivered batch is recognised as applied"
    );

    assert_eq!(
        pending(&app).await,
        0,
        "the rescuer acknowledged everything"
    );
    assert_eq!(pending_of(&app, "doomed").await, 0);
    assert_settled_once(&app, &user, &amounts).await;
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    let amounts = [5_000, 6_000, 7_000];
    charge_each(&app, &user, &amounts).await;
    let entries = read_as(&app, "w").await;
    let batch = envelopes(&entries);

    let first = apply_batch(&app.state.db, &batch, app.state.clock.now())
        .await
        .expect("first delivery commits");
    assert_eq!(
        first,
        BatchOutcome {
            applied: 3,
            duplicates: 0
        }
    );
    let rows_after_first = ledger_rows(&app).await;

    let again = apply_batch(&app.state.db, &batch, app.state.clock.now())
        .await
        .expect("the redelivery commits");
    assert_eq!(
        again,
        BatchOutcome {
            applied: 0,
            duplicates: 3
        }
    );
    assert_eq!(ledger_rows(&app).await, rows_after_first, "no row added");
    assert_settled_once(&app, &user, &amounts).await;

    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    stream::ack(&app.state.cache, &only_stream(&app.state.cache), &ids)
        .await
        .expect("acknowledge after commit");
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_while_the_valid_charges_around_it_settle() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    charge_each(&app, &user, &[1_000, 2_000]).await;
    let cache = &app.state.cache;
    let event_id = uuid::Uuid::now_v7().to_string();
    let poison_id: String = cache
        .client()
        .xadd(
            only_stream(cache).events,
            false,
            None,
            "*",
            vec![
                ("id", event_id.as_str()),
                ("type", "balance.charged"),
                ("v", "1"),
                ("at", "1700000000000"),
                ("data", "{not json"),
            ],
        )
        .await
        .expect("XADD the poison entry");
    charge_each(&app, &user, &[3_000, 4_000]).await;

    let mut worker = worker(&app, "w", WorkerConfig::default()).await;
    let mut total = Outcome::default();
    let mut steps = 0;
    while total.dead_lettered == 0 {
        steps += 1;
        assert!(steps <= 10, "not dead-lettered after 10 steps: {total:?}");
        let step = worker.run_once().await.expect("a step");
        total.read += step.read;
        total.applied += step.applied;
        total.duplicates += step.duplicates;
        total.failed += step.failed;
        total.dead_lettered += step.dead_lettered;
    }
    assert_eq!(
        steps, 5,
        "dead-lettered on the fifth (max_failures) attempt"
    );
    assert_eq!(
        total,
        Outcome {
            read: 5 + 4,
            applied: 4,
            duplicates: 0,
            failed: 4,
            dead_lettered: 1,
        },
        "four valid charges applied at the first step; the poison failed four times"
    );

    assert_eq!(pending(&app).await, 0, "the poison entry was acknowledged");
    assert_eq!(stream_len(&app, only_stream(cache).dead).await, 1);
    let dead: Vec<(String, HashMap<String, String>)> = cache
        .client()
        .xrange(only_stream(cache).dead, "-", "+", None)
        .await
        .expect("XRANGE the dead letters");
    let fields = &dead[0].1;
    assert_eq!(fields["sourceId"], poison_id);
    assert_eq!(fields["f.id"], event_id);
    assert_eq!(fields["f.data"], "{not json");
    assert!(
        fields["reason"].contains("payload of balance.charged does not decode"),
        "reason: {}",
        fields["reason"]
    );
    let failures: i64 = cache
        .client()
        .exists(only_stream(cache).failures)
        .await
        .expect("EXISTS");
    assert_eq!(failures, 0, "the failure count was cleared");
    assert_settled_once(&app, &user, &[1_000, 2_000, 3_000, 4_000]).await;
    let applied_poison = sqlx::query("SELECT 1 FROM applied_events WHERE event_id = ?")
        .bind(&event_id)
        .fetch_optional(&app.state.db)
        .await
        .expect("look the poison up");
    assert!(applied_poison.is_none(), "the poison was never applied");

    let report = flashmart::ops::audit::run(&app.state.db, cache, Duration::from_secs(1))
        .await
        .expect("the audit runs");
    assert!(!report.passed(), "a dead letter fails the audit");
    assert_eq!(report.violations.len(), 2, "{:?}", report.violations);
    assert_eq!(report.violations[0], "1 dead-lettered event(s)");
    let detail = &report.violations[1];
    assert!(
        detail.starts_with(&format!("dead letter {}: source {poison_id} ", dead[0].0)),
        "{detail}"
    );
    assert!(detail.contains("type balance.charged"), "{detail}");
}

#[tokio::test]
async fn a_dead_consumers_pending_entries_are_reclaimed_by_another_worker() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    let amounts = [100, 200, 300, 400];
    charge_each(&app, &user, &amounts).await;
    let taken = read_as(&app, "dead").await;
    assert_eq!(taken.len(), 4);
    assert_eq!(pending_of(&app, "dead").await, 4);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let reclaim_after_50ms = WorkerConfig {
        claim_idle_ms: 50,
        housekeeping_every: Duration::ZERO,
        ..WorkerConfig::default()
    };
    let mut survivor = worker(&app, "b", reclaim_after_50ms).await;
    let outcome = survivor.run_once().await.expect("the survivor steps");
    assert_eq!(
        outcome,
        Outcome {
            read: 4,
            applied: 4,
            ..Outcome::default()
        }
    );
    assert_eq!(
        pending_of(&app, "dead").await,
        0,
        "nothing left with the dead"
    );
    assert_eq!(pending(&app).await, 0);
    assert_settled_once(&app, &user, &amounts).await;
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn a_worker_drains_its_own_pending_entries_before_reading_new_ones() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    charge_each(&app, &user, &[10, 20, 30]).await;
    let taken = read_as(&app, "me").await;
    assert_eq!(taken.len(), 3, "delivered to me, then I crashed");
    charge_each(&app, &user, &[40, 50]).await;

    let mut me_again = worker(&app, "me", WorkerConfig::default()).await;
    let first = me_again.run_once().await.expect("first step");
    assert_eq!(
        first,
        Outcome {
            read: 3,
            applied: 3,
            ..Outcome::default()
        },
        "the first step settles only my own pending entries"
    );
    assert_settled_once(&app, &user, &[10, 20, 30]).await;
    let second = me_again.run_once().await.expect("second step");
    assert_eq!(
        second,
        Outcome {
            read: 2,
            applied: 2,
            ..Outcome::default()
        },
        "then the new ones"
    );

    assert_eq!(pending(&app).await, 0);
    assert_settled_once(&app, &user, &[10, 20, 30, 40, 50]).await;
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn the_stream_is_trimmed_only_below_what_was_acknowledged() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    let cache = &app.state.cache;
    charge_each(&app, &user, &[1, 2, 3]).await;
    let mut drainer = worker(&app, "drainer", WorkerConfig::default()).await;
    let drained = drainer.run_once().await.expect("drain");
    assert_eq!(drained.applied, 3);

    charge_each(&app, &user, &[4, 5]).await;
    let lagging = read_as(&app, "lagger").await;
    assert_eq!(lagging.len(), 2);
    charge_each(&app, &user, &[6]).await;
    let before = stream_ids(&app).await;
    assert_eq!(before.len(), 6);

    let trimmed = stream::trim_acknowledged(cache, &only_stream(cache))
        .await
        .expect("trim");
    assert_eq!(trimmed, 3, "only the three acknowledged entries go");
    assert_eq!(stream_len(&app, only_stream(cache).events).await, 3);
    assert_eq!(
        stream_ids(&app).await,
        before[3..].to_vec(),
        "the pending and the undelivered entries stay"
    );
    assert_eq!(
        lagging.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        before[3..5].to_vec()
    );
    let again = stream::trim_acknowledged(cache, &only_stream(cache))
        .await
        .expect("trim again");
    assert_eq!(again, 0, "nothing more is acknowledged");

    let reclaim_now = WorkerConfig {
        claim_idle_ms: 0,
        ..WorkerConfig::default()
    };
    let mut rescuer = worker(&app, "rescuer", reclaim_now).await;
    let reclaimed = rescuer.run_once().await.expect("reclaim");
    assert_eq!(
        reclaimed,
        Outcome {
            read: 2,
            applied: 2,
            ..Outcome::default()
        }
    );
    let rest = rescuer.run_once().await.expect("read the rest");
    assert_eq!(
        rest,
        Outcome {
            read: 1,
            applied: 1,
            ..Outcome::default()
        }
    );
    assert_eq!(pending(&app).await, 0);

    let trimmed = stream::trim_acknowledged(cache, &only_stream(cache))
        .await
        .expect("trim when drained");
    assert_eq!(trimmed, 2, "everything below the last delivered entry goes");
    assert_eq!(stream_ids(&app).await, vec![before[5].clone()]);
    assert_settled_once(&app, &user, &[1, 2, 3, 4, 5, 6]).await;
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn an_idle_step_reads_nothing_and_the_next_charge_still_settles() {
    let app = app_without_worker().await;
    let user = app.new_user().await;
    let mut idle = worker(&app, "idle", WorkerConfig::default()).await;
    let nothing = idle
        .run_once()
        .await
        .expect("a read that times out is an empty step, not an error");
    assert_eq!(nothing, Outcome::default());

    charge_each(&app, &user, &[900]).await;
    let settled = idle.run_once().await.expect("the next step");
    assert_eq!(
        settled,
        Outcome {
            read: 1,
            applied: 1,
            ..Outcome::default()
        }
    );
    assert_settled_once(&app, &user, &[900]).await;
    app.assert_audit_passes().await;
}

/// The payment saga's last step rides on the stream: the request that pays leaves the order's
/// reservation live, the worker that reads `order.paid` commits it (the units stay sold and
/// are ranked), and the same event read again commits nothing more.
#[tokio::test]
async fn a_paid_orders_units_are_committed_by_the_worker_that_reads_it_and_only_once() {
    let app = app_without_worker().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Kettle", 1_000, 10).await;
    charge_each(&app, &user, &[5_000]).await;
    let order = app.order_one(&user, product, 3).await;
    let order_id = order["orderId"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/orders/{order_id}/payment");
    let paid = app
        .call(reqwest::Method::POST, &path, Some(&user.token), None)
        .await;
    assert_eq!(paid.status(), 200);

    let cache = &app.state.cache;
    let bucket = cache.keys.of_product(product);
    let now_ms = app.state.clock.now_ms();
    let reservation = flashmart::cache::reservations::read(cache, bucket, &order_id)
        .await
        .expect("read");
    assert!(
        reservation.is_some(),
        "the payer leaves the commit to the worker"
    );
    let ranked = || async {
        flashmart::cache::popular::top(cache, now_ms, 5)
            .await
            .expect("ranking")
    };
    assert_eq!(
        ranked().await,
        vec![],
        "not ranked before the worker reads it"
    );

    let mut w = worker(&app, "w1", WorkerConfig::default()).await;
    while w.run_once().await.expect("a step").read > 0 {}
    let reservation = flashmart::cache::reservations::read(cache, bucket, &order_id)
        .await
        .expect("read");
    assert!(reservation.is_none(), "committed by the worker");
    assert_eq!(ranked().await, vec![(product, 3)]);
    let left = flashmart::cache::stock::available(cache, &[product])
        .await
        .expect("stock")[0];
    assert_eq!(left, Some(7), "the units stay sold");

    // The same events read again (a redelivery, a reclaim): nothing ends twice.
    let entries: Vec<(String, HashMap<String, String>)> = cache
        .client()
        .xrange(only_stream(cache).events, "-", "+", None)
        .await
        .expect("XRANGE");
    let again: Vec<Envelope> = entries
        .iter()
        .map(|(id, fields)| Envelope::from_fields(id, fields).expect("an envelope"))
        .collect();
    assert!(again.iter().any(|e| e.event_type == "order.paid"));
    let ended = flashmart::settlement::stock_commit::commit_paid(cache, &again)
        .await
        .expect("commit again");
    assert_eq!(ended, 0, "a reservation ends once");
    assert_eq!(ranked().await, vec![(product, 3)], "counted once");
    app.assert_audit_passes().await;
}
