//! Prepaid balances as Redis holds them, and the charge script.

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use super::Cache;

/// How long a charge's idempotency record is kept (the API promises 24 h).
pub const IDEMPOTENCY_TTL_SECS: i64 = 86_400;

/// Outcome of [`charge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Charged now; the balance after.
    Charged { balance: i64 },
    /// The same key and amount were charged before; the balance that call reported.
    Replayed { balance: i64 },
    /// The balance would exceed the limit; nothing changed.
    OverLimit { balance: i64 },
    /// The key was used before with another amount; nothing changed.
    KeyReused,
    /// Redis holds no balance for this user; nothing changed.
    NotLoaded,
}

/// Arguments of one charge.
pub struct ChargeCall<'a> {
    /// Whose balance.
    pub user_id: i64,
    /// Won to add.
    pub amount: i64,
    /// Highest balance allowed.
    pub max_balance: i64,
    /// Idempotency key (the client's, or one made per request).
    pub idempotency_key: &'a str,
    /// Event id of the `balance.charged` event.
    pub event_id: &'a str,
    /// Decision time, Unix ms.
    pub now_ms: i64,
}

/// Runs charge.lua.
pub async fn charge(cache: &Cache, call: &ChargeCall<'_>) -> anyhow::Result<ChargeOutcome> {
    let keys = vec![
        cache.keys.balance(call.user_id),
        cache
            .keys
            .idempotency("charge", call.user_id, call.idempotency_key),
        cache.keys.events(),
    ];
    let args: Vec<String> = vec![
        call.amount.to_string(),
        call.max_balance.to_string(),
        call.event_id.to_owned(),
        call.now_ms.to_string(),
        IDEMPOTENCY_TTL_SECS.to_string(),
        call.user_id.to_string(),
    ];
    let (status, balance): (i64, i64) = cache
        .scripts
        .charge
        .call(cache.client(), keys, args)
        .await?;
    Ok(match status {
        1 => ChargeOutcome::Charged { balance },
        0 => ChargeOutcome::Replayed { balance },
        -1 => ChargeOutcome::OverLimit { balance },
        -2 => ChargeOutcome::KeyReused,
        -3 => ChargeOutcome::NotLoaded,
        other => anyhow::bail!("charge.lua returned unknown status {other}"),
    })
}

/// A user's balance, or `None` when Redis does not hold it.
pub async fn balance(cache: &Cache, user_id: i64) -> anyhow::Result<Option<i64>> {
    Ok(cache.client().get(cache.keys.balance(user_id)).await?)
}

/// Sets a balance only if Redis has none (new users, loading from MySQL).
pub async fn init_if_missing(cache: &Cache, user_id: i64, balance: i64) -> anyhow::Result<bool> {
    let set: Option<String> = cache
        .client()
        .set(
            cache.keys.balance(user_id),
            balance,
            None,
            Some(SetOptions::NX),
            false,
        )
        .await?;
    Ok(set.is_some())
}

/// Overwrites a balance (rebuilds only).
pub async fn put(cache: &Cache, user_id: i64, balance: i64) -> anyhow::Result<()> {
    let _: () = cache
        .client()
        .set(
            cache.keys.balance(user_id),
            balance,
            None::<Expiration>,
            None,
            false,
        )
        .await?;
    Ok(())
}
