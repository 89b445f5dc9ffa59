-- stock_settle.lua: end an order's reservation in one product bucket, after the order's own
-- bucket decided (the last step of the payment, expiry and cancel sagas): `commit` once the
-- order is paid (the units stay sold; units sold this hour are counted for the ranking) or
-- `release` once it expired, was cancelled or was never created (the units go back to stock).
-- Safe to re-send and to race: the reservation ends once, and becomes `done` for a while so a
-- late re-send of stock_reserve.lua cannot hold the units again.
--
-- KEYS[1]  {q}:resv:{orderId}        the reservation (JSON), or `done`
-- KEYS[2]  {q}:resv:due              zset of live reservations
-- KEYS[3]  {q}:pop:{hour}            units sold per product in the paid hour (commit)
-- KEYS[4..3+n]  {q}:stock:{productId}  release: the stock of each product of the reservation
-- ARGV[1]  order id     ARGV[2]  'commit' or 'release'     ARGV[3]  ranking bucket ttl s
-- ARGV[4]  how long `done` is kept, s
-- ARGV[5..4+n]  release: the product ids of KEYS[4..3+n], in the same order
--
-- Returns {1} ended now, {0} nothing to end (no reservation here, or it ended before).
local held = redis.call('GET', KEYS[1])
if not held or held == 'done' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {0}
end
local reservation = cjson.decode(held)
if ARGV[2] == 'commit' then
  for _, line in ipairs(reservation.lines) do
    redis.call('ZINCRBY', KEYS[3], line[2], line[1])
  end
  redis.call('EXPIRE', KEYS[3], ARGV[3])
elseif ARGV[2] == 'release' then
  local stockKey = {}
  for i = 5, #ARGV do
    stockKey[tonumber(ARGV[i])] = KEYS[i - 1]
  end
  for _, line in ipairs(reservation.lines) do
    if not stockKey[line[1]] then
      return redis.error_reply('ERR stock_settle.lua: no stock key for product ' .. line[1])
    end
  end
  for _, line in ipairs(reservation.lines) do
    redis.call('INCRBY', stockKey[line[1]], line[2])
  end
else
  return redis.error_reply('ERR stock_settle.lua: mode must be commit or release')
end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1}
