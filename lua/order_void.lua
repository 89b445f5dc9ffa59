-- order_void.lua: the reservation sweeper's question to an order's bucket — "what became of
-- this order?" — asked when a reservation's time is up. An order that exists answers its
-- status; an order that was never created is voided in the same step, so that a slow
-- `order_reserve.lua` arriving afterwards refuses to create it, and its reservations can be
-- released without racing it.
--
-- KEYS[1]  {u}:order:{orderId}       order hash
-- KEYS[2]  {u}:ordervoid:{orderId}   void marker
-- ARGV[1]  how long the void marker is kept, s
--
-- Returns {1, status, paidAtMs or ''} when the order exists, {0} when it does not (voided).
local o = redis.call('HMGET', KEYS[1], 'status', 'paidAt')
if o[1] then
  return {1, o[1], o[2] or ''}
end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return {0}
