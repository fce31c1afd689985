-- nodes/output.lua: marks the workflow's result; passes input and adds _output.
local util = require("rex.util")

return {
    type = "output",
    version = 1,
    schema = {},
    execute = function(ctx, input, config)
        local out = util.shallow_copy(input)
        out._output = { collectedAt = util.now_iso(), executionId = ctx.execution_id,
                        workflowId = ctx.workflow_id }
        return out
    end,
}
