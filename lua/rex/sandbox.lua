-- rex.sandbox: runs Lua that arrives inside a workflow (code node bodies, transformer
-- expressions). Untrusted code gets:
--  * an environment of allow-listed globals only, built fresh for every run (library tables are
--    copies, so changing `string.rep` or `math` affects nothing outside the run); no io, os (but
--    os.time/os.clock), ffi, debug, jit, require, package, load of bytecode, string.dump,
--    setfenv/getfenv, collectgarbage, newproxy, dofile/loadfile;
--  * while it runs, the shared string metatable's __index points at the run's safe string copy
--    (so ("x"):rep(n) hits the size-checked wrapper), restored on every exit path;
--  * getmetatable that never returns shared metatables (strings, the JSON array mark);
--  * an instruction budget enforced by a count hook; chunks are compiled with the JIT off
--    (jit.off(fn, true)) because count hooks do not fire in compiled traces;
--  * a memory ceiling (collectgarbage("count") checked from the hook; the state allocator's own
--    ceiling is the backstop) and a wall-clock limit (checked from the hook);
--  * size limits on the C functions the hook cannot interrupt (string.rep, table.concat,
--    string.format widths are bounded by C, the pattern functions by subject length against
--    pattern complexity);
--  * values crossing the boundary are deep-copied without metamethods, both ways, so nothing the
--    engine holds can be poisoned and nothing sandbox-made runs later outside the limits.
local rex = require("rex")
local util = require("rex.util")

local json = rex.json
local null = rex.null
local array_mt = json.array_mt
local type, next, pairs, ipairs, select, error, pcall, xpcall = type, next, pairs, ipairs, select,
    error, pcall, xpcall
local rawget, rawset, rawequal, setmetatable, getmetatable = rawget, rawset, rawequal, setmetatable,
    getmetatable
local tostring, tonumber, unpack = tostring, tonumber, unpack
local load, loadstring = load, loadstring
local floor, huge = math.floor, math.huge
local sethook, gethook = debug.sethook, debug.gethook
local getmetatable_raw = debug.getmetatable
local monotonic = rex.monotonic_ms
local gcinfo = collectgarbage
local sbyte, ssub, sfind = string.byte, string.sub, string.find
local jit_off = jit and jit.off
local memc = require("rex.native").load("rex.sandbox_c")

local sandbox = {}

-- true when the allocation ceiling (rex.sandbox_c) is available
sandbox.has_memory_ceiling = memc ~= nil

local defaults = {
    instructions = 50000000, -- VM instructions per run
    memory_bytes = 64 * 1024 * 1024, -- growth of the Lua heap during a run
    timeout_ms = 10000, -- wall clock per run
    max_string = 16 * 1024 * 1024, -- largest string string.rep / table.concat may build
    pattern_budget = 1e9, -- estimated backtracking steps a pattern call may take
    max_depth = 100, -- nesting of values copied across the boundary
}
sandbox.defaults = defaults

local HOOK_EVERY = 1000

local FORBIDDEN = {
    io = true, ffi = true, debug = true, jit = true, require = true,
    package = true, getfenv = true, setfenv = true, dofile = true, loadfile = true,
    collectgarbage = true, newproxy = true, module = true, gcinfo = true,
}

local string_mt = getmetatable_raw("")
local real_string = string

---------------------------------------------------------------------------------------------------
-- The current run (runs do not nest: a sandboxed chunk cannot reach the sandbox).

local current -- { deadline, budget_left, mem_base_kb, mem_limit_kb, killed = msg, limits }

local function kill(msg)
    current.killed = msg
    error(msg, 0)
end

