-- order_place.lua: order creation in one call, where Redis lets one call reach the user's
-- bucket and every product bucket of the order (a standalone server, or a Cluster where they
-- are all one slot; src/cache/mod.rs `Cache::one_call`). In order: take the user's order budget
-- (lib/gcra.lua), hold the units in each product bucket (lib/stock_hold.lua), then create the
-- order and reserve its coupon (lib/order_reserve.lua); the three texts precede this one.
-- Elsewhere the same steps are rate_gcra.lua, stock_reserve.lua per product bucket and
-- order_reserve.lua. A refusal stops the call where it happens, and what follows a refusal is
-- the caller's, exactly as after those calls: a stock refusal or an order refusal makes the
-- caller release this order id's units (stock_settle.lua). Safe to re-send: each step is (the
-- budget by its request id, the holds by the order id, the order by its idempotency key).
--
-- KEYS[1..7]   order_reserve.lua's keys       KEYS[8]  {u}:rl:orders:u{userId} (the budget)
-- then per product bucket g: {q}:resv:due, {q}:resv:{orderId}, one {q}:stock:{productId} per
--              line of the bucket
-- ARGV[1..13]  order_reserve.lua's arguments
-- ARGV[14]     budget: emission interval, µs   ARGV[15]  burst   ARGV[16]  budget request id
-- ARGV[17]     number of product buckets G
-- then per product bucket: order id, user id, sweeper time (Unix ms), line count m, then m pairs
--              of product id and quantity
--
-- Returns:
--   {-9, retryAfterMs}          over the order budget (nothing changed but the budget's replay
--                               record)
--   {-10, 0, 0, 0, then per product bucket: status, productId, requested, available}
--                               some bucket did not hold (statuses of lib/stock_hold.lua; the
--                               buckets that held keep their units until the caller releases)
--   order_reserve.lua's reply   every bucket held (now, or by an earlier send)
-- A call whose keys and arguments do not match is refused before anything changes.
local g = tonumber(ARGV[17])
local groups = {}
local k, a = 9, 18
for i = 1, (g or 0) do
  local m = tonumber(ARGV[a + 3])
  if not m or m < 1 then
    return redis.error_reply('ERR order_place.lua: product bucket ' .. i .. ' has no lines')
  end
  groups[i] = {due = KEYS[k], key = k + 1, arg = a}
  k = k + 2 + m
  a = a + 4 + 2 * m
end
if not g or g < 1 or k - 1 ~= #KEYS or a - 1 ~= #ARGV then
  return redis.error_reply('ERR order_place.lua: keys and arguments do not match the buckets')
end
local interval, burst = gcra_terms(ARGV[14], ARGV[15])
if not interval then
  return redis.error_reply('ERR_BAD_BUDGET')
end

local allowed, retry = gcra_take(KEYS[8], interval, burst, ARGV[16], gcra_now())
if allowed ~= 1 then
  return {-9, retry}
end
local out, held = {-10, 0, 0, 0}, true
for _, q in ipairs(groups) do
  local status, productId, requested, available = stock_hold(q.due, q.key, q.arg)
  out[#out + 1] = status
  out[#out + 1] = productId
  out[#out + 1] = requested
  out[#out + 1] = available
  if status ~= 0 and status ~= 1 then
    held = false
  end
end
if not held then
  return out
end
return order_reserve(KEYS, ARGV)
