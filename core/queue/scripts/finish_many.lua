-- finish_many: several `finish` calls in one round trip, then fetch-next for as many of them as
-- asked (the worker batches the jobs that completed while it was busy; each job goes through
-- exactly the same steps as with `finish`).
-- ARGV: 1 now, 2 lockDuration, 3 limiter max, 4 limiter duration, 5 worker name, 6 n, then n
-- groups of 8: id, token, "completed"/"failed", value, keepJobs JSON, attempts, stacktrace JSON
-- ("" = leave), next token ("" = no fetch-next for this one).
-- Returns {codes, jobs, tail}: codes[i] is 0 or the negative code of job i; jobs lists
-- {job hash, id, token} for each job fetched; tail is the fetch reply that stopped fetching
-- early (rate-limited, paused or maxed, or no job with the next delayed time), else 0 (every
-- token got a job, or nothing at all is pending: with no job fetched, that is "drained").
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[6])
local codes, tokens = {}, {}
for i = 1, n do
    local b = 6 + (i - 1) * 8
    local rc = R.finish_one(P, ARGV[b + 1], ARGV[b + 2], now, ARGV[b + 3], ARGV[b + 4],
        ARGV[b + 5], ARGV[b + 6], ARGV[b + 7])
    codes[i] = rc
    if rc == 0 and ARGV[b + 8] ~= "" then
        tokens[#tokens + 1] = ARGV[b + 8]
    end
end
local jobs, tail, batch = {}, 0, {}
for _, token in ipairs(tokens) do
    local reply, idle = R.fetch(P, now, token, ARGV[2], ARGV[3], ARGV[4], ARGV[5], batch)
    if idle then
        break
    end
    if reply[2] == 0 then
        tail = reply
        break
    end
    jobs[#jobs + 1] = { reply[1], reply[2], token }
end
if #jobs == 0 and tail == 0 and redis.call("LLEN", P .. "wait") == 0 and
    redis.call("LLEN", P .. "active") == 0 and redis.call("ZCARD", P .. "prioritized") == 0 then
    R.event(P, "drained")
end
return { codes, jobs, tail }
