-- delay: moveToDelayed (protocol §4.6 step 3). ARGV: 1 id, 2 token, 3 now, 4 delay ms,
-- 5 failedReason ("" = leave), 6 stacktrace JSON ("" = leave), 7 skipAttempt "1"/"0".
-- Returns 0 or a negative code.
local id, token, now, delay = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]) or 0
local jk = P .. id
local err = R.leave_active(P, id, token, ARGV[5], ARGV[6])
if err then
    return err
end
local ready_at = now + delay
if ARGV[7] ~= "1" then
    redis.call("HINCRBY", jk, "atm", 1)
end
redis.call("HSET", jk, "delay", R.num(delay))
R.add_delayed(P, id, ready_at)
R.event(P, "delayed", "jobId", id, "delay", R.num(ready_at))
R.delay_marker(P)
return 0
