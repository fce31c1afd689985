-- Queue helpers shared by the scripts (protocol §4). They live in one table, R, so that the
-- prelude adds a single local to every script. `qp` is a queue's base key ("bull:Q:"): mostly P,
-- but a flow's parent may live in another queue.
local R = { maxlen = {} }

-- Numbers go to Redis as strings without exponent (delayed scores exceed 1e14).
function R.num(x)
    return string.format("%.0f", x)
end

-- opts.maxLenEvents, with the "get or set 10000" rule (protocol §1.2).
function R.events_maxlen(qp)
    local m = R.maxlen[qp]
    if not m then
        m = redis.call("HGET", qp .. "meta", "opts.maxLenEvents")
        if not m then
            m = "10000"
            redis.call("HSET", qp .. "meta", "opts.maxLenEvents", m)
        end
        R.maxlen[qp] = m
    end
    return m
end

-- XADD event=<name> plus the given field/value pairs to qp's stream.
function R.event(qp, name, ...)
    redis.call("XADD", qp .. "events", "MAXLEN", "~", R.events_maxlen(qp), "*", "event", name, ...)
end

function R.trim_events(qp)
    redis.call("XTRIM", qp .. "events", "MAXLEN", "~", R.events_maxlen(qp))
end

-- Returns blocked (paused or maxed: no base marker, no fetch) and paused (meta.paused exists).
function R.state(qp)
    local m = redis.call("HMGET", qp .. "meta", "paused", "concurrency")
    local paused = m[1] ~= false
    if paused then
        return true, true
    end
    local limit = tonumber(m[2])
    return limit ~= nil and redis.call("LLEN", qp .. "active") >= limit, false
end

function R.base_marker(qp, blocked)
    if not blocked then
        redis.call("ZADD", qp .. "marker", 0, "0")
    end
end

-- Delay marker "1" at the due ms of the earliest delayed job (truncated, as workers read it).
function R.delay_marker(qp)
    local first = redis.call("ZRANGE", qp .. "delayed", 0, 0, "WITHSCORES")
    if first[2] then
        redis.call("ZADD", qp .. "marker", R.num(math.floor(tonumber(first[2]) / 4096)), "1")
    end
end

-- Delayed score for readyAt: readyAt*4096 + seq, seq one above the highest used in that ms.
function R.delayed_score(qp, ready_at)
    local base = ready_at * 4096
    local last = redis.call("ZREVRANGEBYSCORE", qp .. "delayed", R.num(base + 4095), R.num(base),
        "WITHSCORES", "LIMIT", 0, 1)
    if last[2] then
        return base + math.min(tonumber(last[2]) - base + 1, 4095)
    end
    return base
end

function R.add_delayed(qp, id, ready_at)
    redis.call("ZADD", qp .. "delayed", R.num(R.delayed_score(qp, ready_at)), id)
end

function R.add_prioritized(qp, id, priority)
    local pc = redis.call("INCR", qp .. "pc")
    redis.call("ZADD", qp .. "prioritized", R.num(priority * 4294967296 + pc % 4294967296), id)
end

-- Into wait (right = RPUSH, next to run), or into the legacy `paused` list while meta.paused
-- exists, as 5.x did (protocol §4.11); 6.x resume migrates that list back.
function R.push_wait(qp, id, right, paused)
    redis.call(right and "RPUSH" or "LPUSH", qp .. (paused and "paused" or "wait"), id)
end

-- Ready-to-run insert: prioritized when priority > 0, else wait; base marker unless blocked.
function R.enqueue(qp, id, priority, right)
    local blocked, paused = R.state(qp)
    if priority > 0 then
        R.add_prioritized(qp, id, priority)
    else
        R.push_wait(qp, id, right, paused)
    end
    R.base_marker(qp, blocked)
end

