-- coupon_grant.lua: put issued coupons into their holders' bucket (step 2 of the coupon saga,
-- after coupon_issue.lua decided them in the campaign's bucket), so that an order and its
-- payment find the coupon in the same slot as the balance and the order. Creates a coupon
-- only where the user's bucket does not hold it yet: a re-send, a repair after a crash between
-- the steps, or a coupon already reserved or used changes nothing. No event: MySQL learns of
-- the coupon from `coupon.issued`.
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
  if redis.call('EXISTS', KEYS[k]) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', KEYS[k], 'id', ARGV[a], 'couponId', ARGV[a + 1], 'userId', ARGV[a + 2],
      'status', 'AVAILABLE', 'issuedAt', ARGV[a + 3], 'expiresAt', ARGV[a + 4], 'ver', 1)
    redis.call('SADD', KEYS[k + 1], ARGV[a + 1])
    redis.call('HSET', KEYS[1], ARGV[a], ARGV[a + 1] .. ':' .. ARGV[a + 2])
    out[#out + 1] = 1
  end
end
return out
