//! Sessions: whether a verified token still speaks for an existing user, and log-out.
//!
//! Every access token carries its user's token generation (`gen`) at issue time. Log-out
//! increments the generation (MySQL `users.token_gen` first, then Redis), which revokes every
//! token issued before, on every instance. The guard reads the generation from Redis (one GET
//! per authenticated request, no MySQL); only a user Redis knows nothing about is read from
//! MySQL once, and an id MySQL does not know is remembered as such for a minute.

use crate::cache::session::{self as hot, Held};
use crate::domain::UserId;
use crate::error::AppError;
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
    let current = match hot::held(&state.cache, user.0).await? {
        Held::Generation(current) => current,
        Held::NoSuchUser => return Ok(Standing::NoSuchUser),
        Held::Unknown => match store::users::token_generation(&state.db, user).await? {
            Some(stored) => hot::raise(&state.cache, user.0, stored).await?,
            None => {
                hot::mark_no_such_user(&state.cache, user.0).await?;
                return Ok(Standing::NoSuchUser);
            }
        },
    };
    Ok(if token_gen < current {
        Standing::Revoked
    } else {
        Standing::Active
    })
}

/// The generation a new token of `user` gets: MySQL's, raised into Redis (so a Redis that lost
/// or never had it agrees before the token is used).
pub async fn generation_for_new_token(
    state: &AppState,
    user: UserId,
    stored: i64,
) -> Result<i64, AppError> {
    Ok(hot::raise(&state.cache, user.0, stored).await?)
}

/// Revokes every token of `user` issued so far.
pub async fn log_out(state: &AppState, user: UserId) -> Result<(), AppError> {
    let Some(generation) = store::users::bump_token_generation(&state.db, user).await? else {
        return Err(AppError::UserNotFound);
    };
    hot::raise(&state.cache, user.0, generation).await?;
    metrics::counter!("logouts_total").increment(1);
    Ok(())
}
