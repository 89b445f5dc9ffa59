-- coupon_issue.lua: issue first-come coupons, one request after another in the order given (one
-- request, or a batch of them gathered by one instance: the group commit of docs/ARCHITECTURE.md
-- §4). For each request, window, one-per-user and quantity are decided together and
-- `coupon.issued` is appended in the same call; a later request of the batch sees what an
-- earlier one decided. Safe to re-send: a replay with the same request id returns the first
-- success.
--
-- KEYS[1]  {p}:seq:ucoupon                    userCouponId sequence
-- KEYS[2]  {p}:ucoupon:index                  hash userCouponId -> "couponId:userId"
-- KEYS[3]  {p}:events                         settlement stream
-- and for request i (0-based), KEYS[4 + 4i ..]:
--   +0  {p}:coupon:{couponId}                 campaign hash (total, issued, startsMs, endsMs,
--                                            validMs)
--   +1  {p}:coupon:{couponId}:users           hash userId -> userCouponId
--   +2  {p}:ucoupon:{couponId}:{userId}       the user's coupon (hash)
--   +3  {p}:user:{userId}:coupons             set of couponIds the user holds
-- ARGV for request i, ARGV[1 + 5i ..]:
--   +0  user id
--   +1  request id (UUID; makes re-sends idempotent)
--   +2  now, Unix ms
--   +3  event id (UUID)
--   +4  coupon id
--
-- Returns, for request i, elements 1 + 4i .. 4 + 4i: {status, userCouponId, expiresAtMs,
-- remaining}:
--    1  issued (or a replay of this very request)
--   -1  this user already holds a coupon of the campaign
--   -2  outside the issue window
--   -3  none left: the first-come event is over
--   -4  Redis does not hold this campaign (caller checks MySQL: unknown, or load and retry)
local function issue(campaign, holders, mine, held_set, user, req, nowText, eventId, couponId)
  if redis.call('EXISTS', campaign) == 0 then
    return -4, 0, 0, 0
  end
  local total, issued, startsMs, endsMs, validMs = unpack(redis.call('HMGET', campaign,
    'total', 'issued', 'startsMs', 'endsMs', 'validMs'))
  total = tonumber(total)
  issued = tonumber(issued) or 0
  local held = redis.call('HGET', holders, user)
  if held then
    local first = redis.call('HMGET', mine, 'req', 'expiresAt')
    if first[1] == req then
      return 1, tonumber(held), tonumber(first[2]), total - issued
    end
  end
  local now = tonumber(nowText)
  if now < tonumber(startsMs) or now >= tonumber(endsMs) then
    return -2, 0, 0, total - issued
  end
  if held then
    return -1, tonumber(held), 0, total - issued
  end
  if issued >= total then
    return -3, 0, 0, 0
  end
  issued = redis.call('HINCRBY', campaign, 'issued', 1)
  local id = redis.call('INCR', KEYS[1])
  local expiresAt = now + tonumber(validMs)
  redis.call('HSET', holders, user, id)
  redis.call('HSET', mine, 'id', id, 'couponId', couponId, 'userId', user,
    'status', 'AVAILABLE', 'issuedAt', nowText, 'expiresAt', expiresAt, 'req', req, 'ver', 1)
  redis.call('HSET', KEYS[2], id, couponId .. ':' .. user)
  redis.call('SADD', held_set, couponId)
  local data = cjson.encode({userCouponId = id, couponId = tonumber(couponId),
    userId = tonumber(user), issuedAtMs = now, expiresAtMs = expiresAt})
  redis.call('XADD', KEYS[3], '*', 'id', eventId, 'type', 'coupon.issued', 'v', '1',
    'at', nowText, 'data', data)
  return 1, id, expiresAt, total - issued
end

local n = #ARGV / 5
if n < 1 or n ~= math.floor(n) or #KEYS ~= 3 + 4 * n then
  return redis.error_reply('ERR coupon_issue.lua: want 3 + 4n keys and 5n arguments')
end
local out = {}
for i = 0, n - 1 do
  local k, a = 4 + 4 * i, 1 + 5 * i
  local status, id, expiresAt, remaining = issue(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3],
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  out[#out + 1] = status
  out[#out + 1] = id
  out[#out + 1] = expiresAt
  out[#out + 1] = remaining
end
return out
