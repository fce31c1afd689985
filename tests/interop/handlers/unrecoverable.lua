-- Fails without further retries.
local rex = require("rex")
return function(job)
    rex.unrecoverable(job.data.message or "cannot go on")
end
