-- nodes/json-validator.lua: checks the input's top level (requiredFields, fieldTypes, a `json`
-- string that must parse) and, unlike the original (which accepted `schema` and ignored it), the
-- JSON Schema subset in `schema`: type, required, properties, additionalProperties (false or a
-- schema), items, enum, const, minLength/maxLength, minimum/maximum, exclusiveMinimum/Maximum,
-- minItems/maxItems, anyOf/oneOf/allOf/not. Passes input and adds _validation; with strict=true
-- any problem fails the node.
local util = require("rex.util")
local json = require("rex").json

local null, js_string = util.null, util.js_string

local function typeof(v)
    local t = type(v)
    if v == nil then
        return "undefined"
    elseif t == "string" or t == "number" or t == "boolean" then
        return t
    end
    return "object" -- tables (objects and arrays) and null
end

local function schema_type(v)
    local t = type(v)
    if v == null then
        return "null"
    elseif t == "number" then
        return v == math.floor(v) and "integer" or "number"
    elseif t == "table" then
        return util.is_array(v) and "array" or (next(v) == nil and json.is_array(v) and "array"
            or "object")
    end
    return t
end

local function type_matches(want, v)
    local got = schema_type(v)
    if want == got then
        return true
    end
    if want == "number" and got == "integer" then
        return true
    end
    if want == "array" and got == "object" and next(v) == nil then
        return true -- an empty Lua table is both
    end
    return false
end

local function deep_equal(a, b)
    if a == b then
        return true
    end
    if type(a) ~= "table" or type(b) ~= "table" then
        return false
    end
    for k, v in pairs(a) do
        if not deep_equal(v, b[k]) then
            return false
        end
    end
    for k in pairs(b) do
        if a[k] == nil then
            return false
        end
    end
    return true
end

local check_schema

local function at(path)
    return path == "" and "value" or path
end

