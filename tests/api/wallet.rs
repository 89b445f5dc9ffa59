//! Wallet: charge and balance, idempotency, bad amounts, ownership.

use fred::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, count, json_of, spawn_app, wait_for_drain};

#[tokio::test]
async fn a_charge_raises_the_balance_and_lands_in_the_ledger() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_eq!(app.balance(&user).await, 0);
    let response = app.charge(&user, json!(15_000), None).await;
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(
        body,
        json!({"userId": user.id, "balance": 15000, "chargedAmount": 15000})
    );
    let body = json_of(app.charge(&user, json!(5_000), None).await).await;
    assert_eq!(body["balance"], 20000);
    assert_eq!(app.balance(&user).await, 20_000);

    app.assert_audit_passes().await;
    let account = format!("user:{}", user.id);
    let stored: (i64,) = sqlx::query_as("SELECT balance FROM accounts WHERE code = ?")
        .bind(&account)
        .fetch_one(&app.state.db)
        .await
        .expect("account");
    assert_eq!(stored.0, 20_000);
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM wallet_charges").await,
        2
    );
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM ledger_entries").await,
        4
    );
    let cash_in = count(
        &app.state.db,
        "SELECT balance FROM accounts WHERE code = 'cash_in'",
    )
    .await;
    assert_eq!(cash_in, -20_000);
}

#[tokio::test]
async fn the_same_idempotency_key_charges_once_and_answers_the_same() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let first = json_of(app.charge(&user, json!(7_000), Some("charge-abc-1")).await).await;
    let _ = app.charge(&user, json!(1_000), Some("other-key")).await;
    let again = json_of(app.charge(&user, json!(7_000), Some("charge-abc-1")).await).await;
    assert_eq!(first, again, "a replay returns the first outcome");
    assert_eq!(app.balance(&user).await, 8_000);
    let reused = app.charge(&user, json!(9_000), Some("charge-abc-1")).await;
    assert_problem(reused, 422, "IDEMPOTENCY_KEY_REUSED").await;
    assert_eq!(app.balance(&user).await, 8_000);
    app.assert_audit_passes().await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM wallet_charges").await,
        2
    );
}

#[tokio::test]
async fn bad_amounts_are_refused_before_anything_changes() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let _ = app.charge(&user, json!(1_000), None).await;
    wait_for_drain(&app.state.cache).await;
    let events_before = crate::helpers::events_len(&app.state.cache).await;
    let bad = [
        json!(0),
        json!(-100),
        json!(1.5),
        json!(100.0),
        json!("1000"),
        json!(null),
        json!(true),
        json!(10_000_001),
        json!(u64::MAX),
        json!(1e300),
    ];
    for amount in bad {
        let response = app.charge(&user, amount.clone(), None).await;
        assert_eq!(response.status(), 400, "{amount}");
        assert_problem(response, 400, "INVALID_AMOUNT").await;
    }
    let path = format!("/api/v1/users/{}/balance/charge", user.id);
    let missing = app
        .call(Method::POST, &path, Some(&user.token), Some(json!({})))
        .await;
    assert_problem(missing, 400, "INVALID_AMOUNT").await;
    let extra = json!({"amount": 5, "currency": "USD"});
    let unknown = app
        .call(Method::POST, &path, Some(&user.token), Some(extra))
        .await;
    assert_problem(unknown, 400, "MALFORMED_REQUEST").await;

    assert_eq!(app.balance(&user).await, 1_000);
    let events_after = crate::helpers::events_len(&app.state.cache).await;
    assert_eq!(events_after, events_before, "no event appended");
    app.assert_audit_passes().await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM wallet_charges").await,
        1
    );
}

#[tokio::test]
async fn a_charge_that_would_pass_the_balance_limit_is_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    for i in 0..100 {
        let response = app
            .charge(&user, json!(10_000_000), Some(&format!("fill-{i}")))
            .await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(app.balance(&user).await, 1_000_000_000);
    assert_problem(
        app.charge(&user, json!(1), None).await,
        400,
        "INVALID_AMOUNT",
    )
    .await;
    assert_eq!(app.balance(&user).await, 1_000_000_000);
    app.assert_audit_passes().await;
    assert_eq!(
        count(&app.state.db, "SELECT COUNT(*) FROM wallet_charges").await,
        100
    );
}

#[tokio::test]
async fn users_touch_only_their_own_wallet_and_admins_any() {
    let app = spawn_app().await;
    let alice = app.new_user().await;
    let bob = app.new_user().await;
    let admin = app.new_admin().await;
    let alice_balance = format!("/api/v1/users/{}/balance", alice.id);
    let alice_charge = format!("/api/v1/users/{}/balance/charge", alice.id);
    let as_bob = app
        .call(Method::GET, &alice_balance, Some(&bob.token), None)
        .await;
    assert_problem(as_bob, 403, "FORBIDDEN").await;
    let bob_charges = app
        .call(
            Method::POST,
            &alice_charge,
            Some(&bob.token),
            Some(json!({"amount": 5})),
        )
        .await;
    assert_problem(bob_charges, 403, "FORBIDDEN").await;
    let no_token = app
        .call(
            Method::POST,
            &alice_charge,
            None,
            Some(json!({"amount": 5})),
        )
        .await;
    assert_problem(no_token, 401, "UNAUTHORIZED").await;
    let as_admin = app
        .call(Method::GET, &alice_balance, Some(&admin.token), None)
        .await;
    assert_eq!(json_of(as_admin).await["balance"], 0);
    let ghost = app
        .call(
            Method::GET,
            "/api/v1/users/999999/balance",
            Some(&admin.token),
            None,
        )
        .await;
    assert_problem(ghost, 404, "USER_NOT_FOUND").await;
    let ghost_charge = app
        .call(
            Method::POST,
            "/api/v1/users/999999/balance/charge",
            Some(&admin.token),
            Some(json!({"amount": 5})),
        )
        .await;
    assert_problem(ghost_charge, 404, "USER_NOT_FOUND").await;
    assert_eq!(app.balance(&alice).await, 0);
    app.assert_audit_passes().await;
}

#[tokio::test]
async fn malformed_idempotency_keys_are_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let long = "k".repeat(65);
    for key in [long.as_str(), "has space", ""] {
        let response = app
            .http
            .post(format!(
                "{}/api/v1/users/{}/balance/charge",
                app.base, user.id
            ))
            .bearer_auth(&user.token)
            .header("idempotency-key", key)
            .json(&json!({"amount": 10}))
            .send()
            .await
            .expect("sent");
        assert_problem(response, 400, "VALIDATION_FAILED").await;
    }
    assert_eq!(app.balance(&user).await, 0);
}

#[tokio::test]
async fn a_balance_missing_from_redis_is_loaded_from_the_ledger() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let _ = app.charge(&user, json!(3_000), None).await;
    wait_for_drain(&app.state.cache).await;
    let _: i64 = app
        .state
        .cache
        .client()
        .del(app.state.cache.keys.balance(user.id))
        .await
        .expect("del");
    app.assert_audit_passes().await; // not loaded is not a mismatch: it loads on first use
    assert_eq!(app.balance(&user).await, 3_000);
    let body = json_of(app.charge(&user, json!(500), None).await).await;
    assert_eq!(body["balance"], 3_500);
    app.assert_audit_passes().await;
}
