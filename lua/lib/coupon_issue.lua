-- lib/coupon_issue.lua: one first-come issue decision (step 1 of the coupon saga). Not a script
-- of its own: coupon_issue.lua and coupon_claim.lua are this text followed by theirs
-- (src/cache/scripts.rs), so there is one copy of the decision.
--
-- Window, one-per-user and quantity are decided together, and `coupon.issued` is appended to the
-- campaign bucket's stream in the same call. The holder's record stays in the campaign's bucket;
-- lib/coupon_grant.lua puts the coupon into the user's bucket (docs/ARCHITECTURE.md §4b). A
-- replay with the same request id returns the first success.
--
-- keys  {seq, events, owners, campaign, holders}:
--   seq       {c}:seq:ucoupon                 the bucket's userCouponId sequence
--   events    {c}:events                      the bucket's settlement stream
--   owners    {c}:ucoupon:owners              hash userCouponId -> "couponId:userId"
--   campaign  {c}:coupon:{couponId}           campaign hash (total, issued, startsMs, endsMs,
--                                            validMs)
--   holders   {c}:coupon:{couponId}:users     hash userId -> "ucid|issuedAt|expiresAt|requestId"
-- buckets, bucket   the bucket count B and the campaign's bucket b (userCouponId = n * B + b)
-- user, req, nowText, eventId, couponId   the request (nowText: Unix ms as text)
--
-- Returns status, userCouponId, issuedAtMs, expiresAtMs, remaining:
--    1  issued (or a replay of this very request)
--   -1  this user already holds a coupon of the campaign (its id and times are given)
--   -2  outside the issue window
--   -3  none left: the first-come event is over
--   -4  Redis does not hold this campaign (caller checks MySQL: unknown, or load and retry)
local function coupon_issue(keys, buckets, bucket, user, req, nowText, eventId, couponId)
  local total, issued, startsMs, endsMs, validMs = unpack(redis.call('HMGET', keys.campaign,
    'total', 'issued', 'startsMs', 'endsMs', 'validMs'))
  if not total then
    -- no campaign hash (coupon_load.lua always writes `total`): not loaded, or unknown
    return -4, 0, 0, 0, 0
  end
  total = tonumber(total)
  issued = tonumber(issued) or 0
  local held = redis.call('HGET', keys.holders, user)
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
  issued = redis.call('HINCRBY', keys.campaign, 'issued', 1)
  local id = redis.call('INCR', keys.seq) * buckets + bucket
  local expiresAt = now + tonumber(validMs)
  redis.call('HSET', keys.holders, user, id .. '|' .. nowText .. '|' .. expiresAt .. '|' .. req)
  redis.call('HSET', keys.owners, id, couponId .. ':' .. user)
  local data = cjson.encode({userCouponId = id, couponId = tonumber(couponId),
    userId = tonumber(user), issuedAtMs = now, expiresAtMs = expiresAt})
  redis.call('XADD', keys.events, '*', 'id', eventId, 'type', 'coupon.issued', 'v', '1',
    'at', nowText, 'data', data)
  return 1, id, now, expiresAt, total - issued
end

