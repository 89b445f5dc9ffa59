//! Login: verify a password and issue an access token. Unknown e-mail and wrong password give
//! the same answer and take the same time (a decoy hash is verified for unknown accounts).
//!
//! The account is found by its canonical e-mail ([`Email::canonical`]) compared byte for byte,
//! and the attempt limiters count the account the lookup resolved (its id), so no other
//! spelling of an address reaches the same account with a fresh budget.
//!
//! Attempts are throttled per **(account, client IP)** — `LOGIN_ATTEMPTS_PER_MINUTE`, on this
//! instance first and then across all instances — so a guesser at one address is slowed to
//! that rate while the owner, from any other address, still logs in. A second, wider budget per
//! account over all clients (`LOGIN_ACCOUNT_ATTEMPTS_PER_MINUTE`) bounds a guesser with many
//! addresses; reaching it needs that many addresses at full rate, and only then does the owner
//! wait too (docs/SECURITY.md, section 3). Both are token buckets that refill continuously:
//! nobody is locked out, a client over budget is told when to try again (`Retry-After`).

use std::net::IpAddr;

use governor::clock::Clock as _;

use crate::auth::password;
use crate::auth::token::IssuedToken;
use crate::domain::{Email, Role, UserId};
use crate::error::AppError;
use crate::service::session;
use crate::service::throttle::{self, Budget};
use crate::state::AppState;
use crate::store;

pub use crate::local::{attempt_limiter, AttemptKey, AttemptLimiter};

/// A successful login.
pub struct LoggedIn {
    /// The account the e-mail resolved to and the password matched.
    pub user_id: UserId,
    /// Their role (the one the token carries).
    pub role: Role,
    /// The access token.
    pub token: IssuedToken,
}

/// Checks the credentials of an attempt from `client` and issues a token, or
/// `INVALID_CREDENTIALS` (or `RATE_LIMITED` over a budget, before any hashing).
pub async fn log_in(
    state: &AppState,
    email: &str,
    password: &str,
    client: IpAddr,
) -> Result<LoggedIn, AppError> {
    if password.len() > 1024 {
        return Err(AppError::InvalidCredentials);
    }
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
    if let Err(throttled) = throttle_attempt(state, &key, client).await {
        metrics::counter!("logins_total", "result" => "throttled").increment(1);
        return Err(throttled);
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
    let role = Role::from_db(&user.role);
    let gen = session::generation_for_new_token(state, user_id, user.token_gen).await?;
    let token = state
        .tokens
        .issue(user_id, role, gen, state.clock.now().timestamp())?;
    metrics::counter!("logins_total", "result" => "ok").increment(1);
    Ok(LoggedIn {
        user_id,
        role,
        token,
    })
}

/// Counts one attempt: this instance's (account, client) bucket, then the shared (account,
/// client) and account-wide budgets.
async fn throttle_attempt(
    state: &AppState,
    key: &AttemptKey,
    client: IpAddr,
) -> Result<(), AppError> {
    if let Err(not_until) = state.login_attempts.check_key(&(key.clone(), client)) {
        let now = governor::clock::DefaultClock::default().now();
        return Err(AppError::RateLimited {
            retry_after_secs: not_until.wait_time_from(now).as_secs().max(1),
        });
    }
    let subject = key.subject();
    throttle::check(
        state,
        Budget::LoginPerClient,
        &format!("{subject}:{client}"),
    )
    .await?;
    throttle::check(state, Budget::LoginPerAccount, &subject).await
}
