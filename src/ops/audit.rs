//! `flashmart audit`: after the stream is drained, checks that the ledger balances to zero,
//! every account equals its entries, charges match cash in, Redis's hot state equals MySQL,
//! and no event was dead-lettered. Any violation makes the command exit non-zero.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fred::prelude::*;
use sqlx::MySqlPool;

use crate::cache::Cache;
use crate::settlement::stream;
use crate::store::ledger;

/// The audit's findings.
#[derive(Debug, Default, Clone)]
pub struct AuditReport {
    /// Broken invariants; empty means the audit passed.
    pub violations: Vec<String>,
    /// Figures checked, for the operator.
    pub facts: Vec<String>,
}

impl AuditReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    fn fact(&mut self, text: String) {
        self.facts.push(text);
    }

    fn violation(&mut self, text: String) {
        self.violations.push(text);
    }
}

/// Runs every check, first waiting up to `drain_wait` for the stream to be drained.
pub async fn run(
    db: &MySqlPool,
    cache: &Cache,
    drain_wait: Duration,
) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    let lag = wait_for_drain(cache, drain_wait).await?;
    if !lag.drained() {
        report.violation(format!(
            "stream not drained: {} pending, {} undelivered (is a settlement worker running?)",
            lag.pending, lag.undelivered
        ));
    }
    check_ledger(db, &mut report).await?;
    check_balances(db, cache, &mut report).await?;
    check_stock(db, cache, &mut report).await?;
    check_coupons(db, cache, &mut report).await?;
    check_orders(db, cache, &mut report).await?;
    check_deliveries(db, &mut report).await?;
    check_dead_letters(cache, &mut report).await?;
    Ok(report)
}

async fn wait_for_drain(cache: &Cache, wait: Duration) -> anyhow::Result<stream::Lag> {
    let started = Instant::now();
    loop {
        let lag = stream::lag(cache).await?;
        if lag.drained() || started.elapsed() >= wait {
            return Ok(lag);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn check_ledger(db: &MySqlPool, report: &mut AuditReport) -> anyhow::Result<()> {
    let (total, entries): (Option<i64>, i64) =
        sqlx::query_as("SELECT CAST(SUM(amount) AS SIGNED), COUNT(*) FROM ledger_entries")
            .fetch_one(db)
            .await?;
    report.fact(format!("ledger: {entries} entries"));
    if total.unwrap_or(0) != 0 {
        report.violation(format!(
            "ledger does not balance: entries sum to {}",
            total.unwrap_or(0)
        ));
    }
    let mismatched: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT a.code, a.balance, CAST(COALESCE(e.total, 0) AS SIGNED) FROM accounts a \
         LEFT JOIN (SELECT account, SUM(amount) AS total FROM ledger_entries GROUP BY account) e \
         ON e.account = a.code WHERE a.balance <> COALESCE(e.total, 0) \
         UNION ALL \
         SELECT e.account, 0, CAST(SUM(e.amount) AS SIGNED) FROM ledger_entries e \
         LEFT JOIN accounts a ON a.code = e.account WHERE a.code IS NULL GROUP BY e.account",
    )
    .fetch_all(db)
    .await?;
    for (code, balance, entries_total) in mismatched {
        report.violation(format!(
            "account {code} holds {balance} but its entries sum to {entries_total}"
        ));
    }
    let charged: (Option<i64>,) =
        sqlx::query_as("SELECT CAST(SUM(amount) AS SIGNED) FROM wallet_charges")
            .fetch_one(db)
            .await?;
    let cash_in = ledger::account_balance(db, ledger::CASH_IN).await?;
    report.fact(format!("charges: {} won in total", charged.0.unwrap_or(0)));
    if charged.0.unwrap_or(0) != -cash_in {
        report.violation(format!(
            "charges sum to {} but cash_in moved {}",
            charged.0.unwrap_or(0),
            -cash_in
        ));
    }
    Ok(())
}

async fn check_balances(
    db: &MySqlPool,
    cache: &Cache,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let users: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT u.id, a.balance FROM users u LEFT JOIN accounts a ON a.code = CONCAT('user:', u.id) \
         ORDER BY u.id",
    )
    .fetch_all(db)
    .await?;
    let mut unloaded = 0usize;
    for chunk in users.chunks(500) {
        let keys: Vec<String> = chunk
            .iter()
            .map(|(id, _)| cache.keys.balance(*id))
            .collect();
        let live = cache.get_each(&keys).await?;
        for ((id, stored), hot) in chunk.iter().zip(live) {
            let stored = stored.unwrap_or(0);
            match hot {
                Some(hot) if hot == stored => {}
                Some(hot) => {
                    report.violation(format!("user {id}: Redis balance {hot}, MySQL {stored}"))
                }
                // Not loaded yet: the wallet loads it from the ledger on first use.
                None => unloaded += 1,
            }
        }
    }
    report.fact(format!(
        "balances: {} users compared ({unloaded} not in Redis yet, loaded on first use)",
        users.len()
    ));
    Ok(())
}

/// Units each product has reserved by orders still pending.
pub async fn reserved_units(db: &MySqlPool) -> anyhow::Result<HashMap<i64, i64>> {
    Ok(crate::store::orders::pending_reservations(db)
        .await?
        .into_iter()
        .collect())
}

async fn check_orders(
    db: &MySqlPool,
    cache: &Cache,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let (paid_orders, paid_total): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), CAST(SUM(total) AS SIGNED) FROM orders WHERE status = 'PAID'",
    )
    .fetch_one(db)
    .await?;
    let (payments, paid_sum): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), CAST(SUM(amount) AS SIGNED) FROM payments")
            .fetch_one(db)
            .await?;
    let revenue = ledger::account_balance(db, ledger::REVENUE).await?;
    report.fact(format!(
        "orders: {paid_orders} paid, {} won revenue",
        revenue
    ));
    if payments != paid_orders || paid_sum.unwrap_or(0) != paid_total.unwrap_or(0) {
        report.violation(format!(
            "{paid_orders} paid orders totalling {} but {payments} payments totalling {}",
            paid_total.unwrap_or(0),
            paid_sum.unwrap_or(0)
        ));
    }
    if revenue != paid_sum.unwrap_or(0) {
        report.violation(format!(
            "revenue account {revenue} != payments {}",
            paid_sum.unwrap_or(0)
        ));
    }
    let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE status = 'PENDING'")
        .fetch_one(db)
        .await?;
    let hot_pending = crate::cache::orders::pending_count(cache).await?;
    if pending != hot_pending {
        report.violation(format!(
            "{hot_pending} pending orders in Redis, {pending} in MySQL"
        ));
    }
    let (sold,): (Option<i64>,) = sqlx::query_as("SELECT CAST(SUM(sold) AS SIGNED) FROM products")
        .fetch_one(db)
        .await?;
    let (units_paid,): (Option<i64>,) = sqlx::query_as(
        "SELECT CAST(SUM(l.quantity) AS SIGNED) FROM order_lines l JOIN orders o \
         ON o.id = l.order_id WHERE o.status = 'PAID'",
    )
    .fetch_one(db)
    .await?;
    if sold.unwrap_or(0) != units_paid.unwrap_or(0) {
        report.violation(format!(
            "products record {} units sold but paid orders hold {}",
            sold.unwrap_or(0),
            units_paid.unwrap_or(0)
        ));
    }
    Ok(())
}

