-- nodes/schedule-trigger.lua: starts a workflow run on a schedule; passes its input through.
-- The schedule itself is the producer's business; the config is validated even on manual runs.
local util = require("rex.util")

return {
    type = "schedule-trigger",
    version = 1,
    schema = {
        cron = { type = "any", doc = "cron expression, 5 or 6 fields" },
        intervalMs = { type = "any", doc = "interval in ms, at least 60000" },
    },
    validate = function(config)
        local errs = {}
        if config.cron == nil and config.intervalMs == nil then
            errs[#errs + 1] =
                "ScheduleTriggerNode requires either 'cron' expression or 'intervalMs' in config"
        end
        if config.cron ~= nil then
            local n = 0
            for _ in util.js_string(config.cron):gmatch("%S+") do
                n = n + 1
            end
            if n < 5 or n > 6 then
                errs[#errs + 1] =
                    "Invalid cron expression. Expected 5 or 6 fields (minute hour day month weekday [year])"
            end
        end
        if config.intervalMs ~= nil and (type(config.intervalMs) ~= "number"
            or config.intervalMs < 60000) then
            errs[#errs + 1] = "intervalMs must be a number >= 60000 (1 minute minimum)"
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        return util.shallow_copy(input)
    end,
}
