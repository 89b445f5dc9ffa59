//! coupon_claim.lua against real Redis (standalone, and a Cluster with `make test-cluster`):
//! budget, issue and grant in one call — the grant lands in the user's bucket, a request over
//! the budget changes nothing, a re-sent call counts and issues once, and a batch is decided in
//! order. Users are picked in their campaign's bucket, so every call is one a Cluster allows.

use flashmart::cache::coupon_claim::{self, ClaimOutcome, ClaimRequest};
use flashmart::cache::coupons::{self, IssueOutcome, IssueRequest};
use flashmart::cache::keys::Bucket;
use flashmart::cache::ratelimit::{Rate, TakeRequest};
use flashmart::events::CouponStatus;

use crate::coupon_script::{issued, load, NOW};
use crate::helpers::{spawn_app_without_worker as app_without_worker, TestApp};

/// Campaigns 4 and 20 share a bucket of 16 (4 mod 16 = 20 mod 16).
const CAMPAIGN: i64 = 4;
const OTHER_CAMPAIGN: i64 = 20;

/// The `n`-th user id (from 1) whose bucket is the campaigns' bucket.
fn user(app: &TestApp, n: usize) -> i64 {
    let keys = &app.state.cache.keys;
    let bucket: Bucket = keys.of_campaign(CAMPAIGN);
    assert_eq!(keys.of_campaign(OTHER_CAMPAIGN), bucket);
    (1..)
        .filter(|id| keys.of_user(*id) == bucket)
        .nth(n - 1)
        .expect("a user id in the bucket")
}

/// A request of `user` for `coupon_id` with its own ids, against a budget of `burst` at once.
fn claim(app: &TestApp, coupon_id: i64, user: i64, id: &str, burst: u32) -> ClaimRequest {
    ClaimRequest {
        issue: IssueRequest::new(coupon_id, user, format!("issue-{id}"), NOW),
        budget: TakeRequest {
            key: app.state.cache.keys.user_rate("coupon-issue", user),
            rate: Rate {
                interval_us: 60_000_000,
                burst,
            },
            request_id: format!("budget-{id}"),
        },
    }
}

async fn decide(app: &TestApp, requests: &[ClaimRequest]) -> Vec<ClaimOutcome> {
    coupon_claim::claim_all(&app.state.cache, requests)
        .await
        .expect("claim call")
}

fn issued_coupon(outcome: ClaimOutcome) -> coupons::IssuedCoupon {
    match outcome {
        ClaimOutcome::Decided(IssueOutcome::Issued { coupon, .. }) => coupon,
        other => panic!("expected an issued coupon, got {other:?}"),
    }
}

/// The user's coupons as the user's bucket holds them: (campaign, status).
async fn held(app: &TestApp, user: i64) -> Vec<(i64, CouponStatus)> {
    coupons::held_by(&app.state.cache, user)
        .await
        .expect("held")
        .into_iter()
        .map(|c| (c.coupon_id, c.status))
        .collect()
}

#[tokio::test]
async fn one_call_takes_the_budget_issues_and_grants_into_the_users_bucket() {
    let app = app_without_worker().await;
    load(&app, CAMPAIGN, 2).await;
    let alice = user(&app, 1);

    let outcome = decide(&app, &[claim(&app, CAMPAIGN, alice, "a", 5)]).await;

    let ClaimOutcome::Decided(IssueOutcome::Issued { coupon, remaining }) = outcome[0] else {
        panic!("issued: {outcome:?}");
    };
    assert_eq!(remaining, 1);
    assert_eq!((coupon.coupon_id, coupon.user_id), (CAMPAIGN, alice));
    assert_eq!(
        held(&app, alice).await,
        vec![(CAMPAIGN, CouponStatus::Available)]
    );
    let owner = coupons::owner_of(&app.state.cache, alice, coupon.user_coupon_id)
        .await
        .expect("owner");
    assert!(owner.is_some(), "the user's bucket indexes the coupon's id");
    assert_eq!(issued(&app, CAMPAIGN).await, Some(1));
    assert_eq!(crate::helpers::events_len(&app.state.cache).await, 1);
}

