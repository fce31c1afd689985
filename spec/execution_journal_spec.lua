-- rex.execution's pending-final journal (docs/execution.md) against a fake Redis and a fake
-- database: what is recorded, what is applied, what is kept when PostgreSQL fails again. The end
-- to end case (PostgreSQL stopped across every attempt) is tests/interop/execute/
-- pending-final.test.js.
local execution = require("rex.execution")
local worker = require("rex.worker")
local json = require("rex.json")

local ID1 = "11111111-1111-4111-8111-111111111111"
local ID2 = "22222222-2222-4222-8222-222222222222"

local function fake_redis()
    local h = {}
    local calls = {}
    local function redis(cmd, key, a, b)
        calls[#calls + 1] = { cmd, key, a }
        if cmd == "HSET" then
            h[a] = b
            return 1
        elseif cmd == "HGETALL" then
            local out = {}
            for k, v in pairs(h) do
                out[#out + 1] = k
                out[#out + 1] = v
            end
            return out
        elseif cmd == "HDEL" then
            h[a] = nil
            return 1
        end
        error("unexpected " .. cmd)
    end
    return redis, h, calls
end

local function fake_db(fail_after)
    local db = { updates = {} }
    function db.exec(self, sql, params)
        if fail_after and #self.updates >= fail_after then
            error({ message = "server closed the connection", connection = true }, 0)
        end
        self.updates[#self.updates + 1] = { sql = sql, params = params }
        return {}, params[1] == ID1 and 1 or 0
    end
    return db
end

describe("rex.execution pending-final journal", function()
    local saved_redis, saved_key
    before_each(function()
        saved_redis, saved_key = worker.redis, worker.queue_key
    end)
    after_each(function()
        worker.redis, worker.queue_key = saved_redis, saved_key
    end)

    it("records the failed status under <prefix>:<queue>:rex:pending-final", function()
        local redis, h, calls = fake_redis()
        worker.redis, worker.queue_key = redis, "bull:q"
        local job = { id = ID1, attempts_made = 2, opts = { attempts = 3 } }
        assert.is_true(execution.record_pending_final(job, ID1, "PostgreSQL unavailable: refused"))
        assert.equal("bull:q:rex:pending-final", calls[1][2])
        local e = json.decode(h[ID1])
        assert.equal("failed", e.status)
        assert.equal(3, e.attempts)
        assert.equal(ID1, e.jobId)
        assert.is_number(e.at)
        assert.equal("Execution failed after 3 attempts; the failure was recorded while "
            .. "PostgreSQL was unreachable: PostgreSQL unavailable: refused", e.error)
    end)

    it("without a worker thread's Redis (run, busted) it reports false", function()
        worker.redis, worker.queue_key = nil, nil
        assert.is_false(execution.record_pending_final({ id = "x", attempts_made = 0 }, ID1, "e"))
        assert.equal(0, execution.apply_pending_final(fake_db()))
    end)

    it("applies entries as failed updates and deletes them; moved-on rows are dropped", function()
        local redis, h = fake_redis()
        worker.redis, worker.queue_key = redis, "bull:q"
        h[ID1] = json.encode({ status = "failed", error = "boom", at = 1700000000000 })
        h[ID2] = json.encode({ status = "failed", error = "boom2", at = 1700000000000 })
        h["not-a-uuid"] = "{}"
        local db = fake_db()
        assert.equal(1, execution.apply_pending_final(db)) -- ID2's row has moved on (0 rows)
        assert.equal(2, #db.updates)
        assert.truthy(db.updates[1].sql:find("status IN ('pending', 'running')", 1, true))
        assert.is_nil(next(h))
    end)

    it("keeps what it could not apply when PostgreSQL fails again", function()
        local redis, h = fake_redis()
        worker.redis, worker.queue_key = redis, "bull:q"
        h[ID1] = json.encode({ status = "failed", error = "boom", at = 1 })
        h[ID2] = json.encode({ status = "failed", error = "boom", at = 1 })
        execution.apply_pending_final(fake_db(1))
        local left = 0
        for _ in pairs(h) do
            left = left + 1
        end
        assert.equal(1, left)
    end)
end)
