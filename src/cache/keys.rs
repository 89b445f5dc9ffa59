//! The Redis key schema: keys by owner, in buckets.
//!
//! Every key carries the hash tag of the bucket of the entity that owns it, so each Lua script
//! touches keys of one slot and a Redis Cluster spreads the deployment over its primaries:
//!
//! - a **user's** balance, orders, coupons, idempotency records and token generation, the
//!   pending-order deadlines and the settlement stream of that bucket: the user's bucket
//!   (`user_id mod B`);
//! - a **product's** stock, pricing, restock markers, reservations and units sold per hour: the
//!   product's bucket (`product_id mod B`);
//! - a **campaign's** terms, counter and holders, and the user-coupon id sequence of that
//!   bucket: the campaign's bucket (`coupon_id mod B`);
//! - a rate budget's bucket: the bucket of its subject's text.
//!
//! `B` (`REDIS_BUCKETS`) is a deploy-time constant, recorded in Redis by the first instance and
//! checked by every later one ([`super::Cache::connect`]). Bucket `i`'s tag is `{prefix:bi.n}`,
//! with the smallest `n` that puts its slot in the middle of the `i`-th `1/B` of the slot space:
//! a cluster whose primaries own equal slot ranges then owns equal numbers of buckets (±1).
//! Keys of the whole deployment (the bucket record, storefront sessions) keep the tag `{prefix}`.

use std::sync::Arc;

/// Slots of a Redis Cluster.
const SLOTS: usize = 16_384;

/// A virtual bucket: an index below the deployment's bucket count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(pub u16);

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Builds keys under one prefix and bucket count.
#[derive(Clone, Debug)]
pub struct Keys {
    global: Arc<str>,
    tags: Arc<[String]>,
}

/// Redis Cluster's slot of a key (CRC16 of its hash tag, mod 16384).
pub fn slot(key: &str) -> u16 {
    fred::util::redis_keyslot(key.as_bytes())
}

/// The tag of bucket `index` of `count`: `{prefix:b<index>.<n>}` with the smallest `n` whose
/// slot lies in the middle half of the bucket's share of the slot space.
fn bucket_tag(prefix: &str, index: usize, count: usize) -> String {
    let width = SLOTS / count;
    let (low, high) = if width >= 4 {
        (index * width + width / 4, index * width + width - width / 4)
    } else {
        (index * width, index * width + width.max(1))
    };
    (0u64..)
        .map(|n| format!("{{{prefix}:b{index}.{n}}}"))
        .find(|tag| (low..high).contains(&usize::from(slot(tag))))
        .expect("some salt lands in every slot range")
}

impl Keys {
    /// A key builder for `prefix` (validated by the configuration: `[A-Za-z0-9_-]{1,64}`) and
    /// `buckets` virtual buckets (1..=1024).
    pub fn new(prefix: &str, buckets: u16) -> Self {
        let count = usize::from(buckets.max(1));
        let tags: Vec<String> = (0..count).map(|i| bucket_tag(prefix, i, count)).collect();
        Self {
            global: format!("{{{prefix}}}").into(),
            tags: tags.into(),
        }
    }

    /// How many buckets the keys spread over.
    pub fn bucket_count(&self) -> u16 {
        self.tags.len() as u16
    }

    /// Every bucket, in index order.
    pub fn buckets(&self) -> impl Iterator<Item = Bucket> + use<> {
        (0..self.bucket_count()).map(Bucket)
    }

    fn tag(&self, bucket: Bucket) -> &str {
        &self.tags[usize::from(bucket.0)]
    }

    fn of_id(&self, id: i64) -> Bucket {
        Bucket(id.rem_euclid(i64::from(self.bucket_count())) as u16)
    }

    /// The bucket of a user's keys.
    pub fn of_user(&self, user_id: i64) -> Bucket {
        self.of_id(user_id)
    }

    /// The bucket of a product's keys.
    pub fn of_product(&self, product_id: i64) -> Bucket {
        self.of_id(product_id)
    }

