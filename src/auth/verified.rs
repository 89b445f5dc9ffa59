//! Tokens this instance verified lately. A client sends the same bearer token with every
//! request until it expires; checking its HMAC, decoding its base64 and parsing its claims each
//! time is ~8 % of a cheap authenticated read (bench/README.md). What a valid token says never
//! changes, so its answer is kept, keyed by the whole token text, and trusted until the token's
//! own expiry (with the same leeway the signature check allows). Whether it was revoked since
//! is still asked of the session on every request ([`crate::service::session`]).
//!
//! Only valid tokens are kept; a forged or expired one is checked (and refused) every time. The
//! memory is bounded: [`SHARDS`] × [`PER_SHARD`] tokens; a full shard first forgets its expired
//! tokens and, if that frees nothing, forgets them all.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::token::Verified;

/// Shards of the memory (a power of two), each behind its own lock.
pub const SHARDS: usize = 64;
/// Most tokens one shard holds.
pub const PER_SHARD: usize = 512;

/// A kept answer: what the token says, and the last second (Unix) it is still accepted.
#[derive(Clone, Copy)]
struct Kept {
    verified: Verified,
    accepted_until: i64,
}

/// One shard: kept answers by token text.
type Shard = HashMap<Box<str>, Kept>;

/// The memory of verified tokens (see the module doc).
pub struct VerifiedTokens {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_bounds(SHARDS, PER_SHARD)
    }
}

impl VerifiedTokens {
    /// `shards` (a power of two) of at most `per_shard` tokens each.
    fn with_bounds(shards: usize, per_shard: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, token: &str) -> std::sync::MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(token) as usize) & (self.shards.len() - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `token` says if it was verified before and is still accepted at `now_secs`.
    pub fn get(&self, token: &str, now_secs: i64) -> Option<Verified> {
        let mut shard = self.shard(token);
        let kept = *shard.get(token)?;
        if now_secs <= kept.accepted_until {
            return Some(kept.verified);
        }
        shard.remove(token);
        None
    }

    /// Keeps what the valid `token` says, accepted until `accepted_until` (Unix seconds).
    pub fn keep(&self, token: &str, verified: Verified, accepted_until: i64, now_secs: i64) {
        let mut shard = self.shard(token);
        if shard.len() >= self.per_shard && !shard.contains_key(token) {
            shard.retain(|_, kept| now_secs <= kept.accepted_until);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(
            token.into(),
            Kept {
                verified,
                accepted_until,
            },
        );
    }

    /// Tokens held now (tests and bounds).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, UserId};

    fn said(user: i64) -> Verified {
        Verified {
            user: UserId(user),
            role: Role::User,
            gen: 0,
        }
    }

    #[test]
    fn a_kept_token_is_answered_until_its_last_accepted_second_and_then_forgotten() {
        let memory = VerifiedTokens::default();
        assert_eq!(memory.get("t", 100), None);
        memory.keep("t", said(7), 200, 100);
        assert_eq!(memory.get("t", 200), Some(said(7)));
        assert_eq!(memory.get("t2", 150), None, "another text is another token");
        assert_eq!(memory.get("t", 201), None);
        assert!(
            memory.is_empty(),
            "an expired token is dropped when it is asked for"
        );
    }

    #[test]
    fn the_memory_stays_bounded_and_prefers_to_forget_expired_tokens() {
        let memory = VerifiedTokens::default();
        for i in 0..(SHARDS * PER_SHARD * 3) {
            memory.keep(&format!("token-{i}"), said(i as i64), 1_000, 10);
        }
        assert!(memory.len() <= SHARDS * PER_SHARD, "{}", memory.len());

        // One shard of four: a full shard forgets its expired tokens first, then all.
        let memory = VerifiedTokens::with_bounds(1, 4);
        for (token, until) in [("a", 5), ("b", 1_000), ("c", 5), ("d", 1_000)] {
            memory.keep(token, said(1), until, 1);
        }
        memory.keep("e", said(1), 1_000, 10);
        let held = |names: &str| {
            names
                .chars()
                .filter(|c| memory.get(&c.to_string(), 10).is_some())
                .collect::<String>()
        };
        assert_eq!(held("abcde"), "bde", "the expired ones made room");
        memory.keep("f", said(1), 1_000, 10);
        memory.keep("g", said(1), 1_000, 10);
        assert_eq!(
            held("abcdefg"),
            "g",
            "nothing expired: the full shard starts over"
        );
    }
}
