-- nodes/data-cleaner.lua: applies cleaning operations, in order, to every string of the input
-- (recursively). The output replaces the input: {cleaned, operationsApplied, piiFound}.
local util = require("rex.util")
local ts = require("rex.textscan")

local OPS = { "trim", "normalize-case", "remove-special-chars", "remove-duplicates",
              "validate-json", "mask-pii" }
local VALID = {}
for _, o in ipairs(OPS) do
    VALID[o] = true
end

local js_string, null = util.js_string, util.null

-- /[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}/g
local EMAIL = { ts.seq(ts.rep(ts.set("a-zA-Z0-9._%+-"), 1), ts.lit("@"),
                       ts.rep(ts.set("a-zA-Z0-9.-"), 1), ts.lit("."), ts.rep(ts.set("a-zA-Z"), 2)) }
-- /(\+?\d{1,3}[-.\s]?)?\(?\d{3}\)?[-.\s]?\d{3}[-.\s]?\d{4}/g
local D, SEP = ts.set("0-9"), ts.set("-.\\s")
local PHONE_TAIL = ts.seq(ts.rep(ts.set("("), 0, 1), ts.rep(D, 3, 3), ts.rep(ts.set(")"), 0, 1),
    ts.rep(SEP, 0, 1), ts.rep(D, 3, 3), ts.rep(SEP, 0, 1), ts.rep(D, 4, 4))
local PHONE = { ts.seq(ts.rep(ts.set("+"), 0, 1), ts.rep(D, 1, 3), ts.rep(SEP, 0, 1), PHONE_TAIL),
                PHONE_TAIL }
-- /\b\d{4}[\s-]?\d{4}[\s-]?\d{4}[\s-]?\d{4}\b/g
local CS = ts.set("\\s-")
local CARD = { ts.seq(ts.boundary, ts.rep(D, 4, 4), ts.rep(CS, 0, 1), ts.rep(D, 4, 4),
                      ts.rep(CS, 0, 1), ts.rep(D, 4, 4), ts.rep(CS, 0, 1), ts.rep(D, 4, 4),
                      ts.boundary) }

local function mask_phone(s)
    -- every digit immediately followed by four digits becomes *
    local out = {}
    for i = 1, #s do
        local c = s:sub(i, i)
        if c:match("%d") and s:sub(i + 1, i + 4):match("^%d%d%d%d$") then
            out[i] = "*"
        else
            out[i] = c
        end
    end
    return table.concat(out)
end

local function replace_first(s, old, new)
    local i = s:find(old, 1, true)
    if not i then
        return s
    end
    return s:sub(1, i - 1) .. new .. s:sub(i + #old)
end

local function mask_pii(s, found)
    local det = {}
    for a, b in ts.each(EMAIL, s) do
        local orig = s:sub(a, b)
        local at = orig:find("@", 1, true)
        det[#det + 1] = { type = "email", original = orig,
                          masked = util.js_slice(orig, 2) .. "***" .. orig:sub(at),
                          position = a - 1 }
    end
    for a, b in ts.each(PHONE, s) do
        local orig = s:sub(a, b)
        det[#det + 1] = { type = "phone", original = orig, masked = mask_phone(orig),
                          position = a - 1 }
    end
    for a, b in ts.each(CARD, s) do
        local orig = s:sub(a, b)
        local digits = orig:gsub("%D", "")
        det[#det + 1] = { type = "credit-card", original = orig,
                          masked = "****-****-****-" .. digits:sub(-4), position = a - 1 }
    end
    for _, d in ipairs(det) do
        s = replace_first(s, d.original, d.masked)
        found[#found + 1] = d
    end
    return s
end

local KEEP = {}
for c in ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\r\f\v"
    .. ".,!?@#$%&*()-_=+[]{}|;:'\"<>/\\"):gmatch(".") do
    KEEP[c] = true
end

local function titlecase(s)
    -- /\w\S*/g -> first character upper-cased, the rest lower-cased
    return (s:gsub("([%w_])(%S*)", function(a, b)
        return a:upper() .. b:lower()
    end))
end

local function apply_string(op, s, config, found)
    if op == "trim" then
        return util.trim(s)
    elseif op == "normalize-case" then
        local ct = config.caseType
        if ct == nil or ct == null or ct == "lowercase" then
            return s:lower()
        elseif ct == "uppercase" then
            return s:upper()
        elseif ct == "titlecase" then
            return titlecase(s)
        end
        return s
    elseif op == "remove-special-chars" then
        return (s:gsub(".", function(c)
            if KEEP[c] then
                return c
            end
            return ""
        end))
    elseif op == "mask-pii" then
        return mask_pii(s, found)
    end
    return s
end

local function walk(v, op, config, found)
    if type(v) == "string" then
        return apply_string(op, v, config, found)
    elseif type(v) == "table" and v ~= null then
        if util.is_array(v) then
            local out = util.array()
            for i = 1, #v do
                out[i] = walk(v[i], op, config, found)
            end
            return out
        end
        local out = {}
        for k, x in pairs(v) do
            out[k] = walk(x, op, config, found)
        end
        return out
    end
    return v
end

return {
    type = "data-cleaner",
    version = 1,
    schema = {
        operations = { type = "any", doc = "array of: " .. table.concat(OPS, ", ") },
        caseType = { type = "any", doc = "lowercase (default), uppercase or titlecase" },
        customPattern = { type = "any", doc = "unused (as in the original)" },
    },
    validate = function(config)
        local ops = config.operations
        if not util.is_array(ops) and not (type(ops) == "table" and next(ops) == nil) then
            return nil, { "DataCleaner requires an 'operations' array in config" }
        end
        local errs = {}
        for _, op in ipairs(ops) do
            if not VALID[op] then
                errs[#errs + 1] = ('Invalid cleaning operation: "%s". Valid operations: %s')
                    :format(js_string(op), table.concat(OPS, ", "))
            end
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local data = input
        local found = util.array()
        local applied = util.array()
        for _, op in ipairs(config.operations) do
            if op == "mask-pii" then
                found = util.array()
                data = walk(data, op, config, found)
            elseif op == "remove-duplicates" or op == "validate-json" then
                -- no-ops on an object input (as the original)
                data = util.shallow_copy(data)
            else
                data = walk(data, op, config, found)
            end
            applied[#applied + 1] = op
        end
        return { cleaned = data, operationsApplied = applied, piiFound = found }
    end,
}