async fn check_stock(
    db: &MySqlPool,
    cache: &Cache,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let products = crate::store::products::all(db).await?;
    let reserved = reserved_units(db).await?;
    let unresolved = unresolved_reservations(db, cache, report).await?;
    let ids: Vec<i64> = products.iter().map(|p| p.id).collect();
    let live = crate::cache::stock::available(cache, &ids).await?;
    let priced = crate::cache::products::get_many(cache, &ids).await?;
    report.fact(format!("stock: {} products compared", products.len()));
    let mut cached_terms = 0;
    for ((product, hot), terms) in products.iter().zip(live).zip(priced) {
        // The pricing cache may miss a product (it is loaded on demand) but never price it
        // differently from MySQL.
        if let Some(terms) = terms {
            cached_terms += 1;
            if terms.name != product.name || terms.price != product.price {
                report.violation(format!(
                    "product {}: pricing cache has {:?} at {} won, MySQL {:?} at {} won",
                    product.id, terms.name, terms.price, product.name, product.price
                ));
            }
        }
        if product.sold > product.stock_total {
            report.violation(format!(
                "product {}: {} sold but only {} stocked (oversold)",
                product.id, product.sold, product.stock_total
            ));
        }
        let expected = product.stock_total
            - product.sold
            - reserved.get(&product.id).copied().unwrap_or(0)
            - unresolved.get(&product.id).copied().unwrap_or(0);
        match hot {
            Some(units) if units < 0 => report.violation(format!(
                "product {}: negative stock {units} in Redis",
                product.id
            )),
            Some(units) if units != expected => report.violation(format!(
                "product {}: Redis stock {units}, MySQL says {expected}",
                product.id
            )),
            _ => {}
        }
    }
    report.fact(format!(
        "pricing cache: {cached_terms} cached products compared"
    ));
    Ok(())
}

/// How long past its time a reservation may wait for the sweeper before the audit calls it
/// stuck (a few sweeps).
const RESERVATION_OVERDUE_MS: i64 = 60_000;