local function hook()
    local run = current
    if not run then
        return
    end
    if run.killed then
        error(run.killed, 0)
    end
    run.left = run.left - HOOK_EVERY
    if run.left <= 0 then
        kill(("instruction limit exceeded (%d instructions)"):format(run.limits.instructions))
    end
    if monotonic() > run.deadline then
        kill(("time limit exceeded (%d ms)"):format(run.limits.timeout_ms))
    end
    if gcinfo("count") - run.mem_base_kb > run.mem_limit_kb then
        gcinfo("collect")
        if gcinfo("count") - run.mem_base_kb > run.mem_limit_kb then
            kill(("memory limit exceeded (%d MB)"):format(floor(run.limits.memory_bytes / 1048576)))
        end
    end
end

local function check_alive()
    if current and current.killed then
        error(current.killed, 0)
    end
end

---------------------------------------------------------------------------------------------------
-- Wrappers of C functions the hook cannot interrupt.

local function too_big(what, n)
    error(("%s result too large (%d bytes; sandbox limit %d)"):format(what, n,
        current and current.limits.max_string or defaults.max_string), 0)
end

local function safe_rep(s, n, sep)
    check_alive()
    if type(s) == "number" then
        s = tostring(s)
    end
    if type(s) ~= "string" then
        error("bad argument #1 to 'rep' (string expected)", 2)
    end
    n = tonumber(n)
    if not n then
        error("bad argument #2 to 'rep' (number expected)", 2)
    end
    n = floor(n)
    if n <= 0 then
        return ""
    end
    local seplen = type(sep) == "string" and #sep or (sep and #tostring(sep) or 0)
    local total = n * #s + (n - 1) * seplen
    if total > current.limits.max_string then
        too_big("string.rep", total)
    end
    return real_string.rep(s, n, sep)
end

-- Number of quantifiers in a Lua pattern that can backtrack (outside sets, not escaped),
-- and whether it is anchored.
local function pattern_cost_shape(p)
    local q, i, n = 0, 1, #p
    local anchored = ssub(p, 1, 1) == "^"
    if anchored then
        i = 2
    end
    while i <= n do
        local c = ssub(p, i, i)
        if c == "%" then
            i = i + 2
        elseif c == "[" then
            i = i + 1
            if ssub(p, i, i) == "^" then
                i = i + 1
            end
            if ssub(p, i, i) == "]" then
                i = i + 1
            end
            while i <= n and ssub(p, i, i) ~= "]" do
                if ssub(p, i, i) == "%" then
                    i = i + 1
                end
                i = i + 1
            end
            i = i + 1
        else
            if (c == "*" or c == "+" or c == "-") and i > 1 then
                q = q + 1
            end
            i = i + 1
        end
    end
    return q, anchored
end

