//! Login: verify a password and issue an access token. Unknown e-mail and wrong password give
//! the same answer and take the same time (a decoy hash is verified for unknown accounts).
//!
//! The account is found by its canonical e-mail ([`Email::canonical`]) compared byte for byte,
//! and the attempt limiter counts the account the lookup resolved (its id), so no other
//! spelling of an address reaches the same account with a fresh budget.

use crate::auth::password;
use crate::auth::token::IssuedToken;
use crate::domain::{Email, Role, UserId};
use crate::error::AppError;
use crate::service::session;
use crate::state::AppState;
use crate::store;

/// What a login attempt is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttemptKey {
    /// An existing account, by id (whatever spelling of its e-mail was typed).
    Account(i64),
    /// A canonical e-mail that names no account (so probing unknown addresses is bounded too).
    Unknown(String),
}

/// Login attempts per account: a keyed token bucket (per instance).
pub type AttemptLimiter = governor::DefaultKeyedRateLimiter<AttemptKey>;

/// A limiter allowing `per_minute` attempts per account per minute (bursts of the same size).
pub fn attempt_limiter(per_minute: u32) -> AttemptLimiter {
    let per_minute =
        std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute))
}

/// A successful login.
pub struct LoggedIn {
    /// The user.
    pub user_id: UserId,
    /// The access token.
    pub token: IssuedToken,
}

/// Checks the credentials and issues a token, or `INVALID_CREDENTIALS`.
pub async fn log_in(state: &AppState, email: &str, password: &str) -> Result<LoggedIn, AppError> {
    let canonical = Email::canonical(email);
    let user = if canonical.len() <= 254 {
        store::users::find_by_email(&state.db, &canonical).await?
    } else {
        None
    };
    let key = match &user {
        Some(user) => AttemptKey::Account(user.id),
        None => AttemptKey::Unknown(canonical),
    };
    if state.login_attempts.check_key(&key).is_err() {
        metrics::counter!("logins_total", "result" => "throttled").increment(1);
        return Err(AppError::RateLimited {
            retry_after_secs: 60,
        });
    }
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = password::verify(password.to_owned(), stored_hash).await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            metrics::counter!("logins_total", "result" => "rejected").increment(1);
            return Err(AppError::InvalidCredentials);
        }
    };
    let user_id = UserId(user.id);
    let gen = session::generation_for_new_token(state, user_id, user.token_gen).await?;
    let token = state.tokens.issue(
        user_id,
        Role::from_db(&user.role),
        gen,
        state.clock.now().timestamp(),
    )?;
    metrics::counter!("logins_total", "result" => "ok").increment(1);
    Ok(LoggedIn { user_id, token })
}
