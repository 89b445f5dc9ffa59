//! Tokens: refused when issued in the future, revoked by log-out on every instance, and a
//! validly signed token of a user that does not exist moves no money. Also the request id a
//! client sends and names with bidi controls.

use flashmart::auth::token::Claims;
use flashmart::domain::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, count, json_of, spawn_app, TestApp, TEST_PASSWORD};

fn claims(sub: i64, iat: i64, nbf: Option<i64>) -> Claims {
    Claims {
        sub: sub.to_string(),
        role: Role::User,
        iss: "flashmart".into(),
        aud: "flashmart-api".into(),
        iat,
        exp: iat.max(now()) + 600,
        nbf,
        gen: 0,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn stream_length(app: &TestApp) -> i64 {
    crate::helpers::events_len(&app.state.cache).await as i64
}

#[tokio::test]
async fn tokens_issued_or_valid_only_in_the_future_are_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let path = format!("/api/v1/users/{}/balance", user.id);
    let sign = |c: &Claims| app.state.tokens.sign(c).expect("sign");
    for (what, token) in [
        ("iat in 1 h", sign(&claims(user.id, now() + 3600, None))),
        ("iat in 1 min", sign(&claims(user.id, now() + 60, None))),
        (
            "nbf in 1 h",
            sign(&claims(user.id, now(), Some(now() + 3600))),
        ),
    ] {
        let response = app.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(response.status(), 401, "{what}");
    }
    let skewed = sign(&claims(user.id, now() + 2, Some(now() + 2)));
    let response = app.call(Method::GET, &path, Some(&skewed), None).await;
    assert_eq!(response.status(), 200, "2 s of clock skew is tolerated");
}

#[tokio::test]
async fn a_signed_token_of_a_user_that_does_not_exist_moves_no_money() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let product = app.create_product(&admin, "Lamp", 1_000, 10).await;
    let coupon = json_of(
        app.call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(
                json!({"name": "Ten", "discountType": "FIXED", "discountValue": 100,
                "totalQuantity": 10, "issueStartsAt": chrono::Utc::now().to_rfc3339(),
                "issueEndsAt": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
                "validDays": 7}),
            ),
        )
        .await,
    )
    .await["couponId"]
        .as_i64()
        .expect("couponId");
    let ghost = 987_654;
    let token = app
        .state
        .tokens
        .sign(&claims(ghost, now(), None))
        .expect("sign");
    let events = stream_length(&app).await;
    for _ in 0..2 {
        let issue = app
            .call(
                Method::POST,
                &format!("/api/v1/coupons/{coupon}/issue"),
                Some(&token),
                None,
            )
            .await;
        assert_problem(issue, 404, "USER_NOT_FOUND").await;
        let order = app
            .call(
                Method::POST,
                "/api/v1/orders",
                Some(&token),
                Some(json!({"items": [{"productId": product, "quantity": 1}]})),
            )
            .await;
        assert_problem(order, 404, "USER_NOT_FOUND").await;
        let charge = app
            .call(
                Method::POST,
                &format!("/api/v1/users/{ghost}/balance/charge"),
                Some(&token),
                Some(json!({"amount": 1000})),
            )
            .await;
        assert_problem(charge, 404, "USER_NOT_FOUND").await;
    }
    assert_eq!(stream_length(&app).await, events, "no decision was made");
    let stock = json_of(
        app.call(
            Method::GET,
            &format!("/api/v1/products/{product}"),
            Some(&admin.token),
            None,
        )
        .await,
    )
    .await["stock"]
        .clone();
    assert_eq!(stock, 10, "no stock reserved");
    // the answer "no such user" is cached in Redis, so the hot path does not ask MySQL again
    use fred::prelude::*;
    let held: Option<i64> = app
        .state
        .cache
        .client()
        .get(app.state.cache.keys.token_generation(ghost))
        .await
        .expect("GET");
    assert_eq!(held, Some(-1));
}

