-- lib/coupon_grant.lua: put one issued coupon into its holder's bucket (step 2 of the coupon
-- saga, after lib/coupon_issue.lua decided it in the campaign's bucket), so that an order and its
-- payment find the coupon in the same slot as the balance and the order. Not a script of its
-- own: coupon_grant.lua and coupon_claim.lua are this text followed by theirs.
--
-- Creates the coupon only where the user's bucket does not hold it yet: a re-send, a repair after
-- a crash between the steps, or a coupon already reserved or used changes nothing. No event:
-- MySQL learns of the coupon from `coupon.issued`.
--
-- index     {u}:ucoupon:index                 hash userCouponId -> "couponId:userId"
-- coupon    {u}:ucoupon:{couponId}:{userId}   the user's coupon (hash)
-- held      {u}:user:{userId}:coupons         set of couponIds the user holds
-- id, couponId, userId, issuedAt, expiresAt   the coupon as issued (ms as text)
--
-- Returns 1 created now, 0 already there.
local function coupon_grant(index, coupon, held, id, couponId, userId, issuedAt, expiresAt)
  if redis.call('EXISTS', coupon) == 1 then
    return 0
  end
  redis.call('HSET', coupon, 'id', id, 'couponId', couponId, 'userId', userId,
    'status', 'AVAILABLE', 'issuedAt', issuedAt, 'expiresAt', expiresAt, 'ver', 1)
  redis.call('SADD', held, couponId)
  redis.call('HSET', index, id, couponId .. ':' .. userId)
  return 1
end

