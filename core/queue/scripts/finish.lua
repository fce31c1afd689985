-- finish: moveToFinished (protocol §4.5, §4.6 step 5, §4.15, §4.16), target completed or failed.
-- ARGV: 1 id, 2 token, 3 now, 4 "completed"/"failed", 5 returnvalue JSON or failedReason,
-- 6 keepJobs JSON, 7 attempts, 8 fetchNext, 9 stacktrace JSON ("" = leave), 10 next token,
-- 11 lockDuration, 12 limiter max, 13 limiter duration, 14 worker name.
-- Returns the fetch reply when fetchNext found something to report, 0, or a negative code.
local id, now = ARGV[1], tonumber(ARGV[3])
local rc = R.finish_one(P, id, ARGV[2], now, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[9])
if rc ~= 0 then
    return rc
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
