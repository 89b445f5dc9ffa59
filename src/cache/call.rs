//! The typed Rust↔Lua boundary: each script is one [`ScriptCall`] — an input struct whose keys
//! and arguments are computed from it, an outcome enum, and a strict decoder of the reply.
//!
//! Nothing positional leaks out of the implementing module, and a reply that does not have the
//! promised shape is an error naming the script, never a default value (a damaged reply must
//! not become "an order of user 0").

use fred::types::Value;

use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// One call of one Lua script, as a value.
pub trait ScriptCall {
    /// What the call decided.
    type Outcome;

    /// The script this call runs.
    fn script(scripts: &Scripts) -> &LuaScript;

    /// Every key the script touches, in the order the script's header lists them.
    fn keys(&self, keys: &Keys) -> Vec<String>;

    /// The script's arguments, in the order its header lists them.
    fn args(&self) -> anyhow::Result<Vec<String>>;

    /// Turns the reply into the outcome; any other shape is an error.
    fn decode(reply: Reply) -> anyhow::Result<Self::Outcome>;

    /// Whether the call decides something a client or MySQL is told about, so that it must be
    /// on the required replicas before it is answered (`false` for caches of MySQL's data and
    /// for rate limits, whose loss in a failover costs nothing).
    const REPLICATED: bool = true;
}

/// Runs one typed call against Redis; a replicated call returns only once the required
/// replicas hold its effects ([`super::durable`]).
pub async fn run<C: ScriptCall>(cache: &Cache, call: &C) -> anyhow::Result<C::Outcome> {
    let script = C::script(&cache.scripts);
    let keys = call.keys(&cache.keys);
    let args = call.args()?;
    let reply: Value = match &cache.durable {
        Some(durable) if C::REPLICATED => durable.call(script, keys, args).await?,
        _ => script.call(cache.client(), keys, args).await?,
    };
    C::decode(Reply::new(script.name(), reply))
}

/// Runs a call that decides `expected` requests, and returns one outcome per request in their
/// order; any other count is an error naming the script.
pub async fn run_each<C, O>(cache: &Cache, call: &C, expected: usize) -> anyhow::Result<Vec<O>>
where
    C: ScriptCall<Outcome = Vec<O>>,
{
    let outcomes = run(cache, call).await?;
    anyhow::ensure!(
        outcomes.len() == expected,
        "{} decided {} of {expected} requests",
        C::script(&cache.scripts).name(),
        outcomes.len()
    );
    Ok(outcomes)
}

/// A script's array reply, read strictly: a missing or mistyped element is an error that names
/// the script and the position.
#[derive(Debug)]
pub struct Reply {
    script: &'static str,
    values: Vec<Value>,
}

impl Reply {
    /// Wraps the reply of `script` (a scalar reply reads as an array of one).
    pub fn new(script: &'static str, reply: Value) -> Self {
        let values = match reply {
            Value::Array(values) => values,
            other => vec![other],
        };
        Self { script, values }
    }

    /// The offsets of the reply's rows of `width` elements each (a batch call answers one row per
    /// request); an empty reply, or one that does not split into whole rows, is an error.
    pub fn rows(&self, width: usize) -> anyhow::Result<std::iter::StepBy<std::ops::Range<usize>>> {
        anyhow::ensure!(
            width > 0 && !self.values.is_empty() && self.values.len() % width == 0,
            "{} answered {} elements, not {width} per request",
            self.script,
            self.values.len()
        );
        Ok((0..self.values.len()).step_by(width))
    }

    /// One flag per request: each element `1` (yes) or `0` (no); anything else is an error.
    pub fn flags(&self) -> anyhow::Result<Vec<bool>> {
        self.rows(1)?
            .map(|at| match self.int(at)? {
                1 => Ok(true),
                0 => Ok(false),
                _ => Err(self.unknown_status()),
            })
            .collect()
    }

