//! Demo data for `flashmart seed --demo`: a catalog of 20 products, an admin and demo users.
//! Safe to run again: existing products and accounts are left alone.

use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};

use crate::auth::password;
use crate::cache::{stock, Cache};
use crate::config::Config;
use crate::domain::Role;
use crate::store::{self, users::NewUser};

/// Demo catalog: name, price (won), stock.
const DEMO_PRODUCTS: &[(&str, i64, i64)] = &[
    ("Wireless Earbuds", 89_000, 100),
    ("Mechanical Keyboard", 129_000, 50),
    ("4K Monitor 27\"", 459_000, 20),
    ("USB-C Hub", 39_000, 300),
    ("Gaming Mouse", 59_000, 150),
    ("Laptop Stand", 45_000, 80),
    ("Webcam 1080p", 69_000, 60),
    ("Noise-Cancelling Headphones", 329_000, 30),
    ("Portable SSD 1TB", 149_000, 70),
    ("Smart Watch", 249_000, 40),
    ("Bluetooth Speaker", 79_000, 90),
    ("Phone Case", 19_000, 500),
    ("Wireless Charger", 35_000, 200),
    ("E-book Reader", 189_000, 25),
    ("Action Camera", 399_000, 15),
    ("Fitness Band", 49_000, 120),
    ("Desk Lamp", 29_000, 110),
    ("Coffee Grinder", 99_000, 35),
    ("Electric Kettle", 55_000, 60),
    ("Limited Sneakers", 219_000, 10),
];

/// Demo shoppers; all share [`DEMO_PASSWORD`].
const DEMO_USERS: &[(&str, &str)] = &[
    ("alice@example.com", "Alice"),
    ("bob@example.com", "Bob"),
    ("carol@example.com", "Carol"),
];

/// Password of the demo shoppers.
pub const DEMO_PASSWORD: &str = "flashmart-demo";

