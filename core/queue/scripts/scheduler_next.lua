-- scheduler_next: updateJobScheduler, the next iteration of a job scheduler, created when the
-- current one is fetched (protocol §4.14). ARGV: 1 scheduler id, 2 nextMillis ("" = compute
-- from `every`), 3 producer job id (the fetched job), 4 now, 5 next job's opts JSON,
-- 6 every ("" = from the scheduler hash). Returns the new job id, or nil when nothing was
-- created (scheduler removed, fetched job not the current iteration, or slot already taken).
local sid, now = ARGV[1], tonumber(ARGV[4])
local prev = tonumber(redis.call("ZSCORE", P .. "repeat", sid))
if not prev then
    return nil
end
local sk = P .. "repeat:" .. sid
local s = redis.call("HMGET", sk, "name", "data", "every", "offset")
local next_ms = tonumber(ARGV[2])
local every = tonumber(ARGV[6]) or tonumber(s[3])
if not next_ms then
    if not every or every <= 0 then
        return nil
    end
    local offset = tonumber(s[4])
    if not offset then
        offset = prev % every
        redis.call("HSET", sk, "offset", R.num(offset))
    end
    next_ms = prev + every
    if next_ms < now then
        local aligned = math.floor(now / every) * every + offset
        next_ms = aligned <= now and aligned + every or aligned
    end
end
if ARGV[3] ~= "repeat:" .. sid .. ":" .. R.num(prev) then
    return nil
end
local nid = "repeat:" .. sid .. ":" .. R.num(next_ms)
if redis.call("EXISTS", P .. nid) == 1 then
    R.event(P, "duplicated", "jobId", nid)
    return nil
end
local delay = math.max(0, next_ms - now)
local ok, opts = pcall(cjson.decode, ARGV[5])
if not ok or type(opts) ~= "table" then
    opts = {}
end
opts.delay, opts.jobId = delay, nid
redis.call("ZADD", P .. "repeat", R.num(next_ms), sid)
redis.call("HINCRBY", sk, "ic", 1)
redis.call("INCR", P .. "id")
R.add_job(P, nid, s[1] or "", s[2] or "{}", cjson.encode(opts), now, delay,
    tonumber(opts.priority) or 0, opts.lifo == true, { "rjk", sid })
return nid
