//! coupon_issue.lua against real Redis: every return code, a replayed call, and a batch of
//! requests decided in one call.

use flashmart::cache::coupons::{self, CampaignTerms, IssueOutcome, IssueRequest};
use fred::prelude::*;

use crate::helpers::{spawn_app_with, TestApp};

const NOW: i64 = 1_800_000_000_000;

async fn app_without_worker() -> TestApp {
    spawn_app_with(|env| {
        env.insert("SETTLEMENT_WORKER", "off".into());
    })
    .await
}

async fn load(app: &TestApp, coupon_id: i64, total: i64) {
    let terms = CampaignTerms {
        coupon_id,
        total,
        starts_ms: NOW - 1_000,
        ends_ms: NOW + 1_000,
        valid_ms: 86_400_000,
    };
    coupons::load(&app.state.cache, &terms, 0)
        .await
        .expect("load");
}

/// The campaign's `issued` count as Redis holds it (`None`: not loaded).
async fn issued(app: &TestApp, coupon_id: i64) -> Option<i64> {
    app.state
        .cache
        .client()
        .hget(app.state.cache.keys.coupon(coupon_id), "issued")
        .await
        .expect("hget")
}

async fn stream_length(app: &TestApp) -> u64 {
    app.state
        .cache
        .client()
        .xlen(app.state.cache.keys.events())
        .await
        .expect("xlen")
}

#[tokio::test]
async fn every_return_code_of_the_issue_script() {
    let app = app_without_worker().await;
    let cache = &app.state.cache;
    assert_eq!(
        coupons::issue(cache, 1, 10, "r1", NOW).await.expect("call"),
        IssueOutcome::NotLoaded
    );
    load(&app, 1, 1).await;
    assert_eq!(
        coupons::issue(cache, 1, 10, "r2", NOW - 5_000)
            .await
            .expect("call"),
        IssueOutcome::NotActive
    );
    assert_eq!(
        coupons::issue(cache, 1, 10, "r3", NOW + 1_000)
            .await
            .expect("call"),
        IssueOutcome::NotActive,
        "end is exclusive"
    );
    let issued = coupons::issue(cache, 1, 10, "r4", NOW).await.expect("call");
    let IssueOutcome::Issued {
        user_coupon_id,
        expires_at_ms,
        remaining,
    } = issued
    else {
        panic!("expected Issued, got {issued:?}");
    };
    assert_eq!((expires_at_ms, remaining), (NOW + 86_400_000, 0));
    assert!(user_coupon_id > 0);
    assert_eq!(
        coupons::issue(cache, 1, 10, "r5", NOW).await.expect("call"),
        IssueOutcome::AlreadyIssued
    );
    assert_eq!(
        coupons::issue(cache, 1, 11, "r6", NOW).await.expect("call"),
        IssueOutcome::SoldOut
    );
    assert_eq!(
        stream_length(&app).await,
        1,
        "only the issue appended an event"
    );
}

#[tokio::test]
async fn a_replayed_call_returns_the_first_success_and_issues_nothing_more() {
    let app = app_without_worker().await;
    let cache = &app.state.cache;
    load(&app, 2, 5).await;
    let first = coupons::issue(cache, 2, 20, "same-request", NOW)
        .await
        .expect("call");
    let replay = coupons::issue(cache, 2, 20, "same-request", NOW)
        .await
        .expect("call");
    assert_eq!(
        first, replay,
        "the winner is never told it already holds one"
    );
    assert_eq!(issued(&app, 2).await, Some(1));
    assert_eq!(stream_length(&app).await, 1);
    let holders: i64 = cache
        .client()
        .hlen(cache.keys.coupon_users(2))
        .await
        .expect("hlen");
    assert_eq!(holders, 1);
}

