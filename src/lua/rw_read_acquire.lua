-- KEYS: the writer's key, the readers' set, the waiting writer's mark.
-- ARGV: token, TTL in ms. Returns 1 when our read hold was added, 2 when it
-- was there already (an earlier send landed), 0 when a writer holds the key
-- or waits for the readers (write preference).
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now)
if redis.call("ZSCORE", KEYS[2], ARGV[1]) then
    return 2
end
if redis.call("GET", KEYS[1]) or redis.call("EXISTS", KEYS[3]) == 1 then
    return 0
end
redis.call("ZADD", KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call("ZRANGE", KEYS[2], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[2], last[2])
return 1