/// Seeds the demo data and prints how to log in.
pub async fn demo(config: &Config) -> anyhow::Result<()> {
    let db = store::connect(config.database.url.expose(), 4).await?;
    let cache = Cache::connect(
        config.redis.url.expose(),
        1,
        &config.redis.key_prefix,
        config.redis.buckets,
    )
    .await?;
    let now = chrono::Utc::now();

    if store::products::all(&db).await?.is_empty() {
        for (name, price, units) in DEMO_PRODUCTS {
            let id = store::products::insert(&db, name, *price, *units, now).await?;
            stock::put(&cache, id, *units).await?;
        }
        println!("seeded {} products", DEMO_PRODUCTS.len());
    } else {
        println!("catalog already has products; left as is");
    }

    seed_campaign(&db, &cache, now).await?;

    let admin_email = config
        .auth
        .admin_email
        .clone()
        .unwrap_or_else(|| "admin@flashmart.local".into());
    let admin_email = crate::domain::Email::parse(&admin_email)
        .map_err(|e| anyhow::anyhow!("ADMIN_EMAIL {}", e.message))?
        .as_str()
        .to_owned();
    let (admin_password, generated) = match &config.auth.admin_password {
        Some(p) => (p.expose().to_owned(), false),
        None => (Alphanumeric.sample_string(&mut rand::rng(), 20), true),
    };
    let admin_hash = password::hash(admin_password.clone()).await?;
    ensure_user(&db, &admin_email, "Admin", &admin_hash, Role::Admin, now).await?;
    store::users::promote_admin(&db, &admin_email, &admin_hash)
        .await
        .context("failed to set the admin account")?;

    let demo_hash = password::hash(DEMO_PASSWORD.into()).await?;
    for (email, name) in DEMO_USERS {
        ensure_user(&db, email, name, &demo_hash, Role::User, now).await?;
    }

    println!("admin: {admin_email}");
    if generated {
        println!("admin password (generated, shown once): {admin_password}");
    }
    println!(
        "demo users: {} (password: {DEMO_PASSWORD})",
        DEMO_USERS
            .iter()
            .map(|(e, _)| *e)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

async fn ensure_user(
    db: &sqlx::MySqlPool,
    email: &str,
    name: &str,
    hash: &str,
    role: Role,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let user = NewUser {
        email,
        name,
        password_hash: hash,
        role,
        created_at: now,
    };
    match store::users::insert(db, &user).await {
        Ok(_) => Ok(()), // the wallet loads the (zero) balance into Redis on first use
        Err(e) if store::is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e).context("failed to create a demo user"),
    }
}

/// Password of every bulk load-test user.
pub const BULK_PASSWORD: &str = "load-test-password";

/// Creates `count` users `<prefix>-<n>@load.test` (password hashed once, not per user, so
/// thousands take seconds), gives each a zero balance in Redis, and writes
/// `userId,email,accessToken` lines to `tokens_out`. Existing users are reused.
pub async fn bulk_users(
    config: &Config,
    count: u32,
    prefix: &str,
    tokens_out: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(count <= 1_000_000, "at most 1,000,000 bulk users");
    anyhow::ensure!(
        !prefix.is_empty()
            && prefix.len() <= 32
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric()),
        "--user-prefix must be 1-32 ASCII letters or digits"
    );
    let db = store::connect(config.database.url.expose(), 4).await?;
    let cache = Cache::connect(
        config.redis.url.expose(),
        2,
        &config.redis.key_prefix,
        config.redis.buckets,
    )
    .await?;
    let hash = password::hash(BULK_PASSWORD.into()).await?;
    let now = chrono::Utc::now();
    let emails: Vec<String> = (1..=count)
        .map(|n| format!("{prefix}-{n}@load.test"))
        .collect();
    for chunk in emails.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT IGNORE INTO users (email, name, password_hash, role, created_at) ",
        );
        insert.push_values(chunk, |mut row, email| {
            row.push_bind(email)
                .push_bind("Load Tester")
                .push_bind(&hash)
                .push_bind("USER")
                .push_bind(now);
        });
        insert
            .build()
            .execute(&db)
            .await
            .context("failed to insert bulk users")?;
    }
    let pattern = format!("{prefix}-%@load.test");
    let users: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, email FROM users WHERE email LIKE ? ORDER BY id")
            .bind(&pattern)
            .fetch_all(&db)
            .await?;
    let tokens = crate::auth::TokenKeys::new(
        config.auth.jwt_secret.expose().as_bytes(),
        config.auth.access_token_ttl.as_secs(),
    );
    let mut lines = String::new();
    for (id, email) in &users {
        crate::cache::wallet::init_if_missing(&cache, *id, 0).await?;
        let token = tokens.issue(crate::domain::UserId(*id), Role::User, 0, now.timestamp())?;
        lines.push_str(&format!("{id},{email},{}\n", token.token));
    }
    if let Some(path) = tokens_out {
        std::fs::write(path, lines)
            .with_context(|| format!("failed to write {}", path.display()))?;
        println!("wrote {} tokens to {}", users.len(), path.display());
    }
    println!(
        "bulk users ready: {} (password: {BULK_PASSWORD})",
        users.len()
    );
    Ok(())
}

/// One first-come campaign open for 30 days, unless campaigns exist already.
async fn seed_campaign(
    db: &sqlx::MySqlPool,
    cache: &Cache,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    if !store::coupons::list(db, 1).await?.is_empty() {
        return Ok(());
    }
    let campaign = store::coupons::CampaignRow {
        id: 0,
        name: "Flash sale 10% off (first 100)".into(),
        discount_type: "PERCENT".into(),
        discount_value: 10,
        max_discount: Some(20_000),
        min_order_amount: 30_000,
        total_quantity: 100,
        issue_starts_at: now - chrono::Duration::hours(1),
        issue_ends_at: now + chrono::Duration::days(30),
        valid_days: 7,
    };
    let id = store::coupons::insert(db, &campaign, now).await?;
    let terms = crate::cache::coupons::CampaignTerms {
        coupon_id: id,
        total: campaign.total_quantity,
        starts_ms: campaign.issue_starts_at.timestamp_millis(),
        ends_ms: campaign.issue_ends_at.timestamp_millis(),
        valid_ms: i64::from(campaign.valid_days) * 86_400_000,
    };
    crate::cache::coupons::load(cache, &terms, 0).await?;
    println!("seeded coupon campaign {id}: {}", campaign.name);
    Ok(())
}
