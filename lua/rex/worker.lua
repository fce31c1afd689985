-- rex.worker: the Lua side of a worker thread. Loads the job handlers once per thread and runs
-- one job at a time: builds the `job` object scripts see, runs the handler under protection, and
-- decides what the queue does with the outcome (complete, retry now, retry after a backoff, fail
-- for good), following BullMQ's rules (bullmq-protocol.md §4.6, §4.7).
local rex = require("rex")
local json = require("rex.json")

local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local pcall, xpcall, setmetatable, loadfile = pcall, xpcall, setmetatable, loadfile
local floor, random, huge = math.floor, math.random, math.huge
local traceback = debug.traceback

local M = {}

local handlers = {}   -- job name -> function(job)
local unrun = {}      -- job name -> failed_without_run(job, reason), when the handler has one
local idlers = {}     -- job name -> idle(), when the handler has one
local sources = {}    -- job name -> file it came from
local emit            -- function(kind, job_id, a, b): progress and log lines out of the thread
local defaults = {}   -- worker-level options

---------------------------------------------------------------------------------------------------
-- Handler loading

local function list_lua_files(dir)
    local names, err = require("rex.core").listdir(dir)
    if not names then
        return nil, err
    end
    local files = {}
    for _, name in ipairs(names) do
        if name:match("%.lua$") then
            files[#files + 1] = name
        end
    end
    return files
end

local function load_handler(path)
    local chunk, err = loadfile(path)
    if not chunk then
        return nil, err
    end
    local ok, h = pcall(chunk)
    if not ok then
        return nil, ("%s: %s"):format(path, rex.error_message(h))
    end
    if type(h) == "function" then
        return { process = h }
    elseif type(h) == "table" and type(h.process) == "function" then
        local t = h
        for _, k in ipairs({ "failed_without_run", "idle" }) do
            if t[k] ~= nil and type(t[k]) ~= "function" then
                return nil, ("%s: the handler's %s must be a function"):format(path, k)
            end
        end
        return { process = function(job) return t.process(job) end,
                 failed_without_run = t.failed_without_run, idle = t.idle }
    end
    return nil, ("%s: a job handler script must return a function or a table with process(job)")
        :format(path)
end

-- dirs: list of directories, later ones override earlier ones (built-ins come first).
function M.load_handlers(dirs)
    handlers, sources, unrun, idlers = {}, {}, {}, {}
    for i, dir in ipairs(dirs) do
        local files, err = list_lua_files(dir)
        if not files then
            return nil, "cannot read the job handler directory " .. err
        end
        for _, file in ipairs(files) do
            local name = file:sub(1, -5)
            local path = dir .. "/" .. file
            local h, err = load_handler(path)
            if not h then
                return nil, err
            end
            if sources[name] and i > 1 then
                rex.log.warn("job handler replaces another", { job = name, file = path,
                    replaced = sources[name] })
            end
            handlers[name], sources[name] = h.process, path
            unrun[name], idlers[name] = h.failed_without_run, h.idle
        end
    end
    return true
end

function M.handler_names()
    local names = {}
    for name in pairs(handlers) do
        names[#names + 1] = name
    end
    table.sort(names)
    return names
end

local function split_path(s)
    local out = {}
    for part in (s or ""):gmatch("[^:]+") do
        out[#out + 1] = part
    end
    return out
end

-- opts: { home, jobs_path, emit, redis, queue_key, remove_on_complete(_json),
-- remove_on_fail(_json), max_started_attempts }. Returns true, or nil and a message.
--
-- After init, handlers may use (in a worker thread only; nil under `rex-worker run` and busted):
--   M.queue_key                     "<prefix>:<queue>", the root of the queue's Redis keys
--   M.redis(arg1, ...)              one blocking command on this thread's own Redis connection:
--                                   reply (strings, numbers, tables; nil reply = false) | nil, err
-- Keys a handler keeps there must live under M.queue_key .. ":rex:" so they are the queue's
-- (and go with Queue.obliterate).
function M.init(opts)
    emit = opts.emit
    M.redis = opts.redis
    M.queue_key = opts.queue_key
    local function keep_option(v, text)
        if text ~= nil then
            return json.decode(text)
        end
        return v
    end
    defaults = {
        remove_on_complete = keep_option(opts.remove_on_complete, opts.remove_on_complete_json),
        remove_on_fail = keep_option(opts.remove_on_fail, opts.remove_on_fail_json),
        max_started_attempts = opts.max_started_attempts,
    }
    local dirs = { (opts.home or package.rex_home or ".") .. "/lua/rex/jobs" }
    for _, d in ipairs(split_path(opts.jobs_path)) do
        dirs[#dirs + 1] = d
    end
    return M.load_handlers(dirs)
end

---------------------------------------------------------------------------------------------------
-- Policy: pure functions, tested on their own (spec/worker_spec.lua)

-- BullMQ keepJobs for a removeOnComplete/removeOnFail value: true -> remove, false -> keep all,
-- n -> keep the newest n, {age, count, limit} as given.
function M.keep_jobs(v)
    if v == true then
        return '{"count":0}'
    elseif v == nil or v == false or v == json.null then
        return '{"count":-1}'
    elseif type(v) == "number" then
        return ('{"count":%d}'):format(floor(v))
    elseif type(v) == "table" then
        local t = {}
        if type(v.age) == "number" then t.age = floor(v.age) end
        if type(v.count) == "number" then t.count = floor(v.count) end
        if type(v.limit) == "number" then t.limit = floor(v.limit) end
        if t.count == nil and t.age == nil then
            t.count = -1
        end
        return (json.encode(t))
    end
    return '{"count":-1}'
end

-- Retry delay in ms for attempt n (= attempts made + 1), or nil for "no backoff", or nil, err for
-- an unknown type. rnd is a function returning [0,1) (injected for tests).
function M.backoff_delay(backoff, n, rnd)
    if backoff == nil or backoff == json.null then
        return nil
    end
    if type(backoff) == "number" then
        backoff = { type = "fixed", delay = backoff }
    end
    if type(backoff) ~= "table" then
        return nil
    end
    local delay = tonumber(backoff.delay) or 0
    local jitter = tonumber(backoff.jitter) or 0
    rnd = rnd or random
    if backoff.type == "fixed" then
        if jitter > 0 then
            return floor(rnd() * delay * jitter + delay * (1 - jitter))
        end
        return delay
    elseif backoff.type == "exponential" then
        local max = floor(2 ^ (n - 1) * delay + 0.5)
        if jitter > 0 then
            return floor(rnd() * max * jitter + max * (1 - jitter))
        end
        return max
    end
    return nil, ("unknown backoff strategy %q"):format(tostring(backoff.type))
end

local function stacktrace_json(previous, new_entry, limit)
    local list = previous and json.decode(previous)
    if type(list) ~= "table" then
        list = {}
    end
    if new_entry then
        list[#list + 1] = new_entry
    end
    if limit then
        limit = floor(limit)
        local n = #list
        local kept = {}
        for i = math.max(1, n - limit + 1), n do
            kept[#kept + 1] = list[i]
        end
        if limit <= 0 then
            kept = {}
        end
        list = kept
    end
    return json.encode(json.array(list)) or "[]"
end

-- The decision after a failed attempt. f: the job's hash fields; opts: decoded opts.
-- Returns the result table the C side executes.
function M.failure(f, opts, message, stack, unrecoverable)
    local atm = tonumber(f.atm) or tonumber(f.attemptsMade) or 0
    local ats = tonumber(f.ats) or 0
    local attempts = tonumber(opts.attempts) or 0
    local res = {
        value = message,
        attempts = attempts,
        stacktrace = stacktrace_json(f.stacktrace, stack, tonumber(opts.stackTraceLimit)),
    }
    local max_started = defaults.max_started_attempts
    local retry = not unrecoverable and atm + 1 < attempts
        and (max_started == nil or max_started > ats)
    if retry then
        local delay, err = M.backoff_delay(opts.backoff, atm + 1)
        if err then
            res.value = ("%s (not retried: %s)"):format(message, err)
        elseif delay and delay > 0 then
            res.outcome, res.delay = "delay", floor(delay)
            return res
        else
            res.outcome, res.lifo = "retry", opts.lifo == true
            return res
        end
    end
    res.outcome = "failed"
    local keep = opts.removeOnFail
    if keep == nil then
        keep = defaults.remove_on_fail
    end
    res.keep = M.keep_jobs(keep)
    return res
end

function M.completion(opts, value_json)
    local keep = opts.removeOnComplete
    if keep == nil then
        keep = defaults.remove_on_complete
    end
    return {
        outcome = "completed",
        value = value_json,
        keep = M.keep_jobs(keep),
        attempts = tonumber(opts.attempts) or 0,
    }
end

---------------------------------------------------------------------------------------------------
-- Running a job

-- Error messages lose the "file.lua:12: " position Lua adds, so failedReason is what the handler
-- said; the position stays in the stack trace.
local function bare_message(msg)
    return (msg:gsub("^[^\n]-%.lua:%d+: ", "", 1):gsub("^%[string .-%]:%d+: ", "", 1))
end

local Job = {}
Job.__index = Job

function Job:progress(value)
    local s, err = json.encode(value)
    if not s then
        error("job:progress: " .. err, 2)
    end
    if emit then
        emit("progress", self.id, s)
    end
end

function Job:log(line)
    if emit then
        emit("log", self.id, tostring(line), self._keep_logs)
    end
end

local function new_job(f, data, opts)
    return setmetatable({
        id = f.id,
        name = f.name or "",
        data = data,
        opts = opts,
        attempts_made = tonumber(f.atm) or tonumber(f.attemptsMade) or 0,
        attempts_started = tonumber(f.ats) or 0,
        timestamp = tonumber(f.timestamp),
        processed_on = tonumber(f.processedOn),
        _keep_logs = tonumber(opts.kl or opts.keepLogs),
    }, Job)
end

local function on_error(e)
    if rex.is_unrecoverable(e) then
        return { message = e.message, unrecoverable = true, stack = traceback(e.message, 2) }
    end
    local msg = rex.error_message(e)
    return { message = type(e) == "string" and bare_message(msg) or msg, stack = traceback(msg, 2) }
end

---------------------------------------------------------------------------------------------------
-- Job schedulers (bullmq-protocol.md §4.14): the next iteration is created when the current one
-- is fetched, before it runs. This computes what the `scheduler_next` script needs; for `every`
-- schedulers the script computes the slot itself.

local function date_ms(v)
    if type(v) == "number" then
        return v
    end
    return nil
end

-- Returns the scheduler_next arguments {id, next_ms or "", opts JSON, every or ""}, or nil and a
-- reason when no next iteration is due (limit reached, past endDate, not a scheduler job).
function M.scheduler_next(f, opts, now)
    local sid = f.rjk
    if not sid or sid == "" then
        return nil, "not a scheduler job"
    end
    local rep = opts["repeat"]
    if type(rep) ~= "table" then
        rep = {}
    end
    local iteration = (tonumber(rep.count) or 0) + 1
    if tonumber(rep.limit) and iteration > tonumber(rep.limit) then
        return nil, "limit reached"
    end
    local end_date = date_ms(rep.endDate)
    if end_date and now > end_date then
        return nil, "past endDate"
    end
    local every = tonumber(rep.every)
    local next_ms = ""
    if rep.pattern ~= nil then
        local base = math.max(now, tonumber(opts.prevMillis) or 0)
        local start = date_ms(rep.startDate)
        local n, err
        if rep.immediately then
            n = now
        else
            n, err = require("rex.cron").next(rep.pattern, (start and start > base) and start or base,
                rep.tz)
            if not n then
                return nil, err
            end
        end
        next_ms = math.max(n, base)
        every = nil
    end
    local next_opts = {}
    for k, v in pairs(opts) do
        next_opts[k] = v
    end
    local next_rep = {}
    for k, v in pairs(rep) do
        if k ~= "immediately" then
            next_rep[k] = v
        end
    end
    next_rep.count = iteration
    next_opts["repeat"] = next_rep
    next_opts.timestamp = now
    next_opts.repeatJobKey = sid
    next_opts.jobId = nil
    if next_ms ~= "" then
        next_opts.prevMillis = next_ms
        next_ms = ("%d"):format(next_ms)
    end
    return { sid, next_ms, (json.encode(next_opts)), every and ("%d"):format(every) or "" }
end

-- A job that fails for good without its handler running (a deferred failure such as the stalled
-- limit, or the started-attempts limit). A handler with failed_without_run(job, reason) hears of
-- it first, so it can settle what the job stood for (execute-workflow ends its execution); an
-- error there is logged and changes nothing for the job.
local function failed_without_run(f, opts, reason)
    local hook = unrun[f.name]
    if hook then
        local data = f.data and json.decode(f.data)
        local ok, err = xpcall(hook, on_error, new_job(f, type(data) == "table" and data or {},
            opts), reason)
        if not ok then
            rex.log.error("failed_without_run of the job handler raised an error",
                { job = f.id, name = f.name, error = err.message })
        end
    end
    return M.failure(f, opts, reason, nil, true)
end

-- Every REX_IDLE_INTERVAL_MS, on a free worker thread (a busy worker runs it when one frees):
-- each handler's idle() runs, for housekeeping that cannot wait for a job of its kind. Errors
-- are logged.
function M.idle()
    for name, hook in pairs(idlers) do
        local ok, err = xpcall(hook, on_error)
        if not ok then
            rex.log.error("idle() of a job handler raised an error", { name = name,
                error = err.message })
        end
    end
end

-- f: the job hash as a table of strings, plus f.id. Returns the result table.
function M.process(f)
    local opts = f.opts and json.decode(f.opts)
    if type(opts) ~= "table" then
        opts = {}
    end
    if f.__fail_message then
        return M.failure(f, opts, f.__fail_message, nil, f.__fail_unrecoverable)
    end
    if f.rjk and emit then
        local args, why = M.scheduler_next(f, opts, rex.now_ms())
        if args then
            emit("scheduler", f.id, args[1], args[2], args[3], args[4])
        elseif why ~= "not a scheduler job" and why ~= "limit reached" and why ~= "past endDate" then
            rex.log.error("no next iteration for the job scheduler", { job = f.id,
                scheduler = f.rjk, reason = why })
        end
    end
    if f.defa then
        return failed_without_run(f, opts, f.defa)
    end
    local max_started = defaults.max_started_attempts
    if max_started and (tonumber(f.ats) or 0) > max_started then
        return failed_without_run(f, opts, "job started more than allowable limit")
    end
    local data = {}
    if f.data then
        local err
        data, err = json.decode(f.data)
        if data == nil then
            return M.failure(f, opts, "job data is not valid JSON: " .. err, nil, true)
        end
        if type(data) ~= "table" or json.is_array(data) then
            return M.failure(f, opts, ("job data must be a JSON object, got %s"):format(
                data == json.null and "null" or json.is_array(data) and "an array" or type(data)),
                nil, true)
        end
    end
    local handler = handlers[f.name]
    if not handler then
        return M.failure(f, opts, "Unknown job name: " .. tostring(f.name), nil, true)
    end
    local job = new_job(f, data, opts)
    local ok, result = xpcall(handler, on_error, job)
    if not ok then
        return M.failure(f, opts, result.message, result.stack, result.unrecoverable)
    end
    local encoded, err = "null", nil
    if result ~= nil then
        encoded, err = json.encode(result)
    end
    if not encoded then
        return M.failure(f, opts, "the job's return value cannot be encoded as JSON: " .. err, nil,
            false)
    end
    return M.completion(opts, encoded)
end

M._bare_message = bare_message
return M
