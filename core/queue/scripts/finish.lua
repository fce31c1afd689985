-- finish: moveToFinished (protocol §4.5, §4.6 step 5, §4.15, §4.16), target completed or failed.
-- ARGV: 1 id, 2 token, 3 now, 4 "completed"/"failed", 5 returnvalue JSON or failedReason,
-- 6 keepJobs JSON, 7 attempts, 8 fetchNext, 9 stacktrace JSON ("" = leave), 10 next token,
-- 11 lockDuration, 12 limiter max, 13 limiter duration, 14 worker name.
-- Returns the fetch reply when fetchNext found something to report, 0, or a negative code.
local id, token, now, target, value = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local completed = target == "completed"
local jk = P .. id

if redis.call("EXISTS", jk) == 0 then
    return -1
end
if completed then
    if redis.call("SCARD", jk .. ":dependencies") ~= 0 then
        return -4
    end
    if redis.call("ZCARD", jk .. ":unsuccessful") ~= 0 then
        return -9
    end
end
local err = R.release_lock(P, id, token)
if err then
    return err
end
if not completed then
    R.set_failure(jk, value, ARGV[9] or "")
end
local f = redis.call("HMGET", jk, "parentKey", "parent", "deid")
if redis.call("LREM", P .. "active", -1, id) == 0 then
    return -3
end
R.trim_events(P)

if f[3] then
    R.dedup_finish(P, id, f[3], now)
end
R.child_finished(P, id, f[1], f[2], completed, value, now)
local attempts_made = redis.call("HINCRBY", jk, "atm", 1)

-- Retention (keepJobs): count -1 keeps all, 0 removes this job, n > 0 keeps the newest n;
-- age (seconds) removes up to `limit` (default 1000) older than now - age.
local ok, keep = pcall(cjson.decode, ARGV[6] or "")
if not ok or type(keep) ~= "table" then
    keep = { count = -1 }
end
local count = tonumber(keep.count) or -1
if count == 0 then
    R.remove_job(P, id)
else
    local set = P .. target
    redis.call("ZADD", set, R.num(now), id)
    if completed then
        redis.call("HSET", jk, "returnvalue", value, "finishedOn", R.num(now))
    else
        redis.call("HSET", jk, "failedReason", value, "finishedOn", R.num(now))
        redis.call("HDEL", jk, "defa")
    end
    local age = tonumber(keep.age)
    if age then
        local old = redis.call("ZRANGEBYSCORE", set, 0, R.num(now - age * 1000), "LIMIT", 0,
            tonumber(keep.limit) or 1000)
        for _, old_id in ipairs(old) do
            R.remove_job(P, old_id)
            redis.call("ZREM", set, old_id)
        end
    end
    if count > 0 then
        local old = redis.call("ZREVRANGE", set, count, -1)
        for _, old_id in ipairs(old) do
            R.remove_job(P, old_id)
            redis.call("ZREM", set, old_id)
        end
    end
end

if completed then
    R.event(P, "completed", "jobId", id, "returnvalue", value, "prev", "active")
else
    R.event(P, "failed", "jobId", id, "failedReason", value, "prev", "active")
    if attempts_made >= (tonumber(ARGV[7]) or 0) then
        R.event(P, "retries-exhausted", "jobId", id, "attemptsMade", attempts_made)
    end
end

if ARGV[8] == "1" then
    local reply, idle = R.fetch(P, now, ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14])
    if not idle then
        return reply
    end
end
if redis.call("LLEN", P .. "wait") == 0 and redis.call("LLEN", P .. "active") == 0 and
    redis.call("ZCARD", P .. "prioritized") == 0 then
    R.event(P, "drained")
end
return 0
