-- Engine overhead benchmark (not a test). Run:
--   build-engine/rex-worker lua bench/engine/bench.lua [seconds-per-case]
-- Cases: a 20-node chain of pass-through nodes and a 6-node REX-like pipeline
-- (manual-trigger -> data-cleaner -> transformer (Lua) -> json-validator -> condition -> output),
-- each with the JIT on and off, in process, no persistence (no callbacks), plus the chain with a
-- snapshot callback (what persistence adds on the engine side). Prints runs/s and µs per node.
local rex = require("rex")
local engine = require("rex.engine")
local nodes = require("rex.nodes")

local seconds = tonumber(arg and arg[1]) or 1.0
local quiet = { debug = function() end, info = function() end, warn = function() end,
                error = function() end }

local reg = nodes.new({ log = quiet })
reg:register({ type = "pass", schema = {}, execute = function(ctx, input)
    return input
end }, "bench")
local eng = engine.new({ registry = reg, log = quiet })

local function chain(n)
    local ns, es = rex.array(), rex.array()
    for i = 1, n do
        ns[i] = { id = "n" .. i, type = "pass", config = {} }
        if i > 1 then
            es[#es + 1] = { id = "e" .. i, source = "n" .. (i - 1), target = "n" .. i }
        end
    end
    return { nodes = ns, edges = es }
end

local pipeline = rex.json.decode([[{
  "nodes": [
    {"id": "trigger", "type": "manual-trigger", "config": {}},
    {"id": "clean", "type": "data-cleaner", "config": {"operations": ["trim", "mask-pii"]}},
    {"id": "shape", "type": "transformer", "config": {"expression":
      "{ customer = data.cleaned.customer, amount = tonumber(data.cleaned.amount), note = data.cleaned.note, tier = tonumber(data.cleaned.amount) > 100 and 'gold' or 'basic' }"}},
    {"id": "validate", "type": "json-validator", "config": {"requiredFields": ["customer", "amount"],
      "fieldTypes": {"customer": "string", "amount": "number"}}},
    {"id": "gate", "type": "condition", "config": {"field": "amount", "operator": "greater_than", "value": 100}},
    {"id": "out", "type": "output", "config": {}}
  ],
  "edges": [
    {"id": "e1", "source": "trigger", "target": "clean"},
    {"id": "e2", "source": "clean", "target": "shape"},
    {"id": "e3", "source": "shape", "target": "validate"},
    {"id": "e4", "source": "validate", "target": "gate"},
    {"id": "e5", "source": "gate", "target": "out", "condition": "true"}
  ]
}]])
local payload = { customer = "  Alice Example  ", amount = "250",
                  note = " contact alice@example.com or 555-123-4567 " }

local function measure(wf, n_nodes, runtime)
    local opts = { trigger_payload = payload, runtime = runtime, execution_id = "bench",
                   workflow_id = "bench" }
    -- warm up (and check the run is healthy)
    for _ = 1, 200 do
        local r = eng:run(wf, opts)
        assert(r.status == "completed", r.errorMessage)
    end
    collectgarbage()
    local runs = 0
    local t0 = rex.monotonic_ms()
    local deadline = t0 + seconds * 1000
    local now = t0
    while now < deadline do
        for _ = 1, 50 do
            eng:run(wf, opts)
        end
        runs = runs + 50
        now = rex.monotonic_ms()
    end
    local elapsed = (now - t0) / 1000
    return runs / elapsed, elapsed * 1e6 / (runs * n_nodes)
end

local snapshots = { on_context_update = function(u) end, on_step_complete = function(s) end }
local cases = {
    { "20-node pass-through chain", chain(20), 20 },
    { "20-node chain + step/snapshot callbacks", chain(20), 20, snapshots },
    { "6-node REX-like pipeline", pipeline, 6 },
}

print(("rex-worker engine bench (%s, %.1fs per case)"):format(jit and jit.version or "Lua", seconds))
print(("%-42s %-4s %12s %12s"):format("case", "jit", "runs/s", "us/node"))
local results = {}
for _, mode in ipairs({ "on", "off" }) do
    if jit then
        jit.flush()
        if mode == "on" then
            jit.on()
        else
            jit.off()
        end
    end
    for _, c in ipairs(cases) do
        local rps, us = measure(c[2], c[3], c[4])
        results[c[1] .. mode] = us
        print(("%-42s %-4s %12.0f %12.2f"):format(c[1], mode, rps, us))
    end
end
if jit then
    jit.on()
end
for _, c in ipairs(cases) do
    print(("%-42s JIT off/on ratio %.2f"):format(c[1], results[c[1] .. "off"] / results[c[1] .. "on"]))
end
print("target: < 20 us per pass-through node")
