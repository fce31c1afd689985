-- rex.engine: runs REX workflow DAGs (rex-behaviour §4, with the differences of decisions.md §4).
--
--   local engine = require("rex.engine")
--   local eng = engine.new({ registry = require("rex.nodes").default() })
--   local ok, problems = eng:validate(workflow)
--   local result = eng:run(workflow, { trigger_payload = {...}, runtime = {...} })
--
-- runtime callbacks (all optional, Lua functions): on_step_start(node_id, node_type),
-- on_step_complete(step), on_context_update(update), on_retrieval_event(event),
-- retrieve_knowledge(params) -> {query, topK, matches}, ingest_knowledge(params) ->
-- {corpusId, documentId, chunkCount, status}, get_api_key(provider) -> key.
-- on_step_start/on_step_complete errors abort the run (as the original); the others are caught.
local rex = require("rex")
local util = require("rex.util")
local graph = require("rex.engine.graph")
local retrieval = require("rex.engine.retrieval")

local type, pairs, next, pcall, error, tostring, select = type, pairs, next, pcall, error,
    tostring, select
local floor, min, max = math.floor, math.min, math.max
local concat = table.concat
local null, array = util.null, util.array
local is_record, bool_like, non_empty_string = util.is_record, util.bool_like, util.non_empty_string
local sanitize, trim = util.sanitize, util.trim
local monotonic, now_ms = rex.monotonic_ms, rex.now_ms
local iso = util.iso

local engine = {}
local Engine = {}
Engine.__index = Engine

---------------------------------------------------------------------------------------------------
-- small helpers

local last_iso_ms, last_iso = -1, nil
local function now_iso()
    local ms = now_ms()
    if ms ~= last_iso_ms then
        last_iso_ms, last_iso = ms, iso(ms)
    end
    return last_iso
end

-- Waits without using the CPU; in a worker thread the pool hears of it and runs another job
-- meanwhile (rex.core.sleep); without the C module, poll through the FFI.
local sleep
do
    local ok, core = pcall(require, "rex.core")
    if ok and type(core) == "table" and core.sleep then
        local csleep = core.sleep
        sleep = function(ms)
            if ms and ms > 0 then
                csleep(floor(ms))
            end
        end
    else
        local fok, ffi = pcall(require, "ffi")
        if fok then
            pcall(ffi.cdef, "int poll(struct pollfd *fds, unsigned long nfds, int timeout);")
            sleep = function(ms)
                if ms and ms > 0 then
                    ffi.C.poll(nil, 0, floor(ms))
                end
            end
        else
            sleep = function(ms)
                local t = monotonic() + (ms or 0)
                while monotonic() < t do
                end
            end
        end
    end
end
engine.sleep = sleep

local urandom
local UUID_FORMAT = "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"
local function uuid() -- version 4, one format call
    if urandom == nil then
        urandom = io.open("/dev/urandom", "rb") or false
    end
    local b = urandom and urandom:read(16)
    local x
    if b and #b == 16 then
        x = { b:byte(1, 16) }
    else
        x = {}
        for i = 1, 16 do
            x[i] = math.random(0, 255)
        end
    end
    x[7] = 0x40 + x[7] % 16
    x[9] = 0x80 + x[9] % 64
    return UUID_FORMAT:format(unpack(x, 1, 16))
end
engine.uuid = uuid

local function shallow(t)
    local out = {}
    for k, v in next, t do
        out[k] = v
    end
    return out
end

---------------------------------------------------------------------------------------------------
-- execution context (§4.6)

local function int_at_least(v, lo, default)
    if type(v) == "number" and v == floor(v) and v >= lo and v < 2 ^ 53 then
        return v
    end
    return default
end

local function new_context(initial, cfg)
    initial = is_record(initial) and initial or {}
    local ts = now_iso()
    local control = { loopCount = 0, retryCount = 0, maxLoops = 20, maxRetries = 3,
                      terminate = false }
    if is_record(initial.control) then
        for k, v in pairs(initial.control) do
            control[k] = v
        end
    end
    local ir = is_record(initial.retrieval) and initial.retrieval or {}
    local rs = {
        totalRequests = int_at_least(ir.totalRequests, 0, 0),
        totalSuccesses = int_at_least(ir.totalSuccesses, 0, 0),
        totalEmpties = int_at_least(ir.totalEmpties, 0, 0),
        totalFailures = int_at_least(ir.totalFailures, 0, 0),
        totalDurationMs = int_at_least(ir.totalDurationMs, 0, 0),
        maxRequests = int_at_least(ir.maxRequests, 1, cfg.max_requests or 64),
        maxFailures = int_at_least(ir.maxFailures, 1, cfg.max_failures or 32),
        maxDurationMs = int_at_least(ir.maxDurationMs, 1000, cfg.max_duration_ms or 120000),
    }
    return {
        version = int_at_least(initial.version, 0, 1),
        memory = is_record(initial.memory) and shallow(initial.memory) or {},
        knowledge = is_record(initial.knowledge) and shallow(initial.knowledge) or {},
        control = control,
        retrieval = rs,
        runtime = { startedAt = ts, updatedAt = ts, activeNodeId = null,
                    lastCompletedNodeId = null },
    }
