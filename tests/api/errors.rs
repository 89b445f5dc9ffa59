//! The error model: problem+json for API clients, HTML for browsers, nothing internal leaked.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{assert_problem, json_of, spawn_app, TestApp};

async fn post_raw(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    token: &str,
) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .header("content-type", content_type)
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .expect("sent")
}

/// No response may name our crates, SQL, or file paths.
async fn assert_leaks_nothing(response: reqwest::Response) {
    let headers = format!("{:?}", response.headers()).to_lowercase();
    assert!(!headers.contains("server"), "{headers}");
    assert!(!headers.contains("x-powered-by"), "{headers}");
    let body = response.text().await.expect("body").to_lowercase();
    for needle in [
        "axum", "serde", "sqlx", "fred", "tokio", "hyper", "select ", "insert ", "src/", ".rs",
        "panicked", "redis", "mysql",
    ] {
        assert!(!body.contains(needle), "response leaks {needle:?}: {body}");
    }
}

#[tokio::test]
async fn malformed_bodies_get_documented_4xx_codes() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let path = "/api/v1/admin/products";
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "MALFORMED_REQUEST",
        ),
        (
            "application/json",
            br#"{"name":"X","price":1,"stock":1,"admin":true}"#.to_vec(),
            400,
            "MALFORMED_REQUEST",
        ),
        (
            "application/json",
            br#"{"name":"X","price":"1","stock":1}"#.to_vec(),
            400,
            "MALFORMED_REQUEST",
        ),
        (
            "application/json",
            br#"{"name":"X","price":1.5,"stock":1}"#.to_vec(),
            400,
            "MALFORMED_REQUEST",
        ),
        (
            "text/plain",
            br#"{"name":"X","price":1,"stock":1}"#.to_vec(),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/json",
            format!(
                r#"{{"name":"{}","price":1,"stock":1}}"#,
                "x".repeat(17 * 1024)
            )
            .into_bytes(),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let response = post_raw(&app, path, content_type, body, &admin.token).await;
        assert_problem(response, status, code).await;
    }
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM products")
        .fetch_one(&app.state.db)
        .await
        .expect("count");
    assert_eq!(count.0, 0, "no bad request created anything");
}

#[tokio::test]
async fn unknown_fields_are_named_in_the_detail() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let body = br#"{"name":"X","price":1,"stock":1,"evil":1}"#.to_vec();
    let response = post_raw(
        &app,
        "/api/v1/admin/products",
        "application/json",
        body,
        &admin.token,
    )
    .await;
    let problem = assert_problem(response, 400, "MALFORMED_REQUEST").await;
    assert!(
        problem["detail"].as_str().unwrap_or("").contains("evil"),
        "{problem}"
    );
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_404_and_405() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_problem(
        app.call(Method::GET, "/api/v1/nope", Some(&user.token), None)
            .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.call(Method::GET, "/nope", None, None).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_problem(
        app.call(Method::DELETE, "/api/v1/products", Some(&user.token), None)
            .await,
        405,
        "METHOD_NOT_ALLOWED",
    )
    .await;
    assert_problem(
        app.call(Method::GET, "/api/v1/auth/login", None, None)
            .await,
        405,
        "METHOD_NOT_ALLOWED",
    )
    .await;
}

#[tokio::test]
async fn browsers_get_an_html_error_page_with_the_same_status() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/api/v1/products", app.base))
        .header(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = response.text().await.expect("page");
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("401 Unauthorized"));
    assert!(page.contains("UNAUTHORIZED"));
}

#[tokio::test]
async fn a_panic_becomes_a_generic_500_that_leaks_nothing() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let response = app
        .call(Method::GET, "/api/v1/test/panic", Some(&user.token), None)
        .await;
    assert_eq!(response.status(), 500);
    let body = json_of(response).await;
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert!(!body.to_string().contains("forced"));
    // The server keeps serving after a panic.
    let after = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn responses_carry_security_headers_and_leak_nothing() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let requests = vec![
        (Method::GET, "/health/live", None, None),
        (
            Method::GET,
            "/api/v1/products",
            Some(user.token.clone()),
            None,
        ),
        (Method::GET, "/api/v1/products", None, None),
        (Method::GET, "/api/v1/nope", None, None),
        (
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": 1})),
        ),
        (
            Method::GET,
            "/api/v1/test/panic",
            Some(user.token.clone()),
            None,
        ),
    ];
    for (method, path, token, body) in requests {
        let response = app.call(method.clone(), path, token.as_deref(), body).await;
        let headers = response.headers();
        assert_eq!(
            headers["x-content-type-options"], "nosniff",
            "{method} {path}"
        );
        assert_eq!(headers["cache-control"], "no-store", "{method} {path}");
        assert!(headers.contains_key("x-request-id"), "{method} {path}");
        assert!(headers.contains_key("referrer-policy"), "{method} {path}");
        assert_leaks_nothing(response).await;
    }
}

#[tokio::test]
async fn health_and_openapi_are_served() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_eq!(
        json_of(app.call(Method::GET, "/health/ready", None, None).await).await,
        json!({"status": "ok"})
    );
    let doc = json_of(
        app.call(Method::GET, "/api/v1/openapi.json", Some(&user.token), None)
            .await,
    )
    .await;
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/auth/login",
        "/api/v1/products",
        "/api/v1/products/{productId}",
        "/api/v1/admin/products",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
}

