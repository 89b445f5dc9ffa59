//! The storefront's server side over real HTTP: pages need a session, cookie attributes,
//! CSRF refusals that change nothing, session expiry and log-out, and error pages that carry
//! the API's status and code. (The whole shopping flow in a real browser is
//! web-tests/storefront.test.mjs, run by scripts/browser-tests.sh.)

use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with, TestApp, TestUser, TEST_PASSWORD};

/// A browser as far as the server can tell: the cookies it holds.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: Vec<(String, String)>,
}

/// The `Set-Cookie` header of `name` in a response, whole (value and attributes).
fn set_cookie(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The value of the hidden field `name` in a page (the first one).
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..]
        .split('"')
        .next()
        .expect("closing quote")
        .to_owned()
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, response: &Response) {
        for header in response.headers().get_all("set-cookie") {
            let text = header.to_str().expect("ascii cookie");
            let pair = text.split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> Response {
        let response = self
            .app
            .http
            .get(format!("{}{path}", self.app.base))
            .header("cookie", self.cookie_header())
            .header("accept", "text/html")
            .send()
            .await
            .expect("request sent");
        self.keep_cookies(&response);
        response
    }

    async fn page(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("body")
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .app
            .http
            .post(format!("{}{path}", self.app.base))
            .header("cookie", self.cookie_header())
            .header("accept", "text/html")
            .form(form)
            .send()
            .await
            .expect("request sent");
        self.keep_cookies(&response);
        response
    }

    /// Logs in through the log-in page; returns the `Set-Cookie` of the session.
    async fn log_in(&mut self, email: &str) -> String {
        let form = self.page("/login").await;
        let csrf = hidden(&form, "csrf");
        let response = self
            .post(
                "/login",
                &[
                    ("csrf", &csrf),
                    ("email", email),
                    ("password", TEST_PASSWORD),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&response), "/");
        set_cookie(&response, "fm_session").expect("a session cookie")
    }

    /// The CSRF token of this browser's signed-in forms (read from my page).
    async fn csrf(&mut self) -> String {
        hidden(&self.page("/me").await, "csrf")
    }
}

async fn signed_in(app: &TestApp) -> (TestUser, Browser<'_>) {
    let user = app.new_user().await;
    let mut browser = Browser::new(app);
    browser.log_in(&user.email).await;
    (user, browser)
}

async fn assert_error_page(response: Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert_eq!(csp, flashmart::web::layout::CSP);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let body = response.text().await.expect("body");
    assert!(
        body.contains(&format!("<code>{code}</code>")),
        "{code} in {body}"
    );
    for leak in [
        "axum",
        "serde",
        "sqlx",
        "fred",
        ".rs",
        "SELECT",
        "panicked",
        "problem+json",
    ] {
        assert!(!body.contains(leak), "{leak} leaked into {body}");
    }
    body
}

#[tokio::test]
async fn pages_without_a_session_send_the_visitor_to_log_in_and_change_nothing() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let mut browser = Browser::new(&app);
    let order = "0190a3f0-0000-7000-8000-000000000001";
    for path in [
        "/".to_owned(),
        "/me".to_owned(),
        "/coupons".to_owned(),
        "/cart?qty-1=1".to_owned(),
        format!("/orders/{order}"),
    ] {
        let response = browser.get(&path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/login", "{path}");
    }
    let forged = [("csrf", "x"), ("amount", "5000"), ("key", "k1")];
    let response = browser.post("/me/charge", &forged).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    assert_eq!(app.balance(&user).await, 0);
    // a bearer token is no session: the pages take cookies only
    let response = app
        .http
        .get(format!("{}/me", app.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn session_cookies_are_http_only_and_lax_and_secure_only_behind_tls() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let mut browser = Browser::new(&app);
    let visitor = set_cookie(&browser.get("/login").await, "fm_visitor").expect("visitor cookie");
    assert!(
        visitor.contains("; Path=/; HttpOnly; SameSite=Lax"),
        "{visitor}"
    );
    let session = browser.log_in(&user.email).await;
    assert!(
        session.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=3600"),
        "{session}"
    );
    assert!(!session.contains("Secure"));

    let tls = spawn_app_with(|env| {
        env.insert("HSTS_MAX_AGE_SECS", "600".into());
    })
    .await;
    let user = tls.new_user().await;
    let session = Browser::new(&tls).log_in(&user.email).await;
    assert!(
        session.ends_with("; HttpOnly; SameSite=Lax; Max-Age=3600; Secure"),
        "{session}"
    );
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (user, mut browser) = signed_in(&app).await;
    let (_, mut other) = signed_in(&app).await;
    let theirs = other.csrf().await;
    let mut anonymous = Browser::new(&app);
    let visitors = hidden(&anonymous.page("/login").await, "csrf");
    for token in [
        None,
        Some(""),
        Some("forged"),
        Some(&theirs),
        Some(&visitors),
    ] {
        let mut form = vec![("amount", "5000"), ("key", "k1")];
        if let Some(token) = token {
            form.push(("csrf", token));
        }
        let response = browser.post("/me/charge", &form).await;
        assert_error_page(response, 403, "CSRF_REJECTED").await;
    }
    assert_eq!(app.balance(&user).await, 0, "nothing was charged");

    // log-in and sign-up forms are protected too (bound to the visitor cookie)
    let response = anonymous
        .post(
            "/login",
            &[("email", user.email.as_str()), ("password", TEST_PASSWORD)],
        )
        .await;
    assert!(set_cookie(&response, "fm_session").is_none());
    assert_error_page(response, 403, "CSRF_REJECTED").await;

    let mine = browser.csrf().await;
    let form = [("csrf", mine.as_str()), ("amount", "5000"), ("key", "k1")];
    let response = browser.post("/me/charge", &form).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/me?done=charged");
    let again = browser.post("/me/charge", &form).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER, "the same form twice");
    assert_eq!(app.balance(&user).await, 5000, "charged once per form key");
}

#[tokio::test]
async fn sessions_end_at_their_expiry_and_at_log_out() {
    let app = spawn_app().await;
    let (_, mut browser) = signed_in(&app).await;
    browser.page("/me").await;
    app.state.clock.advance_ms(3_600_000);
    let response = browser.get("/me").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?ended=1");
    let cleared = set_cookie(&response, "fm_session").expect("cleared");
    assert!(cleared.starts_with("fm_session=; ") && cleared.contains("Max-Age=0"));
    let page = browser.page("/login?ended=1").await;
    assert!(page.contains("Your session has ended"));

    let (_, mut browser) = signed_in(&app).await;
    let session = browser.cookies.clone();
    let csrf = browser.csrf().await;
    let response = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    browser.cookies = session; // a copy of the old cookie is worthless now
    let response = browser.get("/me").await;
    assert_eq!(location(&response), "/login?ended=1");
}

#[tokio::test]
async fn error_pages_carry_the_status_and_code_the_api_gives() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let (user, mut browser) = signed_in(&app).await;
    let csrf = browser.csrf().await;
    let order = "0190a3f0-0000-7000-8000-000000000001";

    let page = browser.get(&format!("/orders/{order}")).await;
    assert_error_page(page, 404, "ORDER_NOT_FOUND").await;
    let api = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/orders/{order}"),
            Some(&user.token),
            None,
        )
        .await;
    assert_problem(api, 404, "ORDER_NOT_FOUND").await;

    assert_error_page(
        browser.get("/orders/not-an-order").await,
        400,
        "VALIDATION_FAILED",
    )
    .await;
    assert_error_page(
        browser.get("/cart?qty-1=lots").await,
        400,
        "VALIDATION_FAILED",
    )
    .await;
    let body = assert_error_page(
        browser.get("/cart?qty-999999=1").await,
        404,
        "PRODUCT_NOT_FOUND",
    )
    .await;
    assert!(
        body.contains("No such product."),
        "the API's detail: {body}"
    );
    let issue = browser
        .post("/coupons/999999/issue", &[("csrf", &csrf)])
        .await;
    assert_error_page(issue, 404, "COUPON_NOT_FOUND").await;
    let charge = [("csrf", csrf.as_str()), ("amount", "1.5"), ("key", "k2")];
    assert_error_page(
        browser.post("/me/charge", &charge).await,
        400,
        "INVALID_AMOUNT",
    )
    .await;

    // someone else's order: 403 as on the API, and pay short of balance: 402 with the prompt
    let product = app.create_product(&admin, "Web Lamp", 30_000, 5).await;
    let theirs = app.order_one(&admin, product, 1).await;
    let theirs = theirs["orderId"].as_str().expect("id");
    assert_error_page(
        browser.get(&format!("/orders/{theirs}")).await,
        403,
        "FORBIDDEN",
    )
    .await;
    let mine = app.order_one(&user, product, 1).await;
    let mine = mine["orderId"].as_str().expect("id");
    let pay = [("csrf", csrf.as_str()), ("key", "p1")];
    let short = browser.post(&format!("/orders/{mine}/pay"), &pay).await;
    let body = assert_error_page(short, 402, "INSUFFICIENT_BALANCE").await;
    assert!(
        body.contains("Please charge first") && body.contains("₩30,000"),
        "{body}"
    );
    assert_eq!(hidden(&body, "back"), format!("/orders/{mine}"));
    assert_eq!(app.balance(&user).await, 0);
}

