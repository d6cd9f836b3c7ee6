-- KEYS: the readers' set. ARGV: token, and the waiting writers' channel when
-- announced. Returns 1 when our read hold was live (and, if it was the last
-- live one, announces it), 0 when it was gone or expired (removed anyway).
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score then
    return 0
end
redis.call("ZREM", KEYS[1], ARGV[1])
if tonumber(score) <= now then
    return 0
end
if ARGV[2] and redis.call("ZCOUNT", KEYS[1], "(" .. now, "+inf") == 0 then
    redis.pcall("PUBLISH", ARGV[2], "")
end
return 1