end

local OTHER_SECTIONS = { "control", "retrieval", "runtime" }
local PATCH_SECTIONS = { "memory", "knowledge", "control", "retrieval", "runtime" }

-- Applies a patch (§4.6): memory/knowledge only if objects, the other sections if tables.
-- Every application bumps the version.
local function apply_patch(state, patch)
    if patch then
        local m = patch.memory
        if m ~= nil and is_record(m) then
            local dst = state.memory
            for k, v in pairs(m) do
                dst[k] = v
            end
        end
        m = patch.knowledge
        if m ~= nil and is_record(m) then
            local dst = state.knowledge
            for k, v in pairs(m) do
                dst[k] = v
            end
        end
        for i = 1, 3 do
            local sec = OTHER_SECTIONS[i]
            m = patch[sec]
            if type(m) == "table" then
                local dst = state[sec]
                for k, v in pairs(m) do
                    dst[k] = v
                end
            end
        end
    end
    state.version = state.version + 1
    state.runtime.updatedAt = now_iso()
end
engine.apply_patch = apply_patch

-- A copy of the state for snapshots (sections are copied: the engine mutates them in place).
local function snapshot_state(state)
    return {
        version = state.version,
        memory = shallow(state.memory),
        knowledge = shallow(state.knowledge),
        control = shallow(state.control),
        retrieval = shallow(state.retrieval),
        runtime = shallow(state.runtime),
    }
end
engine.snapshot_state = snapshot_state

local function control_violation(c)
    local rc, mr = tonumber(c.retryCount) or 0, tonumber(c.maxRetries) or 3
    if rc > mr then
        return ("Execution retry limit exceeded (%s/%s)"):format(util.js_string(rc),
            util.js_string(mr))
    end
    local lc, ml = tonumber(c.loopCount) or 0, tonumber(c.maxLoops) or 20
    if lc > ml then
        return ("Execution loop limit exceeded (%s/%s)"):format(util.js_string(lc),
            util.js_string(ml))
    end
    return nil
end
engine.control_violation = control_violation

---------------------------------------------------------------------------------------------------
-- retry policy (§4.7)

local function clamp_num(v, lo, hi)
    if type(v) ~= "number" or v ~= v then
        return nil
    end
    return max(lo, min(hi, floor(v)))
end

local function retry_policy(config)
    local rp = is_record(config.retryPolicy) and config.retryPolicy or nil
    local p = {}
    local en = rp and rp.enabled
    if en == nil then
        en = config.retryEnabled
    end
    p.enabled = bool_like(en, false)
    local ma = rp and rp.maxAttempts
    if ma == nil then
        ma = config.retryMaxAttempts
    end
    p.maxAttempts = clamp_num(ma, 1, 10) or (p.enabled and 3 or 1)
    local d = rp and rp.delayMs
    if d == nil then
        d = config.retryDelayMs
    end
    p.delayMs = clamp_num(d, 0, 10000) or 0
    p.retryOnError = bool_like(rp and rp.retryOnError, true)
    p.retryOnDirective = bool_like(rp and rp.retryOnDirective, true)
    p.failOnMaxAttempts = bool_like(rp and rp.failOnMaxAttempts, true)
    p.incrementLoopOnRetry = bool_like(rp and rp.incrementLoopOnRetry, true)
    return p
end
engine.retry_policy = retry_policy

local function retry_directive(meta)
    if type(meta) ~= "table" then
        return nil
    end
    local r = meta.retry
    if type(r) == "boolean" then
        return { requested = r }
    elseif is_record(r) then
        local d = { requested = bool_like(r.requested, true) }
        if type(r.reason) == "string" then
            d.reason = r.reason
        end
        if util.is_finite(r.delayMs) then
            d.delayMs = max(0, min(10000, r.delayMs))
        end
        return d
    elseif type(meta.shouldRetry) == "boolean" then
        local d = { requested = meta.shouldRetry }
        if type(meta.retryReason) == "string" then
            d.reason = meta.retryReason
        end
        return d
    end
    return nil
end

local function outcome_status(completed, records)
    local retried = #records > 1
    for i = 1, #records do
        if records[i].status == "retry" then
            retried = true
        end
    end
    if completed then
        return retried and "retry_succeeded_after_n" or "no_retry"
    end
    return retried and "retry_exhausted" or "failed_without_retry"
