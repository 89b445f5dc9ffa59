-- lib/order_reserve.lua: create a new PENDING order in its user's bucket and reserve its coupon,
-- or change nothing; append `order.reserved`. Once per idempotency key. Step 2 of the order saga
-- (docs/ARCHITECTURE.md §4b). Not a script of its own: order_reserve.lua and order_place.lua are
-- this text followed by theirs (src/cache/scripts.rs), so there is one copy of the step.
--
-- K and A are the keys and arguments laid out as order_reserve.lua's header lists them (K[1..7],
-- A[1..13]); both scripts pass their KEYS and ARGV, whose first entries are these.
-- Returns the reply order_reserve.lua documents.
local function order_reserve(K, A)
  local fingerprint = A[13]
  local prior = redis.call('GET', K[4])
  if prior then
    local orderId, priorFingerprint = string.match(prior, '^([^|]+)|(.+)$')
    if priorFingerprint ~= fingerprint then
      return {-4}
    end
    return {0, orderId}
  end
  if redis.call('EXISTS', K[7]) == 1 then
    return {-5}
  end
  if redis.call('EXISTS', K[1]) == 1 then
    -- The id is the request's (fixed by user, key and body): this order was made before and
    -- its key record has expired since.
    return {0, A[1]}
  end
  local items = cjson.decode(A[7])
  local now = tonumber(A[3])
  local coupon = nil
  if A[9] ~= '' then
    local c = redis.call('HMGET', K[6], 'id', 'userId', 'status', 'expiresAt', 'couponId',
      'issuedAt')
    if c[1] ~= A[9] or c[2] ~= A[2] then
      return {-2, 'NOT_YOURS'}
    end
    if c[3] ~= 'AVAILABLE' then
      return {-2, 'NOT_AVAILABLE'}
    end
    if now >= tonumber(c[4]) then
      return {-2, 'EXPIRED'}
    end
    if tonumber(A[8]) < tonumber(A[12]) then
      return {-2, 'BELOW_MINIMUM'}
    end
    coupon = c
  end
  local couponState = cjson.null
  if coupon then
    local version = redis.call('HINCRBY', K[6], 'ver', 1)
    redis.call('HSET', K[6], 'status', 'RESERVED', 'orderId', A[1])
    couponState = {
      userCouponId = tonumber(coupon[1]), couponId = tonumber(coupon[5]),
      userId = tonumber(A[2]), status = 'RESERVED', orderId = A[1],
      issuedAtMs = tonumber(coupon[6]), expiresAtMs = tonumber(coupon[4]), version = version,
    }
  end
  redis.call('HSET', K[1], 'id', A[1], 'userId', A[2], 'status', 'PENDING',
    'items', A[7], 'subtotal', A[8], 'discount', A[10], 'total', A[11],
    'userCouponId', A[9], 'createdAt', A[3], 'expiresAt', A[4], 'ver', 1)
  redis.call('ZADD', K[2], A[4], A[1])
  redis.call('ZADD', K[3], A[3], A[1])
  redis.call('ZREMRANGEBYRANK', K[3], 0, -201)
  redis.call('SET', K[4], A[1] .. '|' .. fingerprint, 'EX', A[6])
  local data = cjson.encode({
    orderId = A[1], userId = tonumber(A[2]), status = 'PENDING', items = items,
    subtotal = tonumber(A[8]), discount = tonumber(A[10]), total = tonumber(A[11]),
    createdAtMs = now, expiresAtMs = tonumber(A[4]), version = 1, coupon = couponState,
  })
  redis.call('XADD', K[5], '*', 'id', A[5], 'type', 'order.reserved', 'v', '1',
    'at', A[3], 'data', data)
  return {1, A[1]}
end

