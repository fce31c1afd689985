-- Keeps the CPU busy for data.ms (the lock must be renewed meanwhile).
local rex = require("rex")
return function(job)
    local t0, n = rex.monotonic_ms(), 0
    while rex.monotonic_ms() - t0 < job.data.ms do
        n = n + 1
    end
    return { spins = n > 0 }
end
