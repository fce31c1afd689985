-- nodes/memory-write.lua: writes (set / append / increment) an execution memory key; passes
-- input and adds <outputKey> (default _memoryValue, if includeInOutput) and _memoryWrite.
local util = require("rex.util")
local template = require("rex.engine.template")

local OPS = { set = true, append = true, increment = true }

return {
    type = "memory-write",
    version = 1,
    schema = {
        memoryKey = { type = "any", doc = "memory key (required)" },
        operation = { type = "any", doc = "set (default), append or increment" },
        valuePath = { type = "any", doc = "dot path of the value in the input" },
        valueTemplate = { type = "any", doc = "template of the value" },
        value = { type = "any", doc = "literal value" },
        incrementBy = { type = "any", doc = "increment step (default 1)" },
        outputKey = { type = "any", doc = "default _memoryValue" },
        includeInOutput = { type = "any", doc = "default true" },
    },
    validate = function(config)
        local errs = {}
        if not util.non_empty_string(config.memoryKey) then
            errs[#errs + 1] = "MemoryWriteNode requires 'memoryKey'"
        end
        local op = config.operation
        if op ~= nil and not OPS[op] then
            errs[#errs + 1] = ('Invalid operation "%s". Valid: set, append, increment')
                :format(util.js_string(op))
        end
        if op == "increment" and config.incrementBy ~= nil
            and not util.is_finite(util.js_number(config.incrementBy)) then
            errs[#errs + 1] = "incrementBy must be a valid number"
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local key = util.non_empty_string(config.memoryKey)
        local op = OPS[config.operation] and config.operation or "set"
        local value
        if util.non_empty_string(config.valuePath) then
            value = util.get_path(input, util.trim(config.valuePath))
        elseif util.non_empty_string(config.valueTemplate) then
            value = template.memory_write(config.valueTemplate, input)
        elseif config.value ~= nil then
            value = config.value
        else
            value = input
        end
        local prev = ctx:get_memory(key)
        local nextv
        if op == "set" then
            nextv = value
        elseif op == "append" then
            if util.is_array(prev) then
                nextv = util.shallow_copy(prev)
                nextv[#nextv + 1] = value
            elseif prev == nil then
                nextv = util.array({ value })
            else
                nextv = util.array({ prev, value })
            end
        else
            local base
            if util.is_finite(prev) then
                base = prev
            else
                local n = util.js_number(prev == nil and 0 or prev)
                base = util.is_finite(n) and n or 0
            end
            local by = util.js_number(config.incrementBy)
            if config.incrementBy == nil or not util.is_finite(by) then
                by = 1
            end
            nextv = base + by
        end
        ctx:set_memory(key, nextv == nil and util.null or nextv)
        local out = util.shallow_copy(input)
        local out_key = type(config.outputKey) == "string" and config.outputKey ~= ""
            and config.outputKey or "_memoryValue"
        if util.bool_like(config.includeInOutput, true) then
            out[out_key] = nextv
        end
        out._memoryWrite = { key = key, operation = op, previousValue = prev, nextValue = nextv,
                             updatedAt = util.now_iso() }
        return out
    end,
}
