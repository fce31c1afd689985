-- The engine's rules (rex-behaviour §4) and the original's own test scenarios (§8), run in
-- process with in-spec node types.
local H = require("spec.support.engine_helper")
local rex = require("rex")
local json, null = H.json, H.null

local pass = H.pass

local function const(t, data, meta)
    return { type = t, schema = {}, execute = function()
        return rex.merge(data), meta
    end }
end

describe("engine: validation", function()
    local eng = H.engine({ pass })

    it("reports unknown edge sources/targets and self-loops with the original texts", function()
        local wf = H.wf({ { "a" }, { "b" } }, { { "x", "a" }, { "a", "y" }, { "b", "b" } })
        local ok, problems = eng:validate(wf)
        assert.is_false(ok)
        assert.same({
            'Edge "e1" references unknown source node "x"',
            'Edge "e2" references unknown target node "y"',
            'Edge "e3" creates a self-loop on node "b"',
        }, problems)
        local res = H.run(eng, wf)
        assert.equal("failed", res.status)
        assert.equal('Invalid workflow DAG: Edge "e1" references unknown source node "x"; '
            .. 'Edge "e2" references unknown target node "y"; Edge "e3" creates a self-loop on node "b"',
            res.errorMessage)
        assert.equal(0, #res.steps)
    end)

    it("detects cycles", function()
        local res, rec = H.run(eng, H.wf({ { "a" }, { "b" }, { "c" } },
            { { "a", "b" }, { "b", "c" }, { "c", "b" } }))
        assert.equal("failed", res.status)
        assert.equal("Invalid workflow DAG: Workflow contains a cycle. Workflows must be directed "
            .. "acyclic graphs (DAG).", res.errorMessage)
        assert.equal(0, #rec.steps)
        -- snapshots: init and error only
        assert.same({ "init", "error" }, { rec.snapshots[1].reason, rec.snapshots[2].reason })
        assert.is_true(res.context.control.terminate)
    end)

    it("validates every node before any runs and reports all problems at once (decision)",
        function()
            local ran = false
            local side = { type = "side", schema = {}, execute = function(ctx, input)
                ran = true
                return input
            end }
            local e = H.engine({ side })
            local wf = H.wf({ { "a", "side" }, { "b", "nope" }, { "c", "condition", {} },
                               { "d", "log", { level = "loud" } } },
                { { "a", "b" }, { "a", "c", "false" }, { "c", "d" } })
            local res, rec = H.run(e, wf)
            assert.is_false(ran)
            assert.equal(0, #rec.steps)
            assert.equal("failed", res.status)
            assert.matches('^Invalid workflow: Unknown node type "nope"%. Available types: webhook%-trigger, manual%-trigger',
                res.errorMessage)
            assert.matches('Node "c" %(condition%) validation failed: ConditionNode requires a \'field\' path in config',
                res.errorMessage, 1)
            assert.matches('Node "d" %(log%) validation failed: Invalid log level: "loud"%. Valid: info, warn, error, debug',
                res.errorMessage, 1)
            assert.equal(3, #res.validation)
        end)

    it("runs zero nodes as an instantly completed execution", function()
        local res, rec = H.run(eng, { nodes = {}, edges = {} })
        assert.equal("completed", res.status)
        assert.equal(0, #res.steps)
        assert.same({ "init", "final" }, { rec.snapshots[1].reason, rec.snapshots[2].reason })
    end)

    it("keeps the last node of a duplicated id", function()
        local e = H.engine({ pass, const("mark", { mark = 2 }) })
        local wf = H.wf({ { "a", "pass" }, { "a", "mark" } })
        local res = H.run(e, wf)
        assert.equal(1, #res.steps)
        assert.equal("mark", res.steps[1].nodeType)
        assert.equal(2, res.steps[1].output.mark)
    end)
end)

describe("engine: order and waves", function()
    local eng = H.engine({ pass })

    it("runs in FIFO Kahn order with first-appearance roots", function()
        local wf = H.wf({ { "d" }, { "b" }, { "a" }, { "c" }, { "e" } },
            { { "a", "c" }, { "b", "c" }, { "d", "e" }, { "c", "e" } })
        local res = H.run(eng, wf)
        local ids = {}
        for i, s in ipairs(res.steps) do
            ids[i] = s.nodeId
        end
        assert.same({ "d", "b", "a", "c", "e" }, ids)
    end)

    it("captures the wave plan in knowledge (§8 #9)", function()
        local res, rec = H.run(eng, H.wf({ { "n1" }, { "n2" }, { "n3" } },
            { { "n1", "n2" }, { "n1", "n3" } }))
        local waves = res.context.knowledge["scheduler.waves"]
        assert.equal(2, #waves)
        assert.is_true(waves[2].parallelCandidate)
        assert.same({ "n2", "n3" }, { waves[2].nodes[1], waves[2].nodes[2] })
        assert.is_false(waves[1].parallelCandidate)
        assert.same({ index = 2, total = 2, nodes = { "n2", "n3" } },
            json.decode(json.encode(res.context.memory["scheduler.currentWave"])))
        assert.equal(3, #rec.starts)
    end)
end)

describe("engine: data flow and edge conditions", function()
    local e = H.engine({ pass,
        const("cond_true", { _condition = { result = true } }),
        const("cond_false", { _condition = { result = false } }),
        const("eval_pass", { _evaluation = { passed = true } }),
        const("eval_fail", { _evaluation = { passed = false } }),
        const("routed", { _route = " Billing " }),
        const("branch_route", { _branch = { route = "support" } }),
        const("plain_route", { route = "x", result = true }),
        const("a1", { k = "a", a = 1 }),
        const("b1", { k = "b", b = 1 }),
    })

    it("routes true/false edges and skips unmatched nodes (§8 #8)", function()
        local res = H.run(e, H.wf({ { "n1", "cond_true" }, { "n2" }, { "n3" } },
            { { "n1", "n2", "true" }, { "n1", "n3", "false" } }))
        assert.equal("completed", res.status)
        assert.same({ "n1:completed", "n2:completed", "n3:skipped" }, H.statuses(res))
        local s = H.step(res, "n3")
        assert.equal("No parent branch satisfied edge conditions", s.error)
        assert.same({}, s.input)
        assert.equal(null, s.output)
    end)

    it("handles JSON boolean conditions, blank/always/any and non-string conditions", function()
        local res = H.run(e, H.wf({ { "n1", "cond_false" }, { "a" }, { "b" }, { "c" }, { "d" }, { "f" } },
            { { "n1", "a", false }, { "n1", "b", true }, { "n1", "c", " ALWAYS " }, { "n1", "d", 5 },
              { "n1", "f", "" } }))
        assert.same({ "n1:completed", "a:completed", "b:skipped", "c:completed", "d:completed",
                      "f:completed" }, H.statuses(res))
    end)

    it("routes pass/fail edges on _evaluation.passed", function()
        local res = H.run(e, H.wf({ { "p", "eval_pass" }, { "f", "eval_fail" }, { "p_ok" }, { "p_no" },
                                    { "f_ok" }, { "f_no" } },
            { { "p", "p_ok", "pass" }, { "p", "p_no", "fail" }, { "f", "f_ok", "fail" },
              { "f", "f_no", "PASS" } }))
        assert.same({ "p:completed", "f:completed", "p_ok:completed", "p_no:skipped",
                      "f_ok:completed", "f_no:skipped" }, H.statuses(res))
    end)

    it("routes route tokens case-insensitively from _route, _branch.route, route", function()
        local res = H.run(e, H.wf({ { "r", "routed" }, { "s", "branch_route" }, { "t", "plain_route" },
                                    { "r1" }, { "r2" }, { "s1" }, { "t1" }, { "t2" } },
            { { "r", "r1", "billing" }, { "r", "r2", "support" }, { "s", "s1", "Support" },
              { "t", "t1", "X" }, { "t", "t2", "true" } }))
        assert.same({ "r:completed", "s:completed", "t:completed", "r1:completed", "r2:skipped",
                      "s1:completed", "t1:completed", "t2:completed" }, H.statuses(res))
    end)

    it("merges parents in edge order over the trigger payload (later parent wins)", function()
        local res = H.run(e, H.wf({ { "a", "a1" }, { "b", "b1" }, { "j" } },
            { { "b", "j" }, { "a", "j" } }), { payload = { k = "payload", p = true } })
        local s = H.step(res, "j")
        assert.same({ k = "a", a = 1, b = 1, p = true }, s.input)
    end)

    it("propagates skips and runs OR-joins with one live parent", function()
        local res = H.run(e, H.wf({ { "c", "cond_true" }, { "yes" }, { "no" }, { "after_no" },
                                    { "join" } },
            { { "c", "yes", "true" }, { "c", "no", "false" }, { "no", "after_no" },
              { "yes", "join" }, { "after_no", "join" } }))
        assert.same({ "c:completed", "yes:completed", "no:skipped", "after_no:skipped",
                      "join:completed" }, H.statuses(res))
    end)

    it("lets a stale _condition from upstream route later edges (original quirk kept)", function()
        local res = H.run(e, H.wf({ { "c", "cond_false" }, { "p" }, { "x" } },
            { { "c", "p" }, { "p", "x", "true" } }))
        assert.same({ "c:completed", "p:completed", "x:skipped" }, H.statuses(res))
    end)
end)

describe("engine: context, patches and snapshots", function()
    it("bumps the version on every patch and snapshots init/step/final", function()
        local e = H.engine({ pass })
        local res, rec = H.run(e, H.wf({ { "a" }, { "b" } }, { { "a", "b" } }))
        -- waves 1, wave a 1, active 1, outcome 1, runtime 1 = 6; b: wave, active, outcome, runtime
        assert.equal(10, res.context.version)
        local reasons = {}
        for i, s in ipairs(rec.snapshots) do
            reasons[i] = s.reason
        end
        assert.same({ "init", "step", "step", "final" }, reasons)
        assert.equal("b", rec.snapshots[4].nodeId)
        assert.equal(null, rec.snapshots[4].nodeType)
        assert.equal(1, rec.snapshots[1].state.version)
        assert.equal(0, rec.snapshots[1].stepIndex)
        assert.equal(2, rec.snapshots[3].stepIndex)
        assert.equal(null, res.context.runtime.activeNodeId)
        assert.equal("b", res.context.runtime.lastCompletedNodeId)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", res.context.runtime.updatedAt)
        -- snapshots are copies: later patches do not change earlier ones
        assert.is_nil(rec.snapshots[2].state.memory["retry.outcome.b"])
    end)

    it("applies metadata.contextPatch sections and node-context memory writes", function()
        local n = { type = "patcher", schema = {}, execute = function(ctx, input)
            ctx:set_memory("direct", 1)
            return { ok = true }, { contextPatch = { memory = { viaPatch = "x" },
                                                     knowledge = { k = 1 }, nonsense = 5 } }
        end }
        local reader = { type = "reader", schema = {}, execute = function(ctx, input)
            return { direct = ctx:get_memory("direct"), viaPatch = ctx:get_memory("viaPatch"),
                     version = ctx:get_context().version }
        end }
        local res = H.run(H.engine({ n, reader }), H.wf({ { "a", "patcher" }, { "b", "reader" } },
            { { "a", "b" } }))
        local out = H.step(res, "b").output
        assert.equal(1, out.direct)
        assert.equal("x", out.viaPatch)
        assert.equal(1, res.context.knowledge.k)
    end)

    it("accepts initial control and retrieval values as the original does", function()
        local e = H.engine({ pass })
        local res = H.run(e, H.wf({ { "a" } }), { initial_context = {
            control = { maxRetries = 7 }, retrieval = { maxRequests = 0, maxDurationMs = 5000 },
            memory = { seed = 1 } } })
        assert.equal(7, res.context.control.maxRetries)
        assert.equal(64, res.context.retrieval.maxRequests)
        assert.equal(5000, res.context.retrieval.maxDurationMs)
        assert.equal(1, res.context.memory.seed)
    end)
end)

describe("engine: retries and attempt records", function()
    it("retries on directive and succeeds within max attempts (§8 #1)", function()
        local n = { type = "flaky", schema = {}, execute = function(ctx, input)
            local c = (ctx:get_memory("test.count") or 0) + 1
            ctx:set_memory("test.count", c)
            if c == 1 then
                return { c = c }, { retry = { requested = true, reason = "first pass" } }
            end
            return { c = c }
        end }
        local res = H.run(H.engine({ n }), H.wf({ { "n1", "flaky",
            { retryEnabled = true, retryMaxAttempts = 3 } } }))
        assert.equal("completed", res.status)
        local out = res.steps[1].output
        assert.equal(2, out._attemptCount)
        assert.equal("retry", out._attempts[1].status)
        assert.equal("first pass", out._attempts[1].reason)
        assert.equal("completed", out._attempts[2].status)
        assert.equal(null, out._attempts[2].reason)
        assert.equal("retry_succeeded_after_n", res.context.memory["retry.outcome.n1"].status)
        assert.equal(1, res.context.control.retryCount)
        assert.equal(1, res.context.control.loopCount)
        assert.equal(2, out.c)
    end)

    it("fails when retry attempts are exhausted (§8 #2)", function()
        local n = const("always", { v = 1 }, { retry = { requested = true, reason = "Still not good" } })
        local res = H.run(H.engine({ n }), H.wf({ { "n1", "always", { retryEnabled = true,
                                                                     retryMaxAttempts = 2 } } }))
        assert.equal("failed", res.status)
        local s = res.steps[1]
        assert.equal("failed", s.status)
        assert.equal("retry_exhausted", res.context.memory["retry.outcome.n1"].status)
        assert.same({ { attempt = 1, status = "retry", reason = "Still not good" },
                      { attempt = 2, status = "failed",
                        reason = "Node retry attempts exhausted (2/2): Still not good" } },
            { { attempt = s.output._attempts[1].attempt, status = s.output._attempts[1].status,
                reason = s.output._attempts[1].reason },
              { attempt = s.output._attempts[2].attempt, status = s.output._attempts[2].status,
                reason = s.output._attempts[2].reason } })
        assert.equal('Node "n1" (always) failed: Node retry attempts exhausted (2/2): Still not good',
            res.errorMessage)
    end)

    it("keeps memory writes across retry attempts (§8 #3)", function()
        local n = { type = "marker", schema = {}, execute = function(ctx, input)
            if not ctx:get_memory("phase3.marker") then
                ctx:set_memory("phase3.marker", "kept")
                return {}, { retry = true }
            end
            return { marker = ctx:get_memory("phase3.marker") }
        end }
        local res = H.run(H.engine({ n }), H.wf({ { "n1", "marker", { retryPolicy = {
            enabled = "true", maxAttempts = 3 } } } }))
        assert.equal("completed", res.status)
        assert.equal("kept", res.steps[1].output.marker)
        assert.equal(2, res.steps[1].output._attemptCount)
    end)

    it("ignores directives when retries are disabled, and errors retry per retryOnError", function()
        local calls = 0
        local boom = { type = "boom", schema = {}, execute = function()
            calls = calls + 1
            if calls < 3 then
                error("transient " .. calls, 0)
            end
            return { ok = true }
        end }
        local res = H.run(H.engine({ boom }), H.wf({ { "n1", "boom", { retryPolicy = {
            enabled = true, maxAttempts = 5, delayMs = 20 } } } }))
        assert.equal("completed", res.status)
        local a = res.steps[1].output._attempts
        assert.same({ "failed", "failed", "completed" }, { a[1].status, a[2].status, a[3].status })
        assert.equal("transient 1", a[1].reason)
        assert.equal(2, res.context.control.retryCount)
        assert.equal(0, res.context.control.loopCount)

        local d = const("dir", { v = 1 }, { retry = true })
        local r2 = H.run(H.engine({ d }), H.wf({ { "n1", "dir" } }))
        assert.equal("completed", r2.status)
        assert.equal(1, r2.steps[1].output._attemptCount)
        assert.equal("no_retry", r2.steps[1].output._retryOutcome.status)
    end)

    it("parses the retry policy like the original", function()
        local p = require("rex.engine").retry_policy({ retryPolicy = { enabled = "TRUE",
            maxAttempts = 99, delayMs = -5, retryOnError = "false" } })
        assert.same({ enabled = true, maxAttempts = 10, delayMs = 0, retryOnError = false,
                      retryOnDirective = true, failOnMaxAttempts = true,
                      incrementLoopOnRetry = true }, p)
        local q = require("rex.engine").retry_policy({ retryEnabled = true, retryMaxAttempts = "4" })
        assert.equal(3, q.maxAttempts)
        local z = require("rex.engine").retry_policy({})
        assert.same({ false, 1 }, { z.enabled, z.maxAttempts })
    end)

    it("caps retries execution-wide: the 4th retry fails with the limit text", function()
        local calls = 0
        local boom = { type = "boom", schema = {}, execute = function()
            calls = calls + 1
            error("nope", 0)
        end }
        local res = H.run(H.engine({ boom }), H.wf({ { "n1", "boom", { retryPolicy = {
            enabled = true, maxAttempts = 10 } } } }))
        assert.equal("failed", res.status)
        assert.equal('Node "n1" (boom) failed: Execution retry limit exceeded (4/3)', res.errorMessage)
        assert.equal(4, calls)
        assert.equal(5, res.context.control.retryCount) -- the failure adds one
    end)

    it("records retry then failed with the same attempt number on a directive limit violation",
        function()
            local d = const("dir", { v = 1 }, { retry = { reason = "again" } })
            local res = H.run(H.engine({ d }), H.wf({ { "n1", "dir", { retryEnabled = true,
                retryMaxAttempts = 10 } } }), { initial_context = { control = { maxRetries = 1 } } })
            assert.equal("failed", res.status)
            local a = res.steps[1].output._attempts
            assert.equal(3, #a)
            assert.same({ 1, "retry", "again" }, { a[1].attempt, a[1].status, a[1].reason })
            assert.same({ 2, "retry", "again" }, { a[2].attempt, a[2].status, a[2].reason })
            assert.same({ 2, "failed", "Execution retry limit exceeded (2/1)" },
                { a[3].attempt, a[3].status, a[3].reason })
        end)
end)

describe("engine: failures, control limits and termination", function()
    it("fails the execution, skips the rest and has no output for pre-attempt failures", function()
        local bad = { type = "bad", schema = {}, execute = function()
            return nil, "broken input"
        end }
        local res, rec = H.run(H.engine({ pass, bad }), H.wf({ { "a" }, { "b", "bad" }, { "c" }, { "d" } },
            { { "a", "b" }, { "b", "c" } }))
        assert.equal("failed", res.status)
        assert.equal('Node "b" (bad) failed: broken input', res.errorMessage)
        assert.same({ "a:completed", "d:completed", "b:failed", "c:skipped" }, H.statuses(res))
        assert.equal("Skipped due to previous node failure", H.step(res, "c").error)
        assert.equal(0, H.step(res, "c").durationMs)
        assert.same({ "a", "d", "b" }, rec.starts) -- onStepStart not called for appended skips
        assert.equal("failed_without_retry", res.context.memory["retry.outcome.b"].status)
        assert.equal("broken input", res.context.memory["retry.lastOutcome"].error)
        assert.is_true(res.context.control.terminate)
        assert.equal("error", rec.snapshots[#rec.snapshots].reason)
        assert.equal("c", rec.snapshots[#rec.snapshots].nodeId)
    end)

    it("terminates on a control patch, keeps completed and marks the outcome (§8 #4)", function()
        local term = { type = "term", schema = {}, execute = function(ctx, input)
            ctx:set_memory("control.terminateReason", "enough")
            return { t = 1 }, { contextPatch = { control = { terminate = true } } }
        end }
        local res = H.run(H.engine({ pass, term }), H.wf({ { "n1", "term" }, { "n2" } }, { { "n1", "n2" } }))
        assert.equal("completed", res.status)
        assert.same({ "n1:completed", "n2:skipped" }, H.statuses(res))
        assert.equal("Skipped due to execution termination request", res.steps[2].error)
        assert.equal("terminated_by_control", res.context.memory["execution.outcome"].status)
        assert.equal("enough", res.context.memory["execution.outcome"].reason)
    end)

    it("fails on a control-limit violation after a completed step", function()
        local res = H.run(H.engine({ pass }), H.wf({
            { "n1", "execution-control", { action = "increment-loop", value = 21 } }, { "n2" } },
            { { "n1", "n2" } }))
        assert.equal("failed", res.status)
        assert.equal("Execution loop limit exceeded (21/20)", res.errorMessage)
        assert.same({ "n1:completed", "n2:skipped" }, H.statuses(res))
        assert.equal("Skipped due to execution control limits", res.steps[2].error)
        assert.equal("terminated_by_control", res.context.memory["execution.outcome"].status)
    end)

    it("aborts the run when on_step_start throws (no step row, no skips)", function()
        local res = H.run(H.engine({ pass }), H.wf({ { "a" }, { "b" } }, { { "a", "b" } }),
            { runtime = { on_step_start = function(id)
                if id == "b" then
                    error("Execution was stopped", 0)
                end
            end } })
        assert.equal("failed", res.status)
        assert.equal("Execution was stopped", res.errorMessage)
        assert.same({ "a:completed" }, H.statuses(res))
        assert.equal(null, res.context.runtime.activeNodeId)
    end)

    it("survives a throwing on_context_update", function()
        local res = H.run(H.engine({ pass }), H.wf({ { "a" } }),
            { runtime = { on_context_update = function()
                error("db down", 0)
            end } })
        assert.equal("completed", res.status)
    end)

    it("sanitizes error messages (secrets masked)", function()
        local leak = { type = "leak", schema = {}, execute = function()
            error("cannot connect to postgres://user:hunter2@db/x", 0)
        end }
        local res = H.run(H.engine({ leak }), H.wf({ { "a", "leak" } }))
        assert.is_nil(res.errorMessage:find("hunter2", 1, true))
    end)
end)

describe("engine: cancel and node context", function()
    it("ends canceled when on_step_start raises a cancel object", function()
        local res = H.run(H.engine({ pass }), H.wf({ { "a" }, { "b" } }, { { "a", "b" } }),
            { runtime = { on_step_start = function(id)
                if id == "b" then
                    error({ canceled = true, message = "Stopped by user" }, 0)
                end
            end } })
        assert.equal("canceled", res.status)
        assert.equal("Stopped by user", res.errorMessage)
        assert.equal(1, #res.steps)
    end)

    it("gives nodes ids, a logger, memory and context access", function()
        local seen = {}
        local eng = H.engine({ { type = "peek", schema = {}, execute = function(ctx, input, config)
            seen = { ctx.execution_id, ctx.workflow_id, ctx.node_id, ctx.node_type,
                     type(ctx.correlation_id), ctx.input_metadata.nodeConfig.k }
            ctx.log.info("hello", { a = 1 })
            ctx:update_context({ knowledge = { x = 1 } })
            return { v = ctx:get_context().knowledge.x }
        end } })
        local logs = {}
        eng.log = { debug = function() end, warn = function() end, error = function() end,
                    info = function(m, f)
                        logs[#logs + 1] = { m, f.nodeId, f.a }
                    end }
        local res = H.run(eng, H.wf({ { "p", "peek", { k = "cfg" } } }))
        assert.same({ "exec-1", "wf-1", "p", "peek", "string", "cfg" }, seen)
        assert.same({ { "hello", "p", 1 } }, logs)
        assert.equal(1, res.outputs.p.v)
    end)

    it("forwards console output of code nodes to the node logger", function()
        local eng = H.engine()
        local logs = {}
        eng.log = { debug = function() end, error = function() end,
                    warn = function(m, f)
                        logs[#logs + 1] = { m, f.output[1], f.nodeId }
                    end,
                    info = function(m, f)
                        logs[#logs + 1] = { m, f.output and f.output[1], f.nodeId }
                    end }
        H.run(eng, H.wf({ { "c", "code", { code = "console.log('hi', 1) console.warn('careful') return {}" } } }))
        assert.same({ { "Code output", "hi", "c" }, { "Code warning", "careful", "c" } }, logs)
    end)
end)

describe("engine: ids", function()
    it("makes version 4 UUIDs, all different", function()
        local seen = {}
        for _ = 1, 2000 do
            local id = require("rex.engine").uuid()
            assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id)
            assert.is_nil(seen[id])
            seen[id] = true
        end
    end)
end)
