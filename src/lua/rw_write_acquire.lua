-- KEYS: the writer's key, the readers' set, the waiting writer's mark.
-- ARGV: token, TTL in ms. Returns 1 when we took the write hold, 2 when it
-- was ours already, 3 when live readers hold it and our mark now stops new
-- readers (kept for 2 TTLs, renewed by each attempt), 0 when another
-- writer holds it, or readers hold it and another writer's mark is first.
local writer = redis.call("GET", KEYS[1])
if writer then
    if writer == ARGV[1] then
        return 2
    end
    return 0
end
redis.call("ZREMRANGEBYSCORE", KEYS[2], "-inf", now)
local intent = redis.call("GET", KEYS[3])
if redis.call("ZCARD", KEYS[2]) > 0 then
    if not intent or intent == ARGV[1] then
        redis.call("SET", KEYS[3], ARGV[1], "PX", 2 * tonumber(ARGV[2]))
        return 3
    end
    return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
if intent == ARGV[1] then
    redis.call("DEL", KEYS[3])
end
return 1
