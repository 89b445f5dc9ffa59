//! The Lua scripts, embedded from `lua/` at compile time, loaded once and called by EVALSHA
//! (re-loaded automatically on NOSCRIPT, e.g. after a Redis restart). A script that shares a
//! step with another is the step's text from `lua/lib/` followed by its own (one copy of each
//! algorithm): the rate budget (`gcra.lua`), the coupon issue and grant, the stock hold and the
//! order's creation.

use anyhow::Context;
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{FromValue, MultipleKeys, MultipleValues};

/// One named script.
#[derive(Clone)]
pub struct LuaScript {
    name: &'static str,
    script: Script,
}

impl LuaScript {
    fn new(name: &'static str, source: &'static str) -> Self {
        Self {
            name,
            script: Script::from_lua(source),
        }
    }

    /// The script's file name (for errors and metrics).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the script by EVALSHA, loading it first if Redis does not know it.
    pub async fn call<R, K, V>(&self, client: &Client, keys: K, args: V) -> anyhow::Result<R>
    where
        R: FromValue,
        K: Into<MultipleKeys> + Send,
        V: TryInto<MultipleValues> + Send,
        V::Error: Into<fred::error::Error> + Send,
    {
        let started = std::time::Instant::now();
        let reply = self.script.evalsha_with_reload(client, keys, args).await;
        self.record(reply.as_ref().map(|_| ()), started.elapsed());
        reply.with_context(|| format!("lua script {} failed", self.name))
    }

    /// The script's SHA-1, for EVALSHA in a pipeline.
    pub fn sha1(&self) -> &str {
        self.script.sha1()
    }

    /// Loads the script on every primary (after a NOSCRIPT).
    pub async fn load(&self, client: &Client) -> anyhow::Result<()> {
        self.script
            .load(client)
            .await
            .with_context(|| format!("failed to load lua script {}", self.name))
    }

    /// Counts one call of the script and its latency by outcome (`ok`, `timeout`, `error`).
    pub fn record(&self, result: Result<(), &fred::error::Error>, elapsed: std::time::Duration) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(e) if *e.kind() == fred::error::ErrorKind::Timeout => "timeout",
            Err(_) => "error",
        };
        crate::observe::record_lua_call(self.name, outcome, elapsed);
    }
}

/// Every script the engine uses.
#[derive(Clone)]
pub struct Scripts {
    /// `lua/stock_add.lua`: add units to a product's available stock, once per operation id.
    pub stock_add: LuaScript,
    /// `lua/charge.lua`: charge a balance and append `balance.charged`, once per key.
    pub charge: LuaScript,
    /// `lua/coupon_load.lua`: put a campaign's terms into Redis.
    pub coupon_load: LuaScript,
    /// `lua/coupon_issue.lua`: first-come issue of one coupon per user.
    pub coupon_issue: LuaScript,
    /// `lua/coupon_claim.lua`: budget, issue and grant of a coupon in one call.
    pub coupon_claim: LuaScript,
    /// `lua/order_reserve.lua`: reserve stock and coupon for a new order.
    pub order_reserve: LuaScript,
    /// `lua/order_place.lua`: budget, stock holds and order in one call.
    pub order_place: LuaScript,
    /// `lua/order_pay.lua`: settle balance, order, coupon and ranking together.
    pub order_pay: LuaScript,
    /// `lua/order_release.lua`: expire or cancel a pending order.
    pub order_release: LuaScript,
    /// `lua/product_put.lua`: cache a product's name and price, newest version wins.
    pub product_put: LuaScript,
    /// `lua/session_gen.lua`: raise a user's token generation (never lower it).
    pub session_gen: LuaScript,
    /// `lua/rate_gcra.lua`: one request against a budget shared by every instance.
    pub rate_gcra: LuaScript,
    /// `coupon_grant.lua`: step 2 of the coupon saga, the coupon into its holder's bucket.
    pub coupon_grant: LuaScript,
    /// `stock_reserve.lua`: step 1 of the order saga, an order's units in one product bucket.
    pub stock_reserve: LuaScript,
    /// `stock_settle.lua`: commit or release an order's reservation in one product bucket.
    pub stock_settle: LuaScript,
    /// `order_void.lua`: the reservation sweeper's "what became of this order?".
    pub order_void: LuaScript,
}

