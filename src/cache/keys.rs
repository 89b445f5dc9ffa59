//! The Redis key schema. Every key is `{prefix}:…`: the braces make the prefix a hash tag, so
//! all keys of one deployment share a slot and multi-key scripts also work on Redis Cluster.

/// Builds keys under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    base: std::sync::Arc<str>,
}

impl Keys {
    /// A key builder for `prefix` (validated by the configuration: `[A-Za-z0-9_-]{1,64}`).
    pub fn new(prefix: &str) -> Self {
        Self {
            base: format!("{{{prefix}}}").into(),
        }
    }

    /// `{p}:stock:{product}` — units that can be ordered now.
    pub fn stock(&self, product_id: i64) -> String {
        format!("{}:stock:{product_id}", self.base)
    }

    /// `{p}:product:{product}` — a product's name, price and version (hash; pricing cache).
    pub fn product(&self, product_id: i64) -> String {
        format!("{}:product:{product_id}", self.base)
    }

    /// `{p}:op:{scope}:{operation}` — marker that an operation was applied (idempotency).
    pub fn operation(&self, scope: &str, operation_id: &str) -> String {
        format!("{}:op:{scope}:{operation_id}", self.base)
    }

    /// `{p}:bal:{user}` — a user's prepaid balance in won.
    pub fn balance(&self, user_id: i64) -> String {
        format!("{}:bal:{user_id}", self.base)
    }

    /// `{p}:idem:{scope}:{user}:{key}` — first outcome of an idempotent request.
    pub fn idempotency(&self, scope: &str, user_id: i64, key: &str) -> String {
        format!("{}:idem:{scope}:{user_id}:{key}", self.base)
    }

    /// `{p}:events` — the settlement stream every decision is appended to.
    pub fn events(&self) -> String {
        format!("{}:events", self.base)
    }

    /// `{p}:events:dead` — entries the worker gave up on (poison), for operators and the audit.
    pub fn dead_letters(&self) -> String {
        format!("{}:events:dead", self.base)
    }

    /// `{p}:events:failures` — hash of stream id → failed attempts, shared by all workers.
    pub fn event_failures(&self) -> String {
        format!("{}:events:failures", self.base)
    }

    /// `{p}:coupon:{coupon}` — a campaign's terms and issued count (hash).
    pub fn coupon(&self, coupon_id: i64) -> String {
        format!("{}:coupon:{coupon_id}", self.base)
    }

    /// `{p}:coupon:{coupon}:users` — userId → userCouponId of a campaign (hash).
    pub fn coupon_users(&self, coupon_id: i64) -> String {
        format!("{}:coupon:{coupon_id}:users", self.base)
    }

    /// `{p}:ucoupon:{coupon}:{user}` — one user's coupon (hash: id, status, expiresAt, …).
    pub fn user_coupon(&self, coupon_id: i64, user_id: i64) -> String {
        format!("{}:ucoupon:{coupon_id}:{user_id}", self.base)
    }

    /// `{p}:seq:ucoupon` — the userCouponId sequence.
    pub fn user_coupon_seq(&self) -> String {
        format!("{}:seq:ucoupon", self.base)
    }

    /// `{p}:ucoupon:index` — userCouponId → "couponId:userId" (hash).
    pub fn user_coupon_index(&self) -> String {
        format!("{}:ucoupon:index", self.base)
    }

    /// `{p}:user:{user}:coupons` — ids of the campaigns a user holds a coupon of (set).
    pub fn user_coupons(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}:coupons", self.base)
    }

    /// `{p}:order:{order}` — an order (hash) while it is hot.
    pub fn order(&self, order_id: &str) -> String {
        format!("{}:order:{order_id}", self.base)
    }

    /// `{p}:orders:deadlines` — pending orders by payment deadline (zset, score = ms).
    pub fn order_deadlines(&self) -> String {
        format!("{}:orders:deadlines", self.base)
    }

    /// `{p}:user:{user}:tgen` — the user's token generation (tokens below it are revoked);
    /// `-1` with a TTL means "no such user".
    pub fn token_generation(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}:tgen", self.base)
    }

    /// `{p}:user:{user}:orders` — a user's recent orders by creation time (zset).
    pub fn user_orders(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}:orders", self.base)
    }

    /// `{p}:nocoupon` — never written; stands in KEYS for "no coupon".
    pub fn no_coupon(&self) -> String {
        format!("{}:nocoupon", self.base)
    }

    /// `{p}:pop:{hour}` — units sold per product in one UTC hour (zset; hour = ms / 3.6e6).
    pub fn popularity(&self, hour: i64) -> String {
        format!("{}:pop:{hour}", self.base)
    }

    /// `{p}:session:{sha256 hex of the cookie}` — a storefront session (string, with a TTL).
    pub fn session(&self, token_hash: &str) -> String {
        format!("{}:session:{token_hash}", self.base)
    }

    /// `{p}:rl:{budget}:{subject}` — one budget's bucket of one subject (hash: tat, rid, res;
    /// `lua/rate_gcra.lua`). One key per call; the prefix is the hash tag.
    pub fn rate(&self, budget: &str, subject: &str) -> String {
        format!("{}:rl:{budget}:{subject}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("fm");
        assert_eq!(keys.stock(7), "{fm}:stock:7");
        assert_eq!(keys.operation("restock", "abc"), "{fm}:op:restock:abc");
    }
}
