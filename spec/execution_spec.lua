-- rex.execution's pure parts: domain config resolution and node-default injection
-- (rex-behaviour.md §2.3), message cleaning (decisions.md §3). The lifecycle itself is tested
-- end to end against PostgreSQL and Redis in tests/interop/execute/.
local execution = require("rex.execution")
local json = require("rex.json")

describe("rex.execution", function()
    describe("resolve_domain_config", function()
        it("merges rows by specificity (stable), then the queued config on top", function()
            local rows = {
                { config = json.encode({ a = { b = 1 }, k = "user+wf" }), user_id = "u", workflow_id = "w" },
                { config = json.encode({ a = { c = 1 }, k = "global", arr = { 1, 2 } }) },
                { config = json.encode({ a = { c = 2 }, k = "wf" }), workflow_id = "w" },
                { config = json.encode({ k = "user" }), user_id = "u" },
                { config = "[1, 2]" }, -- a non-object config counts as {}
            }
            local cfg = execution.resolve_domain_config(rows, { a = { d = 3 }, arr = { 9 } })
            assert.same({ a = { b = 1, c = 2, d = 3 }, k = "user+wf", arr = { 9 } }, cfg)
        end)

        it("null and arrays replace", function()
            local cfg = execution.resolve_domain_config({ { config = '{"x": {"y": 1}, "z": [1]}' } },
                { x = json.null, z = { 2, 3 } })
            assert.equal(json.null, cfg.x)
            assert.same({ 2, 3 }, cfg.z)
        end)
    end)

    describe("apply_domain_config", function()
        local cfg = {
            llm = { defaultProvider = "groq", defaultModel = " m1 ", temperature = "0.5", maxTokens = 99 },
            retrieval = { topK = "7", strategy = "merge" },
            guardrails = { blockPromptInjection = true, blockToxicity = "true" },
        }
        it("fills llm, knowledge-retrieve and guard defaults only where the node has none", function()
            local out = execution.apply_domain_config({
                { id = "a", type = "llm", config = { provider = "", temperature = 0.1 } },
                { id = "b", type = "knowledge-retrieve", config = { strategy = "single" } },
                { id = "c", type = "input-guard" },
                { id = "d", type = "output-guard", config = {} },
            }, cfg)
            assert.same({ provider = "groq", model = "m1", temperature = 0.1, maxTokens = 99 },
                out[1].config)
            assert.same({ topK = 7, strategy = "single" }, out[2].config)
            assert.same({ blockOnPromptInjection = true }, out[3].config)
            assert.same({}, out[4].config) -- "true" is not a JSON boolean
        end)
    end)

    describe("clean_message", function()
        it("masks secrets and cuts to the column length", function()
            local m = execution.clean_message("failed: postgresql://u:hunter2@db/x Bearer abc.def")
            assert.is_nil(m:find("hunter2", 1, true))
            assert.is_nil(m:find("abc.def", 1, true))
            local long = execution.clean_message(string.rep("x", 5000))
            assert.equal(4096, #long)
            assert.equal(1024, #execution.clean_message(string.rep("y", 2000), 1024))
        end)
    end)
end)
