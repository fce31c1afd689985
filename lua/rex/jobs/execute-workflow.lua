-- execute-workflow: REX's job. Its real handler comes with the engine, store and knowledge work; until then the
-- job fails without retries and says why (a custom handler of the same name in REX_JOBS_PATH
-- replaces this one).
local rex = require("rex")

return function(job)
    rex.unrecoverable("execute-workflow is not built yet in this version of rex-worker (" .. rex.version .. ")")
end
