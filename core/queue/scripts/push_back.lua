-- push_back: moveJobFromActiveToWait after a RateLimitError (protocol §4.7). ARGV: 1 id,
-- 2 token. Returns the limiter's PTTL (0 when it has none) or a negative code. atm unchanged.
local id, token = ARGV[1], ARGV[2]
local jk = P .. id
if redis.call("EXISTS", jk) == 0 then
    return -1
end
local err = R.release_lock(P, id, token)
if err then
    return err
end
if redis.call("LREM", P .. "active", 1, id) > 0 then
    local priority = tonumber(redis.call("HGET", jk, "priority")) or 0
    local blocked, paused = R.state(P)
    if priority > 0 then
        -- ahead of the jobs of the same priority
        redis.call("ZADD", P .. "prioritized", R.num(priority * 4294967296), id)
    else
        R.push_wait(P, id, true, paused)
    end
    R.base_marker(P, blocked)
    R.event(P, "waiting", "jobId", id, "prev", "active")
end
local ttl = redis.call("PTTL", P .. "limiter")
return ttl > 0 and ttl or 0
