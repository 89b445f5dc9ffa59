-- stock_add.lua: add units to a product's available stock and append `stock.added`,
-- atomically, exactly once per operation id.
--
-- KEYS[1]  {q}:stock:{productId}      available units (integer string)
-- KEYS[2]  {q}:op:restock:{opId}      marker that this operation was applied
-- KEYS[3]  {q}:events                 the bucket's settlement stream
-- ARGV[1]  units to add (positive integer)
-- ARGV[2]  marker lifetime in seconds
-- ARGV[3]  event id (UUID)
-- ARGV[4]  occurred-at, Unix milliseconds
-- ARGV[5]  product id
--
-- Returns {status, available}:
--   status 1 = applied now
--   status 0 = this operation id was already applied (replay; nothing changed)
--   status 2 = Redis does not hold this product's stock yet (nothing changed; the caller
--              loads it from MySQL and calls again)
--   available = the product's available units after the call (-1 when status is 2)
local delta = tonumber(ARGV[1])
if not delta or delta <= 0 or delta ~= math.floor(delta) then
  return redis.error_reply('ERR_BAD_DELTA')
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {2, -1}
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then
  local available = redis.call('INCRBY', KEYS[1], delta)
  local data = cjson.encode({productId = tonumber(ARGV[5]), units = delta,
    availableAfter = available})
  redis.call('XADD', KEYS[3], '*', 'id', ARGV[3], 'type', 'stock.added', 'v', '1',
    'at', ARGV[4], 'data', data)
  return {1, available}
end
return {0, tonumber(redis.call('GET', KEYS[1]))}
