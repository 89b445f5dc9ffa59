-- rate_gcra.lua: requests against budgets shared by every instance (GCRA: lib/gcra.lua, which
-- precedes this text). One call takes one request, or a batch of requests gathered by one
-- instance (group commit), taken in the order given: a later request on the same bucket sees
-- what an earlier one took.
--
-- The clock is Redis's own (TIME), not the caller's: every instance then measures the budget
-- against one clock, and no instance with a skewed clock can refill the bucket early.
--
-- Safe to re-send: fred re-sends a command in flight when a connection drops, so the same call
-- may arrive twice. The caller passes a request id made once per request; the bucket remembers
-- the last one and its answer (lib/gcra.lua).
--
-- For request i (1-based):
-- KEYS[i]          {s}:rl:{budget}:{subject}   hash: tat (µs since the epoch), rid, res
--                  (every key of one call is in one bucket: the caller batches per bucket)
-- ARGV[3i - 2]     emission interval, microseconds (1e6 / requests per second); integer >= 1
-- ARGV[3i - 1]     burst: requests allowed at once; integer >= 1
-- ARGV[3i]         request id (1-64 characters)
--
-- Every budget is checked before any bucket changes (a bad one refuses the whole call).
-- Returns, for request i, elements 3i - 2 .. 3i: {allowed, retry_after_ms, remaining}:
--   {1, 0, n}   allowed; n more would be allowed right now
--   {0, ms, 0}  refused; the next request is allowed in ms milliseconds
local n = #KEYS
if n < 1 or #ARGV ~= 3 * n then
  return redis.error_reply('ERR_BAD_BUDGET want n keys and 3n arguments')
end
for i = 1, n do
  if not gcra_terms(ARGV[3 * i - 2], ARGV[3 * i - 1]) then
    return redis.error_reply('ERR_BAD_BUDGET')
  end
end

local now = gcra_now()
local out = {}
for i = 1, n do
  local interval, burst = gcra_terms(ARGV[3 * i - 2], ARGV[3 * i - 1])
  local allowed, retry, remaining = gcra_take(KEYS[i], interval, burst, ARGV[3 * i], now)
  out[#out + 1] = allowed
  out[#out + 1] = retry
  out[#out + 1] = remaining
end
return out
