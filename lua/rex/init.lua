-- rex: the module every job handler, node and hook script gets with require("rex").
local core = require("rex.core")
local json = require("rex.json")

local type, pairs, setmetatable, getmetatable = type, pairs, setmetatable, getmetatable
local tostring, error = tostring, error

local rex = {
    version = core.version,
    json = json,
    null = json.null,
    now_ms = core.now_ms,
    monotonic_ms = core.monotonic_ms,
}

-- Marks a table (or a new one) as a JSON array, so an empty one encodes as [].
rex.array = json.array

-- Shallow merge into a new table: later arguments win; nil arguments are skipped.
function rex.merge(...)
    local out = {}
    for i = 1, select("#", ...) do
        local t = select(i, ...)
        if t ~= nil then
            for k, v in pairs(t) do
                out[k] = v
            end
        end
    end
    return out
end

---------------------------------------------------------------------------------------------------
-- Errors. An unrecoverable error fails the job without further retries (BullMQ's
-- UnrecoverableError); raise it with rex.unrecoverable(msg).

local unrecoverable_mt = {
    __tostring = function(e) return e.message end,
}

function rex.unrecoverable(msg, level)
    error(setmetatable({ message = tostring(msg), unrecoverable = true }, unrecoverable_mt),
        level or 2)
end

function rex.is_unrecoverable(err)
    return type(err) == "table" and getmetatable(err) == unrecoverable_mt
end

-- The text of any error value: strings as they are, tables by their `message` field or
-- __tostring, anything else described by its type.
function rex.error_message(err)
    local t = type(err)
    if t == "string" then
        return err
    elseif t == "table" then
        if type(err.message) == "string" then
            return err.message
        end
        local mt = getmetatable(err)
        if mt and mt.__tostring then
            local ok, s = pcall(tostring, err)
            if ok and type(s) == "string" then
                return s
            end
        end
        return "error object (table) without a message"
    elseif t == "nil" then
        return "error with no message (nil)"
    end
    return ("error object of type %s: %s"):format(t, tostring(err))
end

---------------------------------------------------------------------------------------------------
-- Logging: JSON lines through the C logger. Fields whose key names a secret are masked, strings
-- have URL passwords and bearer tokens masked, at any depth.

local redact, secret_key = core.redact, core.secret_key

local function scrub(v, depth)
    local t = type(v)
    if t == "string" then
        return redact(v)
    elseif t ~= "table" then
        if t == "number" or t == "boolean" or v == json.null then
            return v
        end
        return tostring(v)
    end
    if depth > 20 then
        return "(too deep)"
    end
    local out = {}
    for k, x in pairs(v) do
        if type(k) == "string" and secret_key(k) then
            out[k] = "***"
        else
            out[k] = scrub(x, depth + 1)
        end
    end
    if json.is_array(v) then
        json.array(out)
    end
    return out
end

local reserved = { level = true, time = true, msg = true }

local function emit(level, msg, fields)
    if not core.log_enabled(level) then
        return
    end
    local encoded
    if type(fields) == "table" then
        local clean = scrub(fields, 0)
        for k in pairs(reserved) do
            clean[k] = nil
        end
        encoded = json.encode(clean)
        if encoded and encoded:sub(1, 1) ~= "{" then
            encoded = json.encode({ fields = clean })
        end
    end
    core.log(level, tostring(msg), encoded)
end

rex.log = {
    debug = function(msg, fields) emit("debug", msg, fields) end,
    info = function(msg, fields) emit("info", msg, fields) end,
    warn = function(msg, fields) emit("warn", msg, fields) end,
    error = function(msg, fields) emit("error", msg, fields) end,
}
rex.redact = redact

return rex
