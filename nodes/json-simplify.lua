-- nodes/json-simplify.lua: flattens the input (or one field) into dotted keys; passes input and
-- adds <outputKey> (default _jsonSimplified) and _jsonSimplifiedText.
local util = require("rex.util")

local null = util.null

local function flatten(src, max_depth, include_arrays)
    local out, count = {}, 0
    local order = {}
    local function store(k, v)
        if out[k] == nil then
            order[#order + 1] = k
        end
        out[k] = v
        count = count + 1
    end
    local function walk(v, prefix, depth)
        if depth > max_depth then
            return
        end
        if type(v) ~= "table" or v == null then
            store(prefix, v == nil and null or v)
        elseif util.is_array(v) or (next(v) == nil and require("rex").json.is_array(v)) then
            if not include_arrays then
                store(prefix, ("[array:%d]"):format(#v))
            else
                for i = 1, #v do
                    local k = prefix == "" and ("[" .. (i - 1) .. "]") or (prefix .. "[" .. (i - 1) .. "]")
                    walk(v[i], k, depth + 1)
                end
            end
        else
            if next(v) == nil then
                store(prefix, {})
            else
                for _, k in ipairs(util.sorted_keys(v)) do
                    walk(v[k], prefix == "" and k or (prefix .. "." .. k), depth + 1)
                end
            end
        end
    end
    if type(src) ~= "table" or src == null then
        return { [""] = src == nil and null or src }, { "" }
    end
    walk(src, "", 0)
    if count == 0 then
        return src, nil
    end
    return out, order
end

return {
    type = "json-simplify",
    version = 1,
    flatten = flatten,
    schema = {
        inputPath = { type = "any", doc = "dot path of the value (default: the whole input)" },
        outputKey = { type = "any", doc = "default _jsonSimplified" },
        maxDepth = { type = "any", doc = "1..12, default 6" },
        includeArrays = { type = "any", doc = "default true" },
    },
    validate = function(config)
        local errs = util.check_strings(config, { "inputPath", "outputKey" })
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local path = util.non_empty_string(config.inputPath)
        local src = path and util.get_path(input, path) or input
        local md = util.js_number(config.maxDepth)
        md = util.is_finite(md) and math.max(1, math.min(12, math.floor(md))) or 6
        local flat, order = flatten(src, md, util.bool_like(config.includeArrays, true))
        local lines = {}
        for _, k in ipairs(order or util.sorted_keys(flat)) do
            local v = flat[k]
            local s
            if type(v) == "string" then
                s = v
            elseif type(v) == "number" or type(v) == "boolean" then
                s = util.js_string(v)
            elseif v == nil or v == null then
                s = ""
            else
                s = util.json_text(v) or ""
            end
            lines[#lines + 1] = k .. ": " .. s
        end
        local out = util.shallow_copy(input)
        local key = util.non_empty_string(config.outputKey) and config.outputKey or "_jsonSimplified"
        out[key] = flat
        out._jsonSimplifiedText = table.concat(lines, "\n")
        return out
    end,
}
