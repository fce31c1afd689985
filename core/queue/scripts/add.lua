-- add: Queue.add of a standard, delayed or prioritized job. ARGV: 1 name, 2 data JSON,
-- 3 opts JSON as stored, 4 timestamp, 5 custom job id ("" = auto from `P id`), 6 delay ms,
-- 7 priority, 8 lifo "1"/"0". Returns {id, created}: created 0 when the id already existed
-- (then only a `duplicated` event is written).
local custom = ARGV[5]
local counter = redis.call("INCR", P .. "id")
local id = custom ~= "" and custom or tostring(counter)
if redis.call("EXISTS", P .. id) == 1 then
    R.event(P, "duplicated", "jobId", id)
    return { id, 0 }
end
R.add_job(P, id, ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[6]) or 0,
    tonumber(ARGV[7]) or 0, ARGV[8] == "1")
return { id, 1 }
