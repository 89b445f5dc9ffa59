-- coupon_claim.lua: the whole coupon saga in one call, where Redis lets one call touch the
-- campaign's and the holder's buckets (a standalone server, or a Cluster where both are in one
-- slot; src/cache/mod.rs `Cache::one_call`). For each request, in the order given (one request,
-- or a batch gathered by one instance): take the user's coupon-issue budget (lib/gcra.lua), then
-- issue (lib/coupon_issue.lua), then grant the coupon into the user's bucket
-- (lib/coupon_grant.lua; also for a coupon held before, which repairs a grant a crash cut off).
-- The three texts precede this one. Elsewhere the same steps are rate_gcra.lua,
-- coupon_issue.lua and coupon_grant.lua, three calls.
--
-- A refused budget decides nothing else for that request. Safe to re-send: the budget answers a
-- request id it has seen with its first answer, the issue a request id with its first success,
-- and the grant creates nothing twice.
--
-- KEYS[1]  {c}:seq:ucoupon                    the campaigns' bucket's userCouponId sequence
-- KEYS[2]  {c}:events                         that bucket's settlement stream
-- KEYS[3]  {c}:ucoupon:owners                 hash userCouponId -> "couponId:userId"
-- and for request i (0-based), KEYS[4 + 6i ..]:
--   +0  {c}:coupon:{couponId}                 campaign hash
--   +1  {c}:coupon:{couponId}:users           the campaign's holders
--   +2  {u}:rl:coupon-issue:u{userId}         the user's coupon-issue budget
--   +3  {u}:ucoupon:index                     the user's bucket's userCouponId index
--   +4  {u}:ucoupon:{couponId}:{userId}       the user's coupon (hash)
--   +5  {u}:user:{userId}:coupons             set of couponIds the user holds
-- ARGV[1]  bucket count B     ARGV[2]  the campaigns' bucket b  (userCouponId = n * B + b)
-- ARGV for request i, ARGV[3 + 8i ..]:
--   +0  user id      +1  request id      +2  now, Unix ms      +3  event id      +4  coupon id
--   +5  budget: emission interval, µs    +6  budget: burst     +7  budget request id
--
-- Every budget is checked before anything changes (a bad one refuses the whole call).
-- Returns, for request i, elements 1 + 5i .. 5 + 5i:
--   {status, userCouponId, issuedAtMs, expiresAtMs, remaining} as lib/coupon_issue.lua, or
--   {-9, retryAfterMs, 0, 0, 0}  over the budget: nothing issued
local buckets, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = (#ARGV - 2) / 8
if n < 1 or n ~= math.floor(n) or #KEYS ~= 3 + 6 * n or not buckets or not bucket then
  return redis.error_reply('ERR coupon_claim.lua: want 3 + 6n keys and 2 + 8n arguments')
end
for i = 0, n - 1 do
  local a = 3 + 8 * i
  if not gcra_terms(ARGV[a + 5], ARGV[a + 6]) then
    return redis.error_reply('ERR_BAD_BUDGET')
  end
end

local clock = gcra_now()
local out = {}
for i = 0, n - 1 do
  local k, a = 4 + 6 * i, 3 + 8 * i
  local user, couponId = ARGV[a], ARGV[a + 4]
  local interval, burst = gcra_terms(ARGV[a + 5], ARGV[a + 6])
  local allowed, retry = gcra_take(KEYS[k + 2], interval, burst, ARGV[a + 7], clock)
  local status, id, issuedAt, expiresAt, remaining = -9, retry, 0, 0, 0
  if allowed == 1 then
    local keys = {seq = KEYS[1], events = KEYS[2], owners = KEYS[3], campaign = KEYS[k],
      holders = KEYS[k + 1]}
    status, id, issuedAt, expiresAt, remaining = coupon_issue(keys, buckets, bucket, user,
      ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], couponId)
    if status == 1 or status == -1 then
      coupon_grant(KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], id, couponId, user, issuedAt,
        expiresAt)
    end
  end
  out[#out + 1] = status
  out[#out + 1] = id
  out[#out + 1] = issuedAt
  out[#out + 1] = expiresAt
  out[#out + 1] = remaining
end
return out
