-- coupon_load.lua: put a campaign's immutable terms into Redis, keeping its live counter.
--
-- KEYS[1]  {c}:coupon:{couponId}   hash: total, startsMs, endsMs, validMs, issued
-- ARGV[1]  total quantity
-- ARGV[2]  issue window start, Unix ms (inclusive)
-- ARGV[3]  issue window end, Unix ms (exclusive)
-- ARGV[4]  validity after issue, ms
-- ARGV[5]  issued count to start from when the campaign is new to Redis (0, or MySQL's count
--          on a rebuild)
--
-- Returns the issued count now held.
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'startsMs', ARGV[2], 'endsMs', ARGV[3],
  'validMs', ARGV[4])
redis.call('HSETNX', KEYS[1], 'issued', ARGV[5])
return tonumber(redis.call('HGET', KEYS[1], 'issued'))
