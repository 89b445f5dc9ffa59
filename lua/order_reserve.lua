-- order_reserve.lua: create a new PENDING order in its user's bucket and reserve its coupon, or
-- change nothing; append `order.reserved`. Once per idempotency key. Step 2 of the order saga:
-- the lines' stock was reserved before, in the products' buckets (stock_reserve.lua, keyed by
-- this order id); a refusal here makes the caller release it (docs/ARCHITECTURE.md §4b).
--
-- KEYS[1]  {u}:order:{orderId}             order hash (created here)
-- KEYS[2]  {u}:orders:deadlines            zset orderId -> expiresAt ms (pending orders)
-- KEYS[3]  {u}:user:{userId}:orders        zset orderId -> createdAt ms (recent orders)
-- KEYS[4]  {u}:idem:order:{userId}:{key}   "orderId|fingerprint" of the first outcome
-- KEYS[5]  {u}:events                      the bucket's settlement stream
-- KEYS[6]  {u}:ucoupon:{couponId}:{userId} the coupon to reserve, or {u}:nocoupon
-- KEYS[7]  {u}:ordervoid:{orderId}         set when the reservation sweeper gave up on this id
-- ARGV[1]  order id            ARGV[2]  user id           ARGV[3]  now ms
-- ARGV[4]  expires-at ms       ARGV[5]  event id          ARGV[6]  idempotency ttl s
-- ARGV[7]  items JSON (array of {productId,name,unitPrice,quantity,lineTotal})
-- ARGV[8]  subtotal            ARGV[9]  userCouponId or ''
-- ARGV[10] discount            ARGV[11] total             ARGV[12] coupon minimum order
-- ARGV[13] request fingerprint (a reused key with another body is refused)
--
-- Returns:
--   {1, orderId}                       reserved now
--   {0, orderId}                       replay: this key already made that order
--   {-4}                               the key was used with another request (nothing changed)
--   {-2, reason}                       coupon unusable: NOT_YOURS, NOT_AVAILABLE, EXPIRED,
--                                      BELOW_MINIMUM (nothing changed)
--   {-5}                               this order id was voided (nothing changed)
local fingerprint = ARGV[13]
local prior = redis.call('GET', KEYS[4])
if prior then
  local orderId, priorFingerprint = string.match(prior, '^([^|]+)|(.+)$')
  if priorFingerprint ~= fingerprint then
    return {-4}
  end
  return {0, orderId}
end
if redis.call('EXISTS', KEYS[7]) == 1 then
  return {-5}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- The id is the request's (fixed by user, key and body): this order was made before and
  -- its key record has expired since.
  return {0, ARGV[1]}
end
local items = cjson.decode(ARGV[7])
local now = tonumber(ARGV[3])
local coupon = nil
if ARGV[9] ~= '' then
  local c = redis.call('HMGET', KEYS[6], 'id', 'userId', 'status', 'expiresAt', 'couponId',
    'issuedAt')
  if c[1] ~= ARGV[9] or c[2] ~= ARGV[2] then
    return {-2, 'NOT_YOURS'}
  end
  if c[3] ~= 'AVAILABLE' then
    return {-2, 'NOT_AVAILABLE'}
  end
  if now >= tonumber(c[4]) then
    return {-2, 'EXPIRED'}
  end
  if tonumber(ARGV[8]) < tonumber(ARGV[12]) then
    return {-2, 'BELOW_MINIMUM'}
  end
  coupon = c
end
local couponState = cjson.null
if coupon then
  local version = redis.call('HINCRBY', KEYS[6], 'ver', 1)
  redis.call('HSET', KEYS[6], 'status', 'RESERVED', 'orderId', ARGV[1])
  couponState = {
    userCouponId = tonumber(coupon[1]), couponId = tonumber(coupon[5]),
    userId = tonumber(ARGV[2]), status = 'RESERVED', orderId = ARGV[1],
    issuedAtMs = tonumber(coupon[6]), expiresAtMs = tonumber(coupon[4]), version = version,
  }
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'userId', ARGV[2], 'status', 'PENDING',
  'items', ARGV[7], 'subtotal', ARGV[8], 'discount', ARGV[10], 'total', ARGV[11],
  'userCouponId', ARGV[9], 'createdAt', ARGV[3], 'expiresAt', ARGV[4], 'ver', 1)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -201)
redis.call('SET', KEYS[4], ARGV[1] .. '|' .. fingerprint, 'EX', ARGV[6])
local data = cjson.encode({
  orderId = ARGV[1], userId = tonumber(ARGV[2]), status = 'PENDING', items = items,
  subtotal = tonumber(ARGV[8]), discount = tonumber(ARGV[10]), total = tonumber(ARGV[11]),
  createdAtMs = now, expiresAtMs = tonumber(ARGV[4]), version = 1, coupon = couponState,
})
redis.call('XADD', KEYS[5], '*', 'id', ARGV[5], 'type', 'order.reserved', 'v', '1',
  'at', ARGV[3], 'data', data)
return {1, ARGV[1]}
