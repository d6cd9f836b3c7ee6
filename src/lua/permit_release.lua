local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score then
    return 0
end
redis.call("ZREM", KEYS[1], unpack(members(ARGV[1], tonumber(ARGV[2]))))
if tonumber(score) <= now then
    return 0
end
if ARGV[3] then
    redis.pcall("PUBLISH", ARGV[3], "")
end
return 1
