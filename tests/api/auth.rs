//! Sign-up, login and the authentication matrix over every protected route.

use base64::Engine;
use flashmart::auth::{Claims, TokenKeys};
use flashmart::domain::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, json_of, spawn_app, TestApp, TEST_JWT_SECRET};

#[tokio::test]
async fn signup_then_login_returns_a_bearer_token_for_that_user() {
    let app = spawn_app().await;
    let response = app.signup("Kim@Example.com", "password123", "Kim").await;
    assert_eq!(response.status(), 201);
    let user_id = json_of(response).await["userId"].as_i64().expect("id");
    assert!(user_id > 0);

    let login = json_of(app.login("kim@example.com", "password123").await).await;
    assert_eq!(login["tokenType"], "Bearer");
    assert_eq!(login["userId"], user_id);
    assert_eq!(login["expiresIn"], 3600);
    let verified = app
        .state
        .tokens
        .verify(
            login["accessToken"].as_str().expect("token"),
            chrono::Utc::now().timestamp(),
        )
        .expect("valid");
    assert_eq!((verified.user.0, verified.role), (user_id, Role::User));

    let stored: (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_one(&app.state.db)
        .await
        .expect("row");
    assert!(
        stored.0.starts_with("$argon2id$"),
        "password must be stored as argon2id"
    );
}

#[tokio::test]
async fn signup_with_a_taken_email_is_a_conflict_and_creates_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.signup("a@example.com", "password123", "A")
            .await
            .status(),
        201
    );
    assert_problem(
        app.signup("A@example.com", "password456", "B").await,
        409,
        "EMAIL_TAKEN",
    )
    .await;
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db)
        .await
        .expect("count");
    assert_eq!(count.0, 1);
}

#[tokio::test]
async fn signup_validation_lists_every_bad_field() {
    let app = spawn_app().await;
    let body = assert_problem(
        app.signup("not-an-email", "short", "").await,
        400,
        "VALIDATION_FAILED",
    )
    .await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(fields, vec!["email", "password", "name"]);
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db)
        .await
        .expect("count");
    assert_eq!(count.0, 0);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let wrong = assert_problem(
        app.login(&user.email, "wrong-password").await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    let unknown = assert_problem(
        app.login("nobody@example.com", "wrong-password").await,
        401,
        "INVALID_CREDENTIALS",
    )
    .await;
    assert_eq!(wrong, unknown);
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn claims(user_id: i64, role: Role, iat: i64, exp: i64) -> Claims {
    Claims {
        sub: user_id.to_string(),
        role,
        iss: "flashmart".into(),
        aud: "flashmart-api".into(),
        iat,
        exp,
        nbf: None,
        gen: 0,
    }
}

/// Tokens that must all be refused with 401.
fn bad_tokens(user_id: i64) -> Vec<(&'static str, Option<String>)> {
    let now = chrono::Utc::now().timestamp();
    let keys = TokenKeys::new(TEST_JWT_SECRET.as_bytes(), 3600);
    let expired = keys
        .sign(&claims(user_id, Role::Admin, now - 7200, now - 3600))
        .expect("sign");
    let other_key = TokenKeys::new(&[9u8; 32], 3600)
        .sign(&claims(user_id, Role::Admin, now, now + 600))
        .expect("sign");
    let payload =
        serde_json::to_string(&claims(user_id, Role::Admin, now, now + 600)).expect("json");
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&payload)
    );
    let mut wrong_aud = claims(user_id, Role::Admin, now, now + 600);
    wrong_aud.aud = "someone-else".into();
    let wrong_aud = keys.sign(&wrong_aud).expect("sign");
    vec![
        ("no token", None),
        ("garbage", Some("not.a.token".into())),
        ("expired", Some(expired)),
        ("signed with another key", Some(other_key)),
        ("alg none", Some(alg_none)),
        ("wrong audience", Some(wrong_aud)),
    ]
}

/// Every protected route (method, path, body); admin-only ones flagged.
fn protected_routes(product_id: i64) -> Vec<(Method, String, Option<Value>, bool)> {
    vec![
        (Method::GET, "/api/v1/products".into(), None, false),
        (
            Method::GET,
            format!("/api/v1/products/{product_id}"),
            None,
            false,
        ),
        (Method::GET, "/api/v1/openapi.json".into(), None, false),
        (
            Method::POST,
            "/api/v1/admin/products".into(),
            Some(json!({"name": "X", "price": 1, "stock": 1})),
            true,
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/products/{product_id}"),
            Some(json!({"addStock": 5})),
            true,
        ),
    ]
}

async fn product_snapshot(app: &TestApp) -> Vec<(i64, String, i64, i64)> {
    sqlx::query_as("SELECT id, name, price, stock_total FROM products ORDER BY id")
        .fetch_all(&app.state.db)
        .await
        .expect("products")
}

#[tokio::test]
async fn every_protected_route_refuses_missing_and_invalid_tokens_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let product = app.create_product(&admin, "Widget", 1000, 10).await;
    let before = product_snapshot(&app).await;
    for (method, path, body, _) in protected_routes(product) {
        for (label, token) in bad_tokens(admin.id) {
            let response = app
                .call(method.clone(), &path, token.as_deref(), body.clone())
                .await;
            assert_eq!(response.status(), 401, "{method} {path} with {label}");
            assert_problem(response, 401, "UNAUTHORIZED").await;
        }
    }
    assert_eq!(product_snapshot(&app).await, before);
}

