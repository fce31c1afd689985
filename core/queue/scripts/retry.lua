-- retry: retryJob, an immediate retry (protocol §4.6 step 4). ARGV: 1 id, 2 token, 3 now,
-- 4 lifo "1"/"0", 5 failedReason ("" = leave), 6 stacktrace JSON ("" = leave).
-- Returns 0 or a negative code.
local id, token, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local jk = P .. id
local blocked, paused = R.state(P)
R.promote(P, now, blocked, paused)
if redis.call("EXISTS", jk) == 0 then
    return -1
end
local err = R.release_lock(P, id, token)
if err then
    return err
end
R.set_failure(jk, ARGV[5] or "", ARGV[6] or "")
if redis.call("LREM", P .. "active", -1, id) == 0 then
    return -3
end
R.enqueue(P, id, tonumber(redis.call("HGET", jk, "priority")) or 0, ARGV[4] == "1")
redis.call("HINCRBY", jk, "atm", 1)
R.event(P, "waiting", "jobId", id, "prev", "active")
return 0
