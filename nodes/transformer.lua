-- nodes/transformer.lua: reshapes the input with a Lua `expression` (sandboxed; `data` and
-- `input` are the input) or with `mappings` {outKey = "dot.path"}. The output replaces the input.
-- rex-worker expressions are Lua, not JavaScript (decisions.md §4).
local util = require("rex.util")
local sandbox = require("rex.sandbox")

local function compile(expr)
    return sandbox.compile(expr, "expression", "expression")
end

return {
    type = "transformer",
    version = 1,
    schema = {
        expression = { type = "any", doc = "Lua expression over `data`/`input`" },
        mappings = { type = "any", doc = "object: output key -> dot path into the input" },
    },
    validate = function(config)
        local expr, maps = config.expression, config.mappings
        if not util.truthy(expr) and not util.truthy(maps) then
            return nil, { "TransformerNode requires either 'expression' (Lua) or 'mappings' "
                .. "(field mapping object) in config" }
        end
        if util.truthy(expr) then
            if type(expr) ~= "string" then
                return nil, { "TransformerNode 'expression' must be a string of Lua" }
            end
            local fn, err = compile(expr)
            if not fn then
                return nil, { "Transform expression is not valid Lua: " .. err }
            end
            return true
        end
        if not util.is_record(maps) then
            return nil, { "TransformerNode 'mappings' must be an object of output key -> path" }
        end
        local errs = {}
        for _, k in ipairs(util.sorted_keys(maps)) do
            if type(maps[k]) ~= "string" then
                errs[#errs + 1] = ('TransformerNode mapping "%s" must be a string path'):format(k)
            end
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        local expr = config.expression
        if util.truthy(expr) then
            local fn, err = compile(expr)
            if not fn then
                return nil, "Transform expression failed: " .. err
            end
            local ok, value = sandbox.run(fn, { env = { data = input, input = input },
                                                limits = ctx.sandbox_limits, log = ctx.log })
            if not ok then
                return nil, "Transform expression failed: " .. value
            end
            if util.is_record(value) then
                return value
            end
            return { result = value }
        end
        local maps = config.mappings
        if util.truthy(maps) then
            local out = {}
            for k, path in pairs(maps) do
                out[k] = util.get_path(input, path)
            end
            return out
        end
        return util.shallow_copy(input)
    end,
}