#[tokio::test]
async fn admin_routes_refuse_normal_users_and_accept_admins() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Widget", 1000, 10).await;
    let before = product_snapshot(&app).await;
    for (method, path, body, admin_only) in protected_routes(product) {
        let as_user = app
            .call(method.clone(), &path, Some(&user.token), body.clone())
            .await;
        if admin_only {
            assert_problem(as_user, 403, "FORBIDDEN").await;
        } else {
            assert_eq!(as_user.status(), 200, "{method} {path} as a user");
        }
    }
    assert_eq!(
        product_snapshot(&app).await,
        before,
        "refused requests changed nothing"
    );
    for (method, path, body, _) in protected_routes(product) {
        let as_admin = app
            .call(method.clone(), &path, Some(&admin.token), body)
            .await;
        assert!(
            as_admin.status().is_success(),
            "{method} {path} as admin: {}",
            as_admin.status()
        );
    }
}

#[tokio::test]
async fn a_forged_admin_token_cannot_escalate() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let now = chrono::Utc::now().timestamp();
    // A token claiming ADMIN but signed with the wrong key is refused outright.
    let forged = TokenKeys::new(b"guess-guess-guess-guess-guess-guess", 3600)
        .sign(&claims(user.id, Role::Admin, now, now + 600))
        .expect("sign");
    let body = json!({"name": "X", "price": 1, "stock": 1});
    let response = app
        .call(
            Method::POST,
            "/api/v1/admin/products",
            Some(&forged),
            Some(body),
        )
        .await;
    assert_problem(response, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn login_is_throttled_per_account_whatever_the_password() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("LOGIN_ATTEMPTS_PER_MINUTE", "3".into());
    })
    .await;
    let user = app.new_user().await; // one login already
    for _ in 0..2 {
        assert_eq!(app.login(&user.email, "wrong-password").await.status(), 401);
    }
    let right = app.login(&user.email, crate::helpers::TEST_PASSWORD).await;
    assert_problem(right, 429, "RATE_LIMITED").await;
    let other = app.new_user().await; // another account is not affected
    assert!(!other.token.is_empty());
}

#[tokio::test]
async fn sign_up_and_login_have_a_tighter_per_ip_budget() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("AUTH_RATE_PER_SECOND", "1".into());
        env.insert("AUTH_RATE_BURST", "2".into());
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(
            app.login(&format!("x{i}@example.com"), "whatever-pass")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![401, 401, 429]);
    let products = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(products.status(), 200, "other routes keep their own budget");
}

#[tokio::test]
async fn hsts_is_sent_only_when_configured() {
    let plain = spawn_app().await;
    let response = plain.call(Method::GET, "/health/live", None, None).await;
    assert!(!response.headers().contains_key("strict-transport-security"));
    let tls = crate::helpers::spawn_app_with(|env| {
        env.insert("HSTS_MAX_AGE_SECS", "31536000".into());
    })
    .await;
    let response = tls.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_guesser_is_throttled_while_the_owner_logs_in_from_elsewhere() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("TRUSTED_PROXIES", "127.0.0.1".into());
        env.insert("LOGIN_ATTEMPTS_PER_MINUTE", "3".into());
        env.insert("LOGIN_ACCOUNT_ATTEMPTS_PER_MINUTE", "8".into());
    })
    .await;
    let user = app.new_user().await; // one attempt from 127.0.0.1
    let guesser = "203.0.113.9";
    for _ in 0..3 {
        let wrong = login_from(&app, guesser, &user.email, "wrong-password").await;
        assert_eq!(wrong.status(), 401);
    }
    for password in ["wrong-password", crate::helpers::TEST_PASSWORD] {
        let throttled = login_from(&app, guesser, &user.email, password).await;
        let retry: u64 = throttled.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!(
            (1..=20).contains(&retry),
            "a short wait, not a lock-out: {retry}"
        );
        assert_problem(throttled, 429, "RATE_LIMITED").await;
    }
    let owner = login_from(
        &app,
        "198.51.100.7",
        &user.email,
        crate::helpers::TEST_PASSWORD,
    )
    .await;
    assert_eq!(owner.status(), 200, "the owner elsewhere is not locked out");

    // the account-wide budget (8 a minute, one more every 7.5 s) bounds a guesser with many
    // addresses; 5 attempts are counted so far (new_user's login, 3 guesses, the owner)
    let started = std::time::Instant::now();
    let mut accepted = 0;
    for i in 0..20 {
        let ip = format!("192.0.2.{i}");
        let answer = login_from(&app, &ip, &user.email, "wrong-password").await;
        if answer.status() == 429 {
            break;
        }
        assert_eq!(answer.status(), 401, "{ip}");
        accepted += 1;
    }
    let refilled = (started.elapsed().as_secs_f64() / 7.5).ceil() as usize;
    assert!(
        accepted >= 3 && accepted <= 3 + refilled,
        "{accepted} guesses from many addresses"
    );
}
