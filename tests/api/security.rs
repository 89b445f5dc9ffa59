//! Security properties checked over every operation of the app's own OpenAPI document, so they
//! stay true as endpoints are added:
//!
//! - the auth matrix: bad credentials → 401, someone else's resources → 403, a normal user on
//!   admin routes → 403, and none of those refused requests changes any state;
//! - response hygiene: headers on every success and error response, and error bodies that name
//!   no crate, SQL or source file;
//! - hostile input (SQL-ish strings, unicode, 10k-character strings, huge and negative numbers,
//!   nested JSON) in every path id, query parameter and JSON field → 4xx, never 5xx, data
//!   stored verbatim when it is legitimately accepted, and the tables still there.

use std::collections::HashMap;

use base64::Engine;
use flashmart::auth::{Claims, TokenKeys};
use flashmart::domain::Role;
use fred::interfaces::StreamsInterface;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    count, json_of, spawn_app_with, wait_for_drain, TestApp, TestUser, TEST_JWT_SECRET,
    TEST_PASSWORD,
};

// ---------------------------------------------------------------------------------------------
// The world every test starts from
// ---------------------------------------------------------------------------------------------

/// An app with an admin, two users (A owns the resources, B is the intruder), a product, an
/// active coupon campaign, a charged balance and a PENDING order of A.
struct World {
    app: TestApp,
    admin: TestUser,
    a: TestUser,
    b: TestUser,
    product: i64,
    coupon: i64,
    order: String,
}

async fn world() -> World {
    let app = spawn_app_with(|env| {
        // the matrix issues coupons many times as one user; the per-user budget is tested elsewhere
        env.insert("COUPON_ISSUE_PER_SECOND", "100000".into());
        env.insert("COUPON_ISSUE_BURST", "100000".into());
    })
    .await;
    let admin = app.new_admin().await;
    let a = app.new_user().await;
    let b = app.new_user().await;
    let product = app.create_product(&admin, "Widget", 1_000, 1_000).await;
    let coupon = create_campaign(&app, &admin, "Ten off").await;
    let charged = app.charge(&a, json!(1_000_000), None).await;
    assert_eq!(charged.status(), StatusCode::OK, "charge A");
    let order = create_order(&app, &a, product).await;
    wait_for_drain(&app.state.cache).await;
    World {
        app,
        admin,
        a,
        b,
        product,
        coupon,
        order,
    }
}

fn campaign_body(name: &str) -> Value {
    let now = chrono::Utc::now();
    json!({
        "name": name,
        "discountType": "FIXED",
        "discountValue": 100,
        "maxDiscount": 1_000,
        "minOrderAmount": 0,
        "totalQuantity": 1_000,
        "issueStartsAt": (now - chrono::Duration::hours(1)).to_rfc3339(),
        "issueEndsAt": (now + chrono::Duration::days(1)).to_rfc3339(),
        "validDays": 7,
    })
}

async fn create_campaign(app: &TestApp, admin: &TestUser, name: &str) -> i64 {
    let response = app
        .call(
            Method::POST,
            "/api/v1/admin/coupons",
            Some(&admin.token),
            Some(campaign_body(name)),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "create campaign");
    json_of(response).await["couponId"]
        .as_i64()
        .expect("couponId")
}

