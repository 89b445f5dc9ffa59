//! `flashmart-chaos`: a seeded fault-injection run in the manner of Jepsen's bank test and
//! TigerBeetle's VOPR, against real processes only.
//!
//! It starts a private Redis (AOF, `appendfsync always`) and MariaDB, a proxy between the app
//! and Redis, a signature-checking platform, and three `flashmart serve` processes; clients
//! charge, get coupons, order, pay and cancel while a plan drawn from the seed kills (`-9`) and
//! pauses (SIGSTOP) each kind of process, restarts instances while a dependency is down, loses
//! Redis replies after their script ran, and makes the platform fail or hang. Then it heals
//! everything, resolves every unknown outcome, drains, runs `flashmart audit` and its own
//! checks, prints the seed, operations, faults, recovery times and violations, and exits 1 on
//! any violation. The fault plan and every client's choices follow from the seed; the exact
//! interleaving of real processes does not, so a seed replays the same run, not the same trace.

mod checks;
mod client;
mod faults;
mod process;
#[allow(dead_code)] // shared with the integration tests
mod proxy;
mod receiver;
mod services;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Shop, Tally, UserModel};
use crate::faults::World;
use crate::process::{free_port, Proc, Spec};
use crate::proxy::FaultProxy;
use crate::receiver::Receiver;
use crate::services::{MariaDb, Redis};

/// Secret the instances sign deliveries with (and the platform checks).
const PLATFORM_SECRET: &str = "chaos-platform-secret-0123456789abcdef";
/// Admin of the run.
const ADMIN: (&str, &str) = ("chaos-admin@chaos.test", "chaos-admin-password");
/// How late past its deadline an order may be released while Redis is up: the sweeper's 0.5 s
/// period plus generous room for sweeps delayed on a busy machine.
const EXPIRY_SLACK_SECS: f64 = 5.0;
/// Orders unpaid this long expire (short, so expiry happens during the run).
const ORDER_TTL_SECS: u64 = 10;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "flashmart-chaos",
    about = "Seeded fault-injection run against real processes"
)]
struct Args {
    /// Seed of the fault plan and of the clients' choices (random when absent; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of workload under faults.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// `flashmart serve` processes.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 12)]
    clients: usize,
    /// Users per client.
    #[arg(long, default_value_t = 5)]
    users_per_client: usize,
    /// The flashmart binary (default: next to this one).
    #[arg(long)]
    flashmart: Option<PathBuf>,
    /// Work directory (default: a fresh one under the temp dir; kept on failure).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Checks the checker: after the run, charge one user behind the clients' back (an
    /// operation the books have and the clients never acknowledged); the run must then fail.
    #[arg(long, hide = true)]
    sabotage: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(rand::random);
    println!("flashmart-chaos seed={seed} (replay: make chaos SEED={seed})");
    let workdir = args.workdir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("flashmart-chaos-{seed}-{}", std::process::id()))
    });
    match run(&args, seed, &workdir).await {
        Ok(violations) if violations.is_empty() => {
            println!("\nPASSED: no violations (seed={seed})");
            let _ = std::fs::remove_dir_all(&workdir);
            ExitCode::SUCCESS
        }
        Ok(violations) => {
            println!("\nFAILED: {} violation(s) (seed={seed}):", violations.len());
            for v in &violations {
                println!("  VIOLATION: {v}");
            }
            println!("logs kept in {}", workdir.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("\nFAILED: the run could not complete (seed={seed}): {e:#}");
            println!("logs kept in {}", workdir.display());
            ExitCode::FAILURE
        }
    }
}

fn flashmart_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.flashmart {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let next_to_me = me.with_file_name("flashmart");
    anyhow::ensure!(
        next_to_me.is_file(),
        "no flashmart binary next to {}; build it (cargo build --bin flashmart) or pass \
         --flashmart",
        me.display()
    );
    Ok(next_to_me)
}

