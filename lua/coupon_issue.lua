-- coupon_issue.lua: issue first-come coupons of campaigns of one bucket, one request after
-- another in the order given (one request, or a batch of them gathered by one instance: the
-- group commit of docs/ARCHITECTURE.md §4). Each request is one decision of lib/coupon_issue.lua
-- (which precedes this text); a later request of the batch sees what an earlier one decided.
-- `coupon_grant.lua` then puts each coupon into its holder's bucket. Where Redis lets one call
-- touch both buckets, `coupon_claim.lua` does budget, issue and grant at once instead. Safe to
-- re-send: a replay with the same request id returns the first success.
--
-- KEYS[1]  {c}:seq:ucoupon                    the bucket's userCouponId sequence
-- KEYS[2]  {c}:events                         the bucket's settlement stream
-- KEYS[3]  {c}:ucoupon:owners                 hash userCouponId -> "couponId:userId"
-- and for request i (0-based), KEYS[4 + 2i ..]:
--   +0  {c}:coupon:{couponId}                 campaign hash
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
--   {status, userCouponId, issuedAtMs, expiresAtMs, remaining} (statuses: lib/coupon_issue.lua)
local buckets, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = (#ARGV - 2) / 5
if n < 1 or n ~= math.floor(n) or #KEYS ~= 3 + 2 * n or not buckets or not bucket then
  return redis.error_reply('ERR coupon_issue.lua: want 3 + 2n keys and 2 + 5n arguments')
end
local out = {}
for i = 0, n - 1 do
  local k, a = 4 + 2 * i, 3 + 5 * i
  local keys = {seq = KEYS[1], events = KEYS[2], owners = KEYS[3], campaign = KEYS[k],
    holders = KEYS[k + 1]}
  local status, id, issuedAt, expiresAt, remaining = coupon_issue(keys, buckets, bucket,
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  out[#out + 1] = status
  out[#out + 1] = id
  out[#out + 1] = issuedAt
  out[#out + 1] = expiresAt
  out[#out + 1] = remaining
end
return out
