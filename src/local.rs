//! This instance's in-memory handles that the shared state holds: the login attempt limiter
//! and a single-flight snapshot cache. They depend on nothing in `service`, so `state` does not
//! either (services use the state; the state never uses a service).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a login attempt is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttemptKey {
    /// An existing account, by id (whatever spelling of its e-mail was typed).
    Account(i64),
    /// A canonical e-mail that names no account (so probing unknown addresses is bounded too).
    Unknown(String),
}

impl AttemptKey {
    /// The key's text in a Redis bucket name: `a<id>`, or `e<hash>` of an unknown e-mail (a
    /// fixed 32 characters whatever the client typed).
    pub fn subject(&self) -> String {
        use sha2::Digest;
        match self {
            AttemptKey::Account(id) => format!("a{id}"),
            AttemptKey::Unknown(email) => {
                let digest = sha2::Sha256::digest(email.as_bytes());
                format!("e{}", &hex::encode(digest)[..32])
            }
        }
    }
}

/// Login attempts per (account, client IP): a keyed token bucket on this instance, the cheap
/// first line before the budgets shared through Redis.
pub type AttemptLimiter = governor::DefaultKeyedRateLimiter<(AttemptKey, IpAddr)>;

/// A limiter allowing `per_minute` attempts per key per minute (bursts of the same size).
pub fn attempt_limiter(per_minute: u32) -> AttemptLimiter {
    let per_minute =
        std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute))
}

/// A value computed now and then and served to every reader while fresh enough; one caller
/// at a time refreshes it (single flight), the others keep reading the previous value.
pub struct Memo<T> {
    value: Mutex<Option<(Instant, Arc<T>)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self {
            value: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T> Memo<T> {
    /// The current value, if any, and whether it is younger than `max_age`.
    pub fn fresh(&self, max_age: Duration) -> (Option<Arc<T>>, bool) {
        let guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((at, value)) => (Some(value.clone()), at.elapsed() < max_age),
            None => (None, false),
        }
    }

    /// Replaces the value with one computed now.
    pub fn store(&self, value: Arc<T>) {
        let mut guard = self.value.lock().unwrap_or_else(|e| e.into_inner());
        *guard = Some((Instant::now(), value));
    }

    /// The lock a refreshing caller holds, so only one computes at a time.
    pub fn refresh_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.refresh
    }
}