/// The environment of every instance and CLI call.
fn app_env(db: &MariaDb, redis_url: &str, receiver: &Receiver) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis_url),
        (
            "JWT_SECRET",
            "chaos-jwt-secret-that-is-long-enough-0123456789",
        ),
        ("METRICS_ADDR", "off"),
        ("REDIS_KEY_PREFIX", "fm"),
        ("RATE_LIMIT_PER_SECOND", "100000"),
        ("RATE_LIMIT_BURST", "100000"),
        ("AUTH_RATE_PER_SECOND", "100000"),
        ("AUTH_RATE_BURST", "100000"),
        ("COUPON_ISSUE_PER_SECOND", "100000"),
        ("COUPON_ISSUE_BURST", "100000"),
        ("EXTERNAL_PLATFORM_URL", receiver.url.as_str()),
        ("EXTERNAL_PLATFORM_SECRET", PLATFORM_SECRET),
        ("DELIVERY_TIMEOUT_MS", "1000"),
        ("DELIVERY_BACKOFF_BASE_MS", "200"),
        ("DELIVERY_MAX_ATTEMPTS", "100"),
        ("SETTLEMENT_CLAIM_IDLE_MS", "3000"),
        ("STARTUP_TIMEOUT_SECS", "0"),
        ("REQUEST_TIMEOUT_SECS", "10"),
        ("ACCESS_TOKEN_TTL_SECONDS", "86400"),
        ("ADMIN_EMAIL", ADMIN.0),
        ("ADMIN_PASSWORD", ADMIN.1),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("DB_MAX_CONNECTIONS", "20"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("ORDER_TTL_SECONDS".to_owned(), ORDER_TTL_SECS.to_string())])
    .collect()
}

