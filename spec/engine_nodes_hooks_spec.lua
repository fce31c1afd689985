-- The node registry (built-ins, custom nodes from REX_NODES_PATH dirs, schemas), lifecycle hooks
-- from REX_HOOKS_PATH dirs, and the template interpolation variants (rex-behaviour §4.13).
local H = require("spec.support.engine_helper")
local nodes = require("rex.nodes")
local hooks = require("rex.hooks")
local template = require("rex.engine.template")
local engine = require("rex.engine")

local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    assert(os.execute("mkdir -p " .. d) == 0 or true)
    return d
end

local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

describe("node registry", function()
    it("loads every built-in node of the catalogue in the original's order", function()
        local reg = nodes.new({ log = H.quiet_log })
        assert.same({}, reg.problems)
        assert.same(nodes.BUILTIN_ORDER, reg:types())
        for _, t in ipairs(nodes.BUILTIN_ORDER) do
            local def = reg:get(t)
            assert.equal(t, def.type)
            assert.is_table(def.schema)
            assert.is_nil(nodes.check_schema(def.schema))
        end
    end)

    it("documents a node from its schema", function()
        local reg = nodes.new({ log = H.quiet_log })
        local doc = nodes.doc(reg:get("condition"))
        assert.matches("^### condition", doc)
        assert.matches("| `field` | any |  |  | dot path into the input (required) |", doc, 1, true)
    end)

    it("loads custom nodes, checks their schema, replaces a built-in with a warning", function()
        local dir = tmpdir()
        write(dir .. "/word-count.lua", [[
local rex = require("rex")
return {
    type = "word-count",
    version = 1,
    schema = {
        field = { type = "string", required = true, doc = "input field" },
        into = { type = "string", default = "wordCount", doc = "output field" },
        mode = { type = "string", enum = { "words", "chars" } },
    },
    execute = function(ctx, input, config)
        local text = input[config.field]
        if type(text) ~= "string" then
            return nil, ("field %q is not a string"):format(config.field)
        end
        local n = select(2, text:gsub("%S+", ""))
        return rex.merge(input, { [config.into] = n })
    end,
}
]])
        write(dir .. "/output.lua", [[
return { type = "output", validate = function(c) return true end,
         execute = function(ctx, input) return { replaced = true } end }
]])
        write(dir .. "/broken.lua", "return { type = 'x' }")
        write(dir .. "/bad-schema.lua", "return { type = 'y', schema = { a = { type = 'weird' } }, "
            .. "execute = function() end }")
        local warnings = {}
        local log = { debug = function() end, info = function() end, error = function() end,
                      warn = function(msg, f)
                          warnings[#warnings + 1] = msg .. ":" .. tostring(f.type)
                      end }
        local reg = nodes.new({ paths = dir, log = log })
        assert.same({ "Custom node replaces a built-in node type:output" }, warnings)
        assert.equal(2, #reg.problems)
        local eng = engine.new({ registry = reg, log = H.quiet_log })
        local wf = H.wf({ { "w", "word-count", { field = "t" } }, { "o", "output" } }, { { "w", "o" } })
        local res = H.run(eng, wf, { payload = { t = "one two  three" } })
        assert.equal("completed", res.status)
        assert.equal(3, res.outputs.w.wordCount)
        assert.same({ replaced = true }, res.outputs.o)
        local ok, problems = eng:validate(H.wf({ { "w", "word-count", { field = 5, mode = "x" } } }))
        assert.is_false(ok)
        assert.equal('Node "w" (word-count) validation failed: \'field\' must be string; '
            .. "'mode' must be one of: words, chars", problems[1])
        local r2 = H.run(eng, wf, { payload = { t = 5 } })
        assert.equal('Node "w" (word-count) failed: field "t" is not a string', r2.errorMessage)
        os.execute("rm -rf " .. dir)
    end)
end)

describe("lifecycle hooks", function()
    it("calls hooks, logs hook errors without failing, fails only on explicit failure", function()
        local dir = tmpdir()
        write(dir .. "/a.lua", [[
local seen = {}
return {
    seen = seen,
    on_execution_start = function(e) seen[#seen + 1] = "start:" .. e.executionId end,
    on_step_complete = function(step) seen[#seen + 1] = "step:" .. step.nodeId end,
    on_context_update = function(u) error("hook bug") end,
    on_execution_finish = function(e, r) seen[#seen + 1] = "finish:" .. r.status end,
}
]])
        local errors = {}
        local log = { debug = function() end, info = function() end, warn = function() end,
                      error = function(msg)
                          errors[#errors + 1] = msg
                      end }
        local set = hooks.load({ paths = dir, log = log })
        assert.equal(1, set:count())
        local eng = H.engine({ H.pass })
        eng.hooks = set
        local res = H.run(eng, H.wf({ { "a" }, { "b" } }, { { "a", "b" } }))
        assert.equal("completed", res.status)
        local seen = set.entries[1].hooks.seen
        assert.same({ "start:exec-1", "step:a", "step:b", "finish:completed" }, seen)
        assert.equal("Lifecycle hook failed", errors[1])
        -- an explicit failure fails the execution
        local eng2 = H.engine({ H.pass })
        eng2.hooks = hooks.load({ paths = {}, log = log, scripts = { {
            on_step_complete = function(step)
                if step.nodeId == "a" then
                    return false, "audit store refused the step"
                end
            end } } })
        local r2 = H.run(eng2, H.wf({ { "a" }, { "b" } }, { { "a", "b" } }))
        assert.equal("failed", r2.status)
        assert.equal("audit store refused the step", r2.errorMessage)
        assert.equal(1, #r2.steps)
        local set3 = hooks.load({ paths = {}, log = log, scripts = { {
            on_job_failed = function() return { fail = "nope" } end } } })
        assert.equal("nope", set3:call("on_job_failed", {}, "e"))
        os.execute("rm -rf " .. dir)
    end)
end)

describe("template variants", function()
    local data = { s = " hi ", n = 0.1 + 0.2, b = true, o = { k = 1 }, a = H.json.decode('[1,null,"x"]'),
                   z = H.null, big = 1e21 }
    it("engine keeps missing placeholders and uses String()", function()
        assert.equal(" hi |0.30000000000000004|true|[object Object]|1,,x|{{z}}|{{m.x}}|1e+21|3",
            template.engine("{{s}}|{{n}}|{{b}}|{{o}}|{{a}}|{{z}}|{{m.x}}|{{big}}|{{a.length}}", data))
        assert.equal("{{ s }} {{s.}} 1", template.engine("{{ s }} {{s.}} {{a.0}}", data))
    end)
    it("knowledge-retrieve empties missing values and writes JSON", function()
        assert.equal(' hi |{"k":1}|[1,null,"x"]||', template.knowledge_retrieve(
            "{{s}}|{{o}}|{{a}}|{{z}}|{{m}}", data))
    end)
    it("knowledge-ingest also trims strings", function()
        assert.equal("hi|true|", template.knowledge_ingest("{{s}}|{{b}}|{{m}}", data))
    end)
end)
