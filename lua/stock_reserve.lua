-- stock_reserve.lua: step 1 of the order saga — hold orders' units of the products of one
-- bucket: one order, or a batch of them gathered by one instance (group commit,
-- docs/ARCHITECTURE.md §4), each held whole or not at all by lib/stock_hold.lua (which
-- precedes this text), in the order given. A reservation is keyed by its order id (fixed before
-- the first send) and carries the time at which the reservation sweeper resolves it if nothing
-- else has (the order's deadline plus a grace period): committed if the order was paid,
-- released otherwise (docs/ARCHITECTURE.md §4b). Safe to re-send: a reservation that exists
-- answers "already reserved", one that has already ended (`done`) answers "spent"; neither
-- changes anything. Where one call may reach the user's bucket too, order_place.lua holds and
-- creates the order at once instead.
--
-- KEYS[1]  {q}:resv:due                      zset orderId -> when the sweeper resolves it (ms)
-- and for each request, in order: {q}:resv:{orderId} (JSON {"userId":u,"lines":[[p,n],...]}),
--          then one {q}:stock:{productId} per line
-- ARGV[1]  number of requests
-- and for each request, in order: order id, user id, sweeper time (Unix ms), line count m,
--          then m pairs of product id and quantity (line i's stock is its i-th stock key)
--
-- Returns, for request r (0-based), elements 1 + 4r .. 4 + 4r:
--   {1, 0, 0, 0}                          reserved now
--   {0, 0, 0, 0}                          this order's reservation exists (a re-send)
--   {2, 0, 0, 0}                          this order's reservation has ended: the id is spent,
--                                         nothing is held (the caller starts over with a new id)
--   {-1, productId, requested, available} not enough stock (nothing held for this order)
--   {-3, productId, 0, 0}                 Redis does not hold that product's stock (nothing held
--                                         for this order; the caller loads it and calls again)
-- A call whose keys and arguments do not match is refused before anything changes.
local n = tonumber(ARGV[1])
local requests = {}
local k, a = 2, 2
for r = 1, (n or 0) do
  local m = tonumber(ARGV[a + 3])
  if not m or m < 1 then
    return redis.error_reply('ERR stock_reserve.lua: request ' .. r .. ' has no lines')
  end
  requests[r] = {key = k, arg = a, lines = m}
  k = k + 1 + m
  a = a + 4 + 2 * m
end
if not n or n < 1 or k - 1 ~= #KEYS or a - 1 ~= #ARGV then
  return redis.error_reply('ERR stock_reserve.lua: keys and arguments do not match the requests')
end

local out = {}
for _, q in ipairs(requests) do
  local status, productId, requested, available = stock_hold(KEYS[1], q.key, q.arg)
  out[#out + 1] = status
  out[#out + 1] = productId
  out[#out + 1] = requested
  out[#out + 1] = available
end
return out