/// Runs `flashmart <args>` to completion; fails with its output when it fails.
async fn cli(binary: &Path, env: &[(String, String)], args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .with_context(|| format!("run flashmart {args:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "flashmart {args:?} failed:\n{text}");
    Ok(text)
}

async fn run(args: &Args, seed: u64, workdir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(workdir)?;
    let binary = flashmart_binary(args)?;
    let stop_all = CancellationToken::new();
    let _stop_on_exit = stop_all.clone().drop_guard();

    println!(
        "starting private Redis and MariaDB in {}",
        workdir.display()
    );
    let redis = Redis::start(&workdir.join("redis")).await?;
    let db = MariaDb::start(&workdir.join("mariadb")).await?;
    let proxy = FaultProxy::start(&redis.url).await;
    let receiver = Receiver::start(PLATFORM_SECRET, stop_all.clone()).await?;
    let env = app_env(&db, &proxy.url, &receiver);
    cli(&binary, &env, &["migrate"]).await?;
    cli(&binary, &env, &["seed", "--demo"]).await?;
    let users_total = args.clients * args.users_per_client;
    let tokens = workdir.join("tokens.csv");
    cli(
        &binary,
        &env,
        &[
            "seed",
            "--users",
            &users_total.to_string(),
            "--user-prefix",
            "chaos",
            "--tokens-out",
            &tokens.display().to_string(),
        ],
    )
    .await?;

    let mut instances = Vec::new();
    let mut bases = Vec::new();
    for i in 0..args.instances {
        let port = free_port()?;
        let mut instance_env = env.clone();
        instance_env.push(("BIND_ADDR".into(), format!("127.0.0.1:{port}")));
        instances.push(Proc::start(Spec {
            program: binary.clone(),
            args: vec!["serve".into()],
            env: instance_env,
            log: workdir.join(format!("instance-{i}.log")),
        })?);
        bases.push(format!("http://127.0.0.1:{port}"));
    }
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let mut world = World {
        instances,
        bases: bases.clone(),
        redis,
        db,
        proxy,
        receiver: receiver.clone(),
        http: http.clone(),
    };
    world.wait_all_ready(Duration::from_secs(120)).await?;

    let admin = admin_token(&http, &bases[0]).await?;
    let mut initial_stock = HashMap::new();
    let mut products = Vec::new();
    for n in 0..6 {
        let stock = 3000;
        let created = post(
            &http,
            &bases[0],
            "/api/v1/admin/products",
            &admin,
            json!({ "name": format!("Chaos product {n}"), "price": 1000 + 500 * n, "stock": stock }),
        )
        .await?;
        let id = created["id"].as_i64().context("product id")?;
        initial_stock.insert(id, stock);
        products.push(id);
    }
    let mut campaigns = HashMap::new();
    let now = chrono::Utc::now();
    for n in 0..3 {
        let total = (users_total as i64 / 3).max(1);
        let created = post(
            &http,
            &bases[0],
            "/api/v1/admin/coupons",
            &admin,
            json!({
                "name": format!("Chaos coupon {n}"), "discountType": "FIXED",
                "discountValue": 300 + 100 * n, "minOrderAmount": 0, "totalQuantity": total,
                "issueStartsAt": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "issueEndsAt": (now + chrono::Duration::hours(6)).to_rfc3339(),
                "validDays": 7
            }),
        )
        .await?;
        campaigns.insert(created["couponId"].as_i64().context("coupon id")?, total);
    }
    let users = read_users(&tokens)?;
    anyhow::ensure!(
        users.len() == users_total,
        "expected {users_total} seeded users"
    );

    let tally = Arc::new(Mutex::new(Tally::default()));
    let shop = Shop {
        bases: bases.clone(),
        http: http.clone(),
        products,
        campaigns: campaigns.keys().copied().collect(),
        tally: tally.clone(),
        resolve_deadline: Arc::default(),
    };
    let duration = Duration::from_secs(args.duration);
    let plan = faults::plan(seed, duration, args.instances);
    println!(
        "workload: {} clients × {} users on {} instances for {}s; {} faults planned:",
        args.clients,
        args.users_per_client,
        args.instances,
        args.duration,
        plan.len()
    );
    let workload_stop = CancellationToken::new();
    let started = Instant::now();
    let clients: Vec<_> = users
        .chunks(args.users_per_client)
        .enumerate()
        .map(|(i, chunk)| {
            tokio::spawn(client::run(
                shop.clone(),
                seed.wrapping_add(1 + i as u64),
                chunk.to_vec(),
                workload_stop.clone(),
            ))
        })
        .collect();
    let fault_stop = CancellationToken::new();
    let fault_log = {
        let play = world.play(&plan, started, fault_stop.clone());
        tokio::pin!(play);
        tokio::select! {
            log = &mut play => {
                tokio::time::sleep_until(started + duration).await;
                log
            }
            _ = tokio::time::sleep_until(started + duration + Duration::from_secs(30)) => {
                fault_stop.cancel();
                play.await
            }
        }
    };
    println!("healing everything and resolving unknown outcomes");
    world.heal_all().await?;
    let healed = Instant::now();
    *shop
        .resolve_deadline
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(healed + Duration::from_secs(120));
    workload_stop.cancel();
    let mut models: Vec<UserModel> = Vec::new();
    for client in clients {
        models.extend(client.await.context("a client panicked")?);
    }
    let workload_secs = started.elapsed().as_secs_f64();

    println!("waiting for pending orders to expire and the ledger to drain");
    tokio::time::sleep(Duration::from_secs(ORDER_TTL_SECS + 2)).await;
    let pool = sqlx::MySqlPool::connect(&world.db.url).await?;
    let mut violations = Vec::new();
    if args.sabotage {
        let victim = models.first().context("no users")?;
        let path = format!("/api/v1/users/{}/balance/charge", victim.id);
        let charged = http
            .post(format!("{}{path}", bases[0]))
            .bearer_auth(&victim.token)
            .json(&json!({ "amount": 1 }))
            .send()
            .await?;
        println!(
            "sabotage: charged user {} 1 won unrecorded ({})",
            victim.id,
            charged.status()
        );
    }
    wait_no_pending(&pool, Duration::from_secs(120), &mut violations).await?;
    let audit = cli(&binary, &env, &["audit", "--wait-secs", "120"]).await;
    match &audit {
        Ok(_) => {}
        Err(e) => violations.push(format!("audit failed: {e:#}")),
    }
    let expected = checks::Expected {
        users: &models,
        initial_stock: &initial_stock,
        campaigns: &campaigns,
    };
    violations.extend(checks::books(&pool, &http, &bases[0], &expected).await?);
    violations.extend(checks::deliveries(&receiver, &models, Duration::from_secs(120)).await);
    {
        let tally = tally.lock().unwrap_or_else(|e| e.into_inner());
        violations.extend(
            tally
                .internal_errors
                .iter()
                .map(|e| format!("500 answered: {e}")),
        );
        violations.extend(
            tally
                .unresolved
                .iter()
                .map(|e| format!("unresolved outcome: {e}")),
        );
        violations.extend(tally.violations.iter().cloned());
    }
    for (i, instance) in world.instances.iter().enumerate() {
        let log = std::fs::read_to_string(&instance.spec.log).unwrap_or_default();
        let panics = log.matches("panicked").count();
        if panics > 0 {
            violations.push(format!("instance {i} logged {panics} panic(s)"));
        }
    }
    report(
        seed,
        workload_secs,
        &tally,
        &fault_log,
        &plan,
        &models,
        &receiver,
        &proxy_dropped(&world),
    );
    let latest = report_expiry_lateness(&pool).await?;
    let bound = EXPIRY_SLACK_SECS + fault_log.longest_redis_outage;
    if latest > bound {
        violations.push(format!(
            "an order was released {latest:.2}s after its deadline; the bound is {bound:.2}s \
             ({EXPIRY_SLACK_SECS}s + the longest Redis outage, {:.2}s)",
            fault_log.longest_redis_outage
        ));
    }
    Ok(violations)
}

fn proxy_dropped(world: &World) -> usize {
    world.proxy.dropped()
}

/// Prints operations by kind and outcome, faults by kind with recovery times, and totals.
#[allow(clippy::too_many_arguments)]
fn report(
    seed: u64,
    workload_secs: f64,
    tally: &Mutex<Tally>,
    faults: &faults::FaultLog,
    plan: &[faults::Planned],
    models: &[UserModel],
    receiver: &Receiver,
    dropped: &usize,
) {
    let tally = tally.lock().unwrap_or_else(|e| e.into_inner());
    let total: u64 = tally.outcomes.values().sum();
    println!("\n== seed {seed}: {total} operations in {workload_secs:.0}s ({:.0}/s), {} re-sent after an unknown outcome",
        total as f64 / workload_secs.max(1.0), tally.resent);
    for ((op, outcome), n) in &tally.outcomes {
        println!("  {op:<14} {outcome:<36} {n:>8}");
    }
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for p in plan {
        *kinds.entry(p.fault.kind()).or_default() += 1;
    }
    println!(
        "== faults: {} ({dropped} Redis replies dropped)",
        plan.len()
    );
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort();
    for (kind, n) in kinds {
        let times = faults.recoveries.get(kind).cloned().unwrap_or_default();
        let max = times.iter().cloned().fold(0.0, f64::max);
        let mean = if times.is_empty() {
            0.0
        } else {
            times.iter().sum::<f64>() / times.len() as f64
        };
        println!("  {kind:<38} {n:>3}   recovery mean {mean:>5.2}s  max {max:>5.2}s");
    }
    for stuck in &faults.stuck {
        println!("  did not recover: {stuck}");
    }
    let charged: i64 = models.iter().map(|u| u.charged).sum();
    let paid: i64 = models.iter().map(|u| u.paid).sum();
    let orders: usize = models.iter().map(|u| u.paid_orders.len()).sum();
    let delivered = receiver.with_seen(|s| (s.orders.len(), s.answered.clone()));
    println!(
        "== money: charged {charged}, paid {paid} in {orders} orders; platform: {} orders seen, answers {:?}",
        delivered.0, delivered.1
    );
}

/// How long past their deadline expired orders were released (stock and coupon back), from
/// MySQL's `expires_at` and `ended_at` (the release's own time in Redis); returns the latest.
async fn report_expiry_lateness(pool: &sqlx::MySqlPool) -> anyhow::Result<f64> {
    let mut late: Vec<f64> = sqlx::query_as::<_, (i64,)>(
        "SELECT CAST(TIMESTAMPDIFF(MICROSECOND, expires_at, ended_at) AS SIGNED) FROM orders \
         WHERE status = 'EXPIRED' AND ended_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(us,)| us as f64 / 1e6)
    .collect();
    late.sort_by(f64::total_cmp);
    if let Some(max) = late.last() {
        let p99 = late[(late.len() * 99 / 100).min(late.len() - 1)];
        let median = late[late.len() / 2];
        println!(
            "== expiry: {} orders expired, released after their deadline by median {median:.2}s, \
             p99 {p99:.2}s, max {max:.2}s",
            late.len()
        );
    }
    Ok(late.last().copied().unwrap_or(0.0))
}

async fn wait_no_pending(
    pool: &sqlx::MySqlPool,
    limit: Duration,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let (pending,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM orders WHERE status = 'PENDING'")
                .fetch_one(pool)
                .await?;
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            violations.push(format!(
                "{pending} orders still PENDING {}s after their deadline",
                limit.as_secs()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn admin_token(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let answer: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": ADMIN.0, "password": ADMIN.1 }))
        .send()
        .await?
        .json()
        .await?;
    answer["accessToken"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("admin login: {answer}"))
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
    Ok(body)
}

/// `userId,email,accessToken` lines written by `flashmart seed --users`.
fn read_users(path: &Path) -> anyhow::Result<Vec<UserModel>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split(',');
            let id = parts.next().context("user id")?.parse()?;
            let _email = parts.next();
            let token = parts.next().context("token")?.to_owned();
            Ok(UserModel {
                id,
                token,
                ..UserModel::default()
            })
        })
        .collect()
}
