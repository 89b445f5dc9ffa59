-- stock_reserve.lua: step 1 of the order saga — hold an order's units of the products of one
-- bucket, or hold nothing. The reservation is keyed by the order id (fixed before the first
-- send) and carries the time at which the reservation sweeper resolves it if nothing else has
-- (the order's deadline plus a grace period): committed if the order was paid, released
-- otherwise (docs/ARCHITECTURE.md §4b). Safe to re-send: a reservation that exists, or that has
-- already ended (`done`), answers "already reserved" and changes nothing.
--
-- KEYS[1]  {q}:resv:{orderId}        JSON {"userId":u,"lines":[[productId,quantity],...]}
-- KEYS[2]  {q}:resv:due              zset orderId -> when the sweeper resolves it (ms)
-- KEYS[3..2+n]  {q}:stock:{productId}  one per line
-- ARGV[1]  order id     ARGV[2]  user id     ARGV[3]  sweeper time, Unix ms
-- ARGV[2 + 2i], ARGV[3 + 2i]  line i's product id and quantity (i = 1..n)
--
-- Returns:
--   {1}                                  reserved now
--   {0}                                  this order's reservation exists or has ended
--   {-1, productId, requested, available}  not enough stock (nothing changed)
--   {-3, productId}                      Redis does not hold that product's stock (nothing
--                                        changed; the caller loads it and calls again)
local n = #KEYS - 2
if n < 1 or #ARGV ~= 3 + 2 * n then
  return redis.error_reply('ERR stock_reserve.lua: want 2 + n keys and 3 + 2n arguments')
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0}
end
local lines = {}
for i = 1, n do
  local productId, quantity = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local available = redis.call('GET', KEYS[2 + i])
  if not available then
    return {-3, productId}
  end
  if tonumber(available) < quantity then
    return {-1, productId, quantity, tonumber(available)}
  end
  lines[i] = {productId, quantity}
end
for i = 1, n do
  redis.call('DECRBY', KEYS[2 + i], lines[i][2])
end
redis.call('SET', KEYS[1], cjson.encode({userId = tonumber(ARGV[2]), lines = lines}))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return {1}
