-- Shared helpers of the engine and node specs: a registry with the built-ins plus in-spec node
-- types, a run wrapper that records callbacks, and a small fake knowledge runtime (an in-spec
-- stand-in for the runtime interface, not a database mock).
local rex = require("rex")
local engine = require("rex.engine")
local nodes = require("rex.nodes")

local H = {}

H.json = rex.json
H.null = rex.null

local quiet = { debug = function() end, info = function() end, warn = function() end,
                error = function() end }
H.quiet_log = quiet

function H.registry(defs)
    local reg = nodes.new({ log = quiet })
    for _, d in ipairs(defs or {}) do
        if not d.schema and not d.validate then
            d.schema = {}
        end
        assert(reg:register(d, "spec"))
    end
    return reg
end

function H.engine(defs, opts)
    opts = opts or {}
    return engine.new({ registry = H.registry(defs), log = quiet, sleep = opts.sleep
        or function() end, limits = opts.limits })
end

-- Runs wf; returns result and a record of callbacks {steps, snapshots, events, starts}.
function H.run(eng, wf, opts)
    opts = opts or {}
    local rec = { steps = {}, snapshots = {}, events = {}, starts = {}, calls = {} }
    local rt = opts.runtime or {}
    local runtime = {
        on_step_start = function(id, t)
            rec.starts[#rec.starts + 1] = id
            if rt.on_step_start then
                rt.on_step_start(id, t)
            end
        end,
        on_step_complete = function(step)
            rec.steps[#rec.steps + 1] = step
            if rt.on_step_complete then
                rt.on_step_complete(step)
            end
        end,
        on_context_update = function(u)
            rec.snapshots[#rec.snapshots + 1] = u
            if rt.on_context_update then
                rt.on_context_update(u)
            end
        end,
        on_retrieval_event = function(ev)
            rec.events[#rec.events + 1] = ev
        end,
        retrieve_knowledge = rt.retrieve_knowledge,
        ingest_knowledge = rt.ingest_knowledge,
        get_api_key = rt.get_api_key,
    }
    local res = eng:run(wf, { trigger_payload = opts.payload or {},
                              initial_context = opts.initial_context, runtime = runtime,
                              execution_id = opts.execution_id or "exec-1",
                              workflow_id = opts.workflow_id or "wf-1",
                              settings = opts.settings })
    return res, rec
end

function H.statuses(res)
    local out = {}
    for i, s in ipairs(res.steps) do
        out[i] = s.nodeId .. ":" .. s.status
    end
    return out
end

function H.step(res, id)
    for _, s in ipairs(res.steps) do
        if s.nodeId == id then
            return s
        end
    end
end

-- Builds a workflow from compact lists: nodes {id, type, config}, edges {source, target, cond}.
function H.wf(node_list, edge_list)
    local ns, es = rex.array(), rex.array()
    for i, n in ipairs(node_list) do
        ns[i] = { id = n[1], type = n[2] or "pass", config = n[3] or {} }
    end
    for i, e in ipairs(edge_list or {}) do
        es[i] = { id = "e" .. i, source = e[1], target = e[2], condition = e[3] }
    end
    return { nodes = ns, edges = es }
end

-- A pass-through node and friends for engine specs.
H.pass = { type = "pass", schema = {}, execute = function(ctx, input)
    return rex.merge(input)
end }

-- A fake knowledge runtime: answers by query text from a table {query -> matches}.
function H.fake_knowledge(answers, opts)
    opts = opts or {}
    local kr = { calls = {}, ingested = {} }
    function kr.retrieve_knowledge(p)
        kr.calls[#kr.calls + 1] = p
        if opts.fail and opts.fail[p.query] then
            error(opts.fail[p.query], 0)
        end
        local m = answers[p.query] or {}
        return { query = p.query, topK = p.topK, matches = rex.array(m) }
    end
    function kr.ingest_knowledge(p)
        kr.ingested[#kr.ingested + 1] = p
        return { corpusId = p.corpusId or "corpus-1", documentId = "doc-" .. #kr.ingested,
                 chunkCount = 1, status = "ready" }
    end
    return kr
end

-- Runs one node of type t with config on input; returns the data it produced (nil on failure),
-- the result, and the callback record.
function H.node(t, config, input, opts)
    opts = opts or {}
    local eng = opts.engine or H.engine(opts.defs)
    opts.payload = input or {}
    local res, rec = H.run(eng, H.wf({ { "n", t, config or {} } }), opts)
    return res.outputs.n, res, rec
end

-- Validation problems of one node config ({} when valid).
function H.problems(t, config)
    local reg = H.registry()
    return reg:validate_config(assert(reg:get(t)), config)
end

return H
