-- rex.worker: BullMQ's retry, backoff and retention rules, and the job object handlers see.
local worker = require("rex.worker")
local json = require("rex.json")

local function rnd(v) return function() return v end end

describe("rex.worker policy", function()
    it("maps removeOnComplete/removeOnFail values to BullMQ keepJobs", function()
        assert.equal('{"count":0}', worker.keep_jobs(true))
        assert.equal('{"count":-1}', worker.keep_jobs(false))
        assert.equal('{"count":-1}', worker.keep_jobs(nil))
        assert.equal('{"count":7}', worker.keep_jobs(7))
        local k = json.decode(worker.keep_jobs({ age = 3600, limit = 10 }))
        assert.same({ age = 3600, limit = 10 }, k)
        assert.equal('{"count":-1}', worker.keep_jobs({}))
    end)

    it("computes fixed and exponential backoff, with jitter", function()
        assert.equal(1000, worker.backoff_delay(1000, 1))
        assert.equal(500, worker.backoff_delay({ type = "fixed", delay = 500 }, 3))
        assert.equal(2000, worker.backoff_delay({ type = "exponential", delay = 2000 }, 1))
        assert.equal(4000, worker.backoff_delay({ type = "exponential", delay = 2000 }, 2))
        assert.equal(8000, worker.backoff_delay({ type = "exponential", delay = 2000 }, 3))
        -- jitter j: floor(rand * d * j + d * (1 - j))
        assert.equal(750, worker.backoff_delay({ type = "fixed", delay = 1000, jitter = 0.5 }, 1, rnd(0.5)))
        assert.equal(500, worker.backoff_delay({ type = "fixed", delay = 1000, jitter = 0.5 }, 1, rnd(0)))
        assert.equal(3000, worker.backoff_delay({ type = "exponential", delay = 1000, jitter = 0.5 }, 3,
            rnd(0.5)))
        assert.is_nil(worker.backoff_delay(nil, 1))
        local d, err = worker.backoff_delay({ type = "custom", delay = 1 }, 1)
        assert.is_nil(d)
        assert.matches("unknown backoff strategy", err)
    end)

    it("retries while attempts remain, with the backoff deciding delay or immediate", function()
        local r = worker.failure({ atm = "0" }, { attempts = 3, backoff = 100 }, "boom", "trace")
        assert.equal("delay", r.outcome)
        assert.equal(100, r.delay)
        assert.equal("boom", r.value)
        assert.same({ "trace" }, json.decode(r.stacktrace))
        r = worker.failure({ atm = "1" }, { attempts = 3 }, "boom")
        assert.equal("retry", r.outcome)
        r = worker.failure({ atm = "2" }, { attempts = 3 }, "boom")
        assert.equal("failed", r.outcome)
        assert.equal(3, r.attempts)
        r = worker.failure({ atm = "0" }, { attempts = 3, lifo = true }, "boom")
        assert.is_true(r.lifo)
    end)

    it("never retries unrecoverable errors", function()
        local r = worker.failure({ atm = "0" }, { attempts = 5 }, "no", nil, true)
        assert.equal("failed", r.outcome)
    end)

    it("keeps only the last stackTraceLimit entries", function()
        local prev = json.encode({ "a", "b" })
        local r = worker.failure({ atm = "0", stacktrace = prev }, { stackTraceLimit = 2 }, "m", "c")
        assert.same({ "b", "c" }, json.decode(r.stacktrace))
        r = worker.failure({ atm = "0", stacktrace = prev }, { stackTraceLimit = 0 }, "m", "c")
        assert.equal("[]", r.stacktrace)
    end)

    it("fails unknown backoff types without retrying, saying why", function()
        local r = worker.failure({ atm = "0" }, { attempts = 3, backoff = { type = "mine" } }, "x")
        assert.equal("failed", r.outcome)
        assert.matches("not retried: unknown backoff strategy", r.value)
    end)

    it("strips the position Lua adds to error messages", function()
        assert.equal("boom", worker._bare_message("/jobs/x.lua:12: boom"))
        assert.equal("boom", worker._bare_message('[string "x"]:3: boom'))
        assert.equal("plain", worker._bare_message("plain"))
    end)
end)

