-- stock_settle.lua: end orders' reservations in one product bucket, after each order's own
-- bucket decided (the last step of the payment, expiry and cancel sagas; docs/ARCHITECTURE.md
-- §4b): `commit` once the order is paid (the units stay sold; units sold in the paid hour are
-- counted for the ranking) or `release` once it expired, was cancelled or was never created (the
-- units go back to stock). One order, or a batch of them gathered by one instance. Safe to
-- re-send and to race: a reservation ends once, and becomes `done` for a while so a late re-send
-- of stock_reserve.lua cannot hold the units again.
--
-- KEYS[1]  {q}:resv:due                      zset of live reservations
-- and for each request, in order: {q}:resv:{orderId}, {q}:pop:{hour} (the paid hour; any hour
--          for a release), then, for a release, one {q}:stock:{productId} per product given
-- ARGV[1]  ranking bucket ttl s     ARGV[2]  how long `done` is kept, s     ARGV[3]  requests
-- and for each request, in order: order id, 'commit' or 'release', product count m, then the m
--          product ids of its stock keys (m = 0 for a commit)
--
-- Returns, for request r (0-based), element 1 + r: 1 ended now, 0 nothing to end (no live
-- reservation). A call whose shape does not match, or a release without the stock key of one
-- of its reservation's products, is refused before anything changes.
local n = tonumber(ARGV[3])
local requests = {}
local k, a = 2, 4
for r = 1, (n or 0) do
  local m = tonumber(ARGV[a + 2])
  local mode = ARGV[a + 1]
  if not m or (mode ~= 'commit' and mode ~= 'release') then
    return redis.error_reply('ERR stock_settle.lua: request ' .. r .. ' is malformed')
  end
  requests[r] = {key = k, arg = a, products = m, mode = mode}
  k = k + 2 + m
  a = a + 3 + m
end
if not n or n < 1 or k - 1 ~= #KEYS or a - 1 ~= #ARGV then
  return redis.error_reply('ERR stock_settle.lua: keys and arguments do not match the requests')
end

-- Read and check every request before anything changes.
for _, q in ipairs(requests) do
  local held = redis.call('GET', KEYS[q.key])
  if held and held ~= 'done' then
    q.reservation = cjson.decode(held)
    if q.mode == 'release' then
      q.stockKey = {}
      for i = 1, q.products do
        q.stockKey[tonumber(ARGV[q.arg + 2 + i])] = KEYS[q.key + 1 + i]
      end
      for _, line in ipairs(q.reservation.lines) do
        if not q.stockKey[line[1]] then
          return redis.error_reply('ERR stock_settle.lua: no stock key for product ' .. line[1])
        end
      end
    end
  end
end

local out = {}
local ended = {}
for _, q in ipairs(requests) do
  local orderId = ARGV[q.arg]
  if not q.reservation or ended[KEYS[q.key]] then
    redis.call('ZREM', KEYS[1], orderId)
    out[#out + 1] = 0
  else
    for _, line in ipairs(q.reservation.lines) do
      if q.mode == 'commit' then
        redis.call('ZINCRBY', KEYS[q.key + 1], line[2], line[1])
      else
        redis.call('INCRBY', q.stockKey[line[1]], line[2])
      end
    end
    if q.mode == 'commit' then
      redis.call('EXPIRE', KEYS[q.key + 1], ARGV[1])
    end
    redis.call('SET', KEYS[q.key], 'done', 'EX', ARGV[2])
    ended[KEYS[q.key]] = true
    redis.call('ZREM', KEYS[1], orderId)
    out[#out + 1] = 1
  end
end
return out
