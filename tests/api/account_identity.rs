//! One canonical spelling per account: variants that MySQL's `utf8mb4_unicode_ci` treats as the
//! same address (zero-width space, accents, full-width letters) neither sign up, nor log in, nor
//! open a fresh login-limiter bucket for an existing account.

use crate::helpers::{assert_problem, spawn_app_with, TEST_PASSWORD};

/// Spellings of `victim@example.com` that a case- and accent-insensitive collation folds
/// together with it, and a bidi override.
const VARIANTS: [&str; 6] = [
    "victim\u{200b}@example.com", // zero-width space
    "v\u{ed}ctim@example.com",    // í (accented)
    "\u{ff56}ictim@example.com",  // full-width ｖ
    "victim@\u{ff45}xample.com",  // full-width ｅ in the domain
    "victim\u{00ad}@example.com", // soft hyphen (invisible)
    "\u{202e}victim@example.com", // right-to-left override
];

#[tokio::test]
async fn confusable_spellings_of_an_account_neither_sign_up_nor_log_in() {
    let app = spawn_app_with(|_| {}).await;
    let created = app
        .signup("victim@example.com", TEST_PASSWORD, "Victim")
        .await;
    assert_eq!(created.status(), 201);
    for variant in VARIANTS {
        let signup = app.signup(variant, TEST_PASSWORD, "Copy").await;
        let body = assert_problem(signup, 400, "VALIDATION_FAILED").await;
        assert_eq!(body["errors"][0]["field"], "email", "{variant:?}: {body}");
        let login = app.login(variant, TEST_PASSWORD).await;
        assert_problem(login, 401, "INVALID_CREDENTIALS").await;
    }
    let users = crate::helpers::count(&app.state.db, "SELECT COUNT(*) FROM users").await;
    assert_eq!(users, 1, "no second account under another spelling");
    // the canonical spelling, typed with other ASCII case and spaces, is the same account
    let login = app.login("  VICTIM@Example.COM ", TEST_PASSWORD).await;
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn a_throttled_account_gets_no_fresh_budget_under_another_spelling() {
    let app = spawn_app_with(|env| {
        env.insert("LOGIN_ATTEMPTS_PER_MINUTE", "3".into());
    })
    .await;
    let created = app
        .signup("victim@example.com", TEST_PASSWORD, "Victim")
        .await;
    assert_eq!(created.status(), 201);
    for _ in 0..3 {
        let wrong = app.login("victim@example.com", "wrong-password").await;
        assert_eq!(wrong.status(), 401);
    }
    let exact = app.login("victim@example.com", TEST_PASSWORD).await;
    assert_problem(exact, 429, "RATE_LIMITED").await;
    let upper = app.login("Victim@EXAMPLE.com", TEST_PASSWORD).await;
    assert_problem(upper, 429, "RATE_LIMITED").await;
    for variant in VARIANTS {
        // a variant is not the account: it never logs in, whatever its own budget says
        let response = app.login(variant, TEST_PASSWORD).await;
        assert_ne!(response.status(), 200, "{variant:?} logged in");
    }
}
