//! Prepaid balances as Redis holds them, and the charge script.

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use super::call::{self, Reply, ScriptCall};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

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

impl ScriptCall for ChargeCall<'_> {
    type Outcome = ChargeOutcome;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.charge
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        vec![
            k.balance(self.user_id),
            k.idempotency("charge", self.user_id, self.idempotency_key),
            k.events(k.of_user(self.user_id)),
        ]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            self.amount.to_string(),
            self.max_balance.to_string(),
            self.event_id.to_owned(),
            self.now_ms.to_string(),
            IDEMPOTENCY_TTL_SECS.to_string(),
            self.user_id.to_string(),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<ChargeOutcome> {
        Ok(match reply.int(0)? {
            1 => ChargeOutcome::Charged {
                balance: reply.int(1)?,
            },
            0 => ChargeOutcome::Replayed {
                balance: reply.int(1)?,
            },
            -1 => ChargeOutcome::OverLimit {
                balance: reply.int(1)?,
            },
            -2 => ChargeOutcome::KeyReused,
            -3 => ChargeOutcome::NotLoaded,
            _ => return Err(reply.unknown_status()),
        })
    }
}

/// Runs charge.lua.
pub async fn charge(cache: &Cache, call: &ChargeCall<'_>) -> anyhow::Result<ChargeOutcome> {
    call::run(cache, call).await
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
