-- test-sleep: a test node that waits config.ms milliseconds without using the CPU and passes its
-- input through (used to hold an execution between steps: cancel, restart and retry scenarios).
local ffi = require("ffi")
pcall(ffi.cdef, "int poll(struct pollfd *fds, unsigned long nfds, int timeout);")

return {
    type = "test-sleep",
    version = 1,
    schema = {
        ms = { type = "number", required = true, doc = "milliseconds to wait" },
    },
    execute = function(ctx, input, config)
        ffi.C.poll(nil, 0, math.floor(config.ms))
        local out = {}
        for k, v in pairs(input) do
            out[k] = v
        end
        out.slept = config.ms
        return out
    end,
}