#[tokio::test]
async fn a_client_over_its_budget_gets_429_with_retry_after_and_changes_nothing() {
    let app = crate::helpers::spawn_app_with(|env| {
        env.insert("RATE_LIMIT_PER_SECOND", "1".into());
        env.insert("RATE_LIMIT_BURST", "3".into());
    })
    .await;
    let mut statuses = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..8 {
        let response = app
            .signup(&format!("r{i}@example.com"), "password123", "R")
            .await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
            assert_problem(response, 429, "RATE_LIMITED").await;
        }
    }
    // The burst of 3 passes; then one more per second at most (a busy machine makes the
    // sequence slower, never the budget larger).
    let refilled = started.elapsed().as_secs() as usize + 1;
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert_eq!(&statuses[..3], &[201, 201, 201], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(created <= 3 + refilled, "{statuses:?} in {refilled}s");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 429),
        "{statuses:?}"
    );
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.db)
        .await
        .expect("count");
    assert_eq!(
        count.0, created as i64,
        "throttled sign-ups created nothing"
    );
}

async fn live_from(app: &crate::helpers::TestApp, forwarded_for: &str) -> u16 {
    app.http
        .get(format!("{}/health/live", app.base))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let limited = |trust: bool| {
        move |env: &mut std::collections::HashMap<&'static str, String>| {
            env.insert("RATE_LIMIT_PER_SECOND", "1".into());
            env.insert("RATE_LIMIT_BURST", "2".into());
            if trust {
                env.insert("TRUSTED_PROXIES", "127.0.0.1".into());
            }
        }
    };
    let behind_proxy = crate::helpers::spawn_app_with(limited(true)).await;
    let statuses_a = [
        live_from(&behind_proxy, "198.51.100.1").await,
        live_from(&behind_proxy, "198.51.100.1").await,
        live_from(&behind_proxy, "198.51.100.1").await,
    ];
    assert_eq!(statuses_a, [200, 200, 429], "one client's budget");
    assert_eq!(
        live_from(&behind_proxy, "198.51.100.2").await,
        200,
        "another client is separate"
    );
    // Spoofing the left-most entry does not buy a new budget.
    assert_eq!(live_from(&behind_proxy, "9.9.9.9, 198.51.100.1").await, 429);

    let direct = crate::helpers::spawn_app_with(limited(false)).await;
    let statuses = [
        live_from(&direct, "198.51.100.1").await,
        live_from(&direct, "198.51.100.2").await,
        live_from(&direct, "198.51.100.3").await,
    ];
    assert_eq!(
        statuses,
        [200, 200, 429],
        "without a trusted proxy the header is ignored"
    );
}

#[tokio::test]
async fn shape_errors_speak_json_and_arrays_are_not_objects() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let user = app.new_user().await;
    let product = app.create_product(&admin, "Lamp", 1_000, 10).await;
    let charge = format!("/api/v1/users/{}/balance/charge", user.id);
    let cases: Vec<(&str, String, &str)> = vec![
        ("/api/v1/auth/login", "1".into(), "The body"),
        ("/api/v1/auth/login", "[]".into(), "The body"),
        (
            "/api/v1/auth/login",
            r#"["a@b.co","password1"]"#.into(),
            "The body",
        ),
        ("/api/v1/auth/signup", "null".into(), "The body"),
        ("/api/v1/orders", "[]".into(), "The body"),
        (
            "/api/v1/orders",
            format!("[[{{\"productId\":{product},\"quantity\":1}}]]"),
            "The body",
        ),
        (
            "/api/v1/orders",
            format!("{{\"items\":[[{product},1]]}}"),
            "`items[0]`",
        ),
        (
            "/api/v1/orders",
            format!("{{\"items\":[{{\"productId\":{product},\"quantity\":1.5}}]}}"),
            "`items[0].quantity`",
        ),
        ("/api/v1/orders", r#"{"items":{}}"#.into(), "`items`"),
        (&charge, "[3]".into(), "The body"),
        (&charge, "1.5".into(), "The body"),
        (
            "/api/v1/admin/products",
            r#"{"name":"X","price":1.5,"stock":1}"#.into(),
            "`price`",
        ),
        (
            "/api/v1/admin/products",
            r#"{"name":7,"price":1,"stock":1}"#.into(),
            "`name`",
        ),
    ];
    for (path, body, place) in cases {
        let token = if path.contains("admin") {
            &admin.token
        } else {
            &user.token
        };
        let response = post_raw(&app, path, "application/json", body.clone().into(), token).await;
        let problem = assert_problem(response, 400, "MALFORMED_REQUEST").await;
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(place), "{path} {body}: {detail}");
        assert!(detail.contains("expected"), "{path} {body}: {detail}");
        for rust in [
            "struct",
            "i64",
            "u32",
            "f64",
            "Request",
            "sequence",
            "with 2 elements",
        ] {
            assert!(!detail.contains(rust), "{path} {body}: {detail}");
        }
    }
    assert_eq!(app.balance(&user).await, 0, "[3] charged nothing");
    let orders = crate::helpers::count(&app.state.db, "SELECT COUNT(*) FROM orders").await;
    assert_eq!(orders, 0);
}
