//! Queries on `users`.

use chrono::{DateTime, Utc};
use sqlx::MySqlPool;

use crate::domain::{Role, UserId};

/// A stored user as login needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// The user's id (auto-increment), the `userId` of the API and a token's `sub`.
    pub id: i64,
    /// Normalised e-mail.
    pub email: String,
    /// The name shown for the user, as given at sign-up; not used to log in.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `USER` or `ADMIN`.
    pub role: String,
    /// Token generation: tokens issued at a lower one are revoked.
    pub token_gen: i64,
}

/// Fields of a new user.
pub struct NewUser<'a> {
    /// Normalised e-mail.
    pub email: &'a str,
    /// The name shown for the user (already validated, 1–100 characters).
    pub name: &'a str,
    /// Argon2id PHC string.
    pub password_hash: &'a str,
    /// `USER` for sign-ups; `ADMIN` only for the admin account `seed` creates.
    pub role: Role,
    /// When the account was created (stored in `created_at`).
    pub created_at: DateTime<Utc>,
}

/// Inserts a user; a duplicate e-mail surfaces as a unique violation.
pub async fn insert(pool: &MySqlPool, user: &NewUser<'_>) -> Result<UserId, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO users (email, name, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user.email)
    .bind(user.name)
    .bind(user.password_hash)
    .bind(user.role.as_str())
    .bind(user.created_at)
    .execute(pool)
    .await?;
    Ok(UserId(result.last_insert_id() as i64))
}

/// Finds a user by canonical e-mail, compared byte for byte (binary collation, migration 0008).
pub async fn find_by_email(pool: &MySqlPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as::<_, UserRow>(
        "SELECT id, email, name, password_hash, role, token_gen FROM users WHERE email = ?",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Whether a user with this id exists.
pub async fn exists(pool: &MySqlPool, id: UserId) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE id = ?")
        .bind(id.0)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Makes an existing user an admin and sets their password hash (used by `seed`).
pub async fn promote_admin(
    pool: &MySqlPool,
    email: &str,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET role = 'ADMIN', password_hash = ? WHERE email = ?")
        .bind(password_hash)
        .bind(email)
        .execute(pool)
        .await?;
    Ok(())
}

/// A user's token generation (`users.token_gen`), or `None` when no user has this id.
pub async fn token_generation(pool: &MySqlPool, id: UserId) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT token_gen FROM users WHERE id = ?")
        .bind(id.0)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Increments a user's token generation (revoking every token issued before) and returns the
/// new one, or `None` when no user has this id.
pub async fn bump_token_generation(
    pool: &MySqlPool,
    id: UserId,
) -> Result<Option<i64>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query("UPDATE users SET token_gen = token_gen + 1 WHERE id = ?")
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    let row: (i64,) = sqlx::query_as("SELECT token_gen FROM users WHERE id = ?")
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(row.0))
}
