-- execute-workflow: REX's job (rex-behaviour.md §2 with decisions.md §3): runs the workflow of an
-- `executions` row and persists its telemetry to PostgreSQL (DATABASE_URL). The lifecycle lives
-- in lua/rex/execution.lua; a custom handler of the same name in REX_JOBS_PATH replaces this one.
-- failed_without_run ends the execution of a job BullMQ fails without running it (the stalled
-- limit); idle applies the pending-final journal while no job comes.
local execution = require("rex.execution")

return {
    process = execution.process,
    failed_without_run = execution.failed_without_run,
    idle = execution.idle,
}
