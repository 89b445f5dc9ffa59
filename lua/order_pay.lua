-- order_pay.lua: pay a PENDING order from the prepaid balance: balance, order and coupon change
-- together in the user's bucket, and `order.paid` is appended. Once per idempotency key. The
-- settlement worker, reading `order.paid`, then turns the order's reservations in the products'
-- buckets into sold units and counts them for the ranking (stock_settle.lua commit;
-- docs/ARCHITECTURE.md §4b).
--
-- KEYS[1]  {u}:order:{orderId}             order hash
-- KEYS[2]  {u}:bal:{userId}                balance
-- KEYS[3]  {u}:orders:deadlines            zset of pending orders
-- KEYS[4]  {u}:idem:pay:{userId}:{key}     "orderId|paymentId|amount|balance|paidAtMs"
-- KEYS[5]  {u}:events                      settlement stream
-- KEYS[6]  {u}:ucoupon:{couponId}:{userId} the order's coupon, or {u}:nocoupon
-- ARGV[1]  order id     ARGV[2]  user id    ARGV[3]  now ms     ARGV[4]  payment id
-- ARGV[5]  event id     ARGV[6]  idempotency ttl s
-- ARGV[7]  how long the paid order stays in Redis, s
-- ARGV[8]  the order's userCouponId as the caller knows it, or '' (then KEYS[6] is nocoupon)
-- With the payer's own payment budget (lib/gcra.lua precedes this text), taken first:
-- KEYS[7]  {u}:rl:payments:u{userId}      the payer's budget (in the payer's bucket)
-- ARGV[9]  emission interval µs   ARGV[10]  burst   ARGV[11]  request id (once per request)
--
-- The caller need not read the order first: it names the order and itself (and learns the
-- order's coupon from -8, when it did not know it).
--
-- Returns:
--   {1, paymentId, amount, balance, paidAtMs}   paid now
--   {0, paymentId, amount, balance, paidAtMs}   replay of this key for this order
--   {-1, total, balance}    balance too low (nothing changed)
--   {-2, status}            not payable: PAID, EXPIRED, CANCELLED, or PENDING past its deadline
--   {-3}                    Redis does not hold the balance (caller loads it, calls again)
--   {-4}                    no such order in Redis
--   {-5}                    the order is someone else's
--   {-6}                    the key was used for another order
--   {-7}                    the order's coupon is not reserved by it (nothing changed; a bug
--                           or a lost coupon key: refuse rather than pay half)
--   {-8, userCouponId}      the order holds this coupon and ARGV[8] did not name it (nothing
--                           changed; the caller finds its campaign and calls again)
--   {-9, retryAfterMs}      over the payment budget (nothing changed but the budget's replay
--                           record)
if KEYS[7] then
  local interval, burst = gcra_terms(ARGV[9], ARGV[10])
  if not interval then
    return redis.error_reply('ERR_BAD_BUDGET')
  end
  local allowed, retry = gcra_take(KEYS[7], interval, burst, ARGV[11], gcra_now())
  if allowed ~= 1 then
    return {-9, retry}
  end
end
local prior = redis.call('GET', KEYS[4])
if prior then
  local orderId, paymentId, amount, balance, paidAt =
    string.match(prior, '^([^|]+)|([^|]+)|(%d+)|(%-?%d+)|(%d+)$')
  if orderId ~= ARGV[1] then
    return {-6}
  end
  return {0, paymentId, tonumber(amount), tonumber(balance), tonumber(paidAt)}
end
local o = redis.call('HMGET', KEYS[1], 'userId', 'status', 'total', 'expiresAt', 'items',
  'userCouponId', 'subtotal', 'discount', 'createdAt')
if not o[1] then
  return {-4}
end
if o[1] ~= ARGV[2] then
  return {-5}
end
local now = tonumber(ARGV[3])
if o[2] ~= 'PENDING' then
  return {-2, o[2]}
end
if now >= tonumber(o[4]) then
  return {-2, 'EXPIRED'}
end
local c = nil
if o[6] ~= '' then
  if o[6] ~= ARGV[8] then
    return {-8, tonumber(o[6])}
  end
  c = redis.call('HMGET', KEYS[6], 'id', 'couponId', 'issuedAt', 'expiresAt', 'orderId')
  if c[1] ~= o[6] or c[5] ~= ARGV[1] then
    return {-7}
  end
end
local balance = redis.call('GET', KEYS[2])
if not balance then
  return {-3}
end
local total = tonumber(o[3])
if tonumber(balance) < total then
  return {-1, total, tonumber(balance)}
end
local after = redis.call('DECRBY', KEYS[2], total)
redis.call('HSET', KEYS[1], 'status', 'PAID', 'paidAt', ARGV[3], 'paymentId', ARGV[4], 'ver', 2)
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[3], ARGV[1])
local couponState = cjson.null
if c then
  local version = redis.call('HINCRBY', KEYS[6], 'ver', 1)
  redis.call('HSET', KEYS[6], 'status', 'USED', 'orderId', ARGV[1], 'usedAt', ARGV[3])
  couponState = {
    userCouponId = tonumber(c[1]), couponId = tonumber(c[2]), userId = tonumber(ARGV[2]),
    status = 'USED', orderId = ARGV[1], issuedAtMs = tonumber(c[3]),
    expiresAtMs = tonumber(c[4]), version = version,
  }
end
local items = cjson.decode(o[5])
redis.call('SET', KEYS[4], ARGV[1] .. '|' .. ARGV[4] .. '|' .. total .. '|' .. after .. '|' ..
  ARGV[3], 'EX', ARGV[6])
local data = cjson.encode({
  orderId = ARGV[1], userId = tonumber(ARGV[2]), status = 'PAID', items = items,
  subtotal = tonumber(o[7]), discount = tonumber(o[8]), total = total,
  createdAtMs = tonumber(o[9]), expiresAtMs = tonumber(o[4]), paidAtMs = now,
  paymentId = ARGV[4], balanceAfter = after, version = 2, coupon = couponState,
})
redis.call('XADD', KEYS[5], '*', 'id', ARGV[5], 'type', 'order.paid', 'v', '1',
  'at', ARGV[3], 'data', data)
return {1, ARGV[4], total, after, now}
