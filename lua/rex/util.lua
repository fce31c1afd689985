-- rex.util: helpers shared by the engine and the built-in nodes: JSON-value predicates, the
-- JavaScript coercions the original's behaviour is specified in (String(), Number(), truthiness),
-- path walks, timestamps. Values follow rex.json: objects are plain tables, arrays carry
-- rex.json.array_mt, JSON null is rex.null, "undefined" is nil.
local rex = require("rex")

local json = rex.json
local null = rex.null
local is_json_array = json.is_array
local mark_array = json.array
local type, pairs, next, tostring, tonumber = type, pairs, next, tostring, tonumber
local floor, huge = math.floor, math.huge
local format, byte, sub, find, gsub = string.format, string.byte, string.sub, string.find, string.gsub
local concat = table.concat
local os_date = os.date

local util = {}

util.null = null
util.array = mark_array

-- An array: marked by the codec or by util.array, or a non-empty table with keys exactly 1..n.
local function is_array(v)
    if type(v) ~= "table" then
        return false
    end
    if is_json_array(v) then
        return true
    end
    local n = #v
    if n == 0 then
        return false
    end
    local count = 0
    for _ in next, v do
        count = count + 1
        if count > n then
            return false
        end
    end
    return count == n
end
util.is_array = is_array

-- A JSON object (a table that is not an array).
local function is_object(v)
    return type(v) == "table" and not is_array(v)
end
util.is_object = is_object

-- A "plain object" as the original's isRecord: a non-null, non-array object.
util.is_record = is_object

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
-- A string in the 8-4-4-4-12 hex form PostgreSQL's uuid type prints (any version).
function util.is_uuid(v)
    return type(v) == "string" and v:match(UUID) ~= nil
end

function util.is_nullish(v)
    return v == nil or v == null
end

-- JavaScript truthiness.
function util.truthy(v)
    if v == nil or v == false or v == null or v == "" or v == 0 then
        return false
    end
    if v ~= v then
        return false
    end
    return true
end

-- JS-whitespace trim (ASCII whitespace plus NBSP, BOM and the common Unicode spaces).
local function trim(s)
    s = gsub(s, "^[%s]+", "")
    s = gsub(s, "[%s]+$", "")
    -- Unicode spaces at either end (rare; cheap check first)
    if find(s, "^\194\160") or find(s, "^\239\187\191") or find(s, "^\226\128[\128-\138\168\169\175]")
        or find(s, "\194\160$") or find(s, "\239\187\191$") or find(s, "\226\128[\128-\138\168\169\175]$")
        or find(s, "^\227\128\128") or find(s, "\227\128\128$") then
        local changed = true
        while changed do
            local before = s
            s = gsub(s, "^%s+", "")
            s = gsub(s, "%s+$", "")
            s = gsub(s, "^\194\160", "")
            s = gsub(s, "\194\160$", "")
            s = gsub(s, "^\239\187\191", "")
            s = gsub(s, "\239\187\191$", "")
            s = gsub(s, "^\226\128[\128-\138\168\169\175]", "")
            s = gsub(s, "\226\128[\128-\138\168\169\175]$", "")
            s = gsub(s, "^\227\128\128", "")
            s = gsub(s, "\227\128\128$", "")
            changed = before ~= s
        end
    end
    return s
end
util.trim = trim

