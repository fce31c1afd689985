-- nodes/memory-read.lua: reads an execution memory key into the output; passes input and adds
-- <outputKey> (default _memoryValue) and _memoryRead.
local util = require("rex.util")

return {
    type = "memory-read",
    version = 1,
    schema = {
        memoryKey = { type = "any", doc = "memory key (required)" },
        outputKey = { type = "any", doc = "default _memoryValue" },
        required = { type = "any", doc = "fail when missing and no defaultValue" },
        defaultValue = { type = "any", doc = "used when the key is missing (even null)" },
    },
    validate = function(config)
        if not util.non_empty_string(config.memoryKey) then
            return nil, { "MemoryReadNode requires 'memoryKey'" }
        end
        return true
    end,
    execute = function(ctx, input, config)
        local key = util.non_empty_string(config.memoryKey)
        local out_key = type(config.outputKey) == "string" and config.outputKey ~= ""
            and config.outputKey or "_memoryValue"
        local value = ctx:get_memory(key)
        local found = value ~= nil
        local has_default = config.defaultValue ~= nil
        if not found and util.bool_like(config.required, false) and not has_default then
            return nil, ('Execution memory key "%s" was not found'):format(key)
        end
        local out = util.shallow_copy(input)
        if found then
            out[out_key] = value
        else
            out[out_key] = config.defaultValue
        end
        out._memoryRead = { key = key, found = found, usedDefault = (not found) and has_default,
                            readAt = util.now_iso() }
        return out
    end,
}
