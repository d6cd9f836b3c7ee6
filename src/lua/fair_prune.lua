-- Every script of the fair lock starts here. KEYS: the lock, the queue
-- (token -> place in line), the queue's expiries (token -> when the place
-- lapses, ms on the server's clock). Drops the places that lapsed: their
-- waiters stopped keeping them (crashed, cut off).
local lapsed = redis.call("ZRANGEBYSCORE", KEYS[3], "-inf", now)
for _, waiter in ipairs(lapsed) do
    redis.call("ZREM", KEYS[2], waiter)
end
if #lapsed > 0 then
    redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", now)
end
