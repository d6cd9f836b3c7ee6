-- KEYS: the writer's key, the waiting writer's mark. ARGV: token, then the
-- readers' and the writers' channels when announced. Returns 1 when our
-- write hold was deleted (announced to readers and writers), 0 otherwise;
-- a mark of ours (a waiting writer giving up) is deleted and announced to
-- the readers it held back.
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("DEL", KEYS[1])
    if ARGV[2] then
        redis.pcall("PUBLISH", ARGV[2], "")
        redis.pcall("PUBLISH", ARGV[3], "")
    end
    return 1
end
if redis.call("GET", KEYS[2]) == ARGV[1] then
    redis.call("DEL", KEYS[2])
    if ARGV[2] then
        redis.pcall("PUBLISH", ARGV[2], "")
    end
end
return 0
