-- Triggers, output, log and storage (rex-behaviour §5.1).
local H = require("spec.support.engine_helper")

describe("manual-trigger / webhook-trigger", function()
    it("pass their input through", function()
        for _, t in ipairs({ "manual-trigger", "webhook-trigger" }) do
            local out = H.node(t, {}, { a = 1, b = { c = 2 } })
            assert.same({ a = 1, b = { c = 2 } }, out)
        end
    end)
end)

describe("schedule-trigger", function()
    it("validates cron and intervalMs with the original messages", function()
        assert.same({ "ScheduleTriggerNode requires either 'cron' expression or 'intervalMs' in config" },
            H.problems("schedule-trigger", {}))
        assert.same({ "Invalid cron expression. Expected 5 or 6 fields (minute hour day month weekday [year])" },
            H.problems("schedule-trigger", { cron = "* * *" }))
        assert.same({ "intervalMs must be a number >= 60000 (1 minute minimum)" },
            H.problems("schedule-trigger", { intervalMs = 1000 }))
        assert.same({}, H.problems("schedule-trigger", { cron = "*/5 * * * *" }))
        assert.same({ x = 1 }, H.node("schedule-trigger", { intervalMs = 60000 }, { x = 1 }))
    end)
end)

describe("output", function()
    it("passes input and adds _output", function()
        local out = H.node("output", {}, { v = 1 })
        assert.equal(1, out.v)
        assert.equal("exec-1", out._output.executionId)
        assert.equal("wf-1", out._output.workflowId)
        assert.matches("Z$", out._output.collectedAt)
    end)
end)

describe("log", function()
    it("logs and replaces its input", function()
        local seen
        local eng = H.engine()
        eng.log = { debug = function() end, warn = function() end, error = function() end,
                    info = function(msg, f)
                        seen = { msg = msg, f = f }
                    end }
        local out = H.node("log", { message = "hello" }, { a = 1 }, { engine = eng })
        assert.same({ "hello", "info", true }, { out.message, out.level, out.logged })
        assert.is_nil(out.a)
        assert.equal("hello", seen.msg)
        assert.equal("n", seen.f.nodeId)
        assert.same({ a = 1 }, seen.f.input)
        local d = H.node("log", {}, {})
        assert.equal("Workflow log entry", d.message)
    end)

    it("refuses unknown levels", function()
        assert.same({ 'Invalid log level: "loud". Valid: info, warn, error, debug' },
            H.problems("log", { level = "loud" }))
    end)
end)

describe("storage", function()
    it("stores the input in memory and replaces its input", function()
        local out, res = H.node("storage", { storageKey = "orders" }, { id = 7 })
        assert.same({ id = 7 }, res.context.memory["storage.orders"])
        assert.same({ id = 7 }, out.payload)
        assert.is_true(out.stored)
        assert.is_true(out.persistedToExecutionContext)
        assert.is_nil(out.id)
    end)

    it("can skip persistence and requires a key", function()
        local out, res = H.node("storage", { storageKey = "k", persistToExecutionContext = "FALSE" }, {})
        assert.is_false(out.persistedToExecutionContext)
        assert.is_nil(res.context.memory["storage.k"])
        assert.same({ "StorageNode requires a 'storageKey' in config" }, H.problems("storage", {}))
    end)
end)
