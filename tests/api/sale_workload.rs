//! The short sale `observability.rs` drives over two instances before Prometheus scrapes them:
//! sign-up, charge, coupon issue (and a repeat), order with the coupon, payment, and on the
//! second instance a 402 and a cancel, so every dashboard row has data.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{json_of, TestUser, TEST_PASSWORD};
use crate::instances::Cluster;

async fn call(
    cluster: &Cluster,
    base: &str,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = cluster
        .http
        .request(method, format!("{base}{path}"))
        .bearer_auth(&user.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

async fn login_on(cluster: &Cluster, base: &str, user: &TestUser) -> TestUser {
    let body = json!({"email": user.email, "password": TEST_PASSWORD});
    let response = cluster
        .http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let token = json_of(response).await["accessToken"]
        .as_str()
        .expect("token")
        .to_owned();
    TestUser {
        token,
        ..user.clone()
    }
}

/// A short sale over both instances: every dashboard row gets data.
pub async fn workload(cluster: &Cluster, second: &str) {
    let first = cluster.base(0).to_owned();
    let admin = cluster.new_admin(0).await;
    let product = cluster
        .create_product(0, &admin, "Flash lamp", 20_000, 100)
        .await;
    let starts = Utc::now() - chrono::Duration::seconds(60);
    let campaign = json!({
        "name": "Flash 10%", "discountType": "PERCENT", "discountValue": 10, "maxDiscount": 5000,
        "minOrderAmount": 10000, "totalQuantity": 10, "issueStartsAt": starts.to_rfc3339(),
        "issueEndsAt": (starts + chrono::Duration::hours(2)).to_rfc3339(), "validDays": 7
    });
    let created = call(
        cluster,
        &first,
        Method::POST,
        "/api/v1/admin/coupons",
        &admin,
        Some(campaign),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let coupon = json_of(created).await["couponId"]
        .as_i64()
        .expect("couponId");

    // A paying shopper on the first instance: charge, coupon, order with it, pay.
    let payer = cluster.new_user(0).await;
    let charge = format!("/api/v1/users/{}/balance/charge", payer.id);
    let charged = call(
        cluster,
        &first,
        Method::POST,
        &charge,
        &payer,
        Some(json!({"amount": 100_000})),
    )
    .await;
    assert_eq!(charged.status(), StatusCode::OK);
    let issue = format!("/api/v1/coupons/{coupon}/issue");
    let issued = call(cluster, &first, Method::POST, &issue, &payer, None).await;
    assert_eq!(issued.status(), StatusCode::CREATED);
    let user_coupon = json_of(issued).await["userCouponId"].clone();
    let again = call(cluster, &first, Method::POST, &issue, &payer, None).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let order =
        json!({"items": [{"productId": product, "quantity": 1}], "userCouponId": user_coupon});
    let ordered = call(
        cluster,
        &first,
        Method::POST,
        "/api/v1/orders",
        &payer,
        Some(order),
    )
    .await;
    assert_eq!(ordered.status(), StatusCode::CREATED);
    let order_id = json_of(ordered).await["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned();
    let pay = format!("/api/v1/orders/{order_id}/payment");
    let paid = call(cluster, &first, Method::POST, &pay, &payer, None).await;
    assert_eq!(paid.status(), StatusCode::OK);

    // A shopper on the second instance without balance: coupon, order, 402, cancel.
    let broke = login_on(cluster, second, &cluster.new_user(0).await).await;
    let issued = call(cluster, second, Method::POST, &issue, &broke, None).await;
    assert_eq!(issued.status(), StatusCode::CREATED);
    let order = json!({"items": [{"productId": product, "quantity": 2}]});
    let ordered = call(
        cluster,
        second,
        Method::POST,
        "/api/v1/orders",
        &broke,
        Some(order),
    )
    .await;
    assert_eq!(ordered.status(), StatusCode::CREATED);
    let order_id = json_of(ordered).await["orderId"]
        .as_str()
        .expect("orderId")
        .to_owned();
    let refused = call(
        cluster,
        second,
        Method::POST,
        &format!("/api/v1/orders/{order_id}/payment"),
        &broke,
        None,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    let cancelled = call(
        cluster,
        second,
        Method::POST,
        &format!("/api/v1/orders/{order_id}/cancel"),
        &broke,
        None,
    )
    .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    for base in [&first, second] {
        let listed = call(cluster, base, Method::GET, "/api/v1/products", &broke, None).await;
        assert_eq!(listed.status(), StatusCode::OK);
    }
}