-- Moves due delayed jobs (score <= (now+1)*4096-1, at most 1000) to wait / prioritized.
function R.promote(qp, now, blocked, paused)
    local ids = redis.call("ZRANGEBYSCORE", qp .. "delayed", 0, R.num((now + 1) * 4096 - 1),
        "LIMIT", 0, 1000)
    if #ids == 0 then
        return
    end
    redis.call("ZREM", qp .. "delayed", unpack(ids))
    for _, id in ipairs(ids) do
        local priority = tonumber(redis.call("HGET", qp .. id, "priority")) or 0
        if priority > 0 then
            R.add_prioritized(qp, id, priority)
        else
            R.push_wait(qp, id, false, paused)
        end
        R.event(qp, "waiting", "jobId", id, "prev", "delayed")
        redis.call("HSET", qp .. id, "delay", 0)
    end
    R.base_marker(qp, blocked)
end

-- The fetch step (moveToActive, protocol §4.2). Returns the 4-element fetch reply, and true as
-- a second value when nothing at all is pending (no job fetched and `delayed` empty).
-- batch: a table shared by the fetches of one script call (finish_many), or nil. Within one call
-- nothing else changes the queue's meta, `now` is the same and delayed jobs are promoted by the
-- first fetch, so the meta is read once, promotion runs once, and the base marker (a ZADD of the
-- same member) is written once.
function R.fetch(qp, now, token, lock_ms, lim_max, lim_dur, name, batch)
    local meta = batch and batch.meta
    if not meta then
        meta = redis.call("HMGET", qp .. "meta", "paused", "concurrency", "max", "duration")
        if batch then
            batch.meta = meta
        end
    end
    local paused = meta[1] ~= false
    local blocked = paused or (tonumber(meta[2]) ~= nil and
        redis.call("LLEN", qp .. "active") >= tonumber(meta[2]))
    if not (batch and batch.promoted) then
        R.promote(qp, now, blocked, paused)
        if batch then
            batch.promoted = true
        end
    end

    local max_jobs = tonumber(meta[3]) or tonumber(lim_max)
    if max_jobs then
        local used = tonumber(redis.call("GET", qp .. "limiter")) or 0
        if used >= max_jobs then
            local ttl = redis.call("PTTL", qp .. "limiter")
            if ttl == 0 then
                redis.call("DEL", qp .. "limiter")
            elseif ttl > 0 then
                return { 0, 0, ttl, 0 }
            end
        end
    end
    if blocked then
        return { 0, 0, 0, 0 }
    end

    local id = redis.call("RPOPLPUSH", qp .. "wait", qp .. "active")
    while id and string.sub(id, 1, 2) == "0:" do -- legacy in-list markers
        redis.call("LREM", qp .. "active", 1, id)
        id = redis.call("RPOPLPUSH", qp .. "wait", qp .. "active")
    end
    if not id then
        local top = redis.call("ZPOPMIN", qp .. "prioritized")
        if top[1] then
            id = top[1]
            redis.call("LPUSH", qp .. "active", id)
        else
            redis.call("DEL", qp .. "pc")
        end
    end

    if id then
        local jk = qp .. id
        if max_jobs and redis.call("HEXISTS", jk, "defa") == 0 then
            if redis.call("INCR", qp .. "limiter") == 1 then
                local dur = tonumber(lim_dur) or tonumber(meta[4])
                if dur then
                    redis.call("PEXPIRE", qp .. "limiter", R.num(math.floor(math.abs(dur))))
                end
            end
        end
        if token ~= "0" then
            redis.call("SET", jk .. ":lock", token, "PX", lock_ms)
        end
        R.event(qp, "active", "jobId", id, "prev", "waiting")
        if name and name ~= "" then
            redis.call("HSET", jk, "processedOn", R.num(now), "pb", name)
        else
            redis.call("HSET", jk, "processedOn", R.num(now))
        end
        redis.call("HINCRBY", jk, "ats", 1)
        if not (batch and batch.marked) then
            R.base_marker(qp, false)
            if batch then
                batch.marked = true
            end
        end
        return { redis.call("HGETALL", jk), id, 0, 0 }
    end

    local first = redis.call("ZRANGE", qp .. "delayed", 0, 0, "WITHSCORES")
    if first[2] then
        return { 0, 0, 0, math.floor(tonumber(first[2]) / 4096) }
    end
    return { 0, 0, 0, 0 }, true
end

