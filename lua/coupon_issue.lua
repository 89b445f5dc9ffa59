-- coupon_issue.lua: issue one coupon of a first-come campaign to a user, atomically: window,
-- one-per-user and quantity are decided together, and `coupon.issued` is appended in the same
-- call. Safe to re-send: a replay with the same request id returns the first success.
--
-- KEYS[1]  {p}:coupon:{couponId}              campaign hash (total, issued, startsMs, endsMs,
--                                            validMs)
-- KEYS[2]  {p}:coupon:{couponId}:users        hash userId -> userCouponId
-- KEYS[3]  {p}:ucoupon:{couponId}:{userId}    the user's coupon (hash)
-- KEYS[4]  {p}:seq:ucoupon                    userCouponId sequence
-- KEYS[5]  {p}:ucoupon:index                  hash userCouponId -> "couponId:userId"
-- KEYS[6]  {p}:user:{userId}:coupons          set of couponIds the user holds
-- KEYS[7]  {p}:events                         settlement stream
-- ARGV[1]  user id
-- ARGV[2]  request id (UUID; makes re-sends idempotent)
-- ARGV[3]  now, Unix ms
-- ARGV[4]  event id (UUID)
-- ARGV[5]  coupon id
--
-- Returns {status, userCouponId, expiresAtMs, remaining}:
--    1  issued (or a replay of this very request)
--   -1  this user already holds a coupon of the campaign
--   -2  outside the issue window
--   -3  none left: the first-come event is over
--   -4  Redis does not hold this campaign (caller checks MySQL: unknown, or load and retry)
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-4, 0, 0, 0}
end
local total, issued, startsMs, endsMs, validMs = unpack(redis.call('HMGET', KEYS[1],
  'total', 'issued', 'startsMs', 'endsMs', 'validMs'))
total = tonumber(total)
issued = tonumber(issued) or 0
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  local mine = redis.call('HMGET', KEYS[3], 'req', 'expiresAt')
  if mine[1] == ARGV[2] then
    return {1, tonumber(held), tonumber(mine[2]), total - issued}
  end
end
local now = tonumber(ARGV[3])
if now < tonumber(startsMs) or now >= tonumber(endsMs) then
  return {-2, 0, 0, total - issued}
end
if held then
  return {-1, tonumber(held), 0, total - issued}
end
if issued >= total then
  return {-3, 0, 0, 0}
end
issued = redis.call('HINCRBY', KEYS[1], 'issued', 1)
local id = redis.call('INCR', KEYS[4])
local expiresAt = now + tonumber(validMs)
redis.call('HSET', KEYS[2], ARGV[1], id)
redis.call('HSET', KEYS[3], 'id', id, 'couponId', ARGV[5], 'userId', ARGV[1],
  'status', 'AVAILABLE', 'issuedAt', ARGV[3], 'expiresAt', expiresAt, 'req', ARGV[2], 'ver', 1)
redis.call('HSET', KEYS[5], id, ARGV[5] .. ':' .. ARGV[1])
redis.call('SADD', KEYS[6], ARGV[5])
local data = cjson.encode({userCouponId = id, couponId = tonumber(ARGV[5]),
  userId = tonumber(ARGV[1]), issuedAtMs = now, expiresAtMs = expiresAt})
redis.call('XADD', KEYS[7], '*', 'id', ARGV[4], 'type', 'coupon.issued', 'v', '1',
  'at', ARGV[3], 'data', data)
return {1, id, expiresAt, total - issued}