#[tokio::test]
async fn log_out_revokes_every_token_of_the_user_and_a_new_login_works() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let other = app.new_user().await;
    let second = json_of(app.login(&user.email, TEST_PASSWORD).await).await["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let path = format!("/api/v1/users/{}/balance", user.id);
    assert_eq!(
        app.call(Method::GET, &path, Some(&second), None)
            .await
            .status(),
        200
    );
    let out = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&user.token), None)
        .await;
    assert_eq!(out.status(), 204);
    for token in [&user.token, &second] {
        let response = app.call(Method::GET, &path, Some(token), None).await;
        assert_problem(response, 401, "UNAUTHORIZED").await;
        let again = app
            .call(Method::POST, "/api/v1/auth/logout", Some(token), None)
            .await;
        assert_problem(again, 401, "UNAUTHORIZED").await;
    }
    let fresh = json_of(app.login(&user.email, TEST_PASSWORD).await).await["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = app.call(Method::GET, &path, Some(&fresh), None).await;
    assert_eq!(response.status(), 200, "a new login is not revoked");
    let other_path = format!("/api/v1/users/{}/balance", other.id);
    let response = app
        .call(Method::GET, &other_path, Some(&other.token), None)
        .await;
    assert_eq!(response.status(), 200, "other users keep their sessions");
    let stored = count(
        &app.state.db,
        "SELECT CAST(MAX(token_gen) AS SIGNED) FROM users",
    )
    .await;
    assert_eq!(
        stored, 1,
        "MySQL holds the generation (a rebuilt Redis keeps it)"
    );
}

#[tokio::test]
async fn a_revoked_token_stays_revoked_when_redis_forgets_the_generation() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let out = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&user.token), None)
        .await;
    assert_eq!(out.status(), 204);
    use fred::prelude::*;
    let _: i64 = app
        .state
        .cache
        .client()
        .del(app.state.cache.keys.token_generation(user.id))
        .await
        .expect("DEL");
    let path = format!("/api/v1/users/{}/balance", user.id);
    let response = app.call(Method::GET, &path, Some(&user.token), None).await;
    assert_problem(response, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn a_client_request_id_is_kept_only_when_short_and_plain() {
    let app = spawn_app().await;
    let url = format!("{}/health/live", app.base);
    let sent = |id: &str| {
        let request = app.http.get(&url).header("x-request-id", id);
        async move {
            let response = request.send().await.expect("sent");
            response.headers()["x-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned()
        }
    };
    assert_eq!(sent("req-42_a.b").await, "req-42_a.b");
    let max = "a".repeat(64);
    assert_eq!(sent(&max).await, max);
    for bad in [
        "a".repeat(65),
        "two words".to_owned(),
        "x\"}{\"level\":\"ERROR\"".to_owned(),
        "<script>".to_owned(),
    ] {
        let echoed = sent(&bad).await;
        assert_ne!(echoed, bad);
        assert!(
            uuid::Uuid::parse_str(&echoed).is_ok(),
            "a fresh id: {echoed}"
        );
    }
}

#[tokio::test]
async fn names_with_bidi_controls_are_refused() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    for name in ["admin\u{202E}nimda", "\u{2066}Kim\u{2069}", "x\u{200F}"] {
        let signup = app.signup("bidi@example.com", TEST_PASSWORD, name).await;
        let body = assert_problem(signup, 400, "VALIDATION_FAILED").await;
        assert_eq!(body["errors"][0]["field"], "name");
        let product = app
            .call(
                Method::POST,
                "/api/v1/admin/products",
                Some(&admin.token),
                Some(json!({"name": name, "price": 1000, "stock": 1})),
            )
            .await;
        assert_problem(product, 400, "VALIDATION_FAILED").await;
    }
    let signup = app
        .signup("rtl@example.com", TEST_PASSWORD, "שלום עולם")
        .await;
    assert_eq!(signup.status(), 201, "right-to-left text itself is fine");
}
