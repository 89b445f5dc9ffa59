//! The Lua script wrappers against real Redis.

use flashmart::cache::stock::{self, StockAdd};
use fred::prelude::*;

use crate::helpers::spawn_app;

#[tokio::test]
async fn stock_add_applies_once_per_operation_id() {
    let app = spawn_app().await;
    let cache = &app.state.cache;
    stock::put(cache, 1, 10).await.expect("put");
    assert_eq!(
        stock::add(cache, 1, 5, "op-1", 1).await.expect("add"),
        StockAdd::Applied { available: 15 }
    );
    // A replay (e.g. fred re-sending after a reconnect) changes nothing.
    assert_eq!(
        stock::add(cache, 1, 5, "op-1", 1).await.expect("add"),
        StockAdd::Replayed { available: 15 }
    );
    assert_eq!(
        stock::add(cache, 1, 2, "op-2", 1).await.expect("add"),
        StockAdd::Applied { available: 17 }
    );
}

#[tokio::test]
async fn stock_add_refuses_unloaded_products_and_bad_deltas() {
    let app = spawn_app().await;
    let cache = &app.state.cache;
    assert_eq!(
        stock::add(cache, 77, 5, "op-x", 1).await.expect("add"),
        StockAdd::NotLoaded
    );
    let exists: i64 = cache
        .client()
        .exists(cache.keys.stock(77))
        .await
        .expect("exists");
    assert_eq!(exists, 0, "nothing created");
    stock::put(cache, 78, 1).await.expect("put");
    assert!(
        stock::add(cache, 78, 0, "op-y", 1).await.is_err(),
        "zero delta is an error"
    );
    assert!(
        stock::add(cache, 78, -3, "op-z", 1).await.is_err(),
        "negative delta is an error"
    );
    assert_eq!(
        stock::available(cache, &[78]).await.expect("get"),
        vec![Some(1)]
    );
}

#[tokio::test]
async fn scripts_reload_after_a_script_flush() {
    let app = spawn_app().await;
    let cache = &app.state.cache;
    stock::put(cache, 5, 1).await.expect("put");
    let _: () = cache.client().script_flush(false).await.expect("flush");
    assert_eq!(
        stock::add(cache, 5, 1, "op-after-flush", 1)
            .await
            .expect("add"),
        StockAdd::Applied { available: 2 }
    );
}

#[tokio::test]
async fn init_if_missing_never_overwrites_live_stock() {
    let app = spawn_app().await;
    let cache = &app.state.cache;
    assert!(stock::init_if_missing(cache, 9, 4).await.expect("init"));
    assert!(!stock::init_if_missing(cache, 9, 100).await.expect("init"));
    assert_eq!(
        stock::available(cache, &[9]).await.expect("get"),
        vec![Some(4)]
    );
}

#[tokio::test]
async fn a_blocking_read_of_an_empty_stream_returns_nothing_instead_of_failing() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("SETTLEMENT_WORKER", "off".into());
    })
    .await;
    let cache = &app.state.cache;
    flashmart::settlement::stream::ensure_group(cache)
        .await
        .expect("group");
    let reader = flashmart::cache::build_client(&std::env::var("REDIS_URL").expect("REDIS_URL"))
        .await
        .expect("reader");
    let read = flashmart::settlement::stream::read_new(
        &reader,
        &flashmart::settlement::stream::Stream::of(&cache.keys, cache.keys.of_user(1)),
        "idle",
        10,
        50,
    )
    .await;
    assert_eq!(read.expect("an idle read is not an error"), vec![]);
}

#[tokio::test]
async fn rate_gcra_counts_a_re_sent_call_once_and_refuses_past_the_burst() {
    use flashmart::cache::ratelimit::{take, Rate, Verdict};
    let app = spawn_app().await;
    let cache = &app.state.cache;
    // one per minute, burst 2: nothing refills during the test
    let rate = Rate::per_minute(2);
    let key = || cache.keys.rate("test", "subject");
    assert_eq!(
        take(cache, key(), rate, "r1").await.expect("take"),
        Verdict::Allowed { remaining: 1 }
    );
    // the same request id again (fred re-sending after a reconnect): same answer, not counted
    assert_eq!(
        take(cache, key(), rate, "r1").await.expect("take"),
        Verdict::Allowed { remaining: 1 }
    );
    assert_eq!(
        take(cache, key(), rate, "r2").await.expect("take"),
        Verdict::Allowed { remaining: 0 }
    );
    let Verdict::Refused { retry_after_ms } = take(cache, key(), rate, "r3").await.expect("take")
    else {
        panic!("the third request is over the burst");
    };
    assert!((1..=30_000).contains(&retry_after_ms), "{retry_after_ms}");
    let ttl: i64 = cache.client().pttl(key()).await.expect("PTTL");
    assert!(
        ttl > 0 && ttl <= 61_000,
        "the bucket expires once full again: {ttl}"
    );
    let other = take(cache, cache.keys.rate("test", "other"), rate, "r4").await;
    assert_eq!(other.expect("take"), Verdict::Allowed { remaining: 1 });
}

#[tokio::test]
async fn rate_gcra_takes_a_batch_in_order_as_separate_calls_would() {
    use flashmart::cache::ratelimit::{take_all, Rate, TakeRequest, Verdict};
    let app = spawn_app().await;
    let cache = &app.state.cache;
    // one per minute, burst 2: nothing refills during the test
    let rate = Rate::per_minute(2);
    let request = |subject: &str, id: &str| TakeRequest {
        key: cache.keys.rate("test", subject),
        rate,
        request_id: id.into(),
    };
    // A batch is one script call, so its subjects share a key bucket (as the batcher forms it).
    let b = (0..)
        .map(|n| format!("b{n}"))
        .find(|s| cache.keys.of_subject(s) == cache.keys.of_subject("a"))
        .expect("some subject shares a's bucket");
    let b = b.as_str();
    let verdicts = take_all(
        cache,
        &[
            request("a", "1"),
            request(b, "2"),
            request("a", "3"),
            request("a", "4"), // third on bucket a: over the burst
            request("a", "4"), // the same request re-sent: the same answer, not counted again
            request(b, "5"),
        ],
    )
    .await
    .expect("take");
    assert_eq!(verdicts.len(), 6, "one verdict per request");
    assert_eq!(verdicts[0], Verdict::Allowed { remaining: 1 });
    assert_eq!(verdicts[1], Verdict::Allowed { remaining: 1 });
    assert_eq!(verdicts[2], Verdict::Allowed { remaining: 0 });
    assert!(
        matches!(verdicts[3], Verdict::Refused { .. }),
        "{verdicts:?}"
    );
    assert_eq!(verdicts[4], verdicts[3]);
    assert_eq!(verdicts[5], Verdict::Allowed { remaining: 0 });

    // A bad budget anywhere refuses the whole call before any bucket changes.
    let bad = TakeRequest {
        key: cache.keys.rate("test", "c"),
        rate: Rate {
            interval_us: 0,
            burst: 1,
        },
        request_id: "6".into(),
    };
    assert!(take_all(cache, &[request("c", "7"), bad]).await.is_err());
    let untouched: i64 = cache
        .client()
        .exists(cache.keys.rate("test", "c"))
        .await
        .expect("EXISTS");
    assert_eq!(
        untouched, 0,
        "the good request of a refused call took nothing"
    );
}
