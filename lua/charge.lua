-- charge.lua: add money to a user's prepaid balance and append `balance.charged`, atomically,
-- exactly once per idempotency key.
--
-- KEYS[1]  {u}:bal:{userId}                  balance in won (integer string)
-- KEYS[2]  {u}:idem:charge:{userId}:{key}    "<amount>|<balanceAfter>" of the first outcome
-- KEYS[3]  {u}:events                        the user bucket's settlement stream
-- ARGV[1]  amount (integer won, 1..max per charge; checked by the caller)
-- ARGV[2]  highest balance allowed
-- ARGV[3]  event id (UUID)
-- ARGV[4]  occurred-at, Unix milliseconds
-- ARGV[5]  idempotency record lifetime, seconds
-- ARGV[6]  user id
--
-- Returns {status, balance}:
--    1  charged now; balance after
--    0  replay of the same key and amount; the balance the first call reported
--   -1  the balance would exceed the limit; current balance (nothing changed)
--   -2  the key was used with another amount (nothing changed)
--   -3  Redis does not hold this user's balance (nothing changed; caller loads it)
local prior = redis.call('GET', KEYS[2])
if prior then
  local amount, balance = string.match(prior, '^(%d+)|(%-?%d+)$')
  if amount ~= ARGV[1] then
    return {-2, 0}
  end
  return {0, tonumber(balance)}
end
local current = redis.call('GET', KEYS[1])
if not current then
  return {-3, 0}
end
local amount = tonumber(ARGV[1])
if tonumber(current) + amount > tonumber(ARGV[2]) then
  return {-1, tonumber(current)}
end
local balance = redis.call('INCRBY', KEYS[1], amount)
local data = cjson.encode({userId = tonumber(ARGV[6]), amount = amount, balanceAfter = balance})
redis.call('XADD', KEYS[3], '*', 'id', ARGV[3], 'type', 'balance.charged', 'v', '1',
  'at', ARGV[4], 'data', data)
redis.call('SET', KEYS[2], ARGV[1] .. '|' .. balance, 'EX', ARGV[5])
return {1, balance}