    /// The bucket of a campaign's keys.
    pub fn of_campaign(&self, coupon_id: i64) -> Bucket {
        self.of_id(coupon_id)
    }

    /// The bucket of a rate budget's subject (FNV-1a of its text).
    pub fn of_subject(&self, subject: &str) -> Bucket {
        let hash = subject.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Bucket((hash % u64::from(self.bucket_count())) as u16)
    }

    /// A fresh order id (UUIDv7) for an order of `user_id`: its last 16 bits name the user's
    /// bucket, so the order's keys can be found from its id alone ([`Keys::of_order`]).
    pub fn new_order_id(&self, user_id: i64) -> String {
        self.with_bucket(*uuid::Uuid::now_v7().as_bytes(), user_id)
    }

    fn with_bucket(&self, mut bytes: [u8; 16], user_id: i64) -> String {
        let bucket = self.of_user(user_id).0.to_be_bytes();
        bytes[14] = bucket[0];
        bytes[15] = bucket[1];
        uuid::Uuid::from_bytes(bytes).to_string()
    }

    /// The bucket an order id names; `None` for a text that is not an order id of this
    /// deployment (such an order is not in Redis).
    pub fn of_order(&self, order_id: &str) -> Option<Bucket> {
        let id = uuid::Uuid::parse_str(order_id).ok()?;
        let bytes = id.as_bytes();
        let bucket = u16::from_be_bytes([bytes[14], bytes[15]]);
        (bucket < self.bucket_count()).then_some(Bucket(bucket))
    }

    // ---- keys of the whole deployment ------------------------------------------------------

    /// `{p}:buckets` — the bucket count the deployment was started with (checked at start).
    pub fn bucket_record(&self) -> String {
        format!("{}:buckets", self.global)
    }

    /// `{p}:session:{sha256 hex of the cookie}` — a storefront session (string, with a TTL).
    pub fn session(&self, token_hash: &str) -> String {
        format!("{}:session:{token_hash}", self.global)
    }

    // ---- a user's bucket ---------------------------------------------------------------------

    /// `{u}:bal:{user}` — a user's prepaid balance in won.
    pub fn balance(&self, user_id: i64) -> String {
        format!("{}:bal:{user_id}", self.tag(self.of_user(user_id)))
    }

    /// `{u}:idem:{scope}:{user}:{key}` — first outcome of an idempotent request.
    pub fn idempotency(&self, scope: &str, user_id: i64, key: &str) -> String {
        format!(
            "{}:idem:{scope}:{user_id}:{key}",
            self.tag(self.of_user(user_id))
        )
    }

    /// `{u}:attempt:order:{user}:{key}:{fingerprint}` — the order id the first attempt of a
    /// request took (a retry after a lost reply repeats the saga's steps under it).
    pub fn order_attempt(&self, user_id: i64, key: &str, fingerprint: &str) -> String {
        format!(
            "{}:attempt:order:{user_id}:{key}:{fingerprint}",
            self.tag(self.of_user(user_id))
        )
    }

    /// `{u}:ucoupon:{coupon}:{user}` — one user's coupon (hash: id, status, expiresAt, …).
    pub fn user_coupon(&self, coupon_id: i64, user_id: i64) -> String {
        format!(
            "{}:ucoupon:{coupon_id}:{user_id}",
            self.tag(self.of_user(user_id))
        )
    }

    /// `{b}:ucoupon:owners` — userCouponId → "couponId:userId" of the coupons issued from the
    /// campaigns of bucket `b` (`userCouponId mod B`), written by coupon_issue.lua.
    pub fn coupon_owners(&self, bucket: Bucket) -> String {
        format!("{}:ucoupon:owners", self.tag(bucket))
    }

    /// `{b}:ucoupon:index` — userCouponId → "couponId:userId" of the users of bucket `b`.
    pub fn user_coupon_index(&self, bucket: Bucket) -> String {
        format!("{}:ucoupon:index", self.tag(bucket))
    }

