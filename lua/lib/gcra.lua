-- lib/gcra.lua: one request against a budget shared by every instance (GCRA, the generic cell
-- rate algorithm: a token bucket kept as one timestamp). Not a script of its own: the scripts
-- that take from a budget (rate_gcra.lua, order_pay.lua) are this text followed by theirs
-- (src/cache/scripts.rs), so there is one copy of the algorithm.
--
-- The bucket is the "theoretical arrival time" (tat): when the bucket would be full again. A
-- request is allowed when, after adding one emission interval, tat lies at most `burst`
-- intervals ahead of now; it then moves tat forward by one interval. A refused request changes
-- nothing but the replay record.
--
-- Safe to re-send: the bucket remembers the last request id and its answer, and a call with
-- that id gets the same answer without counting again. (Only the last id is kept: a re-send
-- overtaken by another request of the same bucket counts twice, which errs on the side of
-- throttling.)
--
-- key       {s}:rl:{budget}:{subject}   hash: tat (µs since the epoch), rid, res
-- interval  emission interval, µs (1e6 / requests per second); integer >= 1
-- burst     requests allowed at once; integer >= 1
-- rid       request id (1-64 characters)
-- now       µs since the epoch, from Redis's TIME (one clock for every instance)
--
-- Returns allowed (1 or 0), retry_after_ms, remaining.
local function gcra_take(key, interval, burst, rid, now)
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

-- A budget's interval and burst as given, or nil when either is not a whole number >= 1.
local function gcra_terms(interval, burst)
  interval, burst = tonumber(interval), tonumber(burst)
  if not interval or interval < 1 or interval ~= math.floor(interval)
      or not burst or burst < 1 or burst ~= math.floor(burst) then
    return nil
  end
  return interval, burst
end

-- Redis's clock in µs since the epoch.
local function gcra_now()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end
