-- nodes/condition.lua: compares a field of the input with a value, JavaScript-style; passes input
-- and adds _condition {field, operator, expected, actual, result}. Outgoing edges with condition
-- "true"/"false" route on the result.
local util = require("rex.util")

local OPERATORS = { "equals", "not_equals", "contains", "not_contains", "greater_than", "less_than",
                    "greater_than_or_equal", "less_than_or_equal", "is_empty", "is_not_empty",
                    "exists", "not_exists" }
local VALID = {}
for _, o in ipairs(OPERATORS) do
    VALID[o] = true
end

local js_string, js_number, null = util.js_string, util.js_number, util.null

local function compare(op, actual, expected)
    if op == "equals" then
        return js_string(actual) == js_string(expected)
    elseif op == "not_equals" then
        return js_string(actual) ~= js_string(expected)
    elseif op == "contains" then
        return js_string(actual):find(js_string(expected), 1, true) ~= nil
    elseif op == "not_contains" then
        return js_string(actual):find(js_string(expected), 1, true) == nil
    elseif op == "greater_than" or op == "less_than" or op == "greater_than_or_equal"
        or op == "less_than_or_equal" then
        local a, b = js_number(actual), js_number(expected)
        if a ~= a or b ~= b then
            return false
        end
        if op == "greater_than" then
            return a > b
        elseif op == "less_than" then
            return a < b
        elseif op == "greater_than_or_equal" then
            return a >= b
        end
        return a <= b
    elseif op == "is_empty" or op == "is_not_empty" then
        local empty = actual == nil or actual == null or actual == ""
            or (util.is_array(actual) and #actual == 0)
        if op == "is_empty" then
            return empty
        end
        return not empty
    elseif op == "exists" then
        return actual ~= nil and actual ~= null
    elseif op == "not_exists" then
        return actual == nil or actual == null
    end
    return false
end

return {
    type = "condition",
    version = 1,
    operators = OPERATORS,
    compare = compare,
    schema = {
        field = { type = "any", doc = "dot path into the input (required)" },
        operator = { type = "any", doc = "comparison operator (default equals)" },
        value = { type = "any", doc = "value to compare with" },
    },
    validate = function(config)
        local errs = {}
        if not util.truthy(config.field) then
            errs[#errs + 1] = "ConditionNode requires a 'field' path in config"
        end
        local op = config.operator
        if op ~= nil and op ~= null and not VALID[op] then
            errs[#errs + 1] = ('Invalid operator: "%s". Valid: %s'):format(js_string(op),
                table.concat(OPERATORS, ", "))
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local field = js_string(config.field)
        local op = config.operator
        if op == nil or op == null then
            op = "equals"
        end
        local actual = util.get_path(input, field)
        local expected = config.value
        local result = compare(op, actual, expected)
        local out = util.shallow_copy(input)
        out._condition = { field = field, operator = op, expected = expected, actual = actual,
                           result = result }
        return out, { conditionResult = result }
    end,
}
