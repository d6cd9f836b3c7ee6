redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
if redis.call("ZSCORE", KEYS[1], ARGV[1]) then
    return 2
end
local count = tonumber(ARGV[4])
if redis.call("ZCARD", KEYS[1]) + count > tonumber(ARGV[3]) then
    return 0
end
local expires = now + tonumber(ARGV[2])
for _, member in ipairs(members(ARGV[1], count)) do
    redis.call("ZADD", KEYS[1], expires, member)
end
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
redis.call("PEXPIREAT", KEYS[1], last[2])
return 1