check_schema = function(s, v, path, errs, depth)
    if type(s) ~= "table" or depth > 50 then
        return
    end
    if s.type ~= nil then
        local list = type(s.type) == "table" and s.type or { s.type }
        local ok = false
        for _, t in ipairs(list) do
            if type_matches(t, v) then
                ok = true
            end
        end
        if not ok then
            local names = {}
            for i, t in ipairs(list) do
                names[i] = js_string(t)
            end
            errs[#errs + 1] = ('Schema: %s expected type "%s", got "%s"'):format(at(path),
                table.concat(names, '" or "'), schema_type(v))
            return
        end
    end
    if s.enum ~= nil and type(s.enum) == "table" then
        local found = false
        for _, e in ipairs(s.enum) do
            if deep_equal(e, v) then
                found = true
            end
        end
        if not found then
            errs[#errs + 1] = ("Schema: %s must be one of %s"):format(at(path),
                json.encode(s.enum) or "the enum")
        end
    end
    if s.const ~= nil and not deep_equal(s.const, v) then
        errs[#errs + 1] = ("Schema: %s must equal %s"):format(at(path), json.encode(s.const) or "")
    end
    if type(v) == "string" then
        local n = util.js_len(v)
        if type(s.minLength) == "number" and n < s.minLength then
            errs[#errs + 1] = ("Schema: %s is shorter than %s characters"):format(at(path),
                js_string(s.minLength))
        end
        if type(s.maxLength) == "number" and n > s.maxLength then
            errs[#errs + 1] = ("Schema: %s is longer than %s characters"):format(at(path),
                js_string(s.maxLength))
        end
    elseif type(v) == "number" then
        if type(s.minimum) == "number" and v < s.minimum then
            errs[#errs + 1] = ("Schema: %s must be >= %s"):format(at(path), js_string(s.minimum))
        end
        if type(s.maximum) == "number" and v > s.maximum then
            errs[#errs + 1] = ("Schema: %s must be <= %s"):format(at(path), js_string(s.maximum))
        end
        if type(s.exclusiveMinimum) == "number" and v <= s.exclusiveMinimum then
            errs[#errs + 1] = ("Schema: %s must be > %s"):format(at(path),
                js_string(s.exclusiveMinimum))
        end
        if type(s.exclusiveMaximum) == "number" and v >= s.exclusiveMaximum then
            errs[#errs + 1] = ("Schema: %s must be < %s"):format(at(path),
                js_string(s.exclusiveMaximum))
        end
    elseif type(v) == "table" and v ~= null then
        if util.is_array(v) then
            if type(s.minItems) == "number" and #v < s.minItems then
                errs[#errs + 1] = ("Schema: %s must have at least %s items"):format(at(path),
                    js_string(s.minItems))
            end
            if type(s.maxItems) == "number" and #v > s.maxItems then
                errs[#errs + 1] = ("Schema: %s must have at most %s items"):format(at(path),
                    js_string(s.maxItems))
            end
            if util.is_record(s.items) then
                for i = 1, #v do
                    check_schema(s.items, v[i], ("%s[%d]"):format(path, i - 1), errs, depth + 1)
                end
            end
        else
            if type(s.required) == "table" then
                for _, f in ipairs(s.required) do
                    if type(f) == "string" and v[f] == nil then
                        errs[#errs + 1] = ('Schema: %s is missing required property "%s"')
                            :format(at(path), f)
                    end
                end
            end
            local props = util.is_record(s.properties) and s.properties or {}
            for _, k in ipairs(util.sorted_keys(props)) do
                if v[k] ~= nil then
                    check_schema(props[k], v[k], path == "" and k or (path .. "." .. k), errs,
                        depth + 1)
                end
            end
            local ap = s.additionalProperties
            if ap == false or util.is_record(ap) then
                for _, k in ipairs(util.sorted_keys(v)) do
                    if props[k] == nil then
                        if ap == false then
                            errs[#errs + 1] = ('Schema: %s has unexpected property "%s"')
                                :format(at(path), tostring(k))
                        else
                            check_schema(ap, v[k], path == "" and k or (path .. "." .. k), errs,
                                depth + 1)
                        end
                    end
                end
            end
        end
    end
    if type(s.allOf) == "table" then
        for _, sub in ipairs(s.allOf) do
            check_schema(sub, v, path, errs, depth + 1)
        end
    end
    local function count_ok(list)
        local n = 0
        for _, sub in ipairs(list) do
            local e = {}
            check_schema(sub, v, path, e, depth + 1)
            if #e == 0 then
                n = n + 1
            end
        end
        return n
    end
    if type(s.anyOf) == "table" and count_ok(s.anyOf) == 0 then
        errs[#errs + 1] = ("Schema: %s matches none of anyOf"):format(at(path))
    end
    if type(s.oneOf) == "table" and count_ok(s.oneOf) ~= 1 then
        errs[#errs + 1] = ("Schema: %s must match exactly one of oneOf"):format(at(path))
    end
    if util.is_record(s["not"]) then
        local e = {}
        check_schema(s["not"], v, path, e, depth + 1)
        if #e == 0 then
            errs[#errs + 1] = ("Schema: %s must not match the 'not' schema"):format(at(path))
        end
    end
end

return {
    type = "json-validator",
    version = 1,
    check_schema = check_schema,
    schema = {
        requiredFields = { type = "any", doc = "array of top-level field names that must exist" },
        fieldTypes = { type = "any", doc = "object: field -> typeof name" },
        strict = { type = "any", doc = "true: any problem fails the node" },
        schema = { type = "any", doc = "JSON Schema (subset) the input must satisfy" },
    },
    validate = function(config)
        if not util.truthy(config.schema) and not util.truthy(config.requiredFields) then
            return nil, { "JSONValidatorNode requires 'schema' object or 'requiredFields' array "
                .. "in config" }
        end
        if util.truthy(config.schema) and not util.is_record(config.schema) then
            return nil, { "JSONValidatorNode 'schema' must be a JSON Schema object" }
        end
        return true
    end,
    execute = function(ctx, input, config)
        local msgs = {}
        local req = config.requiredFields
        if type(req) == "table" then
            for _, f in ipairs(req) do
                local key = js_string(f)
                if input[key] == nil then
                    msgs[#msgs + 1] = ('Missing required field: "%s"'):format(key)
                end
            end
        end
        if util.is_record(config.fieldTypes) then
            for _, f in ipairs(util.sorted_keys(config.fieldTypes)) do
                local want = config.fieldTypes[f]
                local v = input[f]
                if v ~= nil then
                    local got = typeof(v)
                    if got ~= want then
                        msgs[#msgs + 1] = ('Field "%s" expected type "%s", got "%s"'):format(f,
                            js_string(want), got)
                    end
                end
            end
        end
        if type(input.json) == "string" and json.decode(input.json) == nil
            and input.json ~= "null" then
            msgs[#msgs + 1] = "Field 'json' contains invalid JSON string"
        end
        if util.is_record(config.schema) then
            check_schema(config.schema, input, "", msgs, 0)
        end
        if config.strict == true and #msgs > 0 then
            return nil, "JSON validation failed: " .. table.concat(msgs, "; ")
        end
        local errors = util.array()
        for i, m in ipairs(msgs) do
            errors[i] = m
        end
        local out = util.shallow_copy(input)
        out._validation = { valid = #msgs == 0, errors = errors }
        return out
    end,
}