end

---------------------------------------------------------------------------------------------------
-- edge conditions (§4.5)

local function first_bool(parent)
    if type(parent) ~= "table" then
        return nil
    end
    local c = parent._condition
    if is_record(c) and type(c.result) == "boolean" then
        return c.result
    end
    local e = parent._evaluation
    if is_record(e) and type(e.passed) == "boolean" then
        return e.passed
    end
    if type(parent.result) == "boolean" then
        return parent.result
    end
    return nil
end

local function first_route(parent)
    if type(parent) ~= "table" then
        return nil
    end
    local r = non_empty_string(parent._route)
    if r then
        return r
    end
    local b = parent._branch
    if is_record(b) then
        r = non_empty_string(b.route)
        if r then
            return r
        end
    end
    return non_empty_string(parent.route)
end

local function edge_matches(cond, parent)
    if cond == nil or cond == null then
        return true
    end
    local t = type(cond)
    if t == "boolean" then
        local b = first_bool(parent)
        return b ~= nil and b == cond
    elseif t ~= "string" then
        return true
    end
    local tok = trim(cond):lower()
    if tok == "" or tok == "always" or tok == "any" then
        return true
    elseif tok == "true" or tok == "false" then
        local b = first_bool(parent)
        return b ~= nil and b == (tok == "true")
    elseif tok == "pass" or tok == "fail" then
        local e = type(parent) == "table" and parent._evaluation or nil
        if not is_record(e) then
            return false
        end
        return e.passed == (tok == "pass")
    end
    local r = first_route(parent)
    return r ~= nil and r:lower() == tok
end
engine.edge_matches = edge_matches

---------------------------------------------------------------------------------------------------
-- construction and validation

function engine.new(opts)
    opts = opts or {}
    local self = setmetatable({}, Engine)
    self.registry = opts.registry or require("rex.nodes").default()
    self.hooks = opts.hooks
    self.log = opts.log or rex.log
    self.limits = opts.limits or {}
    self.sleep = opts.sleep or sleep
    return self
end

local function workflow_lists(wf)
    local nodes = type(wf) == "table" and wf.nodes or nil
    local edges = type(wf) == "table" and wf.edges or nil
    if nodes == nil or nodes == null then
        nodes = {}
    end
    if edges == nil or edges == null then
        edges = {}
    end
    return nodes, edges
end