#[tokio::test]
async fn the_review_shows_what_the_placed_order_then_costs() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let (user, mut browser) = signed_in(&app).await;
    let a = app.create_product(&admin, "Web Mug", 12_345, 10).await;
    let b = app.create_product(&admin, "Web Plate", 20_000, 10).await;
    let now = chrono::Utc::now();
    let campaign = json!({"name": "Web ten", "discountType": "PERCENT", "discountValue": 10,
        "maxDiscount": 4_000, "totalQuantity": 3,
        "issueStartsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
        "issueEndsAt": (now + chrono::Duration::hours(1)).to_rfc3339(), "validDays": 7});
    let created = app
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(campaign),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let coupon_id = crate::helpers::json_of(created).await["couponId"]
        .as_i64()
        .expect("id");
    let csrf = browser.csrf().await;
    let issued = browser
        .post(&format!("/coupons/{coupon_id}/issue"), &[("csrf", &csrf)])
        .await;
    assert_eq!(issued.status(), StatusCode::CREATED);
    let again = browser
        .post(&format!("/coupons/{coupon_id}/issue"), &[("csrf", &csrf)])
        .await;
    let body = assert_error_page(again, 409, "COUPON_ALREADY_ISSUED").await;
    assert!(body.contains("You already have this coupon."));
    let shop = browser.page("/").await;
    let held = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/users/{}/coupons", user.id),
            Some(&user.token),
            None,
        )
        .await;
    let user_coupon = crate::helpers::json_of(held).await["items"][0]["userCouponId"]
        .as_i64()
        .expect("the issued coupon")
        .to_string();
    assert!(
        shop.contains(&format!(
            "<option value=\"{user_coupon}\">Web ten (#{user_coupon})"
        )),
        "the coupon is offered on the order form"
    );

    // 2 × 12,345 + 20,000 = 44,690; 10 % = 4,469, capped at 4,000 → 40,690
    let cart = format!("/cart?qty-{a}=2&qty-{b}=1&coupon={user_coupon}");
    let review = browser.page(&cart).await;
    for figure in ["₩44,690", "-₩4,000", "₩40,690"] {
        assert!(review.contains(figure), "{figure} in the review");
    }
    let key = hidden(&review, "key");
    let (qa, qb) = (format!("qty-{a}"), format!("qty-{b}"));
    let form = [
        ("csrf", csrf.as_str()),
        ("key", key.as_str()),
        (qa.as_str(), "2"),
        (qb.as_str(), "1"),
        ("coupon", user_coupon.as_str()),
    ];
    let placed = browser.post("/orders", &form).await;
    assert_eq!(placed.status(), StatusCode::SEE_OTHER);
    let replayed = browser.post("/orders", &form).await;
    assert_eq!(
        location(&replayed),
        location(&placed),
        "one order per confirm form"
    );
    let order_id = location(&placed).trim_start_matches("/orders/").to_owned();
    let api = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/orders/{order_id}"),
            Some(&user.token),
            None,
        )
        .await;
    let order = crate::helpers::json_of(api).await;
    assert_eq!(order["subtotal"], 44_690);
    assert_eq!(order["discount"], 4_000);
    assert_eq!(order["total"], 40_690);
    assert_eq!(order["status"], "PENDING");
}

