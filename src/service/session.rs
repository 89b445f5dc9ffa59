//! Sessions: whether a verified token still speaks for an existing user, and log-out.
//!
//! Every access token carries its user's token generation (`gen`) at issue time. Log-out
//! increments the generation (MySQL `users.token_gen` first, then Redis), which revokes every
//! token issued before, on every instance. The guard reads the generation from this instance's
//! copy ([`crate::local::Generations`]) while that is younger than `SESSION_CACHE_MS`, and
//! otherwise from Redis (one GET, no MySQL); only a user Redis knows nothing about is read from
//! MySQL once, and an id MySQL does not know is remembered as such for a minute. So a log-out
//! revokes at once on the instance that served it and within `SESSION_CACHE_MS` on the others.

use crate::cache::session as hot;
use crate::domain::UserId;
use crate::error::AppError;
use crate::local::{Known, Lookup};
use crate::state::AppState;
use crate::store;

/// What a verified token's user is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The user exists and the token is not revoked.
    Active,
    /// The token was issued before the user's last log-out.
    Revoked,
    /// No user has this id (money operations answer `404 USER_NOT_FOUND`).
    NoSuchUser,
}

/// The standing of a token of `user` issued at generation `token_gen`.
pub async fn standing(
    state: &AppState,
    user: UserId,
    token_gen: i64,
) -> Result<Standing, AppError> {
    let known = match state.generations.lookup(user.0) {
        // A token newer than the copy proves the copy stale: read again.
        Lookup::Fresh(Known::Generation(current)) | Lookup::Refresh(Known::Generation(current))
            if token_gen > current =>
        {
            held(state, user).await?
        }
        Lookup::Fresh(known) => known,
        // Still trusted, so a failed read does not fail the request.
        Lookup::Refresh(known) => held(state, user).await.unwrap_or(known),
        Lookup::Missing => held(state, user).await?,
    };
    Ok(match known {
        Known::NoSuchUser => Standing::NoSuchUser,
        Known::Generation(current) if token_gen < current => Standing::Revoked,
        Known::Generation(_) => Standing::Active,
    })
}

/// What Redis (or, when Redis knows nothing, MySQL) says of `user` now; remembered in this
/// instance's copy (concurrent requests of one user share the read).
async fn held(state: &AppState, user: UserId) -> Result<Known, AppError> {
    state
        .generations
        .load(user.0, || async {
            if let Some(known) = hot::held(&state.cache, user.0).await? {
                return Ok(known);
            }
            Ok(
                match store::users::token_generation(&state.db, user).await? {
                    Some(stored) => {
                        Known::Generation(hot::raise(&state.cache, user.0, stored).await?)
                    }
                    None => {
                        hot::mark_no_such_user(&state.cache, user.0).await?;
                        Known::NoSuchUser
                    }
                },
            )
        })
        .await
}

/// The generation a new token of `user` gets: MySQL's, raised into Redis (so a Redis that lost
/// or never had it agrees before the token is used).
pub async fn generation_for_new_token(
    state: &AppState,
    user: UserId,
    stored: i64,
) -> Result<i64, AppError> {
    let generation = hot::raise(&state.cache, user.0, stored).await?;
    state
        .generations
        .remember(user.0, Known::Generation(generation));
    Ok(generation)
}

/// Revokes every token of `user` issued so far.
pub async fn log_out(state: &AppState, user: UserId) -> Result<(), AppError> {
    let Some(generation) = store::users::bump_token_generation(&state.db, user).await? else {
        return Err(AppError::UserNotFound);
    };
    let generation = hot::raise(&state.cache, user.0, generation).await?;
    state
        .generations
        .remember(user.0, Known::Generation(generation));
    metrics::counter!("logouts_total").increment(1);
    Ok(())
}
