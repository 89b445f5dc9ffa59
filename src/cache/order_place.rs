//! Order creation in one call (order_place.lua): the user's order budget, the stock holds in
//! every product bucket and the order in the user's bucket, where Redis lets one script reach
//! all of them ([`super::Cache::one_call`]). Elsewhere the same steps are separate calls:
//! [`super::ratelimit`], [`super::reservations`] and [`super::orders`].

use super::call::{self, Reply, ScriptCall};
use super::orders::{reserve_outcome, ReserveCall, ReserveOutcome};
use super::ratelimit::TakeRequest;
use super::reservations::{self, hold_outcome, push_hold_args, push_hold_keys, HoldRequest};
use super::scripts::{LuaScript, Scripts};
use super::{Cache, Keys};

/// What order_place.lua decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// Over the user's order budget: nothing was held or created.
    Throttled {
        /// Milliseconds until the next request is allowed.
        retry_after_ms: u64,
    },
    /// Some product bucket did not hold: each bucket's outcome, in the order of the holds
    /// given. No order was created; the buckets that held keep their units until released.
    NotHeld(Vec<reservations::ReserveOutcome>),
    /// Every bucket held (now, or by an earlier send): the order step's outcome.
    Ordered(ReserveOutcome),
}

/// One call of order_place.lua.
pub struct PlaceCall<'a> {
    /// The order to create, as order_reserve.lua takes it.
    pub order: &'a ReserveCall<'a>,
    /// The order's holds, one per product bucket, each under the order's id.
    pub holds: &'a [HoldRequest],
    /// The request against the user's order budget (a key in the user's bucket).
    pub budget: &'a TakeRequest,
}

impl ScriptCall for PlaceCall<'_> {
    type Outcome = PlaceOutcome;

    fn script(scripts: &Scripts) -> &LuaScript {
        &scripts.order_place
    }

    fn keys(&self, k: &Keys) -> Vec<String> {
        let mut keys = self.order.keys(k);
        keys.push(self.budget.key.clone());
        for hold in self.holds {
            let bucket = hold.bucket(k);
            keys.push(k.reservation_deadlines(bucket));
            push_hold_keys(k, bucket, hold, &mut keys);
        }
        keys
    }

    fn args(&self) -> anyhow::Result<Vec<String>> {
        anyhow::ensure!(
            !self.holds.is_empty(),
            "an order holds units in some bucket"
        );
        let mut args = self.order.args()?;
        args.extend([
            self.budget.rate.interval_us.to_string(),
            self.budget.rate.burst.to_string(),
            self.budget.request_id.clone(),
            self.holds.len().to_string(),
        ]);
        for hold in self.holds {
            push_hold_args(hold, &mut args)?;
        }
        Ok(args)
    }

    fn decode(reply: Reply) -> anyhow::Result<PlaceOutcome> {
        Ok(match reply.int(0)? {
            -9 => PlaceOutcome::Throttled {
                retry_after_ms: reply.int(1)?.max(1) as u64,
            },
            -10 => PlaceOutcome::NotHeld(
                reply
                    .rows(4)?
                    .skip(1)
                    .map(|at| hold_outcome(&reply, at))
                    .collect::<anyhow::Result<_>>()?,
            ),
            _ => PlaceOutcome::Ordered(reserve_outcome(&reply)?),
        })
    }
}

/// Runs order_place.lua. The caller has made sure Redis allows the call ([`Cache::one_call`]
/// of the user's and every product's bucket) and that each hold's lines are of one bucket.
pub async fn place(cache: &Cache, call: &PlaceCall<'_>) -> anyhow::Result<PlaceOutcome> {
    let keys = &cache.keys;
    let mut buckets = vec![keys.of_user(call.order.user_id)];
    for hold in call.holds {
        let bucket = hold.bucket(keys);
        anyhow::ensure!(
            hold.lines
                .iter()
                .all(|(product, _)| keys.of_product(*product) == bucket),
            "one hold of order_place.lua holds products of one bucket"
        );
        buckets.push(bucket);
    }
    anyhow::ensure!(
        cache.one_call(&buckets),
        "order_place.lua reaches buckets one call may not"
    );
    let outcome = call::run(cache, call).await?;
    if let PlaceOutcome::NotHeld(holds) = &outcome {
        anyhow::ensure!(
            holds.len() == call.holds.len(),
            "order_place.lua answered {} of {} holds",
            holds.len(),
            call.holds.len()
        );
    }
    Ok(outcome)
}
