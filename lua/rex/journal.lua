-- rex.journal: terminal updates PostgreSQL could not take, kept in Redis until it answers.
--
-- A job that fails for good while PostgreSQL does not answer would leave its row (an execution
-- `running`, a knowledge document `processing`) in progress forever. The worker that saw the
-- failure writes the update it owes to a hash under the queue's keys, where the job's own
-- failure is being recorded at the same moment, and a later job or the worker's periodic idle()
-- call applies it:
--
--   <prefix>:<queue>:rex:<name>   hash: row id -> JSON entry (the caller's fields)
--
-- The key lives under the queue's prefix so it goes with the queue (Queue.obliterate). Only a
-- worker thread has Redis (rex.worker.redis); under `rex-worker run` or busted there is none and
-- put() reports false.
local rex = require("rex")

local type, pcall, require = type, pcall, require
local json = rex.json

local J = {}

-- The worker thread's Redis and the journal's key, or nil.
local function where(name)
    local ok, w = pcall(require, "rex.worker")
    if ok and type(w) == "table" and w.redis and w.queue_key then
        return w.redis, w.queue_key .. ":rex:" .. name
    end
end

function J.key(name)
    local _, key = where(name)
    return key
end

-- Whether this attempt of the job is its last (BullMQ will not run it again after a failure).
function J.is_last_attempt(job)
    local opts = type(job.opts) == "table" and job.opts or {}
    return (job.attempts_made or 0) + 1 >= (tonumber(opts.attempts) or 1)
end

-- Stores entry (a table) under id. Returns true, or false and why.
function J.put(name, id, entry)
    local redis, key = where(name)
    if not redis then
        return false, "no Redis journal on this thread"
    end
    local r, err = redis("HSET", key, id, json.encode(entry))
    if r == nil then
        return false, err
    end
    return true
end

-- fn wrapped so that it runs at most once a second on this worker thread once it returned true
-- (a journal read that went through: one Redis round trip saved per job under load); after a
-- false, at the next call.
function J.throttled(fn)
    local last = -math.huge
    return function(...)
        local now = rex.monotonic_ms()
        if now - last >= 1000 and fn(...) then
            last = now
        end
    end
end

-- Entries in the journal: a number (0 without a journal), or nil and the error.
function J.length(name)
    local redis, key = where(name)
    if not redis then
        return 0
    end
    return redis("HLEN", key)
end

-- Calls apply(id, entry) for every entry (entry nil when it is not a JSON object). apply returns
-- true when the entry is done with (it is deleted), false to stop and keep it and the rest (the
-- database is failing again). Returns true when the whole journal went through; false and the
-- error when it could not be read.
function J.each(name, apply)
    local redis, key = where(name)
    if not redis then
        return true
    end
    local list, err = redis("HGETALL", key)
    if list == nil then
        return false, err
    end
    for i = 1, #list - 1, 2 do
        local id = list[i]
        local ok, entry = pcall(json.decode, list[i + 1])
        if not ok or type(entry) ~= "table" then
            entry = nil
        end
        if not apply(id, entry) then
            return false
        end
        redis("HDEL", key, id)
    end
    return true
end

return J