async fn create_order(app: &TestApp, user: &TestUser, product: i64) -> String {
    app.order_one(user, product, 1).await["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Operations, from the OpenAPI document
// ---------------------------------------------------------------------------------------------

/// One operation of the document.
#[derive(Clone, Debug)]
struct Operation {
    method: Method,
    /// Path template, e.g. `/api/v1/orders/{orderId}`.
    template: String,
    has_body: bool,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn is_public(&self) -> bool {
        matches!(
            self.template.as_str(),
            "/api/v1/auth/signup" | "/api/v1/auth/login"
        ) || self.template.starts_with("/health/")
    }

    fn is_admin_only(&self) -> bool {
        self.template.starts_with("/api/v1/admin/")
    }

    /// Routes on a resource that belongs to one user (A in these tests).
    fn is_owned(&self) -> bool {
        self.template.contains("{userId}") || self.template.contains("{orderId}")
    }
}

/// Every operation of the document, plus the document itself (not listed in itself).
async fn operations(w: &World) -> Vec<Operation> {
    let response = w
        .app
        .call(Method::GET, "/api/v1/openapi.json", Some(&w.a.token), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK, "openapi.json");
    let doc = json_of(response).await;
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue, // parameters, summary, …
            };
            ops.push(Operation {
                method,
                template: template.clone(),
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    ops.push(Operation {
        method: Method::GET,
        template: "/api/v1/openapi.json".into(),
        has_body: false,
    });
    assert!(
        ops.len() >= 20,
        "the document lists every operation: {ops:?}"
    );
    ops
}

/// Path parameters of a request.
#[derive(Clone)]
struct Ids {
    user: i64,
    product: i64,
    coupon: i64,
    order: String,
}

impl Ids {
    fn of(w: &World) -> Self {
        Self {
            user: w.a.id,
            product: w.product,
            coupon: w.coupon,
            order: w.order.clone(),
        }
    }
}

/// The template with its parameters filled in (raw values are percent-encoded).
fn fill(template: &str, ids: &Ids, raw: Option<(&str, &str)>) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let name = &rest[start + 1..end];
        let value = match (raw, name) {
            (Some((param, value)), _) if param == name => encode_segment(value),
            (_, "userId") => ids.user.to_string(),
            (_, "productId") => ids.product.to_string(),
            (_, "couponId") => ids.coupon.to_string(),
            (_, "orderId") => ids.order.clone(),
            _ => panic!(
                "{template}: path parameter {{{name}}} is new; teach tests/api/security.rs a real id \
                 for it"
            ),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn path_params(template: &str) -> Vec<&str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name))
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A body the operation accepts (with the right caller and state).
fn valid_body(op: &Operation, product: i64) -> Option<Value> {
    if !op.has_body {
        return None;
    }
    let unique = uuid::Uuid::new_v4().simple().to_string();
    Some(match (op.method.as_str(), op.template.as_str()) {
        ("POST", "/api/v1/auth/signup") => json!({
            "email": format!("s{unique}@example.com"),
            "password": TEST_PASSWORD,
            "name": "Sign Up",
        }),
        ("POST", "/api/v1/auth/login") => {
            json!({"email": "nobody@example.com", "password": TEST_PASSWORD})
        }
        ("POST", "/api/v1/users/{userId}/balance/charge") => json!({"amount": 1_000}),
        ("POST", "/api/v1/orders") => {
            json!({"items": [{"productId": product, "quantity": 1}]})
        }
        ("POST", "/api/v1/admin/products") => {
            json!({"name": format!("Matrix {unique}"), "price": 10, "stock": 5})
        }
        ("PATCH", "/api/v1/admin/products/{productId}") => {
            json!({"name": "Renamed", "price": 20, "addStock": 5})
        }
        ("POST", "/api/v1/admin/coupons") => campaign_body(&format!("Matrix {unique}")),
        _ => panic!(
            "{}: takes a body; teach tests/api/security.rs a valid one",
            op.label()
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Requests and state snapshots
// ---------------------------------------------------------------------------------------------

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Cred {
    None,
    Bearer(String),
    Header(String),
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    cred: &Cred,
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut request = app.http.request(method, format!("{}{path}", app.base));
    match cred {
        Cred::None => {}
        Cred::Bearer(token) => request = request.bearer_auth(token),
        Cred::Header(value) => request = request.header("authorization", value),
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    into_answer(request.send().await.expect("request sent")).await
}

async fn into_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// Everything a request could change: row counts, the catalog's rows and the Redis settlement
/// stream. Every decision Redis takes (charge, coupon issue, reservation, payment, cancel,
/// restock) appends one entry to the stream, so `entries-added` (monotonic, unlike XLEN, which
/// the worker's trimming lowers) moves if and only if a decision was taken.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    counts: Vec<(&'static str, i64)>,
    products: Vec<(i64, String, i64, i64)>,
    stream_entries_added: i64,
    stream_last_id: String,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    let db = &app.state.db;
    let counts = vec![
        ("users", count(db, "SELECT COUNT(*) FROM users").await),
        ("products", count(db, "SELECT COUNT(*) FROM products").await),
        ("coupons", count(db, "SELECT COUNT(*) FROM coupons").await),
        (
            "user_coupons",
            count(db, "SELECT COUNT(*) FROM user_coupons").await,
        ),
        ("orders", count(db, "SELECT COUNT(*) FROM orders").await),
        (
            "wallet_charges",
            count(db, "SELECT COUNT(*) FROM wallet_charges").await,
        ),
    ];
    let products: Vec<(i64, String, i64, i64)> =
        sqlx::query_as("SELECT id, name, price, stock_total FROM products ORDER BY id")
            .fetch_all(db)
            .await
            .expect("products");
    let cache = &app.state.cache;
    let mut stream_entries_added = 0;
    let mut stream_last_id = String::new();
    for bucket in cache.keys.buckets() {
        let info: HashMap<String, fred::types::Value> = cache
            .client()
            .xinfo_stream(cache.keys.events(bucket), false, None)
            .await
            .expect("XINFO STREAM of a settlement stream");
        stream_entries_added += info
            .get("entries-added")
            .and_then(|v| v.as_i64())
            .expect("entries-added (Redis >= 7)");
        stream_last_id.push_str(
            &info
                .get("last-generated-id")
                .and_then(|v| v.as_string())
                .expect("last-generated-id"),
        );
        stream_last_id.push(' ');
    }
    Snapshot {
        counts,
        products,
        stream_entries_added,
        stream_last_id,
    }
}

// ---------------------------------------------------------------------------------------------
// (a) The auth matrix
// ---------------------------------------------------------------------------------------------

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn claims(sub: &str, role: Role, iat: i64, exp: i64) -> Claims {
    Claims {
        sub: sub.to_owned(),
        role,
        iss: "flashmart".into(),
        aud: "flashmart-api".into(),
        iat,
        exp,
        nbf: None,
        gen: 0,
    }
}

/// Credentials that must all be refused with 401. Forged ones claim ADMIN for A's id, so a
/// verifier that let any of them through would also hand out admin rights.
fn bad_credentials(victim: &TestUser) -> Vec<(&'static str, Cred)> {
    let now = chrono::Utc::now().timestamp();
    let id = victim.id.to_string();
    let keys = TokenKeys::new(TEST_JWT_SECRET.as_bytes(), 3600);
    let admin_claims = claims(&id, Role::Admin, now, now + 600);
    let sign = |c: &Claims| keys.sign(c).expect("sign");

    let expired = sign(&claims(&id, Role::Admin, now - 7200, now - 3600));
    let other_key = TokenKeys::new(b"another-key-another-key-another-key!", 3600)
        .sign(&admin_claims)
        .expect("sign");
    let payload = serde_json::to_string(&admin_claims).expect("json");
    let alg_none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&payload)
    );
    let alg_none_upper = format!(
        "{}.{}.",
        b64(r#"{"alg":"NONE","typ":"JWT"}"#),
        b64(&payload)
    );
    // the right key, but HS512: the verifier pins HS256
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &admin_claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .expect("sign HS512");
    let mut wrong_iss = admin_claims.clone();
    wrong_iss.iss = "evil".into();
    let mut wrong_aud = admin_claims.clone();
    wrong_aud.aud = "someone-else".into();
    let sub_zero = sign(&claims("0", Role::Admin, now, now + 600));
    let sub_sql = sign(&claims("1 OR 1=1", Role::Admin, now, now + 600));
    // A's real token with the payload swapped for an ADMIN one, signature kept
    let parts: Vec<&str> = victim.token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    // no exp at all
    let no_exp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": id, "role": "ADMIN", "iss": "flashmart", "aud": "flashmart-api", "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .expect("sign");
    vec![
        ("no token", Cred::None),
        ("garbage", Cred::Bearer("not.a.token".into())),
        ("empty bearer", Cred::Header("Bearer ".into())),
        (
            "Basic scheme",
            Cred::Header(format!("Basic {}", b64("a:b"))),
        ),
        ("token without scheme", Cred::Header(victim.token.clone())),
        ("oversized", Cred::Bearer("a".repeat(8_000))),
        ("expired", Cred::Bearer(expired)),
        ("alg none", Cred::Bearer(alg_none)),
        ("alg NONE", Cred::Bearer(alg_none_upper)),
        ("signed with another key", Cred::Bearer(other_key)),
        ("HS512 with the right key", Cred::Bearer(hs512)),
        ("wrong issuer", Cred::Bearer(sign(&wrong_iss))),
        ("wrong audience", Cred::Bearer(sign(&wrong_aud))),
        ("no exp", Cred::Bearer(no_exp)),
        ("sub 0", Cred::Bearer(sub_zero)),
        ("sub not a number", Cred::Bearer(sub_sql)),
        ("payload swapped to ADMIN", Cred::Bearer(tampered)),
    ]
}

async fn assert_refused(answer: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        answer.status.as_u16(),
        status,
        "{what}: expected {status}, got {} {}",
        answer.status,
        answer.body
    );
    assert_eq!(answer.content_type(), "application/problem+json", "{what}");
    let body = answer.json();
    assert_eq!(body["code"], code, "{what}: {body}");
    assert_eq!(body["status"], status, "{what}: {body}");
    for member in ["type", "title", "detail"] {
        assert!(
            body[member].is_string(),
            "{what}: problem lacks {member}: {body}"
        );
    }
}

#[tokio::test]
async fn auth_matrix_over_every_documented_operation_refuses_and_changes_nothing() {
    let w = world().await;
    let ids = Ids::of(&w);
    let ops = operations(&w).await;
    let before = snapshot(&w.app).await;
    let mut checked = 0;

    for op in ops.iter().filter(|op| !op.is_public()) {
        let path = fill(&op.template, &ids, None);
        let body = valid_body(op, w.product);

        // 1. missing, malformed, expired, forged tokens → 401
        for (label, cred) in bad_credentials(&w.a) {
            let what = format!("{} with {label}", op.label());
            let answer = send(&w.app, op.method.clone(), &path, &cred, body.as_ref(), &[]).await;
            assert_refused(&answer, 401, "UNAUTHORIZED", &what).await;
            assert_eq!(snapshot(&w.app).await, before, "{what} changed state");
            checked += 1;
        }

        // 2. another user's resources → 403
        if op.is_owned() {
            let what = format!("{} as another user", op.label());
            let cred = Cred::Bearer(w.b.token.clone());
            let answer = send(&w.app, op.method.clone(), &path, &cred, body.as_ref(), &[]).await;
            assert_refused(&answer, 403, "FORBIDDEN", &what).await;
            assert_eq!(snapshot(&w.app).await, before, "{what} changed state");
            checked += 1;
        }

        // 3. a normal user on admin routes → 403 (also the owner A: no route is admin-by-path
        //    for anyone but admins)
        if op.is_admin_only() {
            for (who, user) in [("user A", &w.a), ("user B", &w.b)] {
                let what = format!("{} as {who} (not an admin)", op.label());
                let cred = Cred::Bearer(user.token.clone());
                let answer =
                    send(&w.app, op.method.clone(), &path, &cred, body.as_ref(), &[]).await;
                assert_refused(&answer, 403, "FORBIDDEN", &what).await;
                assert_eq!(snapshot(&w.app).await, before, "{what} changed state");
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "only {checked} refusals checked");

    // Nothing reached the worker either.
    wait_for_drain(&w.app.state.cache).await;
    assert_eq!(snapshot(&w.app).await, before, "state after draining");
    // A still holds exactly what the set-up gave her.
    assert_eq!(w.app.balance(&w.a).await, 1_000_000);
}

#[tokio::test]
async fn the_matrix_routes_work_with_the_right_credentials() {
    // The positive control of the matrix: every operation refused above answers 2xx to its
    // owner (or an admin), so the 401/403s come from the credentials and not from a broken path.
    let w = world().await;
    let mut ids = Ids::of(&w);
    let ops = operations(&w).await;
    let to_cancel = create_order(&w.app, &w.a, w.product).await;
    // log-out revokes the caller's tokens: it gets a user of its own
    let leaving = w.app.new_user().await;
    for op in ops.iter().filter(|op| !op.is_public()) {
        let user = if op.is_admin_only() {
            &w.admin
        } else if op.template == "/api/v1/auth/logout" {
            &leaving
        } else {
            &w.a
        };
        ids.order = if op.template.ends_with("/cancel") {
            to_cancel.clone()
        } else {
            w.order.clone()
        };
        let path = fill(&op.template, &ids, None);
        let body = valid_body(op, w.product);
        let cred = Cred::Bearer(user.token.clone());
        let answer = send(&w.app, op.method.clone(), &path, &cred, body.as_ref(), &[]).await;
        assert!(
            answer.status.is_success(),
            "{} as its owner: {} {}",
            op.label(),
            answer.status,
            answer.body
        );
        // and an admin may read and change anyone's resources
        if op.is_owned() && op.method == Method::GET {
            let cred = Cred::Bearer(w.admin.token.clone());
            let answer = send(&w.app, op.method.clone(), &path, &cred, None, &[]).await;
            assert!(answer.status.is_success(), "{} as admin", op.label());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Response hygiene
// ---------------------------------------------------------------------------------------------

const LEAKS: [&str; 10] = [
    "axum",
    "serde",
    "sqlx",
    "tokio",
    "hyper",
    "fred",
    ".rs",
    "select",
    "panicked",
    "stack backtrace",
];

/// Headers every response carries, and what none may carry.
fn assert_hygienic_headers(answer: &Answer, what: &str) {
    let h = &answer.headers;
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert!(
        get("cache-control").contains("no-store"),
        "{what}: cache-control {:?}",
        get("cache-control")
    );
    assert!(
        !get("referrer-policy").is_empty(),
        "{what}: referrer-policy"
    );
    assert!(!get("x-request-id").is_empty(), "{what}: x-request-id");
    assert!(
        get("content-security-policy").starts_with("default-src 'none'"),
        "{what}: CSP {:?}",
        get("content-security-policy")
    );
    assert!(!h.contains_key("server"), "{what}: server header");
    // CORS is closed: no browser on another origin may read any answer
    for cors in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert!(!h.contains_key(cors), "{what}: {cors}");
    }
    assert!(
        !h.contains_key("x-powered-by"),
        "{what}: x-powered-by header"
    );
}

/// An error response: hygienic headers, a problem document (or the HTML page), no internals.
/// `input` is what the client sent: echoing the client's own words back is not a leak.
fn assert_clean_error(answer: &Answer, what: &str, input: &str) {
    assert!(
        answer.status.is_client_error() || answer.status.is_server_error(),
        "{what}: not an error: {}",
        answer.status
    );
    assert_hygienic_headers(answer, what);
    let ct = answer.content_type();
    assert!(
        ct == "application/problem+json" || ct == "text/html; charset=utf-8",
        "{what}: content type {ct:?}"
    );
    let body = answer.body.to_lowercase();
    let input = input.to_lowercase();
    for needle in LEAKS {
        assert!(
            !body.contains(needle) || input.contains(needle),
            "{what}: error body leaks {needle:?}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn every_operation_has_hygienic_success_and_error_responses() {
    let w = world().await;
    let mut ids = Ids::of(&w);
    let ops = operations(&w).await;
    let to_cancel = create_order(&w.app, &w.a, w.product).await;
    let mut errors_checked = 0;

    for op in &ops {
        ids.order = if op.template.ends_with("/cancel") {
            to_cancel.clone()
        } else {
            w.order.clone()
        };
        let path = fill(&op.template, &ids, None);
        let cred = if op.is_public() {
            Cred::None
        } else if op.is_admin_only() {
            Cred::Bearer(w.admin.token.clone())
        } else if op.template == "/api/v1/auth/logout" {
            // log-out revokes the caller's tokens: it gets a user of its own
            Cred::Bearer(w.app.new_user().await.token)
        } else {
            Cred::Bearer(w.a.token.clone())
        };
        let mut body = valid_body(op, w.product);
        if op.template == "/api/v1/auth/login" {
            body = Some(json!({"email": w.a.email, "password": TEST_PASSWORD}));
        }

        // success (asked from a foreign origin, which must not get CORS headers)
        let origin = [("origin", "https://evil.example")];
        let ok = send(
            &w.app,
            op.method.clone(),
            &path,
            &cred,
            body.as_ref(),
            &origin,
        )
        .await;
        assert!(
            ok.status.is_success(),
            "{}: expected a success, got {} {}",
            op.label(),
            ok.status,
            ok.body
        );
        assert_hygienic_headers(&ok, &format!("{} success", op.label()));

        // errors: no credentials, a browser asking for HTML, a malformed id, a malformed body
        let mut cases: Vec<(String, Answer, String)> = Vec::new();
        if !op.is_public() {
            let a = send(
                &w.app,
                op.method.clone(),
                &path,
                &Cred::None,
                body.as_ref(),
                &[],
            )
            .await;
            assert_eq!(a.status, 401, "{}", op.label());
            cases.push(("no token".into(), a, String::new()));
            let html = [("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")];
            let a = send(&w.app, op.method.clone(), &path, &Cred::None, None, &html).await;
            assert_eq!(a.status, 401, "{} (browser)", op.label());
            assert!(a.body.starts_with("<!doctype html>"), "{}", a.body);
            cases.push(("browser, no token".into(), a, String::new()));
        }
        for param in path_params(&op.template) {
            let bad = fill(&op.template, &ids, Some((param, "not-an-id")));
            let a = send(&w.app, op.method.clone(), &bad, &cred, body.as_ref(), &[]).await;
            assert_eq!(a.status, 400, "{} with {{{param}}} not-an-id", op.label());
            cases.push((format!("bad {param}"), a, "not-an-id".into()));
        }
        if op.has_body {
            let unknown = json!({"unknownField": 1});
            let a = send(&w.app, op.method.clone(), &path, &cred, Some(&unknown), &[]).await;
            assert_eq!(a.status, 400, "{} with an unknown field", op.label());
            cases.push(("unknown field".into(), a, unknown.to_string()));
            let a = raw_body(&w.app, op, &path, &cred, "application/json", "{oops".into()).await;
            assert_eq!(a.status, 400, "{} with broken JSON", op.label());
            cases.push(("broken JSON".into(), a, "{oops".into()));
            let a = raw_body(&w.app, op, &path, &cred, "text/plain", "{}".into()).await;
            assert_eq!(a.status, 415, "{} as text/plain", op.label());
            cases.push(("text/plain body".into(), a, String::new()));
            let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(20 * 1024));
            let a = raw_body(&w.app, op, &path, &cred, "application/json", big).await;
            assert_eq!(a.status, 413, "{} with 20 KiB", op.label());
            cases.push(("20 KiB body".into(), a, String::new()));
        }
        for (label, answer, input) in &cases {
            assert_clean_error(answer, &format!("{} {label}", op.label()), input);
            errors_checked += 1;
        }
    }

    // A CORS preflight from another origin is not answered with permission.
    let token = Cred::Bearer(w.a.token.clone());
    let preflight = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type",
        ),
    ];
    let a = send(
        &w.app,
        Method::OPTIONS,
        "/api/v1/orders",
        &token,
        None,
        &preflight,
    )
    .await;
    assert_eq!(a.status, 405, "preflight");
    assert_clean_error(&a, "CORS preflight", "");

    // Errors outside the document: unknown route, wrong method, a handler panic (test route).
    for (method, path, status) in [
        (Method::GET, "/api/v1/nope", 404),
        (Method::GET, "/nope", 404),
        (Method::DELETE, "/api/v1/products", 405),
        (Method::PUT, "/api/v1/orders", 405),
        (Method::GET, "/api/v1/test/panic", 500),
    ] {
        let a = send(&w.app, method.clone(), path, &token, None, &[]).await;
        assert_eq!(a.status, status, "{method} {path}");
        assert_clean_error(&a, &format!("{method} {path}"), path);
        errors_checked += 1;
    }
    assert!(
        errors_checked > 40,
        "only {errors_checked} error responses checked"
    );
}

async fn raw_body(
    app: &TestApp,
    op: &Operation,
    path: &str,
    cred: &Cred,
    content_type: &str,
    body: String,
) -> Answer {
    let mut request = app
        .http
        .request(op.method.clone(), format!("{}{path}", app.base))
        .header("content-type", content_type)
        .body(body);
    match cred {
        Cred::None => {}
        Cred::Bearer(token) => request = request.bearer_auth(token),
        Cred::Header(value) => request = request.header("authorization", value),
    }
    into_answer(request.send().await.expect("sent")).await
}

// ---------------------------------------------------------------------------------------------
// (c) Hostile input
// ---------------------------------------------------------------------------------------------

/// Strings a path segment, query parameter or JSON string field may carry.
fn hostile_strings() -> Vec<String> {
    vec![
        "' OR 1=1--".into(),
        "1; DROP TABLE users".into(),
        "1 OR 1=1".into(),
        "1' AND SLEEP(5)-- ".into(),
        "1) UNION SELECT password_hash FROM users-- ".into(),
        "o'reilly\"--@example.com".into(),
        "\\' ; -- \\\\".into(),
        "%27%20OR%201%3D1".into(),
        "Ω≈ç√ 😀 \u{202e}gnp.exe ǅ ﷽".into(),
        "\u{0}\u{1}\u{7f}".into(),
        "{\"$gt\":\"\"}".into(),
        "../../../../etc/passwd".into(),
        "${jndi:ldap://127.0.0.1/x}".into(),
        "<script>alert(1)</script>".into(),
        "x".repeat(10_000),
        String::new(),
    ]
}

/// Numbers (as text) for ids and numeric query parameters.
fn hostile_numbers() -> Vec<String> {
    vec![
        "-1".into(),
        "0".into(),
        "1.5".into(),
        "1e3".into(),
        "0x10".into(),
        "4294967295".into(),
        "4294967296".into(),
        "9223372036854775807".into(),
        "9223372036854775808".into(),
        "-9223372036854775809".into(),
        "99999999999999999999999999999999".into(),
        "NaN".into(),
        "ffffffff-ffff-ffff-ffff-ffffffffffff".into(),
        "------------------------------------".into(),
        "00000000-0000-0000-0000-000000000000".into(),
        format!("{}", "9".repeat(10_000)),
    ]
}

/// JSON values for every field: SQL-ish and odd strings, huge, negative and fractional
/// numbers, and nested structures.
fn hostile_values() -> Vec<Value> {
    let mut values: Vec<Value> = hostile_strings().into_iter().map(Value::String).collect();
    let mut nested = json!(1);
    for _ in 0..64 {
        nested = json!([nested]);
    }
    values.extend([
        json!(-1),
        json!(-9_223_372_036_854_775_808_i64),
        json!(9_223_372_036_854_775_807_i64),
        json!(18_446_744_073_709_551_615_u64),
        serde_json::from_str::<Value>("1e308").expect("number"),
        serde_json::from_str::<Value>("123456789012345678901234567890").expect("number"),
        json!(1.5),
        json!(-0.0),
        json!(true),
        Value::Null,
        json!([1, 2, 3]),
        json!({"$gt": 0}),
        json!({"a": {"b": {"c": {"d": "' OR 1=1--"}}}}),
        nested,
    ]);
    values
}

/// JSON pointers of the fields of a body, optional ones included.
fn body_fields(op: &Operation) -> Vec<&'static str> {
    match (op.method.as_str(), op.template.as_str()) {
        ("POST", "/api/v1/auth/signup") => vec!["/email", "/password", "/name"],
        ("POST", "/api/v1/auth/login") => vec!["/email", "/password"],
        ("POST", "/api/v1/users/{userId}/balance/charge") => vec!["/amount"],
        ("POST", "/api/v1/orders") => vec![
            "/items",
            "/items/0",
            "/items/0/productId",
            "/items/0/quantity",
            "/userCouponId",
        ],
        ("POST", "/api/v1/admin/products") => vec!["/name", "/price", "/stock"],
        ("PATCH", "/api/v1/admin/products/{productId}") => vec!["/name", "/price", "/addStock"],
        ("POST", "/api/v1/admin/coupons") => vec![
            "/name",
            "/discountType",
            "/discountValue",
            "/maxDiscount",
            "/minOrderAmount",
            "/totalQuantity",
            "/issueStartsAt",
            "/issueEndsAt",
            "/validDays",
        ],
        _ => panic!(
            "{}: teach tests/api/security.rs the fields of its body",
            op.label()
        ),
    }
}

/// Free-text fields where any string is legitimate data (bounded in length).
fn is_free_text(op: &Operation, pointer: &str) -> bool {
    matches!(pointer, "/name" | "/password")
        || (op.template == "/api/v1/auth/signup" && pointer == "/email")
}

fn set_pointer(body: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target = if parent.is_empty() {
        &mut *body
    } else {
        body.pointer_mut(parent).expect("parent exists")
    };
    match target {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => {
            let i: usize = key.parse().expect("index");
            items[i] = value;
        }
        _ => panic!("cannot set {pointer}"),
    }
}

fn short(text: &str) -> String {
    let mut s: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        s.push('…');
    }
    s
}

/// What legitimately accepted hostile input created.
#[derive(Default)]
struct Accepted {
    users: i64,
    products: i64,
    coupons: i64,
    orders: i64,
}

/// Optional fields, where `null` means "not given".
fn is_optional(op: &Operation, pointer: &str) -> bool {
    match (op.method.as_str(), op.template.as_str()) {
        ("POST", "/api/v1/orders") => pointer == "/userCouponId",
        ("PATCH", "/api/v1/admin/products/{productId}") => true,
        ("POST", "/api/v1/admin/coupons") => {
            matches!(pointer, "/maxDiscount" | "/minOrderAmount")
        }
        _ => false,
    }
}

#[tokio::test]
async fn hostile_input_everywhere_is_refused_or_stored_verbatim_and_never_a_5xx() {
    let w = world().await;
    let ids = Ids::of(&w);
    let ops = operations(&w).await;
    let before = snapshot(&w.app).await;
    let admin = Cred::Bearer(w.admin.token.clone());
    let mut accepted = Accepted::default();
    let mut sent = 0;

    // Path ids: every parameter of every operation, as the admin (who gets furthest).
    let mut path_inputs = hostile_strings();
    path_inputs.extend(hostile_numbers());
    for op in ops.iter().filter(|op| !op.is_public()) {
        let body = valid_body(op, w.product);
        for param in path_params(&op.template) {
            for input in &path_inputs {
                let path = fill(&op.template, &ids, Some((param, input)));
                let answer =
                    send(&w.app, op.method.clone(), &path, &admin, body.as_ref(), &[]).await;
                let what = format!("{} with {{{param}}} = {:?}", op.label(), short(input));
                // An admin listing the coupons/orders of a user id that has none (0, 4294967295)
                // gets an empty list: acceptable for a read, as long as it is empty.
                if answer.status.is_success() && op.method == Method::GET {
                    assert_eq!(answer.json()["items"], json!([]), "{what}: {}", answer.body);
                    sent += 1;
                    continue;
                }
                assert!(
                    answer.status.is_client_error(),
                    "{what}: {} {}",
                    answer.status,
                    answer.body
                );
                sent += 1;
            }
        }
    }

    // Query parameters: cursor and limit of the paged lists, tampered cursors, unknown and
    // repeated parameters.
    let cursors: Vec<String> = hostile_strings()
        .into_iter()
        .chain(
            [
                "p1:1 OR 1=1",
                "p1:-1",
                "p1:1;DROP TABLE products",
                "o1:0:' OR 1=1--",
                "o1:-5:00000000-0000-0000-0000-000000000000",
                "o1:99999999999999999999:x",
                "p1:99999999999999999999",
            ]
            .iter()
            .map(|raw| b64(raw)),
        )
        .collect();
    let limits: Vec<String> = hostile_strings()
        .into_iter()
        .chain(hostile_numbers())
        .chain(["0".to_owned(), "101".to_owned(), "+1".to_owned()])
        .collect();
    for list in [
        "/api/v1/products".to_owned(),
        format!("/api/v1/users/{}/orders", w.a.id),
    ] {
        let mut queries: Vec<String> = Vec::new();
        queries.extend(
            cursors
                .iter()
                .map(|c| format!("cursor={}", encode_segment(c))),
        );
        queries.extend(
            limits
                .iter()
                .map(|l| format!("limit={}", encode_segment(l))),
        );
        queries.extend([
            "limit=1&limit=2".to_owned(),
            "evil=1".to_owned(),
            "cursor[]=1".to_owned(),
            "limit[$gt]=0".to_owned(),
            format!("{}=1", "k".repeat(5_000)),
        ]);
        for query in &queries {
            let path = format!("{list}?{query}");
            let answer = send(&w.app, Method::GET, &path, &admin, None, &[]).await;
            let what = format!("GET {list}?{}", short(query));
            // `limit=+1` parses as 1 (a number with a plus sign): an accepted page is fine as
            // long as it is an ordinary page.
            if answer.status.is_success() {
                assert!(answer.json()["items"].is_array(), "{what}: {}", answer.body);
            } else {
                assert!(
                    answer.status.is_client_error(),
                    "{what}: {} {}",
                    answer.status,
                    answer.body
                );
            }
            sent += 1;
        }
    }

    // JSON bodies: every field of every body, then whole hostile bodies.
    for op in ops.iter().filter(|op| op.has_body) {
        let path = fill(&op.template, &ids, None);
        let cred = if op.is_public() {
            Cred::None
        } else if op.is_admin_only() {
            admin.clone()
        } else {
            Cred::Bearer(w.a.token.clone())
        };
        for pointer in body_fields(op) {
            for value in hostile_values() {
                let mut body = valid_body(op, w.product).expect("body");
                set_pointer(&mut body, pointer, value.clone());
                let answer = send(&w.app, op.method.clone(), &path, &cred, Some(&body), &[]).await;
                let what = format!(
                    "{} with {pointer} = {}",
                    op.label(),
                    short(&value.to_string())
                );
                sent += 1;
                assert!(
                    !answer.status.is_server_error(),
                    "{what}: {} {}",
                    answer.status,
                    answer.body
                );
                if answer.status.is_client_error() {
                    continue;
                }
                // `null` in an optional field means "not given": an ordinary request.
                if value.is_null() && is_optional(op, pointer) {
                    match op.template.as_str() {
                        "/api/v1/orders" => accepted.orders += 1,
                        "/api/v1/admin/coupons" => accepted.coupons += 1,
                        _ => {}
                    }
                    continue;
                }
                // Only a free-text field may take a hostile value, and only as data.
                let Value::String(text) = &value else {
                    panic!("{what}: a non-string was accepted: {}", answer.status);
                };
                assert!(
                    is_free_text(op, pointer),
                    "{what}: accepted: {}",
                    answer.body
                );
                assert!(text.chars().count() <= 200, "{what}: 10k chars accepted");
                check_stored_verbatim(&w, op, pointer, &body, &answer, &mut accepted).await;
            }
        }

        // Whole bodies that are not the expected object at all.
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        let raw_bodies: Vec<(&str, String)> = vec![
            ("application/json", "' OR 1=1--".into()),
            ("application/json", "1; DROP TABLE users".into()),
            ("application/json", "[]".into()),
            ("application/json", "null".into()),
            ("application/json", "\"x\"".into()),
            ("application/json", "1e999999".into()),
            ("application/json", deep),
            ("application/json", "{\"a\":1,\"a\":2}".into()),
            ("application/json", "\u{feff}{}".into()),
            ("application/json", "{}".into()),
            (
                "application/x-www-form-urlencoded",
                "amount=1' OR '1'='1".into(),
            ),
        ];
        for (content_type, raw) in raw_bodies {
            let answer = raw_body(&w.app, op, &path, &cred, content_type, raw.clone()).await;
            let what = format!("{} with body {}", op.label(), short(&raw));
            if raw == "{}" && op.method == Method::PATCH && answer.status.is_success() {
                continue; // every field of a PATCH is optional: an empty change is a no-op
            }
            assert!(
                answer.status.is_client_error(),
                "{what}: {} {}",
                answer.status,
                answer.body
            );
            sent += 1;
        }
    }
    assert!(sent > 1_000, "only {sent} hostile requests sent");

    // The tables are all still there, and only the legitimately accepted rows were added.
    wait_for_drain(&w.app.state.cache).await;
    let after = snapshot(&w.app).await;
    let expect = |table: &str, extra: i64| {
        let of = |s: &Snapshot| s.counts.iter().find(|(t, _)| *t == table).expect("table").1;
        assert_eq!(of(&after), of(&before) + extra, "rows in {table}");
    };
    expect("users", accepted.users);
    expect("products", accepted.products);
    expect("coupons", accepted.coupons);
    expect("user_coupons", 0);
    expect("orders", accepted.orders);
    expect("wallet_charges", 0);
    let ready = send(&w.app, Method::GET, "/health/ready", &Cred::None, None, &[]).await;
    assert_eq!(ready.status, 200, "still ready");
}

/// An accepted free-text value must have been stored as data, exactly (after trimming).
async fn check_stored_verbatim(
    w: &World,
    op: &Operation,
    pointer: &str,
    body: &Value,
    answer: &Answer,
    accepted: &mut Accepted,
) {
    let sent = body
        .pointer(pointer)
        .and_then(Value::as_str)
        .expect("string");
    let what = format!("{} {pointer} {:?}", op.label(), short(sent));
    match (op.method.as_str(), op.template.as_str(), pointer) {
        ("POST", "/api/v1/admin/products", "/name") => {
            accepted.products += 1;
            assert_eq!(answer.json()["name"], sent.trim(), "{what}");
        }
        ("PATCH", "/api/v1/admin/products/{productId}", "/name") => {
            assert_eq!(answer.json()["name"], sent.trim(), "{what}");
        }
        ("POST", "/api/v1/admin/coupons", "/name") => {
            accepted.coupons += 1;
            let id = answer.json()["couponId"].as_i64().expect("couponId");
            let stored: (String,) = sqlx::query_as("SELECT name FROM coupons WHERE id = ?")
                .bind(id)
                .fetch_one(&w.app.state.db)
                .await
                .expect("coupon row");
            assert_eq!(stored.0, sent.trim(), "{what}");
        }
        ("POST", "/api/v1/auth/signup", field) => {
            accepted.users += 1;
            let email = body["email"].as_str().expect("email");
            let password = body["password"].as_str().expect("password");
            let login = w.app.login(email, password).await;
            assert_eq!(
                login.status(),
                200,
                "{what}: log in with what was signed up"
            );
            if field == "/name" {
                let id = answer.json()["userId"].as_i64().expect("userId");
                let stored: (String,) = sqlx::query_as("SELECT name FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_one(&w.app.state.db)
                    .await
                    .expect("user row");
                assert_eq!(stored.0, sent.trim(), "{what}");
            }
        }
        _ => panic!("{what}: accepted a hostile value: {}", answer.body),
    }
}
