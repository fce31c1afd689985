-- nodes/manual-trigger.lua: starts a workflow run by hand; passes its input through.
local util = require("rex.util")

return {
    type = "manual-trigger",
    version = 1,
    schema = {},
    execute = function(ctx, input, config)
        return util.shallow_copy(input)
    end,
}
