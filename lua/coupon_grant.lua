-- coupon_grant.lua: put issued coupons into their holders' bucket (step 2 of the coupon saga,
-- after coupon_issue.lua decided them in the campaign's bucket); each one is
-- lib/coupon_grant.lua, which precedes this text. A re-send changes nothing.
--
-- KEYS[1]  {u}:ucoupon:index                  hash userCouponId -> "couponId:userId"
-- and for request i (0-based), KEYS[2 + 2i ..]:
--   +0  {u}:ucoupon:{couponId}:{userId}       the user's coupon (hash)
--   +1  {u}:user:{userId}:coupons             set of couponIds the user holds
-- ARGV for request i, ARGV[1 + 5i ..]: userCouponId, couponId, userId, issuedAt ms, expiresAt ms
--
-- Returns, for request i, element 1 + i: 1 created now, 0 already there.
local n = #ARGV / 5
if n < 1 or n ~= math.floor(n) or #KEYS ~= 1 + 2 * n then
  return redis.error_reply('ERR coupon_grant.lua: want 1 + 2n keys and 5n arguments')
end
local out = {}
for i = 0, n - 1 do
  local k, a = 2 + 2 * i, 1 + 5 * i
  out[#out + 1] = coupon_grant(KEYS[1], KEYS[k], KEYS[k + 1], ARGV[a], ARGV[a + 1],
    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
end
return out
