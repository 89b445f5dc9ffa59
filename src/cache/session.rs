//! Token generations as Redis holds them (`{p}:user:{id}:tgen`), the auth guard's one lookup.
//!
//! The key doubles as the cheap "does this user exist" answer for the hot path: it is written
//! only for users MySQL knows (sign-up, log-in, a cold load), or as `-1` with a short TTL for
//! an id MySQL does not know.

use fred::prelude::*;

use super::call::{self, Reply, ScriptCall};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};
use crate::local::Known;

/// Lifetime of a "no such user" entry: bounds the MySQL reads a token of an unknown id costs.
pub const UNKNOWN_USER_TTL_SECS: i64 = 60;

/// What Redis holds for a user: `None` when nothing is cached (first use since sign-up before
/// this key existed, or after a rebuild); [`Known::NoSuchUser`] when MySQL recently said there
/// is no such user.
pub async fn held(cache: &Cache, user_id: i64) -> anyhow::Result<Option<Known>> {
    let value: Option<i64> = cache
        .client()
        .get(cache.keys.token_generation(user_id))
        .await?;
    Ok(value.map(|held| match held {
        -1 => Known::NoSuchUser,
        generation => Known::Generation(generation),
    }))
}

/// One raise of a user's token generation (session_gen.lua); the reply is the one held.
pub struct RaiseCall {
    /// The user.
    pub user_id: i64,
    /// The generation to hold at least, or -1 to record "no such user".
    pub generation: i64,
}

impl ScriptCall for RaiseCall {
    type Outcome = i64;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.session_gen
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        vec![
            k.token_generation(self.user_id),
            k.logouts(k.of_user(self.user_id)),
        ]
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        Ok(vec![
            self.generation.to_string(),
            UNKNOWN_USER_TTL_SECS.to_string(),
            self.user_id.to_string(),
        ])
    }

    fn decode(reply: Reply) -> anyhow::Result<i64> {
        reply.int(0)
    }
}

/// Raises the held generation to at least `generation` (session_gen.lua); returns the one held.
pub async fn raise(cache: &Cache, user_id: i64, generation: i64) -> anyhow::Result<i64> {
    let generation = generation.max(0);
    call::run(
        cache,
        &RaiseCall {
            user_id,
            generation,
        },
    )
    .await
}

/// Records that no user has this id (unless Redis already knows better).
pub async fn mark_no_such_user(cache: &Cache, user_id: i64) -> anyhow::Result<()> {
    let generation = -1;
    call::run(
        cache,
        &RaiseCall {
            user_id,
            generation,
        },
    )
    .await?;
    Ok(())
}
