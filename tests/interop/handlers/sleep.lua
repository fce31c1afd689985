-- Sleeps data.ms without using the CPU; returns its start and end times (ms).
local ffi = require("ffi")
ffi.cdef [[ int poll(void *fds, unsigned long nfds, int timeout); ]]
local rex = require("rex")
return function(job)
    local started = rex.now_ms()
    ffi.C.poll(nil, 0, job.data.ms)
    return { started = started, ended = rex.now_ms(), id = job.id }
end
