-- progress: job:progress(value). ARGV[1] = job id, ARGV[2] = progress JSON.
-- Returns 0, or -1 when the job hash does not exist. No lock check (as BullMQ).
local id, data = ARGV[1], ARGV[2]
if redis.call("EXISTS", P .. id) == 0 then
    return -1
end
redis.call("HSET", P .. id, "progress", data)
R.event(P, "progress", "jobId", id, "data", data)
return 0
