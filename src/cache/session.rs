//! Token generations as Redis holds them (`{p}:user:{id}:tgen`), the auth guard's one lookup.
//!
//! The key doubles as the cheap "does this user exist" answer for the hot path: it is written
//! only for users MySQL knows (sign-up, log-in, a cold load), or as `-1` with a short TTL for
//! an id MySQL does not know.

use fred::prelude::*;

use super::Cache;

/// Lifetime of a "no such user" entry: bounds the MySQL reads a token of an unknown id costs.
pub const UNKNOWN_USER_TTL_SECS: i64 = 60;

/// What Redis holds for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The user exists; tokens below this generation are revoked.
    Generation(i64),
    /// MySQL recently said there is no such user.
    NoSuchUser,
    /// Nothing cached (first use since sign-up before this key existed, or after a rebuild).
    Unknown,
}

/// Reads a user's token generation (one GET).
pub async fn held(cache: &Cache, user_id: i64) -> anyhow::Result<Held> {
    let value: Option<i64> = cache
        .client()
        .get(cache.keys.token_generation(user_id))
        .await?;
    Ok(match value {
        Some(-1) => Held::NoSuchUser,
        Some(generation) => Held::Generation(generation),
        None => Held::Unknown,
    })
}

/// Raises the held generation to at least `generation` (session_gen.lua); returns the one held.
pub async fn raise(cache: &Cache, user_id: i64, generation: i64) -> anyhow::Result<i64> {
    let keys = vec![cache.keys.token_generation(user_id)];
    let args = vec![
        generation.max(0).to_string(),
        UNKNOWN_USER_TTL_SECS.to_string(),
    ];
    cache
        .scripts
        .session_gen
        .call(cache.client(), keys, args)
        .await
}

/// Records that no user has this id (unless Redis already knows better).
pub async fn mark_no_such_user(cache: &Cache, user_id: i64) -> anyhow::Result<()> {
    let keys = vec![cache.keys.token_generation(user_id)];
    let args = vec!["-1".to_owned(), UNKNOWN_USER_TTL_SECS.to_string()];
    let _: i64 = cache
        .scripts
        .session_gen
        .call(cache.client(), keys, args)
        .await?;
    Ok(())
}
