-- nodes/execution-control.lua: changes the execution's control state (retry/loop counters and
-- limits, termination); passes input and adds _control. The engine checks limits and
-- termination right after the step.
local util = require("rex.util")

local ACTIONS = { "increment-retry", "increment-loop", "reset-retry", "reset-loop",
                  "set-max-retries", "set-max-loops", "terminate", "clear-terminate" }
local VALID = {}
for _, a in ipairs(ACTIONS) do
    VALID[a] = true
end
local NUMERIC = { ["increment-retry"] = true, ["increment-loop"] = true,
                  ["set-max-retries"] = true, ["set-max-loops"] = true }

return {
    type = "execution-control",
    version = 1,
    schema = {
        action = { type = "any", doc = table.concat(ACTIONS, ", ") .. " (default increment-retry)" },
        value = { type = "any", doc = "amount or limit (default 1)" },
        reason = { type = "any", doc = "termination reason (terminate only)" },
    },
    validate = function(config)
        local a = config.action
        if a == nil then
            a = "increment-retry"
        end
        if not VALID[a] then
            return nil, { ('Invalid action "%s". Valid: %s'):format(util.js_string(a),
                table.concat(ACTIONS, ", ")) }
        end
        if NUMERIC[a] and config.value ~= nil and not util.is_finite(util.js_number(config.value)) then
            return nil, { "value must be a valid number" }
        end
        return true
    end,
    execute = function(ctx, input, config)
        local action = config.action
        if action == nil then
            action = "increment-retry"
        end
        local n = util.js_number(config.value)
        local value = util.is_finite(n) and math.max(0, math.floor(n)) or 1
        local c = ctx:get_context().control
        local patch = {}
        if action == "increment-retry" then
            patch.retryCount = (c.retryCount or 0) + value
        elseif action == "increment-loop" then
            patch.loopCount = (c.loopCount or 0) + value
        elseif action == "reset-retry" then
            patch.retryCount = 0
        elseif action == "reset-loop" then
            patch.loopCount = 0
        elseif action == "set-max-retries" then
            patch.maxRetries = math.max(1, value)
        elseif action == "set-max-loops" then
            patch.maxLoops = math.max(1, value)
        elseif action == "terminate" then
            patch.terminate = true
        elseif action == "clear-terminate" then
            patch.terminate = false
        end
        local reason = util.null
        local mem
        if action == "terminate" then
            local r = util.non_empty_string(config.reason)
            if r then
                reason = r
                mem = { ["control.terminateReason"] = r }
            end
        end
        ctx:update_context({ control = patch, memory = mem })
        local state = ctx:get_context().control
        local out = util.shallow_copy(input)
        out._control = { action = action, reason = reason, state = state,
                         updatedAt = util.now_iso() }
        return out
    end,
}