describe("rex.worker.process", function()
    local emitted
    setup(function()
        local dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. dir)
        local f = io.open(dir .. "/hello.lua", "w")
        f:write([[
local rex = require("rex")
return { process = function(job)
    job:progress(42)
    job:log("line")
    if job.data.boom then error("boom") end
    if job.data.bad then return { fn = print } end
    return { hi = job.data.who, attempt = job.attempts_made }
end }]])
        f:close()
        emitted = {}
        assert(worker.init({ home = ".", jobs_path = dir, remove_on_complete_json = '{"count":1000}',
            remove_on_fail_json = "true",
            emit = function(kind, id, a, b) emitted[#emitted + 1] = { kind, id, a, b } end }))
    end)

    it("runs the handler and encodes its result", function()
        local r = worker.process({ id = "1", name = "hello", data = '{"who":"x"}', opts = "{}",
            atm = "2" })
        assert.equal("completed", r.outcome)
        assert.same({ hi = "x", attempt = 2 }, json.decode(r.value))
        assert.equal('{"count":1000}', r.keep)
        assert.same({ "progress", "1", "42" }, { emitted[1][1], emitted[1][2], emitted[1][3] })
        assert.same({ "log", "1", "line" }, { emitted[2][1], emitted[2][2], emitted[2][3] })
    end)

    it("turns bad input into failures with clear reasons", function()
        local cases = {
            { { name = "nope", data = "{}" }, "Unknown job name: nope" },
            { { name = "hello", data = "{bad" }, "job data is not valid JSON" },
            { { name = "hello", data = "[1]" }, "must be a JSON object, got an array" },
            { { name = "hello", data = '"s"' }, "must be a JSON object, got string" },
            { { name = "hello", data = '{"bad":true}' }, "cannot be encoded as JSON" },
            { { name = "hello", data = '{"boom":true}' }, "^boom$" },
            { { name = "hello", data = "{}", defa = "job stalled more than allowable limit" },
                "job stalled more than allowable limit" },
        }
        for _, c in ipairs(cases) do
            c[1].id = "9"
            c[1].opts = '{"attempts":3}'
            local r = worker.process(c[1])
            assert.matches(c[2], r.value)
            assert.equal('{"count":0}', r.keep or '{"count":0}')
        end
        -- unknown names and bad data are not retried; a handler error is
        assert.equal("failed", worker.process({ id = "9", name = "nope", opts = '{"attempts":3}' }).outcome)
        assert.equal("retry", worker.process({ id = "9", name = "hello", data = '{"boom":true}',
            opts = '{"attempts":3}' }).outcome)
    end)

    it("treats a job hash without data (an orphan id) as empty data", function()
        local r = worker.process({ id = "7", name = "hello" })
        assert.equal("completed", r.outcome)
    end)
end)

describe("rex.worker handler tables: failed_without_run and idle", function()
    local dir
    local function write(name, text)
        local f = io.open(dir .. "/" .. name, "w")
        f:write(text)
        f:close()
    end
    before_each(function()
        dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. dir)
        _G.__seen = {}
    end)
    after_each(function()
        os.execute("rm -rf " .. dir)
        _G.__seen = nil
    end)

    it("tells the handler of a job failed without running, then fails it for good", function()
        write("settle.lua", [[
return {
    process = function(job) __seen[#__seen + 1] = "process"; return 1 end,
    failed_without_run = function(job, reason)
        __seen[#__seen + 1] = { job.id, job.data.executionId, job.attempts_made, reason }
    end,
    idle = function() __seen[#__seen + 1] = "idle" end,
}]])
        write("plain.lua", "return function(job) return 2 end")
        assert(worker.init({ home = ".", jobs_path = dir }))
        local r = worker.process({ id = "5", name = "settle", data = '{"executionId":"e1"}',
            opts = '{"attempts":3}', atm = "1", defa = "job stalled more than allowable limit" })
        assert.equal("failed", r.outcome)
        assert.equal("job stalled more than allowable limit", r.value)
        assert.same({ { "5", "e1", 1, "job stalled more than allowable limit" } }, _G.__seen)
        -- a plain function handler has nothing to hear; the job fails the same way
        r = worker.process({ id = "6", name = "plain", data = "{}", defa = "x" })
        assert.equal("failed", r.outcome)
        worker.idle()
        assert.equal("idle", _G.__seen[2])
        assert.equal(2, #_G.__seen)
    end)

    it("logs an error of failed_without_run or idle and changes nothing for the job", function()
        write("bad.lua", [[
return {
    process = function(job) return 1 end,
    failed_without_run = function() error("cannot settle") end,
    idle = function() error("idle broke") end,
}]])
        assert(worker.init({ home = ".", jobs_path = dir }))
        local r = worker.process({ id = "5", name = "bad", data = "not json", defa = "gone" })
        assert.equal("failed", r.outcome)
        assert.equal("gone", r.value)
        assert.has_no.errors(function() worker.idle() end)
    end)

    it("refuses a handler table whose failed_without_run or idle is not a function", function()
        write("wrong.lua", "return { process = function() end, idle = 5 }")
        local ok, err = worker.init({ home = ".", jobs_path = dir })
        assert.is_nil(ok)
        assert.matches("the handler's idle must be a function", err)
    end)
end)

describe("rex.worker.scheduler_next", function()
    it("builds the next iteration of an every scheduler", function()
        local args = worker.scheduler_next({ rjk = "s1" },
            { ["repeat"] = { every = 1000, count = 2, immediately = true }, attempts = 1 }, 5000)
        assert.equal("s1", args[1])
        assert.equal("", args[2])
        assert.equal("1000", args[4])
        local o = json.decode(args[3])
        assert.equal(3, o["repeat"].count)
        assert.is_nil(o["repeat"].immediately)
        assert.equal("s1", o.repeatJobKey)
        assert.equal(5000, o.timestamp)
    end)

    it("computes cron slots itself and stops at the limit", function()
        local args = worker.scheduler_next({ rjk = "c" }, { ["repeat"] = { pattern = "0 * * * *" } },
            1795696800123)
        assert.equal(("%d"):format(1795698000000), args[2])
        assert.is_nil(worker.scheduler_next({ rjk = "c" }, { ["repeat"] = { every = 5, limit = 2,
            count = 2 } }, 1))
        assert.is_nil(worker.scheduler_next({}, {}, 1))
    end)
end)
