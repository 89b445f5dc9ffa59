//! Storefront sessions: what a browser's session cookie stands for.
//!
//! A session is opened by the same log-in as the API's ([`login::log_in`]: password check,
//! per-account attempt budget, decoy hash) and lives as long as an access token
//! (`ACCESS_TOKEN_TTL_SECONDS`). The cookie is 32 random bytes; Redis keeps only its SHA-256
//! (see [`crate::cache::sessions`]). Unlike a token, a session ends at once on log-out.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::cache::sessions::{self as hot, StoredSession};
use crate::domain::{Role, UserId};
use crate::error::AppError;
use crate::service::login;
use crate::state::AppState;

/// Length of a session token as sent in the cookie (32 bytes, base64url without padding).
pub const TOKEN_LEN: usize = 43;

/// An open session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The cookie value; never logged.
    pub token: String,
    /// The signed-in user.
    pub user_id: UserId,
    /// Their role at log-in.
    pub role: Role,
    /// Unix ms at which the session ends.
    pub expires_at_ms: i64,
}

/// Checks e-mail and password exactly as `POST /api/v1/auth/login` does, then opens a session.
/// `client` is the shopper's address (the log-in limiter counts (account, client)).
pub async fn log_in(
    state: &AppState,
    email: &str,
    password: &str,
    client: std::net::IpAddr,
) -> Result<Session, AppError> {
    let done = login::log_in(state, email, password, client).await?;
    start(state, done.user_id, done.role).await
}

/// Opens a session for a user who has just proved who they are (log-in or sign-up).
pub async fn start(state: &AppState, user_id: UserId, role: Role) -> Result<Session, AppError> {
    let ttl_ms = state.config.auth.access_token_ttl.as_millis() as i64;
    let expires_at_ms = state.clock.now_ms() + ttl_ms;
    let stored = StoredSession {
        user_id: user_id.0,
        role: role.as_str().to_owned(),
        expires_at_ms,
    };
    // 256 random bits: a clash is not going to happen, but `put` refuses one rather than
    // handing out someone else's session.
    for _ in 0..3 {
        let token = new_token();
        if hot::put(&state.cache, &hash(&token), &stored, ttl_ms).await? {
            metrics::counter!("web_sessions_started_total").increment(1);
            return Ok(Session {
                token,
                user_id,
                role,
                expires_at_ms,
            });
        }
    }
    Err(anyhow::anyhow!("could not store a new session").into())
}

/// The session a cookie names, if it is well-formed, still stored and not past its end.
pub async fn find(state: &AppState, token: &str) -> Result<Option<Session>, AppError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let Some(stored) = hot::get(&state.cache, &hash(token)).await? else {
        return Ok(None);
    };
    if state.clock.now_ms() >= stored.expires_at_ms || stored.user_id <= 0 {
        return Ok(None);
    }
    Ok(Some(Session {
        token: token.to_owned(),
        user_id: UserId(stored.user_id),
        role: Role::from_db(&stored.role),
        expires_at_ms: stored.expires_at_ms,
    }))
}

/// Ends a session (log-out): its cookie is worthless from now on.
pub async fn end(state: &AppState, token: &str) -> Result<(), AppError> {
    if well_formed(token) {
        hot::delete(&state.cache, &hash(token)).await?;
    }
    Ok(())
}

/// Whether a cookie value has the shape of a token (checked before touching Redis).
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_well_formed_and_differ() {
        let (a, b) = (new_token(), new_token());
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(a, b);
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}!", &a[..42])));
    }
}
