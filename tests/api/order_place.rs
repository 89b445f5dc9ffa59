//! order_place.lua against real Redis (standalone, and a Cluster with `make test-cluster`): the
//! order budget, the stock holds and the order in one call — a placed order holds its units
//! and exists, a request over the budget changes nothing, a bucket short of stock stops the
//! call before the order, a re-send places once, a spent id holds nothing. On a Cluster a call
//! across buckets is refused before it is sent. Users are picked in their products' bucket.

use flashmart::cache::order_place::{self, PlaceCall, PlaceOutcome};
use flashmart::cache::orders::{self as hot_orders, ReserveCall, ReserveOutcome};
use flashmart::cache::ratelimit::{Rate, TakeRequest};
use flashmart::cache::reservations::{self as held, HoldRequest, ReserveOutcome as Hold};
use flashmart::events::OrderLine;
use fred::prelude::*;

use crate::helpers::{spawn_app_without_worker as app_without_worker, TestApp};

const NOW: i64 = 1_800_000_000_000;
const PRICE: i64 = 1_000;

/// A user id in `product`'s bucket (no account is needed at this level).
fn user_of(app: &TestApp, product: i64, n: i64) -> i64 {
    product + i64::from(app.state.cache.keys.bucket_count()) * (1_000 + n)
}

fn line(product: i64, quantity: i64) -> OrderLine {
    OrderLine {
        product_id: product,
        name: format!("p{product}"),
        unit_price: PRICE,
        quantity,
        line_total: PRICE * quantity,
    }
}

fn budget(app: &TestApp, user: i64, id: &str, burst: u32) -> TakeRequest {
    TakeRequest {
        key: app.state.cache.keys.user_rate("orders", user),
        rate: Rate {
            interval_us: 60_000_000,
            burst,
        },
        request_id: format!("budget-{id}"),
    }
}

/// Places `items` for `user` under `order_id` in one call.
async fn place(
    app: &TestApp,
    user: i64,
    order_id: &str,
    items: &[OrderLine],
    budget: &TakeRequest,
) -> anyhow::Result<PlaceOutcome> {
    let key = format!("key-{order_id}");
    let call = ReserveCall {
        order_id,
        user_id: user,
        items,
        subtotal: items.iter().map(|l| l.line_total).sum(),
        discount: 0,
        coupon: None,
        now_ms: NOW,
        expires_at_ms: NOW + 600_000,
        idempotency_key: &key,
    };
    let holds: Vec<HoldRequest> = held::lines_by_bucket(&app.state.cache.keys, items)
        .into_values()
        .map(|lines| HoldRequest {
            order_id: order_id.to_owned(),
            user_id: user,
            due_ms: NOW + 601_000,
            lines,
        })
        .collect();
    let placing = PlaceCall {
        order: &call,
        holds: &holds,
        budget,
    };
    order_place::place(&app.state.cache, &placing).await
}

async fn stock(app: &TestApp, product: i64) -> i64 {
    let units: Option<i64> = app
        .state
        .cache
        .client()
        .get(app.state.cache.keys.stock(product))
        .await
        .expect("get");
    units.expect("stock loaded")
}

async fn reservation_exists(app: &TestApp, product: i64, order_id: &str) -> bool {
    let keys = &app.state.cache.keys;
    let key = keys.reservation(keys.of_product(product), order_id);
    let n: i64 = app.state.cache.client().exists(key).await.expect("exists");
    n == 1
}

async fn order_exists(app: &TestApp, order_id: &str) -> bool {
    hot_orders::read(&app.state.cache, order_id)
        .await
        .expect("read")
        .is_some()
}

#[tokio::test]
async fn one_call_takes_the_budget_holds_the_units_and_creates_the_order() {
    let app = app_without_worker().await;
    let admin = app.new_admin().await;
    let product = app.create_product(&admin, "Mug", PRICE, 10).await;
    let user = user_of(&app, product, 1);
    let id = app.state.cache.keys.new_order_id(user);

    let outcome = place(
        &app,
        user,
        &id,
        &[line(product, 3)],
        &budget(&app, user, "a", 5),
    )
    .await
    .expect("place");

    assert_eq!(outcome, PlaceOutcome::Ordered(ReserveOutcome::Reserved));
    assert_eq!(stock(&app, product).await, 7);
    assert!(reservation_exists(&app, product, &id).await);
    assert!(order_exists(&app, &id).await);
}