local function check_pattern(fname, s, p, plain)
    check_alive()
    if plain or type(s) ~= "string" or type(p) ~= "string" then
        return
    end
    if #p > 4096 then
        error(("%s: pattern too long (%d bytes; sandbox limit 4096)"):format(fname, #p), 3)
    end
    local q, anchored = pattern_cost_shape(p)
    local e = q + (anchored and 0 or 1)
    if e <= 1 then
        return
    end
    local cost = (#s + 1) ^ e
    if cost > current.limits.pattern_budget then
        error(("%s: pattern with %d repetitions is too costly for a %d-byte subject (sandbox limit)")
            :format(fname, q, #s), 3)
    end
end

local function safe_find(s, p, init, plain)
    check_pattern("string.find", s, p, plain)
    return real_string.find(s, p, init, plain)
end

local function safe_match(s, p, init)
    check_pattern("string.match", s, p)
    return real_string.match(s, p, init)
end

local function safe_gmatch(s, p)
    check_pattern("string.gmatch", s, p)
    return real_string.gmatch(s, p)
end

local function safe_gsub(s, p, repl, n)
    check_pattern("string.gsub", s, p)
    if type(repl) == "string" and type(s) == "string" and #repl > 0 then
        -- worst case every position is replaced by repl
        local worst = (#s + 1) * #repl + #s
        if worst > current.limits.max_string and sfind(p, "^%^") == nil then
            -- only refuse when the bound really could be reached: count matches first
            local count = select(2, real_string.gsub(s, p, ""))
            local need = #s + count * #repl
            if need > current.limits.max_string then
                too_big("string.gsub", need)
            end
        end
    end
    return real_string.gsub(s, p, repl, n)
end

local function safe_format(fmt, ...)
    check_alive()
    return real_string.format(fmt, ...)
end

local function safe_concat(t, sep, i, j)
    check_alive()
    if type(t) ~= "table" then
        error("bad argument #1 to 'concat' (table expected)", 2)
    end
    i = tonumber(i) or 1
    j = tonumber(j) or #t
    if j - i > 10000000 then
        error("table.concat range too large for the sandbox", 0)
    end
    local total, seplen = 0, type(sep) == "string" and #sep or 0
    for k = i, j do
        local v = rawget(t, k)
        if type(v) == "string" then
            total = total + #v + seplen
        elseif type(v) == "number" then
            total = total + 24 + seplen
        end
        if total > current.limits.max_string then
            too_big("table.concat", total)
        end
    end
    return table.concat(t, sep, i, j)
end

local function copy_lib(lib, overrides)
    local out = {}
    for k, v in pairs(lib) do
        out[k] = v
    end
    for k, v in pairs(overrides or {}) do
        out[k] = v
    end
    return out
end

---------------------------------------------------------------------------------------------------
-- Values across the boundary: deep copies that ignore metatables (no __index/__pairs runs).

local function copy_in(v, depth)
    if type(v) ~= "table" then
        return v
    end
    if depth > defaults.max_depth then
        error("input nested too deeply for the sandbox", 0)
    end
    local out = {}
    for k, x in next, v do
        out[k] = copy_in(x, depth + 1)
    end
    if rawequal(getmetatable_raw(v), array_mt) then
        setmetatable(out, array_mt)
    end
    return out
end

-- Copy a sandbox-produced value out. Functions, coroutines and userdata (other than null) are
-- refused; metatables are dropped (the array mark is re-created for 1..n tables).
local function copy_out(v, depth, seen)
    local t = type(v)
    if t == "string" or t == "boolean" then
        return v
    elseif t == "number" then
        if v ~= v or v == huge or v == -huge then
            return null
        end
        return v
    elseif t == "nil" then
        return nil
    elseif v == null then
        return null
    elseif t ~= "table" then
        error(("cannot return a %s value from sandboxed code"):format(t), 0)
    end
    if depth > defaults.max_depth then
        error("returned value nested too deeply (or cyclic)", 0)
    end
    if seen[v] then
        error("returned value contains a cycle", 0)
    end
    seen[v] = true
    local out = {}
    local n, maxi = 0, 0
    for k, x in next, v do
        local kt = type(k)
        if kt ~= "string" and kt ~= "number" then
            error("returned table has a key of type " .. kt, 0)
        end
        out[k] = copy_out(x, depth + 1, seen)
        n = n + 1
        if kt == "number" and k > maxi then
            maxi = k
        end
    end
    seen[v] = nil
    local mt = getmetatable_raw(v)
    if rawequal(mt, array_mt) or (n > 0 and maxi == n and #out == n) then
        setmetatable(out, array_mt)
    end
    return out
end

sandbox.copy_in = function(v)
    return copy_in(v, 0)
end

---------------------------------------------------------------------------------------------------
-- Environment.

local function safe_getmetatable(v)
    if type(v) ~= "table" then
        return nil
    end
    local mt = getmetatable(v)
    if rawequal(mt, array_mt) then
        return nil
    end
    return mt
end

local function safe_setmetatable(t, mt)
    if type(t) ~= "table" then
        error("bad argument #1 to 'setmetatable' (table expected)", 2)
    end
    if mt ~= nil and type(mt) ~= "table" then
        error("bad argument #2 to 'setmetatable' (nil or table expected)", 2)
    end
    if rawequal(mt, array_mt) then
        mt = nil
    end
    local cur = getmetatable_raw(t)
    if cur ~= nil and not rawequal(cur, array_mt) and rawget(cur, "__metatable") ~= nil then
        error("cannot change a protected metatable", 2)
    end
    return setmetatable(t, mt)
end

local function safe_pcall(f, ...)
    local res = { pcall(f, ...) }
    check_alive()
    return unpack(res, 1, table.maxn(res))
end

local function safe_xpcall(f, handler, ...)
    local args, nargs = { ... }, select("#", ...)
    local res = { xpcall(function()
        return f(unpack(args, 1, nargs))
    end, function(e)
        check_alive()
        return handler(e)
    end) }
    check_alive()
    return unpack(res, 1, table.maxn(res))
end

local function safe_tostring(v)
    return tostring(v)
end

local compile -- forward

local function safe_load(chunk, name, mode, env)
    check_alive()
    if type(chunk) ~= "string" then
        return nil, "load: only source text is accepted in the sandbox"
    end
    if sbyte(chunk, 1) == 27 then
        return nil, "load: binary chunks are not allowed in the sandbox"
    end
    local fn, err = loadstring(chunk, type(name) == "string" and name or "=(load)")
    if not fn then
        return nil, err
    end
    if jit_off then
        jit_off(fn, true)
    end
    setfenv(fn, type(env) == "table" and env or current.env)
    return fn
end
local _ = compile

local function make_env(extra, log)
    local str = copy_lib(real_string, {
        rep = safe_rep, find = safe_find, match = safe_match, gmatch = safe_gmatch,
        gsub = safe_gsub, format = safe_format,
    })
    str.dump = nil
    local tbl = copy_lib(table, { concat = safe_concat })
    local env = {
        assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
        pcall = safe_pcall, xpcall = safe_xpcall, select = select, tonumber = tonumber,
        tostring = safe_tostring, type = type, unpack = unpack, rawequal = rawequal,
        rawget = rawget, rawset = rawset, getmetatable = safe_getmetatable,
        setmetatable = safe_setmetatable, load = safe_load, loadstring = safe_load,
        string = str, table = tbl, math = copy_lib(math, { randomseed = function() end }), bit = bit and copy_lib(bit) or nil,
        coroutine = copy_lib(coroutine, {
            resume = function(co, ...)
                local res = { coroutine.resume(co, ...) }
                check_alive()
                return unpack(res, 1, table.maxn(res))
            end,
            wrap = function(f)
                local co = coroutine.create(f)
                return function(...)
                    local res = { coroutine.resume(co, ...) }
                    check_alive()
                    if not res[1] then
                        error(res[2], 0)
                    end
                    return unpack(res, 2, table.maxn(res))
                end
            end,
        }),
        os = { time = os.time, clock = os.clock },
        json = { encode = json.encode, decode = json.decode, null = null, array = json.array },
        null = null,
        _VERSION = _VERSION,
    }
    local function emit(level, label)
        return function(...)
            local parts = {}
            for i = 1, select("#", ...) do
                local v = select(i, ...)
                parts[i] = type(v) == "string" and v or util.error_text(v)
                if type(v) ~= "string" and type(v) ~= "table" then
                    parts[i] = tostring(v)
                end
            end
            if log then
                log[level](label, { output = parts })
            end
        end
    end
    env.print = emit("info", "Code output")
    env.console = { log = emit("info", "Code output"), info = emit("info", "Code output"),
                    warn = emit("warn", "Code warning"), error = emit("error", "Code error") }
    env._G = env
    for k, v in pairs(extra or {}) do
        env[k] = v
    end
    setmetatable(env, {
        __index = function(_, k)
            if FORBIDDEN[k] then
                error(("'%s' is not available in the sandbox"):format(tostring(k)), 2)
            end
            return nil
        end,
        __metatable = false,
    })
    return env, str
end

---------------------------------------------------------------------------------------------------
-- Compilation (cached by source text: the prototype is reused, the environment is per run).

local cache, cache_n = {}, 0
local CACHE_MAX = 256

local LUA_NOT_JS = "expressions and code are Lua, not JavaScript"

local js_markers = { "=>", "===", "!==", "&&", "||", "const ", "let ", "var ", "function%s*%(.-%)%s*{",
                     "console%.log", "%?%s*[^:]+:", "^%s*%(?%s*{", "//", ";%s*$" }

local function looks_like_js(src)
    for _, m in ipairs(js_markers) do
        if sfind(src, m) then
            return true
        end
    end
    return false
end

-- kind: "expression" (the value of one Lua expression) or "body" (a function body that
-- returns a value). Returns the function or nil and a message.
function sandbox.compile(src, kind, name)
    if type(src) ~= "string" then
        return nil, "source must be a string"
    end
    if sbyte(src, 1) == 27 then
        return nil, "binary chunks are not allowed"
    end
    local key = kind .. "\0" .. src
    local fn = cache[key]
    if fn then
        return fn
    end
    local text = kind == "expression" and ("return " .. src) or src
    local err
    fn, err = loadstring(text, "=" .. (name or kind))
    if not fn then
        local msg = err
        if looks_like_js(src) then
            msg = msg .. " (" .. LUA_NOT_JS .. "; this looks like JavaScript)"
        else
            msg = msg .. " (" .. LUA_NOT_JS .. ")"
        end
        return nil, msg
    end
    if jit_off then
        jit_off(fn, true)
    end
    if cache_n >= CACHE_MAX then
        cache, cache_n = {}, 0
    end
    cache[key] = fn
    cache_n = cache_n + 1
    return fn
end

sandbox.LUA_NOT_JS = LUA_NOT_JS

-- Runs a compiled chunk. opts: env (extra globals, copied in), limits (overrides of defaults),
-- log (a rex.log-like table for print/console). Returns true, value (copied out) or false, message.
function sandbox.run(fn, opts)
    opts = opts or {}
    if current then
        return false, "sandboxed code cannot start another sandbox"
    end
    local limits = {}
    for k, v in pairs(defaults) do
        limits[k] = v
    end
    for k, v in pairs(opts.limits or {}) do
        limits[k] = v
    end
    local extra = {}
    for k, v in pairs(opts.env or {}) do
        extra[k] = copy_in(v, 0)
    end
    local env, str = make_env(extra, opts.log)
    gcinfo("step")
    local run = {
        limits = limits,
        left = limits.instructions,
        deadline = monotonic() + limits.timeout_ms,
        mem_base_kb = gcinfo("count"),
        mem_limit_kb = limits.memory_bytes / 1024,
        env = env,
    }
    setfenv(fn, env)
    local old_hook, old_mask, old_count = gethook()
    local old_index = string_mt.__index
    current = run
    string_mt.__index = str
    sethook(hook, "", HOOK_EVERY)
    if memc then
        memc.enter(limits.memory_bytes)
    end
    local ok, res = pcall(fn)
    if memc then
        memc.leave()
    end
    sethook()
    string_mt.__index = old_index
    current = nil
    if old_hook then
        sethook(old_hook, old_mask, old_count)
    end
    setfenv(fn, {})
    if run.killed then
        ok, res = false, run.killed
    end
    if not ok then
        local msg = util.error_text(res)
        if msg == "not enough memory" then
            msg = ("memory limit exceeded (%d MB)"):format(floor(limits.memory_bytes / 1048576))
        end
        gcinfo("collect")
        return false, msg
    end
    local cok, out = pcall(copy_out, res, 0, {})
    if not cok then
        return false, util.error_text(out)
    end
    return true, out
end

-- Compile and run in one call.
function sandbox.eval(src, kind, opts)
    local fn, err = sandbox.compile(src, kind, opts and opts.name)
    if not fn then
        return false, err
    end
    return sandbox.run(fn, opts)
end

local _2 = { rawset, load, FORBIDDEN }

return sandbox
