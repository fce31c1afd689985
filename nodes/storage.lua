-- nodes/storage.lua: keeps its input in execution memory under storage.<storageKey>; its output
-- replaces the input ({stored, storageKey, payload, ...}).
local util = require("rex.util")

return {
    type = "storage",
    version = 1,
    schema = {
        storageKey = { type = "any", doc = "memory key suffix" },
        persistToExecutionContext = { type = "any",
                                      doc = "false (or 'false') keeps it out of memory" },
    },
    validate = function(config)
        if not util.truthy(config.storageKey) then
            return nil, { "StorageNode requires a 'storageKey' in config" }
        end
        return true
    end,
    execute = function(ctx, input, config)
        local persist = not (config.persistToExecutionContext == false
            or (type(config.persistToExecutionContext) == "string"
                and config.persistToExecutionContext:lower() == "false"))
        local key = util.js_string(config.storageKey)
        if persist then
            ctx:set_memory("storage." .. key, input)
        end
        return { stored = true, storageKey = config.storageKey, payload = input,
                 persistedToExecutionContext = persist, storedAt = util.now_iso() }
    end,
}