#[tokio::test]
async fn a_request_over_the_budget_is_refused_and_changes_nothing_else() {
    let app = app_without_worker().await;
    load(&app, CAMPAIGN, 5).await;
    load(&app, OTHER_CAMPAIGN, 5).await;
    let bob = user(&app, 2);
    issued_coupon(decide(&app, &[claim(&app, CAMPAIGN, bob, "1", 1)]).await[0]);

    let refused = decide(&app, &[claim(&app, OTHER_CAMPAIGN, bob, "2", 1)]).await;

    let ClaimOutcome::Throttled { retry_after_ms } = refused[0] else {
        panic!("over the budget of 1: {refused:?}");
    };
    assert!(
        retry_after_ms > 0 && retry_after_ms <= 60_000,
        "{retry_after_ms}"
    );
    assert_eq!(issued(&app, OTHER_CAMPAIGN).await, Some(0));
    assert_eq!(
        held(&app, bob).await,
        vec![(CAMPAIGN, CouponStatus::Available)]
    );
    assert_eq!(crate::helpers::events_len(&app.state.cache).await, 1);
}

#[tokio::test]
async fn a_re_sent_call_answers_its_first_outcome_and_counts_once() {
    let app = app_without_worker().await;
    load(&app, CAMPAIGN, 5).await;
    load(&app, OTHER_CAMPAIGN, 5).await;
    let carol = user(&app, 3);
    let request = claim(&app, CAMPAIGN, carol, "1", 2);

    let first = issued_coupon(decide(&app, std::slice::from_ref(&request)).await[0]);
    let again = issued_coupon(decide(&app, std::slice::from_ref(&request)).await[0]);

    assert_eq!(again, first, "the re-send answers the first success");
    assert_eq!(issued(&app, CAMPAIGN).await, Some(1));
    assert_eq!(crate::helpers::events_len(&app.state.cache).await, 1);
    // The budget of 2 counted the re-sent request once: one more request fits, a third not.
    issued_coupon(decide(&app, &[claim(&app, OTHER_CAMPAIGN, carol, "2", 2)]).await[0]);
    let third = decide(&app, &[claim(&app, OTHER_CAMPAIGN, carol, "3", 2)]).await;
    assert!(
        matches!(third[0], ClaimOutcome::Throttled { .. }),
        "{third:?}"
    );
}

#[tokio::test]
async fn a_batch_is_decided_in_order_each_request_budget_first() {
    let app = app_without_worker().await;
    load(&app, CAMPAIGN, 2).await;
    load(&app, OTHER_CAMPAIGN, 5).await;
    let (dave, erin, frank, gina) = (user(&app, 4), user(&app, 5), user(&app, 6), user(&app, 8));
    let batch = [
        claim(&app, CAMPAIGN, dave, "d1", 1),
        claim(&app, OTHER_CAMPAIGN, dave, "d2", 1), // dave's budget of 1 is spent
        claim(&app, CAMPAIGN, erin, "e1", 1),       // the last coupon of CAMPAIGN
        claim(&app, CAMPAIGN, frank, "f1", 1),      // sold out
        claim(&app, 100, gina, "g1", 1),            // a campaign Redis does not hold
    ];

    let outcomes = decide(&app, &batch).await;

    assert_eq!(outcomes.len(), batch.len());
    issued_coupon(outcomes[0]);
    assert!(
        matches!(outcomes[1], ClaimOutcome::Throttled { .. }),
        "{outcomes:?}"
    );
    issued_coupon(outcomes[2]);
    assert_eq!(outcomes[3], ClaimOutcome::Decided(IssueOutcome::SoldOut));
    assert_eq!(outcomes[4], ClaimOutcome::Decided(IssueOutcome::NotLoaded));
    assert_eq!(issued(&app, CAMPAIGN).await, Some(2));
    assert_eq!(issued(&app, OTHER_CAMPAIGN).await, Some(0));
    assert_eq!(held(&app, frank).await, vec![]);
    assert_eq!(crate::helpers::events_len(&app.state.cache).await, 2);
}

#[tokio::test]
async fn a_coupon_whose_grant_was_cut_off_is_granted_by_the_next_claim() {
    let app = app_without_worker().await;
    load(&app, CAMPAIGN, 5).await;
    let grace = user(&app, 7);
    // Step 1 alone (coupon_issue.lua), as a crash after it would leave it.
    let first = coupons::issue_all(
        &app.state.cache,
        &[IssueRequest::new(CAMPAIGN, grace, "cut".into(), NOW)],
    )
    .await
    .expect("issue");
    assert!(matches!(first[0], IssueOutcome::Issued { .. }));
    assert_eq!(held(&app, grace).await, vec![]);

    let again = decide(&app, &[claim(&app, CAMPAIGN, grace, "retry", 5)]).await;

    assert!(
        matches!(
            again[0],
            ClaimOutcome::Decided(IssueOutcome::AlreadyIssued(_))
        ),
        "{again:?}"
    );
    assert_eq!(
        held(&app, grace).await,
        vec![(CAMPAIGN, CouponStatus::Available)]
    );
    assert_eq!(issued(&app, CAMPAIGN).await, Some(1));
}
