//! The client's own checks after the run, against MySQL (the books), Redis (through the API)
//! and the platform: every acknowledged operation exactly once, balances = charges − payments,
//! stock conserved and never negative, coupons within their limit and one per user, every paid
//! order delivered under one event id.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use sqlx::MySqlPool;
use tokio::time::Instant;

use crate::client::UserModel;
use crate::receiver::Receiver;

/// What the run set up and what its clients know.
pub struct Expected<'a> {
    /// Every user with its client's model.
    pub users: &'a [UserModel],
    /// Product id → stock it was created with.
    pub initial_stock: &'a HashMap<i64, i64>,
    /// Campaign id → total quantity.
    pub campaigns: &'a HashMap<i64, i64>,
}

/// Compares the books with the clients' models; returns the violations.
pub async fn books(
    db: &MySqlPool,
    http: &reqwest::Client,
    base: &str,
    expected: &Expected<'_>,
) -> anyhow::Result<Vec<String>> {
    let mut violations = Vec::new();
    let mut sold: HashMap<i64, i64> = HashMap::new();
    for user in expected.users {
        let (charges, charged): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS SIGNED) FROM wallet_charges \
             WHERE user_id = ?",
        )
        .bind(user.id)
        .fetch_one(db)
        .await?;
        if (charges, charged) != (user.charges as i64, user.charged) {
            violations.push(format!(
                "user {}: {} acknowledged charges of {} in all, MySQL has {charges} of {charged}",
                user.id, user.charges, user.charged
            ));
        }
        let (payments, paid): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS SIGNED) FROM payments \
             WHERE user_id = ?",
        )
        .bind(user.id)
        .fetch_one(db)
        .await?;
        if (payments, paid) != (user.paid_orders.len() as i64, user.paid) {
            violations.push(format!(
                "user {}: {} acknowledged payments of {} in all, MySQL has {payments} of {paid}",
                user.id,
                user.paid_orders.len(),
                user.paid
            ));
        }
        let ledger: Option<(i64,)> = sqlx::query_as("SELECT balance FROM accounts WHERE code = ?")
            .bind(format!("user:{}", user.id))
            .fetch_optional(db)
            .await?;
        let want = user.charged - user.paid;
        let in_ledger = ledger.map_or(0, |(b,)| b);
        if in_ledger != want {
            violations.push(format!(
                "user {}: balance should be {want} (charges − payments), the ledger says {in_ledger}",
                user.id
            ));
        }
        let answer = http
            .get(format!("{base}/api/v1/users/{}/balance", user.id))
            .bearer_auth(&user.token)
            .send()
            .await?;
        let shown: serde_json::Value = answer.json().await?;
        if shown["balance"].as_i64() != Some(want) {
            violations.push(format!(
                "user {}: balance should be {want}, the API (Redis) says {}",
                user.id, shown["balance"]
            ));
        }
        let paid_in_db: BTreeSet<String> = sqlx::query_as::<_, (String,)>(
            "SELECT id FROM orders WHERE user_id = ? AND status = 'PAID'",
        )
        .bind(user.id)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
        let paid_acked: BTreeSet<String> = user.paid_orders.iter().map(|o| o.id.clone()).collect();
        if paid_in_db != paid_acked {
            violations.push(format!(
                "user {}: paid orders acknowledged {paid_acked:?}, PAID in MySQL {paid_in_db:?}",
                user.id
            ));
        }
        let (held,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM user_coupons WHERE user_id = ?")
            .bind(user.id)
            .fetch_one(db)
            .await?;
        let issued = user.coupons.values().filter(|id| **id != 0).count() as i64;
        if held != issued {
            violations.push(format!(
                "user {}: {issued} coupons acknowledged as issued, MySQL holds {held}",
                user.id
            ));
        }
        for order in &user.paid_orders {
            for (product, quantity) in &order.lines {
                *sold.entry(*product).or_default() += quantity;
            }
        }
    }
    for (product, initial) in expected.initial_stock {
        let (stock_total, sold_db): (i64, i64) =
            sqlx::query_as("SELECT stock_total, sold FROM products WHERE id = ?")
                .bind(product)
                .fetch_one(db)
                .await?;
        let sold_acked = sold.get(product).copied().unwrap_or(0);
        if stock_total != *initial || sold_db != sold_acked {
            violations.push(format!(
                "product {product}: created with {initial}, {sold_acked} units acknowledged \
                 sold; MySQL has stock_total {stock_total}, sold {sold_db}"
            ));
        }
        let any_user = expected
            .users
            .first()
            .map(|u| u.token.as_str())
            .unwrap_or("");
        let shown: serde_json::Value = http
            .get(format!("{base}/api/v1/products/{product}"))
            .bearer_auth(any_user)
            .send()
            .await?
            .json()
            .await?;
        let left = shown["stock"].as_i64().unwrap_or(i64::MIN);
        if left != initial - sold_acked || left < 0 {
            violations.push(format!(
                "product {product}: {} units should remain (nothing pending), Redis shows {left}",
                initial - sold_acked
            ));
        }
    }
    for (campaign, limit) in expected.campaigns {
        let (issued,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM user_coupons WHERE coupon_id = ?")
                .bind(campaign)
                .fetch_one(db)
                .await?;
        if issued > *limit {
            violations.push(format!(
                "campaign {campaign}: {issued} issued over a limit of {limit}"
            ));
        }
        let (doubles,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM (SELECT user_id FROM user_coupons WHERE coupon_id = ? \
             GROUP BY user_id HAVING COUNT(*) > 1) d",
        )
        .bind(campaign)
        .fetch_one(db)
        .await?;
        if doubles > 0 {
            violations.push(format!(
                "campaign {campaign}: {doubles} users hold it twice"
            ));
        }
    }
    Ok(violations)
}

/// Waits up to `limit` until every acknowledged paid order reached the platform; returns the
/// violations (orders never delivered, one order under two event ids, bad signatures).
pub async fn deliveries(receiver: &Receiver, users: &[UserModel], limit: Duration) -> Vec<String> {
    let paid: Vec<&str> = users
        .iter()
        .flat_map(|u| u.paid_orders.iter().map(|o| o.id.as_str()))
        .collect();
    let deadline = Instant::now() + limit;
    loop {
        let missing: Vec<String> = receiver.with_seen(|seen| {
            paid.iter()
                .filter(|id| !seen.orders.contains_key(**id))
                .map(|id| (*id).to_owned())
                .collect()
        });
        if missing.is_empty() || Instant::now() > deadline {
            let mut violations: Vec<String> = missing
                .iter()
                .take(10)
                .map(|id| format!("paid order {id} never reached the platform"))
                .collect();
            if missing.len() > 10 {
                violations.push(format!("… {} undelivered in all", missing.len()));
            }
            receiver.with_seen(|seen| {
                for (order, events) in &seen.orders {
                    let distinct: BTreeSet<&String> = events.iter().collect();
                    if distinct.len() > 1 {
                        violations.push(format!("order {order} delivered as {distinct:?}"));
                    }
                }
                if seen.bad_signatures > 0 {
                    violations.push(format!(
                        "{} deliveries with a bad signature",
                        seen.bad_signatures
                    ));
                }
            });
            return violations;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
