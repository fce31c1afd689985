-- rex.producer: `rex-worker add` options, normalised as BullMQ's Queue.add stores them.
local producer = require("rex.producer")
local json = require("rex.json")

describe("rex.producer.prepare", function()
    it("defaults attempts, expands numeric backoff, compresses names", function()
        local a = assert(producer.prepare("j", '{"x":1}',
            '{"backoff":500,"keepLogs":3,"failParentOnFailure":true,"jobId":"abc"}', 1000))
        local opts = json.decode(a[3])
        assert.equal(0, opts.attempts)
        assert.same({ type = "fixed", delay = 500 }, opts.backoff)
        assert.equal(3, opts.kl)
        assert.is_true(opts.fpof)
        assert.equal("abc", a[5])
        assert.equal("1000", a[4])
        assert.equal('{"x":1}', a[2])
    end)

    it("passes delay, priority and lifo to the script", function()
        local a = assert(producer.prepare("j", "{}", '{"delay":10,"priority":3,"lifo":true}', 1))
        assert.same({ "10", "3", "1" }, { a[6], a[7], a[8] })
    end)

    it("rejects what Queue.add rejects", function()
        for _, c in ipairs({
            { "{", nil, "DATA is not valid JSON" },
            { "{}", "[1]", "must be a JSON object" },
            { "{}", '{"jobId":"12"}', "cannot be integers" },
            { "{}", '{"jobId":12}', "cannot be integers" },
            { "{}", '{"jobId":"a:b"}', "cannot contain" },
            { "{}", '{"priority":3000000}', "priority" },
            { "{}", '{"delay":-1}', "delay" },
            { "{}", '{"attempts":1.5}', "attempts" },
            { "{}", '{"removeOnComplete":"yes"}', "removeOnComplete" },
            { "{}", '{"repeat":{"every":1}}', "job schedulers" },
        }) do
            local a, err = producer.prepare("j", c[1], c[2], 1)
            assert.is_nil(a)
            assert.matches(c[3], err)
        end
        assert.is_nil(producer.prepare("", "{}", nil, 1))
    end)
end)
