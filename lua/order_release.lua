-- order_release.lua: end a PENDING order without payment — expired by a sweeper or cancelled
-- by its owner — releasing its coupon and appending `order.expired` or `order.cancelled`, in
-- the user's bucket. The products' buckets then release the order's reservations
-- (stock_settle.lua release; docs/ARCHITECTURE.md §4b). Any number of sweepers may race: the status check makes exactly one win,
-- and a payment racing an expiry is decided the same way (whichever script runs first).
--
-- KEYS[1]  {u}:order:{orderId}             order hash
-- KEYS[2]  {u}:orders:deadlines            zset of pending orders
-- KEYS[3]  {u}:events                      settlement stream
-- KEYS[4]  {u}:ucoupon:{couponId}:{userId} the order's coupon, or {u}:nocoupon
-- ARGV[1]  order id     ARGV[2]  mode: 'expire' or 'cancel'     ARGV[3]  now ms
-- ARGV[4]  event id     ARGV[5]  caller's user id (cancel) or ''  ARGV[6]  retention s
--
-- Safe to re-send: the ending call's event id is kept on the order (`endEvent`), so the same
-- call run again (fred re-sends a command in flight when the connection drops) finds the order
-- ended by itself and answers what the first run answered, without a second event.
--
-- Returns:
--   {1, status}    ended now (EXPIRED or CANCELLED; a cancel past the deadline expires it), or
--                  this very call (same event id) ended it before
--   {-2, status}   not PENDING any more (nothing changed)
--   {-3}           expire: not due yet (nothing changed)
--   {-4}           no such order
--   {-5}           cancel: someone else's order
local o = redis.call('HMGET', KEYS[1], 'status', 'expiresAt', 'userId', 'items', 'subtotal',
  'discount', 'total', 'createdAt', 'userCouponId', 'endEvent')
if not o[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {-4}
end
if ARGV[2] == 'cancel' and o[3] ~= ARGV[5] then
  return {-5}
end
if o[1] ~= 'PENDING' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  if o[10] == ARGV[4] then
    return {1, o[1]}
  end
  return {-2, o[1]}
end
local now = tonumber(ARGV[3])
local expired = now >= tonumber(o[2])
if ARGV[2] == 'expire' and not expired then
  return {-3}
end
local items = cjson.decode(o[4])
local couponState = cjson.null
if o[9] ~= '' then
  local c = redis.call('HMGET', KEYS[4], 'id', 'couponId', 'issuedAt', 'expiresAt', 'status',
    'orderId')
  if c[5] == 'RESERVED' and c[6] == ARGV[1] then
    local version = redis.call('HINCRBY', KEYS[4], 'ver', 1)
    redis.call('HSET', KEYS[4], 'status', 'AVAILABLE')
    redis.call('HDEL', KEYS[4], 'orderId')
    couponState = {
      userCouponId = tonumber(c[1]), couponId = tonumber(c[2]), userId = tonumber(o[3]),
      status = 'AVAILABLE', orderId = cjson.null, issuedAtMs = tonumber(c[3]),
      expiresAtMs = tonumber(c[4]), version = version,
    }
  end
end
-- A cancel that arrives after the deadline finds an order that is already over: it ends it as
-- EXPIRED (what a payment at that moment is told), not CANCELLED.
local status = 'EXPIRED'
local kind = 'order.expired'
if ARGV[2] == 'cancel' and not expired then
  status = 'CANCELLED'
  kind = 'order.cancelled'
end
redis.call('HSET', KEYS[1], 'status', status, 'endedAt', ARGV[3], 'ver', 2, 'endEvent', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZREM', KEYS[2], ARGV[1])
local data = cjson.encode({
  orderId = ARGV[1], userId = tonumber(o[3]), status = status, items = items,
  subtotal = tonumber(o[5]), discount = tonumber(o[6]), total = tonumber(o[7]),
  createdAtMs = tonumber(o[8]), expiresAtMs = tonumber(o[2]), endedAtMs = now, version = 2,
  coupon = couponState,
})
redis.call('XADD', KEYS[3], '*', 'id', ARGV[4], 'type', kind, 'v', '1', 'at', ARGV[3],
  'data', data)
return {1, status}
