//! The workload: clients that charge, get coupons, order, pay and cancel against random
//! instances, record every outcome, and resolve every unknown one (a lost connection, a 503, a
//! timeout) by sending the same request again — with the same Idempotency-Key where the API
//! honours one, or by reading the resource back where it does not (cancel, coupon issue).
//!
//! Each client owns its users, so its model of them (charged, paid, coupons, orders) is exact
//! once every outcome is resolved; the checks compare that model with MySQL and Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest a single attempt may take before its outcome counts as unknown.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);

/// A user of the run and what its client knows happened to it.
#[derive(Clone, Debug, Default)]
pub struct UserModel {
    /// User id.
    pub id: i64,
    /// Bearer token.
    pub token: String,
    /// Sum of acknowledged charges.
    pub charged: i64,
    /// Acknowledged charges.
    pub charges: u64,
    /// Sum of acknowledged payments.
    pub paid: i64,
    /// Campaign id → user coupon id, for every coupon acknowledged as issued.
    pub coupons: HashMap<i64, i64>,
    /// User coupons this client may still put on an order.
    pub usable_coupons: Vec<i64>,
    /// Orders acknowledged as created and not yet known to be paid, cancelled or expired.
    pub pending: Vec<OrderModel>,
    /// Orders acknowledged as paid.
    pub paid_orders: Vec<OrderModel>,
    /// Orders acknowledged as cancelled.
    pub cancelled: u64,
}

/// An order as its creation answered it.
#[derive(Clone, Debug)]
pub struct OrderModel {
    /// Order id.
    pub id: String,
    /// Amount to pay.
    pub total: i64,
    /// (product id, quantity) per line.
    pub lines: Vec<(i64, i64)>,
    /// The user coupon it reserved.
    pub user_coupon: Option<i64>,
}

/// Counters every client adds to.
#[derive(Default)]
pub struct Tally {
    /// (operation, outcome) → count.
    pub outcomes: BTreeMap<(String, String), u64>,
    /// Requests answered 500 (a bug of ours, never allowed), with what was asked.
    pub internal_errors: Vec<String>,
    /// Operations whose outcome could not be resolved before the deadline.
    pub unresolved: Vec<String>,
    /// Anything else a client saw that breaks a promise (negative stock, a wrong replay…).
    pub violations: Vec<String>,
    /// Attempts whose answer was unknown (lost, 503, timeout) and were sent again.
    pub resent: u64,
}

/// What the clients share: instances, products, campaigns and the tally.
#[derive(Clone)]
pub struct Shop {
    /// Base URL per instance.
    pub bases: Vec<String>,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Product ids on sale.
    pub products: Vec<i64>,
    /// Coupon campaign ids.
    pub campaigns: Vec<i64>,
    /// Outcomes so far.
    pub tally: Arc<Mutex<Tally>>,
    /// After this instant an unknown outcome is given up (and reported).
    pub resolve_deadline: Arc<Mutex<Option<Instant>>>,
}

