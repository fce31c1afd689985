-- log: addLog (protocol §4.9). ARGV: 1 id, 2 line, 3 keepLogs ("" = keep all).
-- Returns the number of log lines kept, or -1 when the job does not exist. No lock check.
local jk = P .. ARGV[1]
if redis.call("EXISTS", jk) == 0 then
    return -1
end
local n = redis.call("RPUSH", jk .. ":logs", ARGV[2])
local keep = tonumber(ARGV[3])
if keep then
    redis.call("LTRIM", jk .. ":logs", -keep, -1)
    return math.min(keep, n)
end
return n
