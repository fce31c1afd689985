-- nodes/code.lua: runs a Lua function body (sandboxed) with `input` (the input data) and
-- `console`/`print` (forwarded to the node log); its return value becomes the output (a table,
-- or {result = value}). Limits: instructions, memory, wall clock (`timeoutMs`, default 10000).
local util = require("rex.util")
local sandbox = require("rex.sandbox")

return {
    type = "code",
    version = 1,
    schema = {
        code = { type = "any", doc = "Lua function body; `input` holds the input data" },
        timeoutMs = { type = "any", doc = "wall-clock limit in ms (default 10000, max 60000)" },
    },
    validate = function(config)
        if not util.truthy(config.code) then
            return nil, { "CodeNode requires 'code' in config" }
        end
        if type(config.code) ~= "string" then
            return nil, { "CodeNode 'code' must be a string of Lua" }
        end
        local fn, err = sandbox.compile(config.code, "body", "code")
        if not fn then
            return nil, { "Syntax error in code: " .. err }
        end
        return true
    end,
    execute = function(ctx, input, config)
        local fn, err = sandbox.compile(config.code, "body", "code")
        if not fn then
            return nil, "Code execution failed: " .. err
        end
        local limits = {}
        for k, v in pairs(ctx.sandbox_limits or {}) do
            limits[k] = v
        end
        local t = tonumber(config.timeoutMs)
        if t and t == t and t > 0 then
            limits.timeout_ms = math.min(math.floor(t), 60000)
        end
        local t0 = require("rex").monotonic_ms()
        local ok, value = sandbox.run(fn, { env = { input = input }, limits = limits,
                                            log = ctx.log })
        local dur = math.floor(require("rex").monotonic_ms() - t0)
        if not ok then
            return nil, "Code execution failed: " .. value
        end
        if util.is_record(value) then
            return value, { durationMs = dur }
        end
        return { result = value }, { durationMs = dur }
    end,
}
