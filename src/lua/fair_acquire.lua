-- ARGV: token, TTL in ms, a place's life in ms (0: take none). Returns 1
-- when we took the lock (free, and nobody live in line before us), 2 when
-- it was ours already (an earlier send landed), 3 when we wait in line:
-- placed last if we had no place, and our place kept for another life
-- either way; 0 when busy and asked to take no place.
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then
    return 2
end
if not holder then
    local first = redis.call("ZRANGE", KEYS[2], 0, 0)[1]
    if not first or first == ARGV[1] then
        redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
        if first then
            redis.call("ZREM", KEYS[2], ARGV[1])
            redis.call("ZREM", KEYS[3], ARGV[1])
        end
        return 1
    end
end
local life = tonumber(ARGV[3])
if life == 0 then
    return 0
end
if not redis.call("ZSCORE", KEYS[2], ARGV[1]) then
    local last = redis.call("ZRANGE", KEYS[2], -1, -1, "WITHSCORES")
    redis.call("ZADD", KEYS[2], (tonumber(last[2]) or 0) + 1, ARGV[1])
end
redis.call("ZADD", KEYS[3], now + life, ARGV[1])
local latest = redis.call("ZRANGE", KEYS[3], -1, -1, "WITHSCORES")[2]
redis.call("PEXPIREAT", KEYS[2], latest)
redis.call("PEXPIREAT", KEYS[3], latest)
return 3
