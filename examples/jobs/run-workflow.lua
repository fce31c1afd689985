-- run-workflow: a job handler that runs a workflow graph carried in the job's data through the
-- engine (no database): data = { workflow = {nodes, edges, ...}, input = {...} }.
-- Used by `make demo` to show the queue and the engine together; REX's own job with telemetry is
-- execute-workflow.
local rex = require("rex")
local engine = require("rex.engine")
local nodes = require("rex.nodes")

local registry -- loaded once per worker thread
local eng

return function(job)
    local wf = job.data.workflow
    if type(wf) ~= "table" or type(wf.nodes) ~= "table" then
        rex.unrecoverable("data.workflow must be a workflow graph with nodes and edges")
    end
    if not eng then
        registry = nodes.new({ paths = os.getenv("REX_NODES_PATH") })
        eng = engine.new({ registry = registry })
    end
    local input = type(job.data.input) == "table" and job.data.input or {}
    local n = 0
    local result = eng:run(wf, {
        trigger_payload = input,
        workflow_id = type(wf.id) == "string" and wf.id or nil,
        execution_id = job.id,
        initial_context = { memory = { triggerPayload = input, domainConfig = {} } },
        runtime = {
            on_step_complete = function(step)
                n = n + 1
                job:progress({ step = n, node = step.nodeId, status = step.status })
                job:log(("%s %s %s"):format(step.status, step.nodeId, step.nodeType))
            end,
        },
    })
    local steps = {}
    for i, s in ipairs(result.steps) do
        steps[i] = { node = s.nodeId, status = s.status }
    end
    return { status = result.status, errorMessage = result.errorMessage, steps = rex.array(steps) }
end
