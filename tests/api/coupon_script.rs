//! coupon_issue.lua against real Redis: every return code, and a replayed call.

use flashmart::cache::coupons::{self, CampaignTerms, IssueOutcome};
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
    let issued: i64 = cache
        .client()
        .hget(cache.keys.coupon(2), "issued")
        .await
        .expect("hget");
    assert_eq!(issued, 1);
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
