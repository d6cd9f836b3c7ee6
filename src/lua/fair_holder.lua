-- What keeps a waiter out: {1, pttl, holder} while the lock is held,
-- {2, ms} while it is free for the first live waiter, whose place lapses in
-- ms unless it keeps it, {0} when it is free with nobody in line.
local holder = redis.call("GET", KEYS[1])
if holder then
    return {1, redis.call("PTTL", KEYS[1]), holder}
end
local first = redis.call("ZRANGE", KEYS[2], 0, 0)[1]
if first then
    local lapses = tonumber(redis.call("ZSCORE", KEYS[3], first) or now)
    return {2, lapses - now}
end
return {0}
