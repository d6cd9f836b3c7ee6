-- ARGV: token, then, when announced, the start of the waiters' channel
-- names and the key's plain channel. Returns 1 when our hold was deleted
-- (announced on the plain channel too, for plain waiters), 0 otherwise. A
-- place of ours (a waiter giving up) is removed. When the lock is left free
-- by us (released, or our place was first), the first live waiter is told
-- on its own channel: the start given, then the SHA-1 of its token.
local released = 0
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("DEL", KEYS[1])
    released = 1
else
    local first = redis.call("ZRANGE", KEYS[2], 0, 0)[1]
    if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
        return 0
    end
    redis.call("ZREM", KEYS[3], ARGV[1])
    if first ~= ARGV[1] or redis.call("EXISTS", KEYS[1]) == 1 then
        return 0
    end
end
if ARGV[2] then
    local waiter = redis.call("ZRANGE", KEYS[2], 0, 0)[1]
    if waiter then
        redis.pcall("PUBLISH", ARGV[2] .. redis.sha1hex(waiter), "")
    end
    if released == 1 then
        redis.pcall("PUBLISH", ARGV[3], "")
    end
end
return released
