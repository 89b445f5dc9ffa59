//! coupon_issue.lua against real Redis: every return code, a replayed call, and a batch of
//! requests decided in one call.

use flashmart::cache::coupons::{self, CampaignTerms, IssueOutcome, IssueRequest};
use fred::prelude::*;

use crate::helpers::{spawn_app_without_worker as app_without_worker, TestApp};

/// The tests' clock, Unix ms.
pub(crate) const NOW: i64 = 1_800_000_000_000;

/// Loads campaign `coupon_id` of `total` coupons, open around [`NOW`], valid for a day.
pub(crate) async fn load(app: &TestApp, coupon_id: i64, total: i64) {
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
pub(crate) async fn issued(app: &TestApp, coupon_id: i64) -> Option<i64> {
    app.state
        .cache
        .client()
        .hget(app.state.cache.keys.coupon(coupon_id), "issued")
        .await
        .expect("hget")
}

async fn stream_length(app: &TestApp) -> u64 {
    crate::helpers::events_len(&app.state.cache).await
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
    let IssueOutcome::Issued { coupon, remaining } = issued else {
        panic!("expected Issued, got {issued:?}");
    };
    assert_eq!(
        (coupon.expires_at_ms, coupon.issued_at_ms, remaining),
        (NOW + 86_400_000, NOW, 0)
    );
    assert!(coupon.user_coupon_id > 0);
    assert_eq!(
        coupon.user_coupon_id % i64::from(cache.keys.bucket_count()),
        i64::from(cache.keys.of_campaign(1).0),
        "ids are n x B + the campaign's bucket"
    );
    assert_eq!(
        coupons::issue(cache, 1, 10, "r5", NOW).await.expect("call"),
        IssueOutcome::AlreadyIssued(coupon),
        "a holder is told which coupon they hold"
    );
    assert_eq!(
        coupons::owner_of(cache, 10, coupon.user_coupon_id)
            .await
            .expect("index"),
        Some(coupons::Owner {
            coupon_id: 1,
            user_id: 10,
            granted: true
        }),
        "the grant step put the coupon into the user's bucket"
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
    // Campaigns 4, 20 and 100 share a bucket (of 16): one call decides them.
    load(&app, 4, 2).await;
    load(&app, 20, 10).await;
    let request = |coupon, user, id: &str| IssueRequest::new(coupon, user, id.into(), NOW);
    let batch = [
        request(4, 40, "a"),
        request(4, 40, "a2"),  // same user again: already holds one
        request(100, 41, "b"), // a campaign Redis does not hold
        request(4, 42, "c"),   // the last of campaign 4
        request(20, 40, "d"),  // another campaign, same user: allowed
        request(4, 43, "e"),   // campaign 4 is now sold out
        request(4, 40, "a"),   // a re-send of the first request: its first success
    ];
    let outcomes = coupons::issue_all(cache, &batch).await.expect("call");
    assert_eq!(outcomes.len(), batch.len(), "one outcome per request");
    let IssueOutcome::Issued {
        coupon: first,
        remaining: 1,
    } = outcomes[0]
    else {
        panic!("the first request wins with one left: {outcomes:?}");
    };
    assert_eq!(outcomes[1], IssueOutcome::AlreadyIssued(first));
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
    let IssueOutcome::Issued {
        coupon: replayed, ..
    } = outcomes[6]
    else {
        panic!("a replay answers the first success: {outcomes:?}");
    };
    assert_eq!(replayed, first, "a replay answers the first success");
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
    let bucket = k.of_campaign(6);
    let keys = vec![
        k.user_coupon_seq(bucket),
        k.events(bucket),
        k.coupon_owners(bucket),
        k.coupon(6),
        k.coupon_users(6),
    ];
    let count = k.bucket_count().to_string();
    let index = bucket.0.to_string();
    let args: Vec<String> = [count.as_str(), index.as_str()]
        .iter()
        .chain(["60", "r", &NOW.to_string(), "e", "6"].iter())
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
