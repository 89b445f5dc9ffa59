-- order_release.lua: end a PENDING order without payment — expired by a sweeper or cancelled
-- by its owner — releasing its stock and coupon and appending `order.expired` or
-- `order.cancelled`. Any number of sweepers may race: the status check makes exactly one win,
-- and a payment racing an expiry is decided the same way (whichever script runs first).
--
-- KEYS[1]  {p}:order:{orderId}             order hash
-- KEYS[2]  {p}:orders:deadlines            zset of pending orders
-- KEYS[3]  {p}:events                      settlement stream
-- KEYS[4]  {p}:ucoupon:{couponId}:{userId} the order's coupon, or {p}:nocoupon
-- KEYS[5..4+n]  {p}:stock:{productId}      one per line, in the order's line order
-- ARGV[1]  order id     ARGV[2]  mode: 'expire' or 'cancel'     ARGV[3]  now ms
-- ARGV[4]  event id     ARGV[5]  caller's user id (cancel) or ''  ARGV[6]  retention s
-- ARGV[7]  n (lines)    ARGV[8..7+n]  quantities, in line order
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
local n = tonumber(ARGV[7])
for i = 1, n do
  redis.call('INCRBY', KEYS[4 + i], ARGV[7 + i])
end
local couponJson = 'null'
if o[9] ~= '' then
  local c = redis.call('HMGET', KEYS[4], 'id', 'couponId', 'issuedAt', 'expiresAt', 'status',
    'orderId')
  if c[5] == 'RESERVED' and c[6] == ARGV[1] then
    local version = redis.call('HINCRBY', KEYS[4], 'ver', 1)
    redis.call('HSET', KEYS[4], 'status', 'AVAILABLE')
    redis.call('HDEL', KEYS[4], 'orderId')
    couponJson = '{"userCouponId":' .. c[1] .. ',"couponId":' .. c[2] .. ',"userId":' ..
      o[3] .. ',"status":"AVAILABLE","orderId":null,"issuedAtMs":' .. c[3] ..
      ',"expiresAtMs":' .. c[4] .. ',"version":' .. version .. '}'
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
local data = '{"orderId":"' .. ARGV[1] .. '","userId":' .. o[3] .. ',"status":"' .. status ..
  '","items":' .. o[4] .. ',"subtotal":' .. o[5] .. ',"discount":' .. o[6] .. ',"total":' ..
  o[7] .. ',"createdAtMs":' .. o[8] .. ',"expiresAtMs":' .. o[2] .. ',"endedAtMs":' ..
  ARGV[3] .. ',"version":2,"coupon":' .. couponJson .. '}'
redis.call('XADD', KEYS[3], '*', 'id', ARGV[4], 'type', kind, 'v', '1', 'at', ARGV[3],
  'data', data)
return {1, status}
