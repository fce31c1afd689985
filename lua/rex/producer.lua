-- rex.producer: turns `rex-worker add NAME DATA --opts OPTS` into the arguments of the `add` queue
-- script, normalising the options the way BullMQ's Queue.add stores them
-- (bullmq-protocol.md §3.2): attempts defaults to 0, a numeric backoff becomes
-- {type = "fixed", delay = n}, some option names are stored compressed.
local json = require("rex.json")

local type, tostring, floor = type, tostring, math.floor

local M = {}

local compressed = {
    deduplication = "de",
    failParentOnFailure = "fpof",
    continueParentOnFailure = "cpof",
    ignoreDependencyOnFailure = "idof",
    keepLogs = "kl",
    removeDependencyOnFailure = "rdof",
}

local MAX_PRIORITY = 2097152

local function is_int(v)
    return type(v) == "number" and v == floor(v)
end

local function check_keep(name, v)
    if v == nil or type(v) == "boolean" or (is_int(v) and v >= 0) then
        return true
    end
    if type(v) == "table" and not json.is_array(v) then
        for k, x in pairs(v) do
            if (k ~= "age" and k ~= "count" and k ~= "limit") or not is_int(x) or x < 0 then
                return nil, ("opts.%s: unexpected %s"):format(name, tostring(k))
            end
        end
        return true
    end
    return nil, ("opts.%s must be a boolean, a count or {age, count, limit}"):format(name)
end

-- Returns the add script's ARGV (name, data, opts JSON, timestamp, job id, delay, priority, lifo),
-- or nil and a message for bad input.
function M.prepare(name, data_text, opts_text, now_ms)
    if type(name) ~= "string" or name == "" then
        return nil, "the job name must not be empty"
    end
    local data, err = json.decode(data_text)
    if data == nil then
        return nil, "DATA is not valid JSON: " .. err
    end
    local opts = {}
    if opts_text and opts_text ~= "" then
        opts, err = json.decode(opts_text)
        if opts == nil then
            return nil, "--opts is not valid JSON: " .. err
        end
        if type(opts) ~= "table" or json.is_array(opts) then
            return nil, "--opts must be a JSON object"
        end
    end
    if opts["repeat"] ~= nil then
        return nil, "opts.repeat is not supported (BullMQ 6 uses job schedulers)"
    end
    local stored = {}
    for k, v in pairs(opts) do
        stored[compressed[k] or k] = v
    end
    local attempts = opts.attempts
    if attempts == nil then
        attempts = 0
    elseif not is_int(attempts) or attempts < 0 then
        return nil, "opts.attempts must be a non-negative integer"
    end
    stored.attempts = attempts
    if type(opts.backoff) == "number" then
        stored.backoff = { type = "fixed", delay = opts.backoff }
    elseif opts.backoff ~= nil then
        local b = opts.backoff
        if type(b) ~= "table" or type(b.type) ~= "string" then
            return nil, "opts.backoff must be a number or {type, delay, jitter?}"
        end
        if b.type ~= "fixed" and b.type ~= "exponential" then
            return nil, ("opts.backoff.type %q is not a built-in strategy (fixed, exponential)")
                :format(b.type)
        end
    end
    local delay = opts.delay or 0
    if not is_int(delay) or delay < 0 then
        return nil, "opts.delay must be a non-negative integer (ms)"
    end
    local priority = opts.priority or 0
    if not is_int(priority) or priority < 0 or priority > MAX_PRIORITY then
        return nil, ("opts.priority must be an integer between 0 and %d"):format(MAX_PRIORITY)
    end
    for _, k in ipairs({ "removeOnComplete", "removeOnFail" }) do
        local ok, kerr = check_keep(k, opts[k])
        if not ok then
            return nil, kerr
        end
    end
    local job_id = opts.jobId
    if job_id ~= nil then
        if type(job_id) == "number" then
            return nil, "opts.jobId: custom ids cannot be integers"
        end
        if type(job_id) ~= "string" or job_id == "" then
            return nil, "opts.jobId must be a non-empty string"
        end
        if job_id:match("^%d+$") then
            return nil, "opts.jobId: custom ids cannot be integers"
        end
        if job_id == "0" or job_id:sub(1, 2) == "0:" then
            return nil, "opts.jobId cannot be 0 or start with 0:"
        end
        local parts = select(2, job_id:gsub(":", ":"))
        if parts > 0 and parts ~= 2 then
            return nil, "opts.jobId cannot contain ':' (except as exactly three segments)"
        end
    end
    local timestamp = opts.timestamp or now_ms
    local opts_json = json.encode(stored)
    return {
        name,
        (data_text:gsub("^%s+", ""):gsub("%s+$", "")),
        opts_json,
        ("%d"):format(timestamp),
        job_id or "",
        ("%d"):format(delay),
        ("%d"):format(priority),
        opts.lifo and "1" or "0",
    }
end

return M
