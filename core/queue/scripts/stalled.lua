-- stalled: moveStalledJobsToWait (protocol §4.8). ARGV: 1 now, 2 maxStalledCount,
-- 3 stalledInterval. Returns the ids requeued (an empty array when another checker ran within
-- the interval).
local now, max_stalled = ARGV[1], tonumber(ARGV[2]) or 1
if redis.call("EXISTS", P .. "stalled-check") == 1 then
    return {}
end
redis.call("SET", P .. "stalled-check", now, "PX", ARGV[3])
R.trim_events(P)

local requeued = {}
local candidates = redis.call("SMEMBERS", P .. "stalled")
redis.call("DEL", P .. "stalled")
for _, id in ipairs(candidates) do
    if string.sub(id, 1, 2) == "0:" then
        redis.call("LREM", P .. "active", 1, id)
    elseif redis.call("EXISTS", P .. id .. ":lock") == 0 and
        redis.call("LREM", P .. "active", 1, id) > 0 then
        local jk = P .. id
        local stc = redis.call("HINCRBY", jk, "stc", 1)
        local rjk = redis.call("HGET", jk, "rjk")
        local scheduled = rjk and (redis.call("EXISTS", P .. "repeat:" .. rjk) == 1 or
            redis.call("ZSCORE", P .. "repeat", rjk) ~= false)
        if stc > max_stalled and not scheduled then
            redis.call("HSET", jk, "defa", "job stalled more than allowable limit")
        end
        local blocked, paused = R.state(P)
        R.push_wait(P, id, true, paused)
        R.base_marker(P, blocked)
        R.event(P, "waiting", "jobId", id, "prev", "active")
        R.event(P, "stalled", "jobId", id)
        requeued[#requeued + 1] = id
    end
end

local active = redis.call("LRANGE", P .. "active", 0, -1)
for i = 1, #active, 7000 do
    redis.call("SADD", P .. "stalled", unpack(active, i, math.min(i + 6999, #active)))
end
return requeued
