//! Issued coupons in their holders' buckets: the grant step of the coupon saga
//! (coupon_grant.lua), a user's coupons, and whose coupon a userCouponId is.

use std::collections::HashMap;

use fred::prelude::*;

use super::call::{self, Reply, ScriptCall};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};
use crate::events::CouponStatus;

/// A coupon as the campaign's bucket recorded it when it was issued: what
/// `coupon_grant.lua` copies into the holder's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCoupon {
    /// The coupon's id (`user_coupons.id`; `n × B + bucket` of the campaign's bucket).
    pub user_coupon_id: i64,
    /// The campaign it belongs to.
    pub coupon_id: i64,
    /// Its holder.
    pub user_id: i64,
    /// When it was issued, Unix ms.
    pub issued_at_ms: i64,
    /// When it stops being usable, Unix ms.
    pub expires_at_ms: i64,
}

/// One `coupon_grant.lua` call: coupons of holders of one bucket.
pub struct GrantCall<'a> {
    /// The coupons to put into their holders' bucket.
    pub coupons: &'a [IssuedCoupon],
}

impl ScriptCall for GrantCall<'_> {
    type Outcome = Vec<bool>;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.coupon_grant
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let bucket = k.of_user(self.coupons.first().map_or(0, |c| c.user_id));
        let mut keys = vec![k.user_coupon_index(bucket)];
        for c in self.coupons {
            keys.extend([
                k.user_coupon(c.coupon_id, c.user_id),
                k.user_coupons(c.user_id),
            ]);
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(!self.coupons.is_empty(), "a grant call needs a coupon");
        Ok(self
            .coupons
            .iter()
            .flat_map(|c| {
                [
                    c.user_coupon_id,
                    c.coupon_id,
                    c.user_id,
                    c.issued_at_ms,
                    c.expires_at_ms,
                ]
            })
            .map(|n| n.to_string())
            .collect())
    }

    fn decode(reply: Reply) -> anyhow::Result<Vec<bool>> {
        reply.flags()
    }
}

/// Puts coupons into their holders' bucket (coupon_grant.lua); every holder must be of one
/// bucket. Answers, per coupon, whether it was created now.
pub async fn grant_all(cache: &Cache, coupons: &[IssuedCoupon]) -> anyhow::Result<Vec<bool>> {
    let bucket = cache.keys.of_user(coupons.first().map_or(0, |c| c.user_id));
    anyhow::ensure!(
        coupons
            .iter()
            .all(|c| cache.keys.of_user(c.user_id) == bucket),
        "one coupon_grant.lua call grants coupons of one bucket"
    );
    call::run_each(cache, &GrantCall { coupons }, coupons.len()).await
}

/// A coupon a user holds, as Redis has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCoupon {
    /// The issued coupon's id (`userCouponId`, unique across campaigns).
    pub id: i64,
    /// The campaign (MySQL `coupons.id`) the coupon belongs to.
    pub coupon_id: i64,
    /// Its state (expiry is computed by the reader).
    pub status: CouponStatus,
    /// Its payment deadline, Unix ms; unpaid after it, the sweeper expires it.
    pub expires_at_ms: i64,
    /// When it was issued, Unix ms.
    pub issued_at_ms: i64,
}

/// Every coupon a user holds, in one round trip for the coupon hashes (a pipeline).
pub async fn held_by(cache: &Cache, user_id: i64) -> anyhow::Result<Vec<HeldCoupon>> {
    let campaigns: Vec<i64> = cache
        .client()
        .smembers(cache.keys.user_coupons(user_id))
        .await?;
    if campaigns.is_empty() {
        return Ok(Vec::new());
    }
    let pipeline = cache.client().pipeline();
    for coupon_id in &campaigns {
        let () = pipeline
            .hgetall(cache.keys.user_coupon(*coupon_id, user_id))
            .await?;
    }
    let replies: Vec<Value> = if campaigns.len() == 1 {
        vec![pipeline.last::<Value>().await?]
    } else {
        pipeline.all().await?
    };
    let mut held = Vec::with_capacity(campaigns.len());
    for (coupon_id, reply) in campaigns.into_iter().zip(replies) {
        let fields: HashMap<String, String> = reply.convert()?;
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(id), Some(expires_at_ms)) = (number("id"), number("expiresAt")) else {
            continue;
        };
        held.push(HeldCoupon {
            id,
            coupon_id,
            status: match fields.get("status") {
                Some(word) => word.parse()?,
                None => anyhow::bail!("coupon hash of user {user_id} lacks its status"),
            },
            expires_at_ms,
            issued_at_ms: number("issuedAt").unwrap_or(0),
        });
    }
    held.sort_by_key(|c| c.id);
    Ok(held)
}

/// The campaign and holder of a userCouponId: from the index of `user_id`'s bucket (where the
/// coupon of that user lives), else from the owners index of the campaign's bucket (any
/// holder's coupon, also one whose grant a crash cut off); `None` if Redis knows no such coupon.
pub async fn owner_of(
    cache: &Cache,
    user_id: i64,
    user_coupon_id: i64,
) -> anyhow::Result<Option<Owner>> {
    let index = cache.keys.user_coupon_index(cache.keys.of_user(user_id));
    let entry: Option<String> = cache.client().hget(index, user_coupon_id).await?;
    let (entry, granted) = match entry {
        Some(entry) => (Some(entry), true),
        None => {
            let bucket = cache.keys.of_campaign(user_coupon_id);
            let owners = cache.keys.coupon_owners(bucket);
            (cache.client().hget(owners, user_coupon_id).await?, false)
        }
    };
    Ok(entry.and_then(|e| {
        let (coupon, user) = e.split_once(':')?;
        Some(Owner {
            coupon_id: coupon.parse().ok()?,
            user_id: user.parse().ok()?,
            granted,
        })
    }))
}

/// Whose coupon a userCouponId is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The campaign it was issued from.
    pub coupon_id: i64,
    /// Its holder.
    pub user_id: i64,
    /// Whether `user_id`'s bucket holds it (`false`: only the campaign's bucket knows it).
    pub granted: bool,
}