/// A definite answer: status and JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Shop {
    fn count(&self, op: &str, outcome: &str) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        *tally
            .outcomes
            .entry((op.to_owned(), outcome.to_owned()))
            .or_insert(0) += 1;
    }

    fn violation(&self, what: String) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.violations.push(what);
    }

    fn past_deadline(&self) -> bool {
        self.resolve_deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|d| Instant::now() > d)
    }

    /// Sends the request to random instances until it gets a definite answer (anything but a
    /// lost connection, a timeout, 429, 502, 503 or 504); a 500 is recorded as a violation and
    /// sent again. `None` when the resolve deadline passed first.
    #[allow(clippy::too_many_arguments)]
    async fn definite(
        &self,
        rng: &mut StdRng,
        op: &str,
        method: Method,
        path: &str,
        token: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Option<(Answer, bool)> {
        let mut uncertain = false;
        loop {
            let base = &self.bases[rng.random_range(0..self.bases.len())];
            let mut request = self
                .http
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(token)
                .timeout(ATTEMPT_TIMEOUT);
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Ok(response) = request.send().await {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status == 500 {
                    let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
                    tally
                        .internal_errors
                        .push(format!("{op}: {method} {path} → 500 {body}"));
                } else if !matches!(status, 429 | 502 | 503 | 504) {
                    return Some((Answer { status, body }, uncertain));
                }
            }
            uncertain = true;
            self.tally.lock().unwrap_or_else(|e| e.into_inner()).resent += 1;
            if self.past_deadline() {
                let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
                tally
                    .unresolved
                    .push(format!("{op}: {method} {path} (key {key:?})"));
                return None;
            }
            let pause = rng.random_range(100..600);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    async fn charge(&self, rng: &mut StdRng, user: &mut UserModel) {
        let amount = rng.random_range(5..=40) * 1000;
        let key = uuid::Uuid::new_v4().to_string();
        let path = format!("/api/v1/users/{}/balance/charge", user.id);
        let body = json!({ "amount": amount });
        let Some((answer, _)) = self
            .definite(
                rng,
                "charge",
                Method::POST,
                &path,
                &user.token,
                Some(&key),
                Some(&body),
            )
            .await
        else {
            return;
        };
        match answer.status {
            200 => {
                user.charged += amount;
                user.charges += 1;
                self.count("charge", "charged");
            }
            400 => self.count("charge", "refused (limit)"),
            other => {
                self.count("charge", &format!("HTTP {other}"));
                self.violation(format!("charge answered {other}: {}", answer.body));
            }
        }
    }

    async fn issue(&self, rng: &mut StdRng, user: &mut UserModel) {
        let Some(&campaign) = self
            .campaigns
            .iter()
            .filter(|c| !user.coupons.contains_key(c))
            .nth(0)
        else {
            return self.count("coupon issue", "skipped (has all)");
        };
        let path = format!("/api/v1/coupons/{campaign}/issue");
        let Some((answer, uncertain)) = self
            .definite(
                rng,
                "coupon issue",
                Method::POST,
                &path,
                &user.token,
                None,
                None,
            )
            .await
        else {
            return;
        };
        let code = answer.body["code"].as_str().unwrap_or("").to_owned();
        match (answer.status, code.as_str()) {
            (201, _) => {
                let id = answer.body["userCouponId"].as_i64().unwrap_or_default();
                user.coupons.insert(campaign, id);
                user.usable_coupons.push(id);
                self.count("coupon issue", "issued");
            }
            (409, "COUPON_ALREADY_ISSUED") if uncertain => {
                // Our first attempt took effect; learn the coupon's id from the user's list.
                match self.find_coupon(rng, user, campaign).await {
                    Some(id) => {
                        user.coupons.insert(campaign, id);
                        user.usable_coupons.push(id);
                        self.count("coupon issue", "issued (resolved by reading back)");
                    }
                    None => self.violation(format!(
                        "coupon {campaign} answered ALREADY_ISSUED to user {} but is not listed",
                        user.id
                    )),
                }
            }
            (410, _) => {
                user.coupons.insert(campaign, 0);
                self.count("coupon issue", "sold out");
            }
            (409, "COUPON_NOT_ACTIVE") => self.count("coupon issue", "not active"),
            (status, _) => {
                self.count("coupon issue", &format!("HTTP {status} {code}"));
                self.violation(format!(
                    "coupon issue for user {} answered {status}: {}",
                    user.id, answer.body
                ));
            }
        }
    }

    async fn find_coupon(&self, rng: &mut StdRng, user: &UserModel, campaign: i64) -> Option<i64> {
        let path = format!("/api/v1/users/{}/coupons", user.id);
        let (answer, _) = self
            .definite(
                rng,
                "read coupons",
                Method::GET,
                &path,
                &user.token,
                None,
                None,
            )
            .await?;
        answer.body["items"].as_array()?.iter().find_map(|item| {
            (item["couponId"].as_i64() == Some(campaign))
                .then(|| item["userCouponId"].as_i64())
                .flatten()
        })
    }

    async fn order(&self, rng: &mut StdRng, user: &mut UserModel) {
        let lines = rng.random_range(1..=3usize);
        let mut picked: Vec<i64> = Vec::new();
        while picked.len() < lines.min(self.products.len()) {
            let product = self.products[rng.random_range(0..self.products.len())];
            if !picked.contains(&product) {
                picked.push(product);
            }
        }
        let lines: Vec<(i64, i64)> = picked
            .into_iter()
            .map(|p| (p, rng.random_range(1..=3)))
            .collect();
        let coupon = (!user.usable_coupons.is_empty() && rng.random_bool(0.5))
            .then(|| user.usable_coupons[rng.random_range(0..user.usable_coupons.len())]);
        let items: Vec<Value> = lines
            .iter()
            .map(|(p, q)| json!({ "productId": p, "quantity": q }))
            .collect();
        let mut body = json!({ "items": items });
        if let Some(coupon) = coupon {
            body["userCouponId"] = json!(coupon);
        }
        let key = uuid::Uuid::new_v4().to_string();
        let Some((answer, _)) = self
            .definite(
                rng,
                "order",
                Method::POST,
                "/api/v1/orders",
                &user.token,
                Some(&key),
                Some(&body),
            )
            .await
        else {
            return;
        };
        let code = answer.body["code"].as_str().unwrap_or("").to_owned();
        match (answer.status, code.as_str()) {
            (201, _) => {
                if let Some(coupon) = coupon {
                    user.usable_coupons.retain(|c| *c != coupon);
                }
                user.pending.push(OrderModel {
                    id: answer.body["orderId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    total: answer.body["total"].as_i64().unwrap_or_default(),
                    lines,
                    user_coupon: coupon,
                });
                self.count("order", "created");
            }
            (409, "INSUFFICIENT_STOCK") => self.count("order", "out of stock"),
            (422, "INVALID_COUPON") => {
                if let Some(coupon) = coupon {
                    user.usable_coupons.retain(|c| *c != coupon);
                }
                self.count("order", "coupon refused");
            }
            (status, _) => {
                self.count("order", &format!("HTTP {status} {code}"));
                self.violation(format!("order answered {status}: {}", answer.body));
            }
        }
    }

    async fn pay(&self, rng: &mut StdRng, user: &mut UserModel) {
        if user.pending.is_empty() {
            return self.order(rng, user).await;
        }
        let order = user.pending.remove(rng.random_range(0..user.pending.len()));
        let key = uuid::Uuid::new_v4().to_string();
        let path = format!("/api/v1/orders/{}/payment", order.id);
        let Some((answer, _)) = self
            .definite(
                rng,
                "pay",
                Method::POST,
                &path,
                &user.token,
                Some(&key),
                None,
            )
            .await
        else {
            return user.pending.push(order);
        };
        let code = answer.body["code"].as_str().unwrap_or("").to_owned();
        match (answer.status, code.as_str()) {
            (200, _) => {
                let amount = answer.body["amount"].as_i64().unwrap_or_default();
                if amount != order.total {
                    self.violation(format!(
                        "order {} was created for {} and paid {amount}",
                        order.id, order.total
                    ));
                }
                user.paid += amount;
                user.paid_orders.push(order);
                self.count("pay", "paid");
            }
            (402, _) => {
                user.pending.push(order);
                self.count("pay", "please charge");
            }
            (409, "ORDER_NOT_PAYABLE") => self.count("pay", "expired"),
            (status, _) => {
                user.pending.push(order);
                self.count("pay", &format!("HTTP {status} {code}"));
                self.violation(format!("payment answered {status}: {}", answer.body));
            }
        }
    }

    async fn cancel(&self, rng: &mut StdRng, user: &mut UserModel) {
        if user.pending.is_empty() {
            return self.count("cancel", "skipped (nothing pending)");
        }
        let order = user.pending.remove(rng.random_range(0..user.pending.len()));
        let path = format!("/api/v1/orders/{}/cancel", order.id);
        let Some((answer, uncertain)) = self
            .definite(rng, "cancel", Method::POST, &path, &user.token, None, None)
            .await
        else {
            return user.pending.push(order);
        };
        let status = match answer.status {
            200 => "CANCELLED".to_owned(),
            409 if uncertain => {
                // Cancel has no Idempotency-Key: read the order back to learn what happened.
                let read = format!("/api/v1/orders/{}", order.id);
                let Some((read, _)) = self
                    .definite(
                        rng,
                        "read order",
                        Method::GET,
                        &read,
                        &user.token,
                        None,
                        None,
                    )
                    .await
                else {
                    return user.pending.push(order);
                };
                read.body["status"].as_str().unwrap_or("?").to_owned()
            }
            409 => "EXPIRED".to_owned(),
            other => {
                self.violation(format!("cancel answered {other}: {}", answer.body));
                return user.pending.push(order);
            }
        };
        match status.as_str() {
            "CANCELLED" => {
                if let Some(coupon) = order.user_coupon {
                    user.usable_coupons.push(coupon);
                }
                user.cancelled += 1;
                self.count("cancel", "cancelled");
            }
            "EXPIRED" => self.count("cancel", "expired"),
            other => self.violation(format!(
                "order {} we never paid reads back as {other} after a cancel",
                order.id
            )),
        }
    }

    async fn browse(&self, rng: &mut StdRng, user: &UserModel) {
        let Some((answer, _)) = self
            .definite(
                rng,
                "browse",
                Method::GET,
                "/api/v1/products?limit=100",
                &user.token,
                None,
                None,
            )
            .await
        else {
            return;
        };
        for item in answer.body["items"].as_array().into_iter().flatten() {
            if item["stock"].as_i64().is_some_and(|s| s < 0) {
                self.violation(format!("negative stock shown: {item}"));
            }
        }
        self.count("browse", &format!("HTTP {}", answer.status));
    }
}

/// Runs one client over `users` until `stop`, then returns its model of them.
pub async fn run(
    shop: Shop,
    seed: u64,
    mut users: Vec<UserModel>,
    stop: CancellationToken,
) -> Vec<UserModel> {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.is_cancelled() && !users.is_empty() {
        let i = rng.random_range(0..users.len());
        let user = &mut users[i];
        match rng.random_range(0..100) {
            0..=19 => shop.charge(&mut rng, user).await,
            20..=29 => shop.issue(&mut rng, user).await,
            30..=59 => shop.order(&mut rng, user).await,
            60..=84 => shop.pay(&mut rng, user).await,
            85..=94 => shop.cancel(&mut rng, user).await,
            _ => shop.browse(&mut rng, user).await,
        }
    }
    users
}
