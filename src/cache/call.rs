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
    use crate::cache::coupons::{CampaignTerms, IssueCall, IssueRequest, LoadCall};
    use crate::cache::orders::{PayCall, ReleaseCall, ReleaseMode, ReserveCall};
    use crate::cache::products::{ProductTerms, PutCall};
    use crate::cache::ratelimit::{Rate, TakeCall, TakeRequest};
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

    #[test]
    fn every_script_call_touches_keys_of_one_slot() {
        let k = Keys::new("fm");
        let lines = vec![
            OrderLine {
                product_id: 1,
                name: "a".into(),
                unit_price: 5,
                quantity: 1,
                line_total: 5,
            },
            OrderLine {
                product_id: 99,
                name: "b".into(),
                unit_price: 5,
                quantity: 2,
                line_total: 10,
            },
        ];
        let order = Order {
            id: "o1".into(),
            user_id: 42,
            status: OrderStatus::Pending,
            items: lines.clone(),
            subtotal: 15,
            discount: 0,
            total: 15,
            user_coupon_id: Some(3),
            created_at_ms: 1,
            expires_at_ms: 2,
            paid_at_ms: None,
        };
        for coupon in [None, Some((3, 7, 0))] {
            let reserve = ReserveCall {
                order_id: "o1",
                user_id: 42,
                items: &lines,
                subtotal: 15,
                discount: 0,
                coupon,
                now_ms: 1,
                expires_at_ms: 2,
                idempotency_key: "k",
            };
            one_slot("order_reserve", reserve.keys(&k));
            let pay = PayCall {
                order: &order,
                user_id: 42,
                now_ms: 1,
                payment_id: "p",
                idempotency_key: "k",
                coupon_id: coupon.map(|c| c.1),
            };
            one_slot("order_pay", pay.keys(&k));
            for mode in [ReleaseMode::Expire, ReleaseMode::Cancel { user_id: 42 }] {
                let release = ReleaseCall {
                    order: &order,
                    coupon_id: coupon.map(|c| c.1),
                    mode,
                    now_ms: 1,
                    event_id: "e".into(),
                };
                one_slot("order_release", release.keys(&k));
            }
        }
        let charge = ChargeCall {
            user_id: 42,
            amount: 1,
            max_balance: 10,
            idempotency_key: "k",
            event_id: "e",
            now_ms: 1,
        };
        one_slot("charge", charge.keys(&k));
        let requests = [
            IssueRequest::new(7, 42, "r".into(), 1),
            IssueRequest::new(8, 43, "s".into(), 1),
        ];
        let issue = IssueCall {
            requests: &requests,
        };
        one_slot("coupon_issue", issue.keys(&k));
        let terms = CampaignTerms {
            coupon_id: 7,
            total: 1,
            starts_ms: 0,
            ends_ms: 1,
            valid_ms: 1,
        };
        one_slot(
            "coupon_load",
            LoadCall {
                terms: &terms,
                issued_if_new: 0,
            }
            .keys(&k),
        );
        let add = AddCall {
            product_id: 1,
            units: 1,
            operation_id: "op",
            now_ms: 1,
            event_id: "e".into(),
        };
        one_slot("stock_add", add.keys(&k));
        let product = ProductTerms {
            name: "a".into(),
            price: 1,
        };
        one_slot(
            "product_put",
            PutCall {
                product_id: 1,
                terms: &product,
                version: 1,
            }
            .keys(&k),
        );
        one_slot(
            "session_gen",
            RaiseCall {
                user_id: 42,
                generation: 1,
            }
            .keys(&k),
        );
        let takes = [
            TakeRequest {
                key: k.rate("login", "1.2.3.4"),
                rate: Rate::per_second(1, 1),
                request_id: "r".into(),
            },
            TakeRequest {
                key: k.rate("coupon-issue", "42"),
                rate: Rate::per_second(1, 1),
                request_id: "s".into(),
            },
        ];
        let take = TakeCall { requests: &takes };
        one_slot("rate_gcra", take.keys(&k));
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