-- Node config checks: appends "<name> must be a string" to errs for each of names that is set
-- to something else. Returns errs.
function util.check_strings(config, names, errs)
    errs = errs or {}
    for _, k in ipairs(names) do
        if config[k] ~= nil and type(config[k]) ~= "string" then
            errs[#errs + 1] = k .. " must be a string"
        end
    end
    return errs
end

-- The original's asNonEmptyString: a string whose trimmed value is non-empty -> trimmed, else nil.
function util.non_empty_string(v)
    if type(v) ~= "string" then
        return nil
    end
    local t = trim(v)
    if t == "" then
        return nil
    end
    return t
end

-- parseBooleanLike: JSON booleans as they are, "true"/"false" in any case, else the default.
function util.bool_like(v, default)
    if v == true or v == false then
        return v
    end
    if type(v) == "string" then
        local l = v:lower()
        if l == "true" then
            return true
        elseif l == "false" then
            return false
        end
    end
    return default
end

-- JS String(number).
local function num_string(n)
    if n ~= n then
        return "NaN"
    elseif n == huge then
        return "Infinity"
    elseif n == -huge then
        return "-Infinity"
    end
    return json.encode(n)
end
util.num_string = num_string

-- JS String(value).
local function js_string(v)
    local t = type(v)
    if t == "string" then
        return v
    elseif t == "number" then
        return num_string(v)
    elseif t == "boolean" then
        return v and "true" or "false"
    elseif v == nil then
        return "undefined"
    elseif v == null then
        return "null"
    elseif t == "table" then
        if is_array(v) then
            local parts = {}
            for i = 1, #v do
                local x = v[i]
                if x == nil or x == null then
                    parts[i] = ""
                else
                    parts[i] = js_string(x)
                end
            end
            return concat(parts, ",")
        end
        return "[object Object]"
    end
    return tostring(v)
end
util.js_string = js_string

-- JS Number(string) for the forms JSON data carries.
local function string_number(s)
    s = trim(s)
    if s == "" then
        return 0
    end
    if s == "Infinity" or s == "+Infinity" then
        return huge
    elseif s == "-Infinity" then
        return -huge
    end
    local lower = s:lower()
    if find(lower, "^0x[0-9a-f]+$") then
        return tonumber(sub(s, 3), 16)
    elseif find(lower, "^0o[0-7]+$") then
        return tonumber(sub(s, 3), 8)
    elseif find(lower, "^0b[01]+$") then
        return tonumber(sub(s, 3), 2)
    end
    -- decimal literal only: digits, one dot, optional exponent
    if find(s, "^[+-]?%d+%.?%d*$") or find(s, "^[+-]?%.%d+$")
        or find(s, "^[+-]?%d+%.?%d*[eE][+-]?%d+$") or find(s, "^[+-]?%.%d+[eE][+-]?%d+$") then
        return tonumber(s) or 0 / 0
    end
    return 0 / 0
end

-- JS Number(value).
local function js_number(v)
    local t = type(v)
    if t == "number" then
        return v
    elseif t == "string" then
        return string_number(v)
    elseif t == "boolean" then
        return v and 1 or 0
    elseif v == null then
        return 0
    elseif v == nil then
        return 0 / 0
    elseif t == "table" then
        if is_array(v) then
            if #v == 0 then
                return 0
            elseif #v == 1 then
                return string_number(js_string(v[1]))
            end
        end
        return 0 / 0
    end
    return 0 / 0
end
util.js_number = js_number

function util.is_finite(n)
    return type(n) == "number" and n == n and n ~= huge and n ~= -huge
end

-- JSON text of a value (objects and arrays; also scalars), or nil and an error.
function util.json_text(v)
    if v == nil then
        return nil
    end
    return json.encode(v)
end

-- Splits "a.b.c" into segments (plain split on dots, empty segments kept as in JS split).
local split_cache = setmetatable({}, { __mode = "k" })
local function split_path(path)
    local segs = split_cache[path]
    if segs then
        return segs
    end
    segs = {}
    local i, n = 1, 0
    while true do
        local j = find(path, ".", i, true)
        n = n + 1
        if not j then
            segs[n] = sub(path, i)
            break
        end
        segs[n] = sub(path, i, j - 1)
        i = j + 1
    end
    split_cache[path] = segs
    return segs
end
util.split_path = split_path

-- Index one value by one path segment, JS-style: objects by key, arrays by decimal index or
-- `length`. Anything else (or a missing key) is undefined (nil).
local function index_segment(cur, seg)
    if type(cur) ~= "table" then
        return nil
    end
    if is_array(cur) then
        if seg == "length" then
            return #cur
        end
        if find(seg, "^%d+$") then
            local i = tonumber(seg)
            if (i == 0 and seg == "0") or sub(seg, 1, 1) ~= "0" then
                return cur[i + 1]
            end
        end
        return nil
    end
    return cur[seg]
end
util.index_segment = index_segment

-- Walks a dot path. Returns the value, or nil when a step is missing or not an object/array.
function util.get_path(root, path)
    local segs = split_path(path)
    local cur = root
    for i = 1, #segs do
        if type(cur) ~= "table" then
            return nil
        end
        cur = index_segment(cur, segs[i])
        if cur == nil then
            return nil
        end
    end
    return cur
end

-- Shallow copy (keeps the array mark).
function util.shallow_copy(t)
    local out = {}
    for k, v in next, t do
        out[k] = v
    end
    if is_json_array(t) then
        mark_array(out)
    end
    return out
end

-- Deep copy of a JSON value (tables only; metatables other than the array mark are dropped).
local function deep_copy(v, depth)
    if type(v) ~= "table" then
        return v
    end
    depth = (depth or 0) + 1
    if depth > 200 then
        error("value nested too deeply", 0)
    end
    local out = {}
    for k, x in next, v do
        out[k] = deep_copy(x, depth)
    end
    if is_json_array(v) then
        mark_array(out)
    end
    return out
end
util.deep_copy = deep_copy

-- ISO-8601 UTC with milliseconds, as JavaScript's Date#toISOString.
function util.iso(ms)
    ms = ms or rex.now_ms()
    local s = floor(ms / 1000)
    return os_date("!%Y-%m-%dT%H:%M:%S", s) .. format(".%03dZ", floor(ms - s * 1000))
end

function util.now_iso()
    return util.iso(rex.now_ms())
end

-- Length of a UTF-8 string in UTF-16 code units (JavaScript's String#length).
function util.js_len(s)
    local n = #s
    local len = 0
    local i = 1
    while i <= n do
        local c = byte(s, i)
        if c < 0x80 then
            i = i + 1
            len = len + 1
        elseif c >= 0xF0 then
            i = i + 4
            len = len + 2
        elseif c >= 0xE0 then
            i = i + 3
            len = len + 1
        elseif c >= 0xC0 then
            i = i + 2
            len = len + 1
        else
            i = i + 1
            len = len + 1
        end
    end
    return len
end

-- First n UTF-16 units of s (approximately: whole code points).
function util.js_slice(s, n)
    if #s <= n then
        return s
    end
    local len, i, total = 0, 1, #s
    while i <= total do
        local c = byte(s, i)
        local w, u = 1, 1
        if c >= 0xF0 then
            w, u = 4, 2
        elseif c >= 0xE0 then
            w = 3
        elseif c >= 0xC0 then
            w = 2
        end
        if len + u > n then
            break
        end
        len = len + u
        i = i + w
    end
    return sub(s, 1, i - 1)
end

-- Lua-pattern escape.
function util.escape_pattern(s)
    return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- Sorted keys of a table (for deterministic iteration).
function util.sorted_keys(t)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b)
        return tostring(a) < tostring(b)
    end)
    return keys
end

-- The text of an error value without running metamethods (safe for untrusted error objects).
function util.error_text(err)
    local t = type(err)
    if t == "string" then
        return err
    elseif t == "number" then
        return num_string(err)
    elseif t == "table" then
        local m = rawget(err, "message")
        if type(m) == "string" then
            return m
        end
        return "error object (table) without a message"
    elseif err == nil then
        return "error with no message (nil)"
    end
    return "error object of type " .. t
end

-- Sanitized error text: secrets masked, cut to the step error column (4096 characters).
function util.sanitize(msg)
    msg = rex.redact(util.error_text(msg))
    if #msg > 4000 then
        msg = util.js_slice(msg, 4000)
    end
    return msg
end

return util