#[tokio::test]
async fn reloading_a_campaign_keeps_its_issued_count() {
    let app = app_without_worker().await;
    let cache = &app.state.cache;
    load(&app, 3, 2).await;
    assert!(matches!(
        coupons::issue(cache, 3, 30, "a", NOW).await.expect("call"),
        IssueOutcome::Issued { .. }
    ));
    load(&app, 3, 2).await;
    assert!(matches!(
        coupons::issue(cache, 3, 31, "b", NOW).await.expect("call"),
        IssueOutcome::Issued { .. }
    ));
    assert_eq!(
        coupons::issue(cache, 3, 32, "c", NOW).await.expect("call"),
        IssueOutcome::SoldOut
    );
}

#[tokio::test]
async fn one_call_decides_a_batch_in_order_as_separate_calls_would() {
    let app = app_without_worker().await;
    let cache = &app.state.cache;
    load(&app, 4, 2).await;
    load(&app, 5, 10).await;
    let request = |coupon, user, id: &str| IssueRequest::new(coupon, user, id.into(), NOW);
    let batch = [
        request(4, 40, "a"),
        request(4, 40, "a2"), // same user again: already holds one
        request(99, 41, "b"), // a campaign Redis does not hold
        request(4, 42, "c"),  // the last of campaign 4
        request(5, 40, "d"),  // another campaign, same user: allowed
        request(4, 43, "e"),  // campaign 4 is now sold out
        request(4, 40, "a"),  // a re-send of the first request: its first success
    ];
    let outcomes = coupons::issue_all(cache, &batch).await.expect("call");
    assert_eq!(outcomes.len(), batch.len(), "one outcome per request");
    let IssueOutcome::Issued {
        user_coupon_id: first,
        remaining: 1,
        ..
    } = outcomes[0]
    else {
        panic!("the first request wins with one left: {outcomes:?}");
    };
    assert_eq!(outcomes[1], IssueOutcome::AlreadyIssued);
    assert_eq!(outcomes[2], IssueOutcome::NotLoaded);
    assert!(
        matches!(outcomes[3], IssueOutcome::Issued { remaining: 0, .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[4], IssueOutcome::Issued { remaining: 9, .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[5], IssueOutcome::SoldOut);
    let (
        IssueOutcome::Issued {
            user_coupon_id: replayed,
            expires_at_ms: replayed_expiry,
            ..
        },
        IssueOutcome::Issued {
            expires_at_ms: first_expiry,
            ..
        },
    ) = (outcomes[6], outcomes[0])
    else {
        panic!("a replay answers the first success: {outcomes:?}");
    };
    assert_eq!(
        (replayed, replayed_expiry),
        (first, first_expiry),
        "a replay answers the first success"
    );
    assert_eq!(
        stream_length(&app).await,
        3,
        "one coupon.issued per coupon issued, none for refusals or the replay"
    );
    assert_eq!(issued(&app, 4).await, Some(2));
}

#[tokio::test]
async fn a_malformed_batch_is_refused_before_anything_changes() {
    let app = app_without_worker().await;
    let cache = &app.state.cache;
    load(&app, 6, 5).await;
    let script = &cache.scripts.coupon_issue;
    let k = &cache.keys;
    // Keys of one request but the arguments of two.
    let keys = vec![
        k.user_coupon_seq(),
        k.user_coupon_index(),
        k.events(),
        k.coupon(6),
        k.coupon_users(6),
        k.user_coupon(6, 60),
        k.user_coupons(60),
    ];
    let args: Vec<String> = ["60", "r", &NOW.to_string(), "e", "6"]
        .iter()
        .chain(["61", "s", &NOW.to_string(), "f", "6"].iter())
        .map(|s| s.to_string())
        .collect();
    let refused = script
        .call::<fred::types::Value, _, _>(cache.client(), keys, args)
        .await;
    assert!(
        refused.is_err(),
        "a shape mismatch is an error: {refused:?}"
    );
    assert_eq!(stream_length(&app).await, 0);
    assert_eq!(issued(&app, 6).await, Some(0));
}
