-- execution-control, memory-read and memory-write (rex-behaviour §5.7, §5.8).
local H = require("spec.support.engine_helper")
local null = H.null

describe("execution-control", function()
    it("increments, sets and reports the control state", function()
        local out, res = H.node("execution-control", { action = "increment-retry", value = "2" }, { a = 1 })
        assert.equal(2, res.context.control.retryCount)
        assert.equal(1, out.a)
        assert.equal("increment-retry", out._control.action)
        assert.equal(null, out._control.reason)
        assert.equal(2, out._control.state.retryCount)
        local _, r2 = H.node("execution-control", { action = "set-max-loops", value = 0 }, {})
        assert.equal(1, r2.context.control.maxLoops)
    end)

    it("fails the execution past maxRetries and terminates with a reason", function()
        local _, res = H.node("execution-control", { action = "increment-retry", value = 4 }, {})
        assert.equal("failed", res.status)
        assert.equal("Execution retry limit exceeded (4/3)", res.errorMessage)
        local eng = H.engine()
        local r2 = H.run(eng, H.wf({ { "t", "execution-control", { action = "terminate",
                                                                  reason = "  stop here " } },
                                     { "x", "output" } }, { { "t", "x" } }))
        assert.equal("completed", r2.status)
        assert.equal("skipped", r2.steps[2].status)
        assert.equal("stop here", r2.context.memory["execution.outcome"].reason)
    end)

    it("validates action and value", function()
        assert.matches('^Invalid action "jump"%. Valid: increment%-retry',
            H.problems("execution-control", { action = "jump" })[1])
        assert.same({ "value must be a valid number" },
            H.problems("execution-control", { action = "increment-loop", value = "x" }))
    end)
end)

describe("memory-read / memory-write", function()
    it("reads with defaults and required", function()
        local out = H.node("memory-read", { memoryKey = "k" }, {},
            { initial_context = { memory = { k = 5 } } })
        assert.equal(5, out._memoryValue)
        assert.is_true(out._memoryRead.found)
        local o2 = H.node("memory-read", { memoryKey = "m", defaultValue = null, outputKey = "v" }, {})
        assert.equal(null, o2.v)
        assert.is_true(o2._memoryRead.usedDefault)
        local _, res = H.node("memory-read", { memoryKey = " m ", required = "true" }, {})
        assert.equal('Node "n" (memory-read) failed: Execution memory key "m" was not found',
            res.errorMessage)
        assert.same({ "MemoryReadNode requires 'memoryKey'" }, H.problems("memory-read", {}))
    end)

    it("sets, appends and increments", function()
        local out, res = H.node("memory-write", { memoryKey = "k", valuePath = "a.b" }, { a = { b = 3 } })
        assert.equal(3, res.context.memory.k)
        assert.equal(3, out._memoryValue)
        local o2, r2 = H.node("memory-write", { memoryKey = "k", operation = "append",
                                                valueTemplate = "v={{a}} {{zz}}" }, { a = 1 },
            { initial_context = { memory = { k = "old" } } })
        assert.same({ "old", "v=1 {{zz}}" }, r2.context.memory.k)
        assert.equal("old", o2._memoryWrite.previousValue)
        local _, r3 = H.node("memory-write", { memoryKey = "c", operation = "increment",
                                               incrementBy = "2.5" }, {},
            { initial_context = { memory = { c = "4" } } })
        assert.equal(6.5, r3.context.memory.c)
        local o4 = H.node("memory-write", { memoryKey = "k", value = "x", includeInOutput = false }, {})
        assert.is_nil(o4._memoryValue)
        assert.same({ 'Invalid operation "pop". Valid: set, append, increment' },
            H.problems("memory-write", { memoryKey = "k", operation = "pop" }))
    end)
end)