    /// The script that answered (for error messages).
    pub fn script(&self) -> &'static str {
        self.script
    }

    /// Element `i` as an integer.
    pub fn int(&self, i: usize) -> anyhow::Result<i64> {
        match self.values.get(i) {
            Some(Value::Integer(n)) => Ok(*n),
            Some(other) => other
                .as_string()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.malformed(i, "an integer")),
            None => Err(self.malformed(i, "an integer")),
        }
    }

    /// Element `i` as text.
    pub fn text(&self, i: usize) -> anyhow::Result<String> {
        match self.values.get(i) {
            Some(Value::Null) | None => Err(self.malformed(i, "text")),
            Some(other) => other.as_string().ok_or_else(|| self.malformed(i, "text")),
        }
    }

    /// Element `i` parsed as one of a vocabulary's words.
    pub fn word<W>(&self, i: usize) -> anyhow::Result<W>
    where
        W: std::str::FromStr,
        W::Err: std::fmt::Display,
    {
        let text = self.text(i)?;
        text.parse()
            .map_err(|e| anyhow::anyhow!("{} reply element {i}: {e}", self.script))
    }

    /// The error for an unknown status code in element 0.
    pub fn unknown_status(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "{} answered an unknown reply {:?}",
            self.script,
            self.values
        )
    }

    fn malformed(&self, i: usize, expected: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{} reply element {i} is not {expected}: {:?}",
            self.script,
            self.values.get(i)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::coupons::{
        CampaignTerms, GrantCall, IssueCall, IssueRequest, IssuedCoupon, LoadCall,
    };
    use crate::cache::orders::{PayCall, ReleaseCall, ReleaseMode, ReserveCall};
    use crate::cache::products::{ProductTerms, PutCall};
    use crate::cache::ratelimit::{Rate, TakeCall, TakeRequest};
    use crate::cache::reservations::{
        lines_by_bucket, HoldCall, HoldRequest, Settle, SettleCall, SettleRequest, VoidCall,
    };
    use crate::cache::session::RaiseCall;
    use crate::cache::stock::AddCall;
    use crate::cache::wallet::ChargeCall;
    use crate::domain::Order;
    use crate::events::{OrderLine, OrderStatus};

    /// Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, mod 16384.
    fn slot(key: &str) -> u16 {
        let tagged = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                _ => key,
            },
            None => key,
        };
        let mut crc: u16 = 0;
        for byte in tagged.bytes() {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    fn one_slot(name: &str, keys: Vec<String>) {
        let first = slot(&keys[0]);
        for key in &keys {
            assert_eq!(
                slot(key),
                first,
                "{name}: {key} is in another slot than {}",
                keys[0]
            );
        }
    }

    #[test]
    fn the_slot_function_matches_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 0x31C3);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo"), 12182);
    }

    fn line(product_id: i64, quantity: i64) -> OrderLine {
        OrderLine {
            product_id,
            name: format!("p{product_id}"),
            unit_price: 5,
            quantity,
            line_total: 5 * quantity,
        }
    }

    /// Every call the code can make, for owners spread over the buckets: each touches keys of
    /// one slot, and the calls of different owners spread over many slots.
    #[test]
    fn every_script_call_touches_keys_of_one_slot() {
        let k = Keys::new("fm", 16);
        let buckets = u64::from(k.bucket_count());
        let mut slots = std::collections::HashSet::new();
        let mut check = |name: &str, keys: Vec<String>| {
            slots.insert(slot(&keys[0]));
            one_slot(name, keys);
        };
        for owner in 0..40i64 {
            let user = owner * 7 + 1;
            let order_id = k.new_order_id(user);
            let lines = vec![line(owner, 1), line(owner + 16, 2), line(owner + 5, 1)];
            let order = Order {
                id: order_id.clone(),
                user_id: user,
                status: OrderStatus::Pending,
                items: lines.clone(),
                subtotal: 20,
                discount: 0,
                total: 20,
                user_coupon_id: Some(3),
                created_at_ms: 1,
                expires_at_ms: 2,
                paid_at_ms: None,
            };
            for coupon in [None, Some((3, owner + 2, 0))] {
                let reserve = ReserveCall {
                    order_id: &order_id,
                    user_id: user,
                    items: &lines,
                    subtotal: 20,
                    discount: 0,
                    coupon,
                    now_ms: 1,
                    expires_at_ms: 2,
                    idempotency_key: "k",
                };
                check("order_reserve", reserve.keys(&k));
                let pay = PayCall {
                    order_id: &order_id,
                    user_id: user,
                    now_ms: 1,
                    payment_id: "p",
                    idempotency_key: "k",
                    coupon: coupon.map(|c| (c.0, c.1)),
                    budget: Some(TakeRequest {
                        key: k.user_rate("payments", user),
                        rate: Rate::per_second(1, 1),
                        request_id: "r".into(),
                    }),
                };
                check("order_pay", pay.keys(&k));
                for mode in [ReleaseMode::Expire, ReleaseMode::Cancel { user_id: user }] {
                    let release = ReleaseCall {
                        order: &order,
                        coupon_id: coupon.map(|c| c.1),
                        mode,
                        now_ms: 1,
                        event_id: "e".into(),
                    };
                    check("order_release", release.keys(&k));
                }
            }
            // The stock steps of the saga: the order's lines grouped by product bucket.
            for (bucket, held) in &lines_by_bucket(&k, &lines) {
                // A batch of two orders' holds in one product bucket.
                let holds = [
                    HoldRequest {
                        order_id: order_id.clone(),
                        user_id: user,
                        due_ms: 1,
                        lines: held.clone(),
                    },
                    HoldRequest {
                        order_id: k.new_order_id(user + 1),
                        user_id: user + 1,
                        due_ms: 1,
                        lines: held.clone(),
                    },
                ];
                check("stock_reserve", HoldCall { requests: &holds }.keys(&k));
                let products: Vec<i64> = held.iter().map(|(p, _)| *p).collect();
                let settles: Vec<SettleRequest> =
                    [Settle::Commit { hour: 490_000 }, Settle::Release]
                        .into_iter()
                        .map(|how| SettleRequest {
                            order_id: order_id.clone(),
                            products: products.clone(),
                            how,
                        })
                        .collect();
                let settle = SettleCall {
                    bucket: *bucket,
                    requests: &settles,
                };
                check("stock_settle", settle.keys(&k));
            }
            let bucket = k.of_order(&order_id).expect("the id names a bucket");
            check(
                "order_void",
                VoidCall {
                    bucket,
                    order_id: &order_id,
                }
                .keys(&k),
            );
            let charge = ChargeCall {
                user_id: user,
                amount: 1,
                max_balance: 10,
                idempotency_key: "k",
                event_id: "e",
                now_ms: 1,
            };
            check("charge", charge.keys(&k));
            // A batch of one bucket's campaigns, and a batch of one bucket's holders.
            let requests = [
                IssueRequest::new(owner, user, "r".into(), 1),
                IssueRequest::new(owner + 16, user + 1, "s".into(), 1),
            ];
            let issue = IssueCall {
                buckets: k.bucket_count(),
                bucket: k.of_campaign(owner),
                requests: &requests,
            };
            check("coupon_issue", issue.keys(&k));
            let coupon = |user_id, coupon_id| IssuedCoupon {
                user_coupon_id: 1,
                coupon_id,
                user_id,
                issued_at_ms: 1,
                expires_at_ms: 2,
            };
            let coupons = [coupon(user, owner), coupon(user + 16, owner + 1)];
            check("coupon_grant", GrantCall { coupons: &coupons }.keys(&k));
            let terms = CampaignTerms {
                coupon_id: owner,
                total: 1,
                starts_ms: 0,
                ends_ms: 1,
                valid_ms: 1,
            };
            check(
                "coupon_load",
                LoadCall {
                    terms: &terms,
                    issued_if_new: 0,
                }
                .keys(&k),
            );
            let add = AddCall {
                product_id: owner,
                units: 1,
                operation_id: "op",
                now_ms: 1,
                event_id: "e".into(),
            };
            check("stock_add", add.keys(&k));
            let product = ProductTerms {
                name: "a".into(),
                price: 1,
            };
            check(
                "product_put",
                PutCall {
                    product_id: owner,
                    terms: &product,
                    version: 1,
                }
                .keys(&k),
            );
            check(
                "session_gen",
                RaiseCall {
                    user_id: user,
                    generation: 1,
                }
                .keys(&k),
            );
            // A batch of rate checks of one subject bucket (as the per-bucket batcher forms).
            let subject = format!("10.0.0.{owner}");
            let same: Vec<String> = (0..200)
                .map(|n| format!("{n}"))
                .filter(|s| k.of_subject(s) == k.of_subject(&subject))
                .take(2)
                .collect();
            let takes: Vec<TakeRequest> = std::iter::once(&subject)
                .chain(&same)
                .map(|s| TakeRequest {
                    key: k.rate("orders", s),
                    rate: Rate::per_second(1, 1),
                    request_id: "r".into(),
                })
                .collect();
            check("rate_gcra", TakeCall { requests: &takes }.keys(&k));
        }
        assert_eq!(
            slots.len() as u64,
            buckets,
            "the calls of 40 owners reach every bucket's slot"
        );
    }

    #[test]
    fn a_batch_reply_splits_into_whole_rows_or_is_an_error() {
        let ints = |n: i64| Value::Array((0..n).map(Value::Integer).collect());
        let rows: Vec<usize> = Reply::new("x.lua", ints(8))
            .rows(4)
            .expect("rows")
            .collect();
        assert_eq!(rows, vec![0, 4]);
        assert!(
            Reply::new("x.lua", ints(7)).rows(4).is_err(),
            "a partial row"
        );
        assert!(
            Reply::new("x.lua", ints(0)).rows(4).is_err(),
            "no row at all"
        );
    }

    #[test]
    fn a_short_or_mistyped_reply_is_an_error_not_a_zero() {
        let reply = Reply::new("x.lua", Value::Array(vec![Value::Integer(1), Value::Null]));
        assert_eq!(reply.int(0).expect("status"), 1);
        assert!(reply.int(1).is_err());
        assert!(reply.text(1).is_err());
        assert!(reply.int(2).is_err());
        let err = reply.int(5).expect_err("missing").to_string();
        assert!(err.contains("x.lua"), "{err}");
    }
}
