-- lib/stock_hold.lua: hold one order's units of the products of one bucket, whole or not at
-- all (step 1 of the order saga). Not a script of its own: stock_reserve.lua and
-- order_place.lua are this text followed by theirs (src/cache/scripts.rs), so there is one copy
-- of the hold. The reservation is keyed by its order id and carries the time at which the
-- reservation sweeper resolves it if nothing else has (docs/ARCHITECTURE.md §4b). Safe to
-- re-send: a reservation that exists answers "already reserved", one that has ended (`done`)
-- answers "spent"; neither changes anything.
--
-- due  {q}:resv:due                          zset orderId -> when the sweeper resolves it (ms)
-- The request is read from KEYS from index k and ARGV from index a:
--   KEYS[k]          {q}:resv:{orderId}      JSON {"userId":u,"lines":[[p,n],...]}
--   KEYS[k + i]      {q}:stock:{productId}   line i's stock, i = 1..m
--   ARGV[a .. a + 3] order id, user id, sweeper time (Unix ms), line count m
--   ARGV[a + 2 + 2i], ARGV[a + 3 + 2i]       line i's product id and quantity
--
-- Returns status, productId, requested, available:
--   1, 0, 0, 0                          reserved now
--   0, 0, 0, 0                          this order's reservation exists (a re-send)
--   2, 0, 0, 0                          this order's reservation has ended: the id is spent,
--                                       nothing is held (the caller starts over with a new id)
--   -1, productId, requested, available not enough stock (nothing held for this order)
--   -3, productId, 0, 0                 Redis does not hold that product's stock (nothing held)
local function stock_hold(due, k, a)
  local resv, orderId, m = KEYS[k], ARGV[a], tonumber(ARGV[a + 3])
  local prior = redis.call('GET', resv)
  if prior == 'done' then
    return 2, 0, 0, 0
  elseif prior then
    return 0, 0, 0, 0
  end
  local lines = {}
  for i = 1, m do
    local productId = tonumber(ARGV[a + 2 + 2 * i])
    local quantity = tonumber(ARGV[a + 3 + 2 * i])
    local available = redis.call('GET', KEYS[k + i])
    if not available then
      return -3, productId, 0, 0
    end
    if tonumber(available) < quantity then
      return -1, productId, quantity, tonumber(available)
    end
    lines[i] = {productId, quantity}
  end
  for i = 1, m do
    redis.call('DECRBY', KEYS[k + i], lines[i][2])
  end
  redis.call('SET', resv, cjson.encode({userId = tonumber(ARGV[a + 1]), lines = lines}))
  redis.call('ZADD', due, ARGV[a + 2], orderId)
  return 1, 0, 0, 0
end

