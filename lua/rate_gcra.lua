-- rate_gcra.lua: requests against budgets shared by every instance (GCRA, the generic cell
-- rate algorithm: a token bucket kept as one timestamp). One call takes one request, or a batch
-- of requests gathered by one instance (group commit), taken in the order given: a later request
-- on the same bucket sees what an earlier one took.
--
-- The bucket is the "theoretical arrival time" (tat): when the bucket would be full again. A
-- request is allowed when, after adding one emission interval, tat lies at most `burst`
-- intervals ahead of now; it then moves tat forward by one interval. A refused request changes
-- nothing but the replay record.
--
-- The clock is Redis's own (TIME), not the caller's: every instance then measures the budget
-- against one clock, and no instance with a skewed clock can refill the bucket early.
--
-- Safe to re-send: fred re-sends a command in flight when a connection drops, so the same call
-- may arrive twice. The caller passes a request id made once per request; the bucket remembers
-- the last one and its answer, and a call with that id gets the same answer without counting
-- again. (Only the last id is kept: a re-send overtaken by another request of the same bucket
-- counts twice, which errs on the side of throttling.)
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
  local interval, burst = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  if not interval or interval < 1 or interval ~= math.floor(interval)
      or not burst or burst < 1 or burst ~= math.floor(burst) then
    return redis.error_reply('ERR_BAD_BUDGET')
  end
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local function take(key, interval, burst, rid)
  local held = redis.call('HMGET', key, 'tat', 'rid', 'res')
  if held[2] == rid and held[3] then
    local allowed, retry, remaining = string.match(held[3], '^(%d):(%d+):(%d+)$')
    return tonumber(allowed), tonumber(retry), tonumber(remaining)
  end
  local tat = tonumber(held[1]) or now
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if allow_at > now then
    local retry_ms = math.ceil((allow_at - now) / 1000)
    redis.call('HSET', key, 'rid', rid, 'res', '0:' .. retry_ms .. ':0')
    return 0, retry_ms, 0
  end
  local remaining = math.floor((now - allow_at) / interval)
  redis.call('HSET', key, 'tat', string.format('%.0f', new_tat), 'rid', rid,
    'res', '1:0:' .. remaining)
  redis.call('PEXPIRE', key, math.ceil((new_tat - now) / 1000) + 1000)
  return 1, 0, remaining
end

local out = {}
for i = 1, n do
  local allowed, retry, remaining = take(KEYS[i], tonumber(ARGV[3 * i - 2]),
    tonumber(ARGV[3 * i - 1]), ARGV[3 * i])
  out[#out + 1] = allowed
  out[#out + 1] = retry
  out[#out + 1] = remaining
end
return out
