-- session_gen.lua: raise a user's token generation in Redis, never lower it, and announce a
-- raise of a known generation (a log-out) on the bucket's shard channel.
--
-- Access tokens carry the generation (`gen` claim) their user had when they were issued; the
-- auth guard refuses a token whose generation is below the one held here. Log-out (and any
-- future password change) increments `users.token_gen` in MySQL and then calls this script
-- with the new value; log-in and the guard's cold load call it with MySQL's value. Taking the
-- maximum makes every order of those calls safe: a cold load that read MySQL before a
-- log-out and writes after it cannot bring a revoked generation back, and a re-sent call is
-- a no-op.
--
-- Instances keep a copy of generations they read from here; the announcement, published in
-- the same script as the raise, is what lets them trust that copy for longer than a second
-- (src/logout_feed.rs). Only a raise of a generation Redis held is announced: a copy can only
-- have been read from a held generation, so a first value (sign-up, a cold load, a user
-- recorded as unknown) revokes nothing any copy holds.
--
-- KEYS[1]  {u}:user:{userId}:tgen   integer string; absent = unknown (cold); `-1` with a TTL =
--                                   no such user (negative cache)
-- KEYS[2]  {u}:logouts              the bucket's shard channel
-- ARGV[1]  generation (integer >= 0), or -1 to record "no such user"
-- ARGV[2]  lifetime of a negative entry, seconds
-- ARGV[3]  user id (in the announcement "raise <userId> <generation>")
--
-- Returns the generation held after the call (-1 = no such user).
local wanted = tonumber(ARGV[1])
if not wanted or wanted ~= math.floor(wanted) or wanted < -1 then
  return redis.error_reply('ERR_BAD_GENERATION')
end
local held = tonumber(redis.call('GET', KEYS[1]))
if wanted == -1 then
  if held then
    return held
  end
  redis.call('SET', KEYS[1], '-1', 'EX', ARGV[2])
  return -1
end
if held and held >= wanted then
  return held
end
redis.call('SET', KEYS[1], ARGV[1])
if held and held >= 0 then
  redis.call('SPUBLISH', KEYS[2], 'raise ' .. ARGV[3] .. ' ' .. ARGV[1])
end
return wanted