#[tokio::test]
async fn a_request_over_the_budget_is_refused_and_holds_nothing() {
    let app = app_without_worker().await;
    let admin = app.new_admin().await;
    let product = app.create_product(&admin, "Mug", PRICE, 10).await;
    let user = user_of(&app, product, 2);
    let first = app.state.cache.keys.new_order_id(user);
    let second = app.state.cache.keys.new_order_id(user);
    let one = budget(&app, user, "1", 1);
    let placed = place(&app, user, &first, &[line(product, 1)], &one).await;
    assert_eq!(
        placed.expect("place"),
        PlaceOutcome::Ordered(ReserveOutcome::Reserved)
    );

    let refused = place(
        &app,
        user,
        &second,
        &[line(product, 1)],
        &budget(&app, user, "2", 1),
    )
    .await
    .expect("place");

    assert!(
        matches!(refused, PlaceOutcome::Throttled { retry_after_ms } if retry_after_ms > 0),
        "{refused:?}"
    );
    assert_eq!(
        stock(&app, product).await,
        9,
        "only the first order's unit is held"
    );
    assert!(!reservation_exists(&app, product, &second).await);
    assert!(!order_exists(&app, &second).await);
}

#[tokio::test]
async fn a_re_sent_call_places_once_and_counts_once() {
    let app = app_without_worker().await;
    let admin = app.new_admin().await;
    let product = app.create_product(&admin, "Mug", PRICE, 10).await;
    let user = user_of(&app, product, 3);
    let id = app.state.cache.keys.new_order_id(user);
    let request = budget(&app, user, "once", 2);

    let first = place(&app, user, &id, &[line(product, 2)], &request).await;
    let again = place(&app, user, &id, &[line(product, 2)], &request).await;

    assert_eq!(
        first.expect("place"),
        PlaceOutcome::Ordered(ReserveOutcome::Reserved)
    );
    assert_eq!(
        again.expect("place"),
        PlaceOutcome::Ordered(ReserveOutcome::Replayed(id.clone()))
    );
    assert_eq!(stock(&app, product).await, 8, "held once");
    // The budget of 2 counted the re-sent request once: one more order fits.
    let other = app.state.cache.keys.new_order_id(user);
    let more = budget(&app, user, "n", 2);
    let next = place(&app, user, &other, &[line(product, 1)], &more).await;
    assert_eq!(
        next.expect("place"),
        PlaceOutcome::Ordered(ReserveOutcome::Reserved)
    );
}

#[tokio::test]
async fn a_spent_id_holds_nothing_and_creates_no_order() {
    let app = app_without_worker().await;
    let admin = app.new_admin().await;
    let product = app.create_product(&admin, "Mug", PRICE, 10).await;
    let user = user_of(&app, product, 4);
    let id = app.state.cache.keys.new_order_id(user);
    let keys = &app.state.cache.keys;
    let () = app
        .state
        .cache
        .client()
        .set(
            keys.reservation(keys.of_product(product), &id),
            "done",
            None,
            None,
            false,
        )
        .await
        .expect("set");

    let outcome = place(
        &app,
        user,
        &id,
        &[line(product, 1)],
        &budget(&app, user, "s", 5),
    )
    .await
    .expect("place");

    assert_eq!(outcome, PlaceOutcome::NotHeld(vec![Hold::Spent]));
    assert_eq!(stock(&app, product).await, 10);
    assert!(!order_exists(&app, &id).await);
}

#[tokio::test]
async fn a_bucket_short_of_stock_stops_the_call_before_the_order() {
    let app = app_without_worker().await;
    let admin = app.new_admin().await;
    let plenty = app.create_product(&admin, "Mug", PRICE, 10).await;
    let scarce = app.create_product(&admin, "Cup", PRICE, 1).await;
    let keys = &app.state.cache.keys;
    assert_ne!(keys.of_product(plenty), keys.of_product(scarce));
    let user = user_of(&app, plenty, 5);
    let id = keys.new_order_id(user);
    let items = [line(plenty, 2), line(scarce, 2)];
    let buckets = [
        keys.of_user(user),
        keys.of_product(plenty),
        keys.of_product(scarce),
    ];

    let request = budget(&app, user, "x", 5);
    let outcome = place(&app, user, &id, &items, &request).await;

    if !app.state.cache.one_call(&buckets) {
        // A Cluster: one call cannot reach two slots, and none is sent.
        assert!(outcome.is_err(), "{outcome:?}");
        assert_eq!(stock(&app, plenty).await, 10);
        return;
    }
    let outcome = outcome.expect("place");
    let PlaceOutcome::NotHeld(holds) = &outcome else {
        panic!("not held: {outcome:?}");
    };
    assert!(holds.contains(&Hold::Held), "{outcome:?}");
    assert!(
        holds.contains(&Hold::InsufficientStock {
            product_id: scarce,
            requested: 2,
            available: 1,
        }),
        "{outcome:?}"
    );
    assert!(!order_exists(&app, &id).await, "no order without its stock");
    assert_eq!(stock(&app, scarce).await, 1);
    assert_eq!(
        stock(&app, plenty).await,
        8,
        "the bucket that held keeps the units until the caller releases them"
    );
}
