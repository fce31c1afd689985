-- nodes/log.lua: writes a log line; its output replaces the input ({logged, level, ...}).
local util = require("rex.util")

local LEVELS = { info = true, warn = true, error = true, debug = true }

return {
    type = "log",
    version = 1,
    schema = {
        level = { type = "any", doc = "info, warn, error or debug (default info)" },
        message = { type = "any", doc = "log message (default 'Workflow log entry')" },
    },
    validate = function(config)
        local l = config.level
        if l ~= nil and l ~= util.null and not LEVELS[l] then
            return nil, { ('Invalid log level: "%s". Valid: info, warn, error, debug')
                :format(util.js_string(l)) }
        end
        return true
    end,
    execute = function(ctx, input, config)
        local level = util.truthy(config.level) and config.level or "info"
        local message = util.truthy(config.message) and util.js_string(config.message)
            or "Workflow log entry"
        local keys = util.array()
        for _, k in ipairs(util.sorted_keys(input)) do
            keys[#keys + 1] = k
        end
        ctx.log[level](message, { executionId = ctx.execution_id, workflowId = ctx.workflow_id,
                                  inputKeys = keys, input = input })
        return { logged = true, level = level, message = message, timestamp = util.now_iso() }
    end,
}
