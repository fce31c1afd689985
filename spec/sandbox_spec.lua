-- The sandbox for workflow-supplied Lua: each way out fails the code with a clear error, and the
-- Lua state stays clean for the next run.
local sandbox = require("rex.sandbox")
local H = require("spec.support.engine_helper")

local function body(src, opts)
    return sandbox.eval(src, "body", opts)
end

local function fails(src, pattern, opts)
    local ok, err = body(src, opts)
    assert.is_false(ok, "expected the code to fail: " .. src)
    assert.is_string(err)
    if pattern then
        assert.matches(pattern, err)
    end
    return err
end

local function state_is_clean()
    assert.equal(string, getmetatable("").__index)
    assert.is_nil(debug.gethook())
    assert.equal("function", type(io.open))
    assert.equal("function", type(string.rep))
    assert.equal("function", type(string.dump))
    local ok, v = body("return ('ab'):rep(2) .. string.upper('x')")
    assert.is_true(ok)
    assert.equal("ababX", v)
end

describe("sandbox", function()
    after_each(state_is_clean)

    it("evaluates expressions and bodies with the given globals", function()
        local ok, v = sandbox.eval("{ total = data.a + data.b, tag = 'x' .. #data.list }",
            "expression", { env = { data = { a = 1, b = 2, list = H.json.array({ 1, 2 }) } } })
        assert.is_true(ok)
        assert.same({ total = 3, tag = "x2" }, v)
        local ok2, v2 = body("local t = {} for i = 1, 3 do t[i] = i * i end return t")
        assert.is_true(ok2)
        assert.is_true(H.json.is_array(v2))
        assert.equal("[1,4,9]", H.json.encode(v2))
    end)

    it("offers no io, os (beyond time/clock), ffi, debug, jit, require, package", function()
        fails("return io.open('/etc/passwd')", "'io' is not available in the sandbox")
        fails("return os.execute('true')", "attempt to call field 'execute'")
        fails("return require('ffi')", "'require' is not available")
        fails("return debug.getinfo(1)", "'debug' is not available")
        fails("return jit.on()", "'jit' is not available")
        fails("return package.loaded", "'package' is not available")
        fails("return dofile('/etc/passwd')", "'dofile' is not available")
        fails("return collectgarbage('stop')", "'collectgarbage' is not available")
        fails("return newproxy(true)", "'newproxy' is not available")
        local ok, v = body("return type(os.time())")
        assert.is_true(ok)
        assert.equal("number", v)
    end)

    it("refuses getfenv/setfenv and string.dump", function()
        fails("return getfenv(print)", "'getfenv' is not available")
        fails("setfenv(tostring, {})", "'setfenv' is not available")
        fails("return string.dump(function() end)", "attempt to call field 'dump'")
        fails("return ('').dump(function() end)", "attempt to call field 'dump'")
    end)

    it("refuses bytecode through load", function()
        local ok, v = body("local f, err = load(string.char(27) .. 'LJ\\2') return err")
        assert.is_true(ok)
        assert.matches("binary chunks are not allowed", v)
        local ok2, v2 = body("local f = load('return 1 + 1') return f()")
        assert.is_true(ok2)
        assert.equal(2, v2)
        fails("local f = load('while true do end') f()", "instruction limit exceeded",
            { limits = { instructions = 100000 } })
    end)

    it("cannot poison the shared string metatable or library", function()
        fails("getmetatable('').__index.upper = function() return 'pwned' end",
            "attempt to index a nil value")
        local ok = body("string.upper = function() return 'pwned' end return ('x'):upper()")
        assert.is_true(ok)
        assert.equal("X", ("x"):upper())
        assert.equal("X", string.upper("x"))
        fails("setmetatable('', {})", "table expected")
    end)

    it("cannot reach the JSON array metatable", function()
        local ok, v = body("return getmetatable(json.decode('[1]'))")
        assert.is_true(ok)
        assert.is_nil(v)
        local arr = H.json.decode("[1,2]")
        local ok2 = body("local a = ...", { env = { list = arr } })
        assert.is_true(ok2)
        assert.equal("[1,2]", H.json.encode(arr))
        assert.equal("[]", H.json.encode(H.json.decode("[]")))
    end)

    it("stops infinite loops, also inside pcall and coroutines", function()
        local lim = { limits = { instructions = 200000 } }
        fails("while true do end", "instruction limit exceeded %(200000 instructions%)", lim)
        fails("while true do pcall(function() while true do end end) end",
            "instruction limit exceeded", lim)
        fails("local co = coroutine.create(function() while true do end end) "
            .. "while true do coroutine.resume(co) end", "instruction limit exceeded", lim)
        fails("local f = coroutine.wrap(function() while true do end end) f()",
            "instruction limit exceeded", lim)
        fails("while true do xpcall(function() while true do end end, function(e) return e end) end",
            "instruction limit exceeded", lim)
        fails("local function f() return f() end return f()", "instruction limit exceeded", lim)
    end)

    it("enforces the wall-clock limit", function()
        local t0 = os.clock()
        fails("while true do end", "time limit exceeded %(50 ms%)", { limits = { timeout_ms = 50 } })
        assert.is_true(os.clock() - t0 < 2)
    end)

    it("stops deep recursion", function()
        fails("local function f(n) return 1 + f(n + 1) end return f(1)", "stack overflow")
    end)

    it("bounds string.rep, table.concat and memory", function()
        fails("return ('x'):rep(1e9)", "string.rep result too large")
        fails("return string.rep('ab', 1e8, ',')", "string.rep result too large")
        fails("local t = {} for i = 1, 100 do t[i] = ('x'):rep(1e6) end return table.concat(t)",
            "table.concat result too large", { limits = { max_string = 10e6 } })
        if sandbox.has_memory_ceiling then
            fails("local s = ('x'):rep(1e6) while true do s = s .. s end", "memory limit exceeded",
                { limits = { memory_bytes = 32 * 1024 * 1024 } })
        end
        fails("local t = {} for i = 1, 1e8 do t[i] = {i} end", "memory limit exceeded",
            { limits = { memory_bytes = 16 * 1024 * 1024 } })
    end)

    it("refuses pattern calls too costly for their subject", function()
        fails("return ('a'):rep(200000):find('.-.-.-b')", "too costly")
        local ok, v = body("return (('a b '):rep(1000):gsub('%s+', '_'))")
        assert.is_true(ok)
        assert.equal(4000, #v)
    end)

    it("does not run error-object metamethods outside the sandbox", function()
        local err = fails("error(setmetatable({}, {__tostring = function() while true do end end}))")
        assert.equal("error object (table) without a message", err)
        local err2 = fails("error({ message = 'custom failure' })")
        assert.equal("custom failure", err2)
        local err3 = fails("error(setmetatable({}, {__index = function() while true do end end}))")
        assert.equal("error object (table) without a message", err3)
    end)

    it("refuses returned functions and cycles, drops metatables from results", function()
        fails("return { f = print }", "cannot return a function value")
        fails("local t = {} t.self = t return t", "cycle")
        local ok, v = body("return setmetatable({ a = 1 }, { __index = function() while true do end end })")
        assert.is_true(ok)
        assert.is_nil(getmetatable(v))
        assert.is_nil(v.missing)
    end)

    it("copies inputs in, so the caller's tables are never changed", function()
        local input = { a = { b = 1 } }
        local ok = body("input.a.b = 2 input.z = setmetatable({}, {}) return input",
            { env = { input = input } })
        assert.is_true(ok)
        assert.equal(1, input.a.b)
        assert.is_nil(input.z)
    end)

    it("says that code and expressions are Lua when given JavaScript", function()
        local fn, err = sandbox.compile("const x = input.a; return { y: x };", "body", "code")
        assert.is_nil(fn)
        assert.matches("Lua, not JavaScript", err)
        local fn2, err2 = sandbox.compile("data.items.map(i => i * 2)", "expression")
        assert.is_nil(fn2)
        assert.matches("Lua, not JavaScript", err2)
    end)
end)

describe("code node in the engine", function()
    local eng = H.engine({})

    local function run_code(code, payload, cfg)
        cfg = cfg or {}
        cfg.code = code
        return H.run(eng, H.wf({ { "c", "code", cfg }, { "after", "output" } }, { { "c", "after" } }),
            { payload = payload })
    end

    it("returns tables as output, other values under result", function()
        local res = run_code("return { doubled = input.n * 2 }", { n = 21 })
        assert.equal("completed", res.status)
        assert.equal(42, res.steps[1].output.doubled)
        assert.is_nil(res.steps[1].output.n) -- does not pass input
        local res2 = run_code("return 'hi'", {})
        assert.equal("hi", res2.steps[1].output.result)
    end)

    it("fails the node with a clear message and leaves the state clean", function()
        local res = run_code("while true do end", {}, { timeoutMs = 100 })
        assert.equal("failed", res.status)
        assert.matches('^Node "c" %(code%) failed: Code execution failed: ', res.errorMessage)
        assert.equal("Skipped due to previous node failure", res.steps[2].error)
        state_is_clean()
        local res2 = run_code("return { ok = os.execute == nil and rawget(_G, \"io\") == nil }", {})
        assert.is_true(res2.steps[1].output.ok)
    end)

    it("rejects a JavaScript body at validation", function()
        local ok, problems = eng:validate(H.wf({ { "c", "code", {
            code = "const total = input.items.reduce((a, b) => a + b, 0); return { total };" } } }))
        assert.is_false(ok)
        assert.matches('^Node "c" %(code%) validation failed: Syntax error in code: .*Lua, not JavaScript',
            problems[1])
    end)
end)
