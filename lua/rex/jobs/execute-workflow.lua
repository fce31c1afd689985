-- execute-workflow: REX's job (rex-behaviour.md §2 with decisions.md §3): runs the workflow of an
-- `executions` row and persists its telemetry to PostgreSQL (DATABASE_URL). The lifecycle lives
-- in lua/rex/execution.lua; a custom handler of the same name in REX_JOBS_PATH replaces this one.
local execution = require("rex.execution")

return function(job)
    return execution.process(job)
end