-- Whole-graph validation before any node runs (decisions.md §4): graph shape, DAG, every node
-- type known, every node's config valid. Returns ok, problems (all of them), analysis, kinds
-- (true when every problem is a DAG problem).
function Engine:validate(wf)
    local problems = {}
    if type(wf) ~= "table" then
        return false, { "Workflow must be a JSON object with 'nodes' and 'edges'" }
    end
    local nodes, edges = workflow_lists(wf)
    if type(nodes) ~= "table" or (next(nodes) ~= nil and not util.is_array(nodes)) then
        return false, { "Workflow 'nodes' must be an array" }
    end
    if type(edges) ~= "table" or (next(edges) ~= nil and not util.is_array(edges)) then
        return false, { "Workflow 'edges' must be an array" }
    end
    for i = 1, #nodes do
        local n = nodes[i]
        if not is_record(n) then
            problems[#problems + 1] = ("Node #%d must be an object"):format(i)
        elseif type(n.id) ~= "string" or n.id == "" then
            problems[#problems + 1] = ("Node #%d has no string 'id'"):format(i)
        elseif type(n.type) ~= "string" then
            problems[#problems + 1] = ('Node "%s" has no string \'type\''):format(n.id)
        elseif n.config ~= nil and n.config ~= null and not is_record(n.config) then
            problems[#problems + 1] = ('Node "%s" (%s) config must be an object'):format(n.id, n.type)
        end
    end
    for i = 1, #edges do
        if not is_record(edges[i]) then
            problems[#problems + 1] = ("Edge #%d must be an object"):format(i)
        end
    end
    if #problems > 0 then
        return false, problems
    end
    local a = graph.analyze(nodes, edges)
    for i = 1, #a.errors do
        problems[#problems + 1] = a.errors[i]
    end
    local dag_only = #problems > 0
    local reg = self.registry
    for _, id in ipairs(a.ids) do
        local n = a.by_id[id]
        local def = reg:get(n.type)
        if not def then
            problems[#problems + 1] = ('Unknown node type "%s". Available types: %s'):format(
                n.type, concat(reg:types(), ", "))
        else
            local errs = reg:validate_config(def, n.config)
            if #errs > 0 then
                problems[#problems + 1] = ('Node "%s" (%s) validation failed: %s'):format(
                    id, n.type, concat(errs, "; "))
            end
        end
    end
    if #problems > 0 then
        return false, problems, a, dag_only and #problems == #a.errors
    end
    return true, problems, a
end

---------------------------------------------------------------------------------------------------
-- the run

local Run = {}
Run.__index = Run

function Run:emit_snapshot(reason, node_id, node_type)
    local cb = self.cb.on_context_update
    local hk = self.hooks and self.hooks.on_context_update
    if not cb and not hk then
        return
    end
    local upd = {
        executionId = self.execution_id, reason = reason, nodeId = node_id or null,
        nodeType = node_type or null, stepIndex = #self.steps,
        state = snapshot_state(self.state),
    }
    if cb then
        local ok, err = pcall(cb, upd)
        if not ok then
            self.log.warn("Execution context update hook failed",
                { executionId = self.execution_id, error = util.error_text(err) })
        end
    end
    if hk then
        local fail = hk(upd)
        if fail then
            error({ message = fail }, 0)
        end
    end
end

function Run:patch(p)
    apply_patch(self.state, p)
end

function Run:step_complete(step)
    self.steps[#self.steps + 1] = step
    local cb = self.cb.on_step_complete
    if cb then
        cb(step) -- an error aborts the run (§4.4 step 5)
    end
    if self.hooks and self.hooks.on_step_complete then
        local fail = self.hooks.on_step_complete(step)
        if fail then
            error({ message = fail }, 0)
        end
    end
end

function Run:retrieval_event(ev)
    ev.nodeId = ev.nodeId or self.cur_id
    ev.nodeType = ev.nodeType or self.cur_type
    ev.executionId = self.execution_id
    local cb = self.cb.on_retrieval_event
    if cb then
        local ok, err = pcall(cb, ev)
        if not ok then
            self.log.warn("Retrieval event hook failed", { error = util.error_text(err) })
        end
    end
    if self.hooks and self.hooks.on_retrieval_event then
        local fail = self.hooks.on_retrieval_event(ev)
        if fail then
            error({ message = fail }, 0)
        end
    end
end

function Run:append_skips(from, reason)
    local order = self.order
    for i = from, #order do
        local id = order[i]
        local n = self.by_id[id]
        local step = { nodeId = id, nodeType = n and n.type or "unknown", status = "skipped",
                       input = {}, output = null, durationMs = 0, error = reason }
        self:step_complete(step)
        self:patch({ runtime = { lastCompletedNodeId = id } })
        self:emit_snapshot("step", id, step.nodeType)
    end
end

-- The node context (§4.10, interface.md).
local Ctx = {}
local node_logger
Ctx.__index = function(t, k)
    if k == "log" then
        -- built on first use: most nodes never log
        local l = node_logger(rawget(t, "_run").log, rawget(t, "node_id"), rawget(t, "node_type"))
        rawset(t, "log", l)
        return l
    end
    return Ctx[k]
end

function Ctx:get_api_key(provider)
    local f = self._run.cb.get_api_key
    if not f then
        error(('No API key found for user: no key resolver for provider "%s"'):format(
            tostring(provider)), 0)
    end
    return f(provider)
end

function Ctx:get_context()
    return snapshot_state(self._run.state)
end
Ctx.get_execution_context = Ctx.get_context

function Ctx:update_context(patch)
    self._run:patch(patch)
end
Ctx.update_execution_context = Ctx.update_context

function Ctx:get_memory(key)
    return self._run.state.memory[key]
end

function Ctx:set_memory(key, value)
    self._run:patch({ memory = { [key] = value } })
end

function Ctx:has_retrieval()
    return self._run.cb.retrieve_knowledge ~= nil
end

function Ctx:has_ingestion()
    return self._run.cb.ingest_knowledge ~= nil
end

-- Node-context retrieval (§4.10): budget check, one call, counters, one event (selected true).
function Ctx:retrieve_knowledge(input)
    local run = self._run
    local call = run.cb.retrieve_knowledge
    if not call then
        error("retrieveKnowledge runtime support is not available", 0)
    end
    local rs = run.state.retrieval
    local reason = retrieval.budget_reason(rs)
    if reason then
        error("Retrieval limit reached before request: " .. reason, 0)
    end
    input = input or {}
    local topk = max(1, min(50, floor(tonumber(input.topK) or 8)))
    local params = {
        executionId = run.execution_id, workflowId = run.workflow_id, userId = run.user_id,
        nodeId = self.node_id, nodeType = self.node_type, query = input.query, topK = topk,
        corpusId = input.corpusId, scopeType = input.scopeType,
        workflowIdScope = input.workflowIdScope, executionIdScope = input.executionIdScope,
        retrieverKey = input.retrieverKey, retrievalStrategy = input.retrievalStrategy,
        branchIndex = input.branchIndex,
    }
    if input.scopeType == "workflow" and params.workflowIdScope == nil then
        params.workflowIdScope = run.workflow_id
    elseif input.scopeType == "execution" and params.executionIdScope == nil then
        params.executionIdScope = run.execution_id
    end
    local t0 = monotonic()
    local ok, resp = pcall(call, params)
    local dur = floor(monotonic() - t0)
    local ev = {
        query = input.query, topK = topk, attempt = 1, maxAttempts = 1, durationMs = dur,
        scopeType = input.scopeType, corpusId = input.corpusId,
        workflowIdScope = input.workflowIdScope, executionIdScope = input.executionIdScope,
        strategy = input.retrievalStrategy, retrieverKey = input.retrieverKey,
        branchIndex = input.branchIndex, selected = true,
    }
    if not ok or type(resp) ~= "table" then
        local msg = ok and "retrieveKnowledge returned no result" or sanitize(resp)
        run:patch({ retrieval = { totalRequests = rs.totalRequests + 1,
                                  totalFailures = rs.totalFailures + 1,
                                  totalDurationMs = rs.totalDurationMs + dur } })
        ev.status, ev.matchesCount, ev.errorMessage = "failed", 0, msg
        run:retrieval_event(ev)
        error(msg, 0)
    end
    local matches = type(resp.matches) == "table" and resp.matches or array()
    local status = #matches >= 1 and "success" or "empty"
    run:patch({ retrieval = {
        totalRequests = rs.totalRequests + 1, totalDurationMs = rs.totalDurationMs + dur,
        totalSuccesses = rs.totalSuccesses + (status == "success" and 1 or 0),
        totalEmpties = rs.totalEmpties + (status == "empty" and 1 or 0) } })
    ev.status, ev.matchesCount = status, #matches
    run:retrieval_event(ev)
    return resp
end

function Ctx:ingest_knowledge(doc)
    local run = self._run
    local call = run.cb.ingest_knowledge
    if not call then
        error("ingestKnowledge runtime support is not available", 0)
    end
    local params = shallow(doc or {})
    params.executionId = run.execution_id
    params.workflowId = run.workflow_id
    params.userId = run.user_id
    params.nodeId = self.node_id
    params.nodeType = self.node_type
    if params.scopeType == "workflow" and params.workflowIdScope == nil then
        params.workflowIdScope = run.workflow_id
    elseif params.scopeType == "execution" and params.executionIdScope == nil then
        params.executionIdScope = run.execution_id
    end
    return call(params)
end

node_logger = function(base, node_id, node_type)
    local function wrap(level)
        return function(msg, fields)
            local f = {}
            if type(fields) == "table" then
                for k, v in pairs(fields) do
                    f[k] = v
                end
            end
            f.nodeId, f.nodeType = node_id, node_type
            base[level](msg, f)
        end
    end
    return { debug = wrap("debug"), info = wrap("info"), warn = wrap("warn"), error = wrap("error") }
end

function Run:make_ctx(id, ntype, input_meta)
    return setmetatable({
        _run = self, execution_id = self.execution_id, workflow_id = self.workflow_id,
        user_id = self.user_id, correlation_id = self.correlation_id, node_id = id,
        node_type = ntype, input_metadata = input_meta, sandbox_limits = self.engine.limits.sandbox,
        http = self.http, settings = self.settings,
    }, Ctx)
end

-- Parent resolution: returns merged parent data, or nil when the node must be skipped.
function Run:resolve_parents(id)
    local pedges = self.parents[id]
    if #pedges == 0 then
        return {}
    end
    local merged, any = {}, false
    for i = 1, #pedges do
        local e = pedges[i]
        local out = self.outputs[e.source]
        if out ~= nil and edge_matches(e.condition, out) then
            any = true
            for k, v in next, out do
                merged[k] = v
            end
        end
    end
    if not any then
        return nil
    end
    return merged
end

-- Runs one node. Returns the step, plus "failed"/"completed"/"skipped".
function Run:exec_node(id)
    local node = self.by_id[id]
    local ntype = node.type
    local config = is_record(node.config) and node.config or {}
    local t0 = monotonic()
    self.cur_id, self.cur_type = id, ntype
    self:patch({ runtime = { activeNodeId = id } })
    if self.cb.on_step_start then
        self.cb.on_step_start(id, ntype) -- an error aborts the run
    end
    local rt = { attempts = nil, input = {} }
    local ok, res, status = pcall(self.node_body, self, id, node, ntype, config, t0, rt)
    if ok then
        return res, status
    end
    -- node failure (§4.4 step 4)
    local msg = sanitize(res)
    local c = self.state.control
    self:patch({ control = { terminate = true, retryCount = (c.retryCount or 0) + 1 } })
    local output = null
    local records = rt.attempts
    local status = outcome_status(false, records or {})
    local ts = now_iso()
    self:patch({ memory = {
        ["retry.outcome." .. id] = { status = status, attemptCount = records and #records or 0,
                                     error = msg, updatedAt = ts },
        ["retry.lastOutcome"] = { nodeId = id, status = status,
                                  attemptCount = records and #records or 0, error = msg,
                                  updatedAt = ts },
    } })
    if records and #records > 0 then
        output = { _attempts = records, _attemptCount = #records,
                   _retryOutcome = { status = status, attemptCount = #records, error = msg } }
    end
    self.status = "failed"
    self.error_message = ('Node "%s" (%s) failed: %s'):format(id, ntype, msg)
    self.log.error("Node execution failed", { nodeId = id, nodeType = ntype, error = msg,
                                              durationMs = floor(monotonic() - t0) })
    return { nodeId = id, nodeType = ntype, status = "failed", input = rt.input, output = output,
             durationMs = floor(monotonic() - t0), error = msg }, "failed"
end

local function node_error(msg)
    error({ message = msg }, 0)
end

function Run:node_body(id, node, ntype, config, t0, rt)
    local reg = self.engine.registry
    local def = reg:get(ntype)
    if not def then
        node_error(('Unknown node type "%s". Available types: %s'):format(ntype,
            concat(reg:types(), ", ")))
    end
    if not self.prevalidated then
        local errs = reg:validate_config(def, node.config)
        if #errs > 0 then
            node_error(('Node "%s" (%s) validation failed: %s'):format(id, ntype, concat(errs, "; ")))
        end
    end
    local parents = self:resolve_parents(id)
    if parents == nil then
        self.log.debug("Node skipped due to unsatisfied branch conditions",
            { nodeId = id, nodeType = ntype })
        return { nodeId = id, nodeType = ntype, status = "skipped", input = {}, output = null,
                 durationMs = floor(monotonic() - t0),
                 error = "No parent branch satisfied edge conditions" }, "skipped"
    end
    local data = {}
    for k, v in next, self.payload do
        data[k] = v
    end
    for k, v in next, parents do
        data[k] = v
    end
    local retrieval_meta
    local rcfg = config.retrieval
    if rcfg ~= nil then
        local r = retrieval.parse(rcfg)
        if r then
            local payload = retrieval.run(self:retrieval_env(id, ntype), r, data)
            data[r.injectAs] = payload
            local ms = array()
            for i, m in ipairs(payload.matches) do
                ms[i] = { chunkId = m.chunkId, score = m.score, corpusId = m.corpusId,
                          documentId = m.documentId }
            end
            self:patch({ knowledge = { ["retrieval." .. id] = {
                query = payload.query, topK = payload.topK, matches = ms,
                orchestration = payload.orchestration, capturedAt = now_iso() } } })
            retrieval_meta = { query = payload.query, topK = payload.topK,
                               matchesCount = #payload.matches }
        end
    end
    local input_meta = { nodeConfig = config, executionId = self.execution_id,
                         workflowId = self.workflow_id, retrieval = retrieval_meta }
    local step_input = shallow(data)
    rt.input = step_input
    local cfg = reg:apply_defaults(def, config)
    local ctx = self:make_ctx(id, ntype, input_meta)
    local policy = retry_policy(config)
    local records = {}
    rt.attempts = records
    local attempt = 1
    local out_data
    local execute = def.execute
    while attempt <= policy.maxAttempts do
        local ta = monotonic()
        local ok, err, delay = pcall(function()
            local d, meta = execute(ctx, data, cfg)
            if d == nil then
                if meta ~= nil then
                    node_error(util.error_text(meta))
                end
                d = {}
            elseif type(d) ~= "table" then
                node_error(("node returned a %s instead of an output table"):format(type(d)))
            end
            if type(meta) == "table" and is_record(meta.contextPatch) then
                local cp = meta.contextPatch
                local p, any = {}, false
                for _, sec in ipairs(PATCH_SECTIONS) do
                    if is_record(cp[sec]) then
                        p[sec] = cp[sec]
                        any = true
                    end
                end
                if any then
                    self:patch(p)
                end
            end
            local dir = retry_directive(meta)
            if dir and dir.requested and policy.enabled and policy.retryOnDirective then
                local reason = dir.reason or "Node requested retry"
                if attempt < policy.maxAttempts then
                    local c = self.state.control
                    local cp = { retryCount = (c.retryCount or 0) + 1 }
                    if policy.incrementLoopOnRetry then
                        cp.loopCount = (c.loopCount or 0) + 1
                    end
                    self:patch({ control = cp })
                    records[#records + 1] = { attempt = attempt, status = "retry",
                                              durationMs = floor(monotonic() - ta),
                                              reason = reason }
                    self.log.warn("Node execution requested retry",
                        { nodeId = id, nodeType = ntype, attempt = attempt, reason = reason })
                    local v = control_violation(self.state.control)
                    if v then
                        node_error(v)
                    end
                    return "retry", dir.delayMs or policy.delayMs
                elseif policy.failOnMaxAttempts then
                    node_error(("Node retry attempts exhausted (%d/%d): %s"):format(attempt,
                        policy.maxAttempts, reason))
                end
            end
            records[#records + 1] = { attempt = attempt, status = "completed",
                                      durationMs = floor(monotonic() - ta), reason = null }
            out_data = d
            return "done"
        end)
        if ok and err == "done" then
            break
        end
        if not ok then
            local msg = sanitize(err)
            records[#records + 1] = { attempt = attempt, status = "failed",
                                      durationMs = floor(monotonic() - ta), reason = msg }
            local is_violation = type(err) == "table" and msg:find("^Execution %a+ limit exceeded")
            if policy.enabled and policy.retryOnError and attempt < policy.maxAttempts
                and not is_violation then
                local c = self.state.control
                self:patch({ control = { retryCount = (c.retryCount or 0) + 1 } })
                self.log.warn("Node execution failed; retrying",
                    { nodeId = id, nodeType = ntype, attempt = attempt, error = msg })
                local v = control_violation(self.state.control)
                if v then
                    node_error(v)
                end
                self.engine.sleep(policy.delayMs)
            else
                node_error(msg)
            end
        else
            self.engine.sleep(delay)
        end
        attempt = attempt + 1
    end
    if out_data == nil then
        node_error("Node retry attempts exhausted")
    end
    local status = outcome_status(true, records)
    local ts = now_iso()
    self:patch({ memory = {
        ["retry.outcome." .. id] = { status = status, attemptCount = #records, updatedAt = ts },
        ["retry.lastOutcome"] = { nodeId = id, status = status, attemptCount = #records,
                                  updatedAt = ts },
    } })
    self.outputs[id] = out_data
    local output = shallow(out_data)
    output._attempts = records
    output._attemptCount = #records
    output._retryOutcome = { status = status, attemptCount = #records }
    local dur = floor(monotonic() - t0)
    self.log.debug("Node executed successfully", { nodeId = id, nodeType = ntype,
                                                  durationMs = dur })
    return { nodeId = id, nodeType = ntype, status = "completed", input = step_input,
             output = output, durationMs = dur, error = null }, "completed"
end

function Run:retrieval_env(id, ntype)
    local run = self
    return {
        ids = { executionId = run.execution_id, workflowId = run.workflow_id,
                userId = run.user_id, nodeId = id, nodeType = ntype },
        counters = function()
            return run.state.retrieval
        end,
        update_counters = function(p)
            run:patch({ retrieval = p })
        end,
        emit = function(ev)
            run:retrieval_event(ev)
        end,
        call = function(params)
            local f = run.cb.retrieve_knowledge
            if not f then
                error("retrieveKnowledge runtime support is not available", 0)
            end
            return f(params)
        end,
        sleep = run.engine.sleep,
        clock = monotonic,
        memory = function(k)
            return run.state.memory[k]
        end,
    }
end

function Run:main()
    local wf = self.workflow
    local nodes, edges = workflow_lists(wf)
    self.log.debug("Workflow execution started", { executionId = self.execution_id,
                                                  nodeCount = #nodes, edgeCount = #edges })
    local ok, problems, a, dag_only = self.engine:validate(wf)
    if not ok then
        local msg
        if dag_only then
            msg = "Invalid workflow DAG: " .. concat(problems, "; ")
        else
            msg = "Invalid workflow: " .. concat(problems, "; ")
        end
        error({ message = msg, validation = problems }, 0)
    end
    self.prevalidated = true
    self.order, self.by_id, self.parents = a.order, a.by_id, a.parents
    self.log.debug("DAG validated", { executionOrder = a.order })
    local waves = graph.waves(a.order, a.parents)
    local plan = array()
    for i, w in ipairs(waves) do
        plan[i] = { index = i, nodes = array(shallow(w)), parallelCandidate = #w > 1 }
    end
    self:patch({ knowledge = { ["scheduler.waves"] = plan } })
    local pos = 0
    for wi, w in ipairs(waves) do
        self:patch({ memory = { ["scheduler.currentWave"] = { index = wi, total = #waves,
                                                             nodes = array(shallow(w)) } } })
        for _, id in ipairs(w) do
            pos = pos + 1
            local step, status = self:exec_node(id)
            self:step_complete(step)
            self:patch({ runtime = { activeNodeId = null, lastCompletedNodeId = id } })
            self:emit_snapshot("step", id, step.nodeType)
            if status == "completed" then
                local v = control_violation(self.state.control)
                if v then
                    self.status = "failed"
                    self.error_message = v
                    self:patch({ control = { terminate = true } })
                    self:patch({ memory = { ["execution.outcome"] = {
                        status = "terminated_by_control", reason = v, updatedAt = now_iso() } } })
                    self.log.warn("Execution halted due to control limit violation",
                        { reason = v })
                    self:append_skips(pos + 1, "Skipped due to execution control limits")
                    return
                elseif self.state.control.terminate == true then
                    local reason = non_empty_string(self.state.memory["control.terminateReason"])
                    -- the original keeps the untrimmed text when it is non-blank
                    if reason then
                        reason = self.state.memory["control.terminateReason"]
                    end
                    reason = reason or "Execution control requested termination"
                    self:patch({ memory = { ["execution.outcome"] = {
                        status = "terminated_by_control", reason = reason,
                        updatedAt = now_iso() } } })
                    self.log.info("Execution terminated by control state", { reason = reason })
                    self:append_skips(pos + 1, "Skipped due to execution termination request")
                    return
                end
            elseif status == "failed" then
                self:append_skips(pos + 1, "Skipped due to previous node failure")
                return
            end
        end
    end
end

-- Runs a workflow. opts: trigger_payload, execution_id, workflow_id, user_id, initial_context,
-- runtime (callbacks), settings (passed to nodes as ctx.settings, e.g. the HTTP allow-list).
function Engine:run(wf, opts)
    opts = opts or {}
    local t0 = monotonic()
    local payload = opts.trigger_payload
    if not is_record(payload) then
        payload = {}
    end
    local run = setmetatable({
        engine = self, workflow = wf, payload = payload,
        execution_id = opts.execution_id or uuid(),
        workflow_id = opts.workflow_id or (type(wf) == "table" and type(wf.id) == "string" and wf.id)
            or "local",
        user_id = opts.user_id or "local",
        correlation_id = uuid(),
        cb = opts.runtime or {},
        hooks = self.hooks,
        settings = opts.settings or {},
        log = self.log,
        steps = {}, outputs = {}, status = "completed", error_message = null,
        order = {}, by_id = {}, parents = {},
    }, Run)
    run.state = new_context(opts.initial_context, self.limits.retrieval or {})
    local ok, err = pcall(function()
        if self.hooks and self.hooks.on_execution_start then
            local fail = self.hooks.on_execution_start({ executionId = run.execution_id,
                workflowId = run.workflow_id, workflow = wf, triggerPayload = payload })
            if fail then
                error({ message = fail }, 0)
            end
        end
        run:emit_snapshot("init", nil, nil)
        return run:main()
    end)
    if not ok then
        local msg = sanitize(err)
        -- a cancel raised by on_step_start ({canceled = true, message}) ends the run `canceled`
        -- (decisions.md §3); anything else fails it
        local canceled = type(err) == "table" and rawget(err, "canceled") == true
        run.status = canceled and "canceled" or "failed"
        run.error_message = msg
        run.validation = type(err) == "table" and rawget(err, "validation") or nil
        run:patch({ control = { terminate = true }, runtime = { activeNodeId = null } })
        self.log.error("Workflow execution failed", { executionId = run.execution_id,
                                                      error = msg })
    end
    local total = floor(monotonic() - t0)
    local lc = run.state.runtime.lastCompletedNodeId
    local sok, serr = pcall(run.emit_snapshot, run, run.status == "completed" and "final" or "error",
        lc ~= null and lc or nil, nil)
    if not sok then
        run.status = "failed"
        run.error_message = sanitize(serr)
    end
    local nc, nf, ns = 0, 0, 0
    for _, s in ipairs(run.steps) do
        if s.status == "completed" then
            nc = nc + 1
        elseif s.status == "failed" then
            nf = nf + 1
        else
            ns = ns + 1
        end
    end
    self.log.debug("Workflow execution finished", { executionId = run.execution_id,
        status = run.status, totalDurationMs = total, stepsCompleted = nc, stepsFailed = nf,
        stepsSkipped = ns })
    local result = {
        executionId = run.execution_id, workflowId = run.workflow_id, status = run.status,
        steps = array(run.steps), totalDurationMs = total, errorMessage = run.error_message,
        context = run.state, outputs = run.outputs, validation = run.validation,
    }
    if self.hooks and self.hooks.on_execution_finish then
        local fail = self.hooks.on_execution_finish({ executionId = run.execution_id,
                                                      workflowId = run.workflow_id }, result)
        if fail then
            result.status = "failed"
            result.errorMessage = sanitize(fail)
        end
    end
    return result
end

engine.Engine = Engine
local _ = { select, tostring }

return engine