-- Lock check of finish/delay/retry/push_back: nil when ours (lock released, id out of
-- `stalled`), else -6 (someone else's) or -2 (missing). Token "0" means "no lock".
function R.release_lock(qp, id, token)
    if token == "0" then
        return nil
    end
    local lk = qp .. id .. ":lock"
    local holder = redis.call("GET", lk)
    if holder == token then
        redis.call("DEL", lk)
        redis.call("SREM", qp .. "stalled", id)
        return nil
    end
    return holder and -6 or -2
end

-- Failure fields of failure paths; "" leaves a field as it is.
function R.set_failure(jk, reason, stacktrace)
    if reason ~= "" then
        redis.call("HSET", jk, "failedReason", reason)
    end
    if stacktrace ~= "" then
        redis.call("HSET", jk, "stacktrace", stacktrace)
    end
end

-- The first steps of a failed attempt that will run again (delay, retry): the job exists, the
-- lock is ours and released, the failure fields are set, the job leaves `active`. nil, or the
-- negative code (-1 missing, -2/-6 lock, -3 not active).
function R.leave_active(qp, id, token, reason, stacktrace)
    local jk = qp .. id
    if redis.call("EXISTS", jk) == 0 then
        return -1
    end
    local err = R.release_lock(qp, id, token)
    if err then
        return err
    end
    R.set_failure(jk, reason or "", stacktrace or "")
    if redis.call("LREM", qp .. "active", -1, id) == 0 then
        return -3
    end
    return nil
end

-- The parent of a child, from its `parent` JSON: parent queue base key, parent id, the table.
function R.parent_of(parent_json)
    if not parent_json then
        return nil
    end
    local ok, p = pcall(cjson.decode, parent_json)
    if not ok or type(p) ~= "table" or not p.queueKey or p.id == nil then
        return nil
    end
    return p.queueKey .. ":", tostring(p.id), p
end

-- Moves a parent out of waiting-children (protocol §4.15 "Releasing a parent").
function R.release_parent(pqp, pid, now)
    local f = redis.call("HMGET", pqp .. pid, "delay", "priority")
    local delay, priority = tonumber(f[1]) or 0, tonumber(f[2]) or 0
    if delay > 0 then
        local ready_at = now + delay
        redis.call("ZADD", pqp .. "delayed", R.num(ready_at * 4096), pid)
        R.event(pqp, "delayed", "jobId", pid, "delay", R.num(ready_at))
        R.delay_marker(pqp)
        return
    end
    R.enqueue(pqp, pid, priority, true)
    R.event(pqp, "waiting", "jobId", pid, "prev", "waiting-children")
end

-- Takes a parent out of waiting-children when it is there; true when it was.
function R.take_waiting_parent(pqp, pid)
    return redis.call("ZREM", pqp .. "waiting-children", pid) == 1
end

-- Detaches a removed child from its parent's dependencies; a parent left with none moves from
-- waiting-children to the front of wait, whatever its delay or priority (protocol §4.15).
function R.detach(child_key, parent_key, parent_json)
    if not parent_key then
        return
    end
    local deps = parent_key .. ":dependencies"
    if redis.call("SREM", deps, child_key) == 0 or redis.call("SCARD", deps) ~= 0 then
        return
    end
    local pqp, pid = R.parent_of(parent_json)
    if pqp and R.take_waiting_parent(pqp, pid) then
        local blocked, paused = R.state(pqp)
        R.push_wait(pqp, pid, true, paused)
        R.event(pqp, "waiting", "jobId", pid, "prev", "waiting-children")
        R.base_marker(pqp, blocked)
    end
end

-- Deletes a job and its satellite keys, detaching it from its parent.
function R.remove_job(qp, id, f) -- f: {parentKey, parent} when the caller has read them
    local jk = qp .. id
    f = f or redis.call("HMGET", jk, "parentKey", "parent")
    R.detach(jk, f[1], f[2])
    redis.call("DEL", jk, jk .. ":logs", jk .. ":dependencies", jk .. ":processed",
        jk .. ":failed", jk .. ":unsuccessful")
end

-- Parent bookkeeping when a child finishes (protocol §4.15). value = returnvalue or reason.
function R.child_finished(qp, id, parent_key, parent_json, completed, value, now)
    local pqp, pid, p = R.parent_of(parent_json)
    if not parent_key or not pqp then
        return
    end
    local ck, deps = qp .. id, parent_key .. ":dependencies"
    if completed then
        if redis.call("SREM", deps, ck) == 1 then
            redis.call("HSET", parent_key .. ":processed", ck, value)
            if redis.call("SCARD", deps) == 0 and R.take_waiting_parent(pqp, pid) then
                R.release_parent(pqp, pid, now)
            end
        end
        return
    end
    if p.fpof then
        redis.call("SREM", deps, ck)
        redis.call("ZADD", parent_key .. ":unsuccessful", R.num(now), ck)
        if redis.call("EXISTS", parent_key) == 1 then
            local reason = "child " .. ck .. " failed"
            if R.take_waiting_parent(pqp, pid) then
                redis.call("HSET", parent_key, "defa", reason)
                R.release_parent(pqp, pid, now)
            elseif redis.call("ZREM", pqp .. "delayed", pid) == 1 then
                redis.call("HSET", parent_key, "delay", 0, "defa", reason)
                R.release_parent(pqp, pid, now)
            elseif not redis.call("ZSCORE", pqp .. "failed", pid) then
                redis.call("HSET", parent_key, "defa", reason)
            end
        end
    elseif p.cpof then
        redis.call("SREM", deps, ck)
        redis.call("HSET", parent_key .. ":failed", ck, value)
        if R.take_waiting_parent(pqp, pid) then
            R.release_parent(pqp, pid, now)
        end
    elseif p.idof or p.rdof then
        redis.call("SREM", deps, ck)
        if p.idof then
            redis.call("HSET", parent_key .. ":failed", ck, value)
        end
        if redis.call("SCARD", deps) == 0 and R.take_waiting_parent(pqp, pid) then
            R.release_parent(pqp, pid, now)
        end
    end
end

-- Stores a new job and makes it ready / delayed / prioritized, with its events (`added`, then
-- `delayed` or `waiting`). extra: more hash field/value pairs (rjk, deid, parent fields).
function R.add_job(qp, id, name, data, opts, timestamp, delay, priority, lifo, extra)
    local jk = qp .. id
    redis.call("HSET", jk, "name", name, "data", data, "opts", opts, "timestamp", R.num(timestamp),
        "delay", R.num(delay), "priority", R.num(priority))
    if extra and #extra > 0 then
        redis.call("HSET", jk, unpack(extra))
    end
    R.event(qp, "added", "jobId", id, "name", name)
    if delay > 0 then
        local ready_at = timestamp + delay
        R.add_delayed(qp, id, ready_at)
        R.event(qp, "delayed", "jobId", id, "delay", R.num(ready_at))
        R.delay_marker(qp)
    else
        R.enqueue(qp, id, priority, lifo)
        R.event(qp, "waiting", "jobId", id)
    end
end

-- Deduplication at finish (protocol §4.16): release the key, materialize a stored next job.
function R.dedup_finish(qp, id, deid, now)
    local k = qp .. "de:" .. deid
    local ttl = redis.call("PTTL", k)
    if ttl == 0 or (ttl == -1 and redis.call("GET", k) == id) then
        redis.call("DEL", k)
    end
    local dn = qp .. "dn:" .. deid
    if redis.call("EXISTS", dn) == 0 then
        return
    end
    local f = redis.call("HMGET", dn, "name", "data", "opts", "jid", "pk", "pd", "pdk", "rjk")
    local counter = redis.call("INCR", qp .. "id")
    local nid = (f[4] and f[4] ~= "") and f[4] or tostring(counter)
    local opts_json = f[3] or "{}"
    local ok, opts = pcall(cjson.decode, opts_json)
    if not ok or type(opts) ~= "table" then
        opts = {}
    end
    local de = type(opts.de) == "table" and opts.de or
        (type(opts.deduplication) == "table" and opts.deduplication or {})
    local de_ttl = tonumber(de.ttl)
    if de.keepLastIfActive or not de_ttl or de_ttl <= 0 then
        redis.call("SET", k, nid)
    else
        redis.call("SET", k, nid, "PX", R.num(de_ttl))
    end
    local extra = { "deid", deid }
    if f[5] then
        extra[#extra + 1], extra[#extra + 2] = "parentKey", f[5]
    end
    if f[6] then
        extra[#extra + 1], extra[#extra + 2] = "parent", f[6]
    end
    if f[8] then
        extra[#extra + 1], extra[#extra + 2] = "rjk", f[8]
    end
    R.add_job(qp, nid, f[1] or "", f[2] or "{}", opts_json, now, tonumber(opts.delay) or 0,
        tonumber(opts.priority) or 0, opts.lifo == true, extra)
    if f[7] then
        redis.call("SADD", f[7], qp .. nid)
    end
    redis.call("DEL", dn)
end

-- moveToFinished for one job (protocol §4.5, §4.6 step 5, §4.15, §4.16) without the fetch-next
-- step: returns 0, or a negative code. Shared by `finish` and `finish_many`.
function R.finish_one(qp, id, token, now, target, value, keep_json, attempts, stacktrace)
    local completed = target == "completed"
    local jk = qp .. id

    -- One HMGET serves the existence check (an active job always has processedOn) and the parent
    -- and dedup fields read below; EXISTS only runs when nothing came back.
    local f = redis.call("HMGET", jk, "parentKey", "parent", "deid", "processedOn", "name")
    if not (f[1] or f[2] or f[3] or f[4] or f[5]) and redis.call("EXISTS", jk) == 0 then
        return -1
    end
    if completed and redis.call("EXISTS", jk .. ":dependencies", jk .. ":unsuccessful") > 0 then
        if redis.call("SCARD", jk .. ":dependencies") ~= 0 then
            return -4
        end
        if redis.call("ZCARD", jk .. ":unsuccessful") ~= 0 then
            return -9
        end
    end
    local err = R.release_lock(qp, id, token)
    if err then
        return err
    end
    if not completed then
        R.set_failure(jk, value, stacktrace or "")
    end
    if redis.call("LREM", qp .. "active", -1, id) == 0 then
        return -3
    end
    -- (the events below are written with MAXLEN ~, which trims the stream as XTRIM would)

    if f[3] then
        R.dedup_finish(qp, id, f[3], now)
    end
    R.child_finished(qp, id, f[1], f[2], completed, value, now)

    -- Retention (keepJobs): count -1 keeps all, 0 removes this job, n > 0 keeps the newest n;
    -- age (seconds) removes up to `limit` (default 1000) older than now - age.
    local ok, keep = pcall(cjson.decode, keep_json or "")
    if not ok or type(keep) ~= "table" then
        keep = { count = -1 }
    end
    local count = tonumber(keep.count) or -1
    -- attemptsMade + 1, except on a completed job about to be deleted (no one can read it)
    local attempts_made = 0
    if not (completed and count == 0) then
        attempts_made = redis.call("HINCRBY", jk, "atm", 1)
    end
    if count == 0 then
        R.remove_job(qp, id, f)
    else
        local set = qp .. target
        redis.call("ZADD", set, R.num(now), id)
        if completed then
            redis.call("HSET", jk, "returnvalue", value, "finishedOn", R.num(now))
        else
            redis.call("HSET", jk, "failedReason", value, "finishedOn", R.num(now))
            redis.call("HDEL", jk, "defa")
        end
        local age = tonumber(keep.age)
        if age then
            local old = redis.call("ZRANGEBYSCORE", set, 0, R.num(now - age * 1000), "LIMIT", 0,
                tonumber(keep.limit) or 1000)
            for _, old_id in ipairs(old) do
                R.remove_job(qp, old_id)
                redis.call("ZREM", set, old_id)
            end
        end
        if count > 0 then
            local old = redis.call("ZREVRANGE", set, count, -1)
            for _, old_id in ipairs(old) do
                R.remove_job(qp, old_id)
                redis.call("ZREM", set, old_id)
            end
        end
    end

    if completed then
        R.event(qp, "completed", "jobId", id, "returnvalue", value, "prev", "active")
    else
        R.event(qp, "failed", "jobId", id, "failedReason", value, "prev", "active")
        if attempts_made >= (tonumber(attempts) or 0) then
            R.event(qp, "retries-exhausted", "jobId", id, "attemptsMade", attempts_made)
        end
    end
    return 0
end