/// Units held by live reservations whose order is neither pending nor paid in MySQL: an order
/// that ended while its stock step has not run yet, or one never created (a crash between the
/// saga's steps). The sweeper gives them back when they are due; one overdue by more than
/// [`RESERVATION_OVERDUE_MS`] is a violation (stock that would leak).
async fn unresolved_reservations(
    db: &MySqlPool,
    cache: &Cache,
    report: &mut AuditReport,
) -> anyhow::Result<HashMap<i64, i64>> {
    use crate::cache::reservations;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut units: HashMap<i64, i64> = HashMap::new();
    let mut count = 0;
    for bucket in cache.keys.buckets() {
        let live: Vec<(String, f64)> = cache
            .client()
            .zrange(
                cache.keys.reservation_deadlines(bucket),
                0,
                -1,
                None,
                false,
                None,
                true,
            )
            .await?;
        for (order_id, due) in live {
            let status: Option<(String,)> =
                sqlx::query_as("SELECT status FROM orders WHERE id = ?")
                    .bind(&order_id)
                    .fetch_optional(db)
                    .await?;
            if matches!(
                status.as_ref().map(|s| s.0.as_str()),
                Some("PENDING" | "PAID")
            ) {
                continue;
            }
            let Some(held) = reservations::read(cache, bucket, &order_id).await? else {
                continue;
            };
            count += 1;
            if now_ms > due as i64 + RESERVATION_OVERDUE_MS {
                report.violation(format!(
                    "reservation of order {order_id} is {} s overdue (its stock is not back)",
                    (now_ms - due as i64) / 1000
                ));
            }
            for (product, n) in held.lines {
                *units.entry(product).or_insert(0) += n;
            }
        }
    }
    report.fact(format!(
        "reservations: {count} awaiting the sweeper (order ended or never created)"
    ));
    Ok(units)
}

async fn check_coupons(
    db: &MySqlPool,
    cache: &Cache,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let campaigns = crate::store::coupons::all(db).await?;
    report.fact(format!("coupons: {} campaigns compared", campaigns.len()));
    for campaign in campaigns {
        let issued = crate::store::coupons::issued_of(db, campaign.id).await?;
        let stored = issued.len() as i64;
        if stored > campaign.total_quantity {
            report.violation(format!(
                "coupon {}: {stored} issued in MySQL, above its limit {}",
                campaign.id, campaign.total_quantity
            ));
        }
        let hot: Option<i64> = cache
            .client()
            .hget(cache.keys.coupon(campaign.id), "issued")
            .await?;
        let holders: i64 = cache
            .client()
            .hlen(cache.keys.coupon_users(campaign.id))
            .await?;
        for c in &issued {
            let status: Option<String> = cache
                .client()
                .hget(cache.keys.user_coupon(c.coupon_id, c.user_id), "status")
                .await?;
            if status.as_deref().is_some_and(|s| s != c.status) {
                report.violation(format!(
                    "user coupon {}: {} in Redis, {} in MySQL",
                    c.id,
                    status.unwrap_or_default(),
                    c.status
                ));
            }
        }
        match hot {
            Some(hot) if hot != stored || holders != stored => report.violation(format!(
                "coupon {}: Redis issued {hot} to {holders} users, MySQL has {stored}",
                campaign.id
            )),
            None if stored > 0 => report.violation(format!(
                "coupon {}: not in Redis but {stored} issued in MySQL",
                campaign.id
            )),
            _ => {}
        }
    }
    Ok(())
}

async fn check_dead_letters(cache: &Cache, report: &mut AuditReport) -> anyhow::Result<()> {
    let count = stream::dead_letter_count(cache).await?;
    if count == 0 {
        return Ok(());
    }
    report.violation(format!("{count} dead-lettered event(s)"));
    let mut entries: Vec<(String, HashMap<String, String>)> = Vec::new();
    for bucket in cache.keys.buckets() {
        let some: Vec<(String, HashMap<String, String>)> = cache
            .client()
            .xrange(cache.keys.dead_letters(bucket), "-", "+", Some(10))
            .await?;
        entries.extend(some);
    }
    entries.truncate(10);
    for (id, fields) in entries {
        report.violation(format!(
            "dead letter {id}: source {} type {} reason {}",
            fields.get("sourceId").map(String::as_str).unwrap_or("?"),
            fields.get("f.type").map(String::as_str).unwrap_or("?"),
            fields.get("reason").map(String::as_str).unwrap_or("?"),
        ));
    }
    Ok(())
}

async fn check_deliveries(db: &MySqlPool, report: &mut AuditReport) -> anyhow::Result<()> {
    for (status, count) in crate::store::outbox::counts(db).await? {
        report.fact(format!("deliveries: {count} {status}"));
        if status == "DEAD" && count > 0 {
            report.violation(format!(
                "{count} paid-order deliveries are DEAD (see `flashmart retry-dead-deliveries`)"
            ));
        }
    }
    let (paid, queued): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM orders WHERE status = 'PAID'), (SELECT COUNT(*) FROM outbox)",
    )
    .fetch_one(db)
    .await?;
    if paid != queued {
        report.violation(format!("{paid} paid orders but {queued} deliveries queued"));
    }
    Ok(())
}
