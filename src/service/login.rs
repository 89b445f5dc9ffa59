//! Login: verify a password and issue an access token. Unknown e-mail and wrong password give
//! the same answer and take the same time (a decoy hash is verified for unknown accounts).

use crate::auth::password;
use crate::auth::token::IssuedToken;
use crate::domain::{Role, UserId};
use crate::error::AppError;
use crate::state::AppState;
use crate::store;

/// Login attempts per account: a keyed token bucket (per instance).
pub type AttemptLimiter = governor::DefaultKeyedRateLimiter<String>;

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
    /// Their role (the one the token carries).
    pub role: Role,
    /// The access token.
    pub token: IssuedToken,
}

/// Checks the credentials and issues a token, or `INVALID_CREDENTIALS`.
/// Passwords longer than 1024 bytes are refused unhashed (argon2 on megabytes is a DoS).
pub async fn log_in(state: &AppState, email: &str, password: &str) -> Result<LoggedIn, AppError> {
    if password.len() > 1024 {
        return Err(AppError::InvalidCredentials);
    }
    let normalised = email.trim().to_ascii_lowercase();
    if state.login_attempts.check_key(&normalised).is_err() {
        metrics::counter!("logins_total", "result" => "throttled").increment(1);
        return Err(AppError::RateLimited {
            retry_after_secs: 60,
        });
    }
    let user = if normalised.len() <= 254 {
        store::users::find_by_email(&state.db, &normalised).await?
    } else {
        None
    };
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
    let role = Role::from_db(&user.role);
    let token = state
        .tokens
        .issue(user_id, role, state.clock.now().timestamp())?;
    metrics::counter!("logins_total", "result" => "ok").increment(1);
    Ok(LoggedIn {
        user_id,
        role,
        token,
    })
}