    /// `{u}:user:{user}:coupons` — ids of the campaigns a user holds a coupon of (set).
    pub fn user_coupons(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}:coupons", self.tag(self.of_user(user_id)))
    }

    /// `{u}:user:{user}:tgen` — the user's token generation (tokens below it are revoked);
    /// `-1` with a TTL means "no such user".
    pub fn token_generation(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}:tgen", self.tag(self.of_user(user_id)))
    }

    /// `{b}:logouts` — bucket `b`'s shard channel (SPUBLISH): session_gen.lua announces every
    /// raise of a known generation of the bucket's users there, and each instance its own
    /// heartbeats ([`crate::cache::logouts`]).
    pub fn logouts(&self, bucket: Bucket) -> String {
        format!("{}:logouts", self.tag(bucket))
    }

    /// `{u}:user:{user}:orders` — a user's recent orders by creation time (zset).
    pub fn user_orders(&self, user_id: i64) -> String {
        format!("{}:user:{user_id}:orders", self.tag(self.of_user(user_id)))
    }

    /// `{b}:order:{order}` — an order (hash) while it is hot, in the bucket its id names.
    pub fn order(&self, bucket: Bucket, order_id: &str) -> String {
        format!("{}:order:{order_id}", self.tag(bucket))
    }

    /// `{b}:ordervoid:{order}` — an order id the reservation sweeper gave up on before the order
    /// was created: `order_reserve.lua` refuses to create it afterwards.
    pub fn order_void(&self, bucket: Bucket, order_id: &str) -> String {
        format!("{}:ordervoid:{order_id}", self.tag(bucket))
    }

    /// `{b}:orders:deadlines` — pending orders of bucket `b` by payment deadline (zset, ms).
    pub fn order_deadlines(&self, bucket: Bucket) -> String {
        format!("{}:orders:deadlines", self.tag(bucket))
    }

    /// `{b}:nocoupon` — never written; stands in KEYS for "no coupon" in bucket `b`.
    pub fn no_coupon(&self, bucket: Bucket) -> String {
        format!("{}:nocoupon", self.tag(bucket))
    }

    // ---- every bucket: the settlement stream ------------------------------------------------

    /// `{b}:events` — the settlement stream of bucket `b`: every decision taken in the bucket is
    /// appended to it.
    pub fn events(&self, bucket: Bucket) -> String {
        format!("{}:events", self.tag(bucket))
    }

    /// `{b}:events:dead` — entries of bucket `b`'s stream the worker gave up on (poison).
    pub fn dead_letters(&self, bucket: Bucket) -> String {
        format!("{}:events:dead", self.tag(bucket))
    }

    /// `{b}:events:failures` — hash of stream id → failed attempts of bucket `b`'s stream.
    pub fn event_failures(&self, bucket: Bucket) -> String {
        format!("{}:events:failures", self.tag(bucket))
    }

    // ---- a product's bucket ------------------------------------------------------------------

    /// `{q}:stock:{product}` — units that can be ordered now.
    pub fn stock(&self, product_id: i64) -> String {
        format!(
            "{}:stock:{product_id}",
            self.tag(self.of_product(product_id))
        )
    }

    /// `{q}:product:{product}` — a product's name, price and version (hash; pricing cache).
    pub fn product(&self, product_id: i64) -> String {
        format!(
            "{}:product:{product_id}",
            self.tag(self.of_product(product_id))
        )
    }

    /// `{q}:op:restock:{operation}` — marker that a restock of a product was applied.
    pub fn restock_marker(&self, product_id: i64, operation_id: &str) -> String {
        format!(
            "{}:op:restock:{operation_id}",
            self.tag(self.of_product(product_id))
        )
    }

    /// `{b}:resv:{order}` — the units an order holds of the products of bucket `b` (JSON), or
    /// `done` once committed or released.
    pub fn reservation(&self, bucket: Bucket, order_id: &str) -> String {
        format!("{}:resv:{order_id}", self.tag(bucket))
    }

    /// `{b}:resv:due` — live reservations of bucket `b` by the time the sweeper resolves them.
    pub fn reservation_deadlines(&self, bucket: Bucket) -> String {
        format!("{}:resv:due", self.tag(bucket))
    }

    /// `{b}:pop:{hour}` — units sold per product of bucket `b` in one UTC hour (zset).
    pub fn popularity(&self, bucket: Bucket, hour: i64) -> String {
        format!("{}:pop:{hour}", self.tag(bucket))
    }

    // ---- a campaign's bucket -----------------------------------------------------------------

    /// `{c}:coupon:{coupon}` — a campaign's terms and issued count (hash).
    pub fn coupon(&self, coupon_id: i64) -> String {
        format!(
            "{}:coupon:{coupon_id}",
            self.tag(self.of_campaign(coupon_id))
        )
    }

    /// `{c}:coupon:{coupon}:users` — userId → "userCouponId|issuedAt|expiresAt|requestId".
    pub fn coupon_users(&self, coupon_id: i64) -> String {
        format!(
            "{}:coupon:{coupon_id}:users",
            self.tag(self.of_campaign(coupon_id))
        )
    }

    /// `{b}:seq:ucoupon` — bucket `b`'s userCouponId sequence (id = n × B + b).
    pub fn user_coupon_seq(&self, bucket: Bucket) -> String {
        format!("{}:seq:ucoupon", self.tag(bucket))
    }

    // ---- a subject's bucket ------------------------------------------------------------------

    /// `{s}:rl:{budget}:{subject}` — one budget's bucket of one subject (hash: tat, rid, res;
    /// `lua/rate_gcra.lua`), in the subject's bucket.
    pub fn rate(&self, budget: &str, subject: &str) -> String {
        format!(
            "{}:rl:{budget}:{subject}",
            self.tag(self.of_subject(subject))
        )
    }

    /// `{u}:rl:{budget}:u{user}` — one budget's bucket of one user, in the user's bucket (so a
    /// script of the user's, `order_pay.lua`, can take from it in the same call).
    pub fn user_rate(&self, budget: &str, user_id: i64) -> String {
        format!("{}:rl:{budget}:u{user_id}", self.tag(self.of_user(user_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_s_keys_share_its_bucket_s_slot() {
        let keys = Keys::new("fm", 16);
        assert_eq!(slot(&keys.balance(7)), slot(&keys.user_orders(23)));
        assert_eq!(slot(&keys.stock(3)), slot(&keys.product(19)));
        assert_ne!(slot(&keys.balance(7)), slot(&keys.balance(8)));
        assert!(keys.stock(7).starts_with("{fm:b7."));
        assert_eq!(keys.session("ab"), "{fm}:session:ab");
    }

    #[test]
    fn bucket_slots_split_the_slot_space_evenly() {
        for count in [1u16, 3, 16, 64, 1024] {
            let keys = Keys::new("fm", count);
            let width = SLOTS / usize::from(count);
            for bucket in keys.buckets() {
                let at = usize::from(slot(&keys.events(bucket)));
                assert_eq!(
                    at / width,
                    usize::from(bucket.0),
                    "{count} buckets: {bucket}"
                );
            }
        }
    }

    #[test]
    fn an_order_id_names_its_user_s_bucket() {
        let keys = Keys::new("fm", 16);
        for user in [0, 1, 15, 16, 12_345] {
            let id = keys.new_order_id(user);
            assert!(uuid::Uuid::parse_str(&id).is_ok());
            assert_eq!(keys.of_order(&id), Some(keys.of_user(user)));
        }
        let id = uuid::Uuid::parse_str(&keys.new_order_id(7)).expect("uuid");
        assert_eq!(id.get_version_num(), 7, "order ids stay UUIDv7 (API.md)");
        assert_eq!(keys.of_order("not-an-id"), None);
        assert_eq!(
            keys.of_order("0190a3f0-0000-7000-8000-00000000ffff"),
            None,
            "an id naming no bucket of this deployment"
        );
    }
}