#[tokio::test]
async fn a_campaign_that_has_not_started_says_so_and_issues_nothing() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let (user, mut browser) = signed_in(&app).await;
    let now = chrono::Utc::now();
    let campaign = json!({"name": "Web tomorrow", "discountType": "FIXED", "discountValue": 1000,
        "totalQuantity": 3,
        "issueStartsAt": (now + chrono::Duration::days(1)).to_rfc3339(),
        "issueEndsAt": (now + chrono::Duration::days(2)).to_rfc3339(), "validDays": 7});
    let created = app
        .call(
            reqwest::Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(campaign),
        )
        .await;
    let coupon_id = crate::helpers::json_of(created).await["couponId"]
        .as_i64()
        .expect("id");
    let list = browser.page("/coupons").await;
    assert!(list.contains("Not started yet"), "{list}");
    let csrf = browser.csrf().await;
    let early = browser
        .post(&format!("/coupons/{coupon_id}/issue"), &[("csrf", &csrf)])
        .await;
    let body = assert_error_page(early, 409, "COUPON_NOT_ACTIVE").await;
    assert!(body.contains("This event has not started yet."), "{body}");
    let held = app
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/users/{}/coupons", user.id),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(crate::helpers::json_of(held).await["items"], json!([]));
}

#[tokio::test]
async fn my_page_lists_orders_newest_first_a_page_at_a_time() {
    let app = spawn_app().await;
    let admin = app.new_admin().await;
    let (user, mut browser) = signed_in(&app).await;
    let product = app.create_product(&admin, "Web Pen", 1_000, 50).await;
    let per_page = flashmart::web::mypage::ORDERS_PER_PAGE as i64;
    let mut ids = Vec::new();
    for quantity in 1..=per_page + 1 {
        let order = app.order_one(&user, product, quantity).await;
        ids.push(order["orderId"].as_str().expect("id").to_owned());
    }
    let first = browser.page("/me").await;
    let shown = |page: &str| -> Vec<String> {
        page.split("data-order-id=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().expect("id").to_owned())
            .collect()
    };
    let newest: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(shown(&first), newest[..per_page as usize].to_vec());
    assert!(
        first.contains("₩6,000"),
        "the newest order's total: 6 × ₩1,000"
    );
    let older = first
        .split("href=\"/me?cursor=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older orders");
    let second = browser.page(&format!("/me?cursor={older}")).await;
    assert_eq!(shown(&second), newest[per_page as usize..].to_vec());
    assert!(!second.contains("Older orders"));
    assert!(second.contains("Newest orders"));
}
