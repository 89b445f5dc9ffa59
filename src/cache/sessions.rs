//! Storefront sessions as Redis holds them: one string per session, `"{user} {role} {expMs}"`,
//! under the SHA-256 of the cookie (a copy of Redis never shows a usable cookie), with a TTL so
//! Redis drops it by itself.

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use super::Cache;

/// What a session names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// The signed-in user.
    pub user_id: i64,
    /// Their role at log-in (`USER` / `ADMIN`).
    pub role: String,
    /// Unix ms after which the session is over, whatever Redis's TTL says.
    pub expires_at_ms: i64,
}

/// Stores a new session for `ttl_ms`; a token hash that already exists is refused (`false`),
/// so a session can never be overwritten (tokens are random, so it does not happen).
pub async fn put(
    cache: &Cache,
    token_hash: &str,
    session: &StoredSession,
    ttl_ms: i64,
) -> anyhow::Result<bool> {
    let value = format!(
        "{} {} {}",
        session.user_id, session.role, session.expires_at_ms
    );
    let set: Option<String> = cache
        .client()
        .set(
            cache.keys.session(token_hash),
            value,
            Some(Expiration::PX(ttl_ms.max(1))),
            Some(SetOptions::NX),
            false,
        )
        .await?;
    Ok(set.is_some())
}

/// The session under a token hash, if Redis still holds it and it parses.
pub async fn get(cache: &Cache, token_hash: &str) -> anyhow::Result<Option<StoredSession>> {
    let value: Option<String> = cache.client().get(cache.keys.session(token_hash)).await?;
    Ok(value.as_deref().and_then(parse))
}

/// Ends a session (log-out); ending one that is gone is not an error. Where replicas are
/// required, returns only once they hold the deletion, so a failover cannot bring the session
/// back.
pub async fn delete(cache: &Cache, token_hash: &str) -> anyhow::Result<()> {
    let key = cache.keys.session(token_hash);
    let _: i64 = cache.client().del(&key).await?;
    if let Some(durable) = &cache.durable {
        durable.replicated_after(&key).await?;
    }
    Ok(())
}

fn parse(value: &str) -> Option<StoredSession> {
    let mut parts = value.split(' ');
    let user_id = parts.next()?.parse().ok()?;
    let role = parts.next()?.to_owned();
    let expires_at_ms = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(StoredSession {
        user_id,
        role,
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back_and_garbage_is_refused() {
        assert_eq!(
            parse("7 USER 1700000000000"),
            Some(StoredSession {
                user_id: 7,
                role: "USER".into(),
                expires_at_ms: 1_700_000_000_000
            })
        );
        assert_eq!(parse("7 USER"), None);
        assert_eq!(parse("x USER 1"), None);
        assert_eq!(parse("7 USER 1 extra"), None);
    }
}
