-- The execute-workflow lifecycle alone, without the queue: runs rex.execution.process N times in
-- one thread against PostgreSQL (bench/e2e's 6-node workflow, full telemetry) and prints the
-- CPU per execution of this process and of PostgreSQL. What the worker's Lua and its two
-- round trips cost, for work on them; bench/e2e/run.sh measures the whole worker.
--
--   rex-worker lua bench/e2e/lifecycle.lua [executions=2000] [jit.p mode, e.g. Fi1] [out file]
--
-- Needs DATABASE_URL (a migrated throwaway database; bench/e2e/lifecycle.sh starts one). The
-- interpreter runs as in the worker (JIT off). With a mode, LuaJIT's sampling profiler (jit.p)
-- writes its report to the out file (default: stdout).
jit.off()
local N = tonumber(arg[1] or 2000)
local prof_mode, prof_out = arg[2], arg[3]
local rex = require("rex")
local store = require("rex.store")
local execution = require("rex.execution")

local db = store.get()
local function random_hex(n)
    local f = assert(io.open("/dev/urandom", "rb"))
    local s = f:read(n):gsub(".", function(c) return ("%02x"):format(c:byte()) end)
    f:close()
    return s
end

local USER = "44444444-4444-4444-8444-444444444444"
db:exec("INSERT INTO users (id, email, name, password_hash) VALUES ($1, 'bench@example.test', "
    .. "'bench', 'x') ON CONFLICT DO NOTHING", { USER })
local workflow_id = "55555555-5555-4555-8555-" .. random_hex(6)
-- bench/e2e's workflow and payload (workflow.json, next to this script)
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local f = assert(io.open(here .. "/workflow.json"))
local wf = rex.json.decode(f:read("*a"))
f:close()
local nodes, edges = rex.json.encode(wf.nodes), rex.json.encode(wf.edges)
db:exec("INSERT INTO workflows (id, user_id, name, nodes, edges) VALUES ($1, $2, 'bench', "
    .. "$3::jsonb, $4::jsonb)", { workflow_id, USER, nodes, edges })
local payload = wf.triggerPayload
local run = random_hex(4)
local ids = {}
for i = 1, N do
    ids[i] = ("%s-0000-4666-8666-%012x"):format(run, i)
end
local id_array = "{" .. table.concat(ids, ",") .. "}"
db:exec("INSERT INTO executions (id, workflow_id, status, trigger_payload) SELECT x::uuid, $1, "
    .. "'pending', $2::jsonb FROM unnest($3::text[]) x", { workflow_id, rex.json.encode(payload),
                                                           id_array })
db:exec("INSERT INTO execution_authorizations (id, execution_id, workflow_id, user_id, expires_at) "
    .. "SELECT x::uuid, x::uuid, $1, $2, now() + interval '1 hour' FROM unnest($3::text[]) x",
    { workflow_id, USER, id_array })

-- PostgreSQL's CPU: the postmaster's children (this backend, WAL writer, ...), in seconds
local function stat(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then
        return nil
    end
    local s = f:read("*a")
    f:close()
    local rest = s:sub(s:find(")", 1, true) + 2)
    local fields = {}
    for w in rest:gmatch("%S+") do
        fields[#fields + 1] = w
    end
    return fields -- [2] ppid, [12] utime, [13] stime (clock ticks of 10 ms)
end
local backend = tonumber(db:exec("SELECT pg_backend_pid() AS pid")[1].pid)
local postmaster = tonumber(stat(backend)[2])
local function pg_cpu()
    local sum = 0
    local p = io.popen("ls /proc")
    for d in p:lines() do
        local f = d:match("^%d+$") and stat(d)
        if f and tonumber(f[2]) == postmaster then
            sum = sum + (tonumber(f[12]) + tonumber(f[13])) / 100
        end
    end
    p:close()
    return sum
end

local function job(i)
    local j = { id = ids[i], name = "execute-workflow", attempts_made = 0,
                opts = { attempts = 3 },
                data = { executionId = ids[i], workflowId = workflow_id, userId = USER,
                         triggerPayload = payload, domainConfig = {},
                         executionAuthorizationId = ids[i] } }
    function j.progress() end
    function j.log() end
    return j
end

if prof_mode then
    require("jit.p").start(prof_mode, prof_out)
end
local pg0, t0 = pg_cpu(), os.clock()
for i = 1, N do
    local ok, err = pcall(execution.process, job(i))
    if not ok then
        error(("execution %d failed: %s"):format(i, type(err) == "table" and err.message
            or tostring(err)), 0)
    end
end
local cpu, pg = os.clock() - t0, pg_cpu() - pg0
if prof_mode then
    require("jit.p").stop()
end
local done = db:exec("SELECT count(*) AS n FROM executions WHERE workflow_id = $1 AND status = "
    .. "'completed'", { workflow_id })[1].n
print(("%d executions (%s completed): CPU per execution %.3f ms in this process, %.3f ms in "
    .. "PostgreSQL"):format(N, done, cpu * 1000 / N, pg * 1000 / N))
