-- retry: retryJob, an immediate retry (protocol §4.6 step 4). ARGV: 1 id, 2 token, 3 now,
-- 4 lifo "1"/"0", 5 failedReason ("" = leave), 6 stacktrace JSON ("" = leave).
-- Returns 0 or a negative code.
local id, token, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local jk = P .. id
local blocked, paused = R.state(P)
R.promote(P, now, blocked, paused)
local err = R.leave_active(P, id, token, ARGV[5], ARGV[6])
if err then
    return err
end
R.enqueue(P, id, tonumber(redis.call("HGET", jk, "priority")) or 0, ARGV[4] == "1")
redis.call("HINCRBY", jk, "atm", 1)
R.event(P, "waiting", "jobId", id, "prev", "active")
return 0
