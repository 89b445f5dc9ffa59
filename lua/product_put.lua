-- product_put.lua: cache a product's name and price for pricing orders, keeping only the
-- highest version (MySQL's `products.version`, bumped by every change of name or price).
--
-- KEYS[1]  {q}:product:{productId}   hash: name, price, v
-- ARGV[1]  name
-- ARGV[2]  unit price, won
-- ARGV[3]  version (positive integer)
-- ARGV[4]  lifetime in seconds (bounds how long a cache entry outlives a lost update)
--
-- Returns 1 when written, 0 when the cache already holds this or a newer version (nothing
-- changed but the lifetime).
local version = tonumber(ARGV[3])
if not version or version < 1 or version ~= math.floor(version) then
  return redis.error_reply('ERR_BAD_VERSION')
end
local held = tonumber(redis.call('HGET', KEYS[1], 'v'))
if held and held >= version then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'price', ARGV[2], 'v', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
