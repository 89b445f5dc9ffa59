-- coupon_issue.lua: issue first-come coupons of campaigns of one bucket, one request after
-- another in the order given (one request, or a batch of them gathered by one instance: the
-- group commit of docs/ARCHITECTURE.md §4). For each request, window, one-per-user and quantity
-- are decided together and `coupon.issued` is appended to the bucket's stream in the same call;
-- a later request of the batch sees what an earlier one decided. This is step 1 of the coupon
-- saga: the holder's record stays here, in the campaign's bucket; `coupon_grant.lua` then puts
-- the coupon into the user's bucket (docs/ARCHITECTURE.md §4b). Safe to re-send: a replay with
-- the same request id returns the first success.
--
-- KEYS[1]  {c}:seq:ucoupon                    the bucket's userCouponId sequence
-- KEYS[2]  {c}:events                         the bucket's settlement stream
-- KEYS[3]  {c}:ucoupon:owners                 hash userCouponId -> "couponId:userId"
-- and for request i (0-based), KEYS[4 + 2i ..]:
--   +0  {c}:coupon:{couponId}                 campaign hash (total, issued, startsMs, endsMs,
--                                            validMs)
--   +1  {c}:coupon:{couponId}:users           hash userId -> "ucid|issuedAt|expiresAt|requestId"
-- ARGV[1]  bucket count B     ARGV[2]  this bucket's index b  (userCouponId = n * B + b)
-- ARGV for request i, ARGV[3 + 5i ..]:
--   +0  user id
--   +1  request id (UUID; makes re-sends idempotent)
--   +2  now, Unix ms
--   +3  event id (UUID)
--   +4  coupon id
--
-- Returns, for request i, elements 1 + 5i .. 5 + 5i:
--   {status, userCouponId, issuedAtMs, expiresAtMs, remaining}:
--    1  issued (or a replay of this very request)
--   -1  this user already holds a coupon of the campaign (its id and times are given)
--   -2  outside the issue window
--   -3  none left: the first-come event is over
--   -4  Redis does not hold this campaign (caller checks MySQL: unknown, or load and retry)
local buckets, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])

local function issue(campaign, holders, user, req, nowText, eventId, couponId)
  local total, issued, startsMs, endsMs, validMs = unpack(redis.call('HMGET', campaign,
    'total', 'issued', 'startsMs', 'endsMs', 'validMs'))
  if not total then
    -- no campaign hash (coupon_load.lua always writes `total`): not loaded, or unknown
    return -4, 0, 0, 0, 0
  end
  total = tonumber(total)
  issued = tonumber(issued) or 0
  local held = redis.call('HGET', holders, user)
  local heldId, heldAt, heldExpires, heldReq
  if held then
    heldId, heldAt, heldExpires, heldReq = string.match(held, '^(%d+)|(%d+)|(%d+)|(.*)$')
    if heldReq == req then
      return 1, tonumber(heldId), tonumber(heldAt), tonumber(heldExpires), total - issued
    end
  end
  local now = tonumber(nowText)
  if now < tonumber(startsMs) or now >= tonumber(endsMs) then
    return -2, 0, 0, 0, total - issued
  end
  if held then
    return -1, tonumber(heldId), tonumber(heldAt), tonumber(heldExpires), total - issued
  end
  if issued >= total then
    return -3, 0, 0, 0, 0
  end
  issued = redis.call('HINCRBY', campaign, 'issued', 1)
  local id = redis.call('INCR', KEYS[1]) * buckets + bucket
  local expiresAt = now + tonumber(validMs)
  redis.call('HSET', holders, user, id .. '|' .. nowText .. '|' .. expiresAt .. '|' .. req)
  redis.call('HSET', KEYS[3], id, couponId .. ':' .. user)
  local data = cjson.encode({userCouponId = id, couponId = tonumber(couponId),
    userId = tonumber(user), issuedAtMs = now, expiresAtMs = expiresAt})
  redis.call('XADD', KEYS[2], '*', 'id', eventId, 'type', 'coupon.issued', 'v', '1',
    'at', nowText, 'data', data)
  return 1, id, now, expiresAt, total - issued
end

local n = (#ARGV - 2) / 5
if n < 1 or n ~= math.floor(n) or #KEYS ~= 3 + 2 * n or not buckets or not bucket then
  return redis.error_reply('ERR coupon_issue.lua: want 3 + 2n keys and 2 + 5n arguments')
end
local out = {}
for i = 0, n - 1 do
  local k, a = 4 + 2 * i, 3 + 5 * i
  local status, id, issuedAt, expiresAt, remaining = issue(KEYS[k], KEYS[k + 1],
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  out[#out + 1] = status
  out[#out + 1] = id
  out[#out + 1] = issuedAt
  out[#out + 1] = expiresAt
  out[#out + 1] = remaining
end
return out
