-- nodes/webhook-trigger.lua: starts a workflow run from a webhook; passes its input through.
local util = require("rex.util")

return {
    type = "webhook-trigger",
    version = 1,
    schema = {},
    execute = function(ctx, input, config)
        return util.shallow_copy(input)
    end,
}