impl Scripts {
    /// Builds the registry from the embedded sources.
    pub fn new() -> Self {
        Self {
            stock_add: LuaScript::new("stock_add.lua", include_str!("../../lua/stock_add.lua")),
            charge: LuaScript::new("charge.lua", include_str!("../../lua/charge.lua")),
            coupon_load: LuaScript::new(
                "coupon_load.lua",
                include_str!("../../lua/coupon_load.lua"),
            ),
            coupon_issue: LuaScript::new(
                "coupon_issue.lua",
                concat!(
                    include_str!("../../lua/lib/coupon_issue.lua"),
                    include_str!("../../lua/coupon_issue.lua")
                ),
            ),
            coupon_claim: LuaScript::new(
                "coupon_claim.lua",
                concat!(
                    include_str!("../../lua/lib/gcra.lua"),
                    include_str!("../../lua/lib/coupon_issue.lua"),
                    include_str!("../../lua/lib/coupon_grant.lua"),
                    include_str!("../../lua/coupon_claim.lua")
                ),
            ),
            order_reserve: LuaScript::new(
                "order_reserve.lua",
                concat!(
                    include_str!("../../lua/lib/order_reserve.lua"),
                    include_str!("../../lua/order_reserve.lua")
                ),
            ),
            order_place: LuaScript::new(
                "order_place.lua",
                concat!(
                    include_str!("../../lua/lib/gcra.lua"),
                    include_str!("../../lua/lib/stock_hold.lua"),
                    include_str!("../../lua/lib/order_reserve.lua"),
                    include_str!("../../lua/order_place.lua")
                ),
            ),
            order_pay: LuaScript::new(
                "order_pay.lua",
                concat!(
                    include_str!("../../lua/lib/gcra.lua"),
                    include_str!("../../lua/order_pay.lua")
                ),
            ),
            order_release: LuaScript::new(
                "order_release.lua",
                include_str!("../../lua/order_release.lua"),
            ),
            product_put: LuaScript::new(
                "product_put.lua",
                include_str!("../../lua/product_put.lua"),
            ),
            session_gen: LuaScript::new(
                "session_gen.lua",
                include_str!("../../lua/session_gen.lua"),
            ),
            rate_gcra: LuaScript::new(
                "rate_gcra.lua",
                concat!(
                    include_str!("../../lua/lib/gcra.lua"),
                    include_str!("../../lua/rate_gcra.lua")
                ),
            ),
            coupon_grant: LuaScript::new(
                "coupon_grant.lua",
                concat!(
                    include_str!("../../lua/lib/coupon_grant.lua"),
                    include_str!("../../lua/coupon_grant.lua")
                ),
            ),
            stock_reserve: LuaScript::new(
                "stock_reserve.lua",
                concat!(
                    include_str!("../../lua/lib/stock_hold.lua"),
                    include_str!("../../lua/stock_reserve.lua")
                ),
            ),
            stock_settle: LuaScript::new(
                "stock_settle.lua",
                include_str!("../../lua/stock_settle.lua"),
            ),
            order_void: LuaScript::new("order_void.lua", include_str!("../../lua/order_void.lua")),
        }
    }

    fn all(&self) -> Vec<&LuaScript> {
        vec![
            &self.stock_add,
            &self.charge,
            &self.coupon_load,
            &self.coupon_issue,
            &self.coupon_claim,
            &self.order_reserve,
            &self.order_place,
            &self.order_pay,
            &self.order_release,
            &self.product_put,
            &self.session_gen,
            &self.rate_gcra,
            &self.coupon_grant,
            &self.stock_reserve,
            &self.stock_settle,
            &self.order_void,
        ]
    }

    /// Loads every script into Redis's script cache.
    pub async fn load_all(&self, client: &Client) -> anyhow::Result<()> {
        for script in self.all() {
            script
                .script
                .load(client)
                .await
                .with_context(|| format!("failed to load lua script {}", script.name))?;
        }
        Ok(())
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}
