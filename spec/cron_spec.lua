-- rex.cron and rex.tz (the comparison with cron-parser on hundreds of cases is
-- tests/interop/cron.test.js).
local cron = require("rex.cron")
local tz = require("rex.tz")

describe("rex.cron", function()
    local base = 1795696800123 -- 2026-11-26T10:00:00.123Z

    it("finds the next matching second after a time", function()
        assert.equal(1795697100000, cron.next("*/5 * * * *", base))
        assert.equal(1795696810000, cron.next("*/10 * * * * *", base))
        assert.equal(1795697100000, cron.next("*/5 * * * *", 1795697100000 - 1))
        assert.equal(1795697400000, cron.next("*/5 * * * *", 1795697100000))
    end)

    it("honours time zones", function()
        -- 09:00 in New York (UTC-5 in November) is 14:00 UTC
        assert.equal(1795701600000, cron.next("0 9 * * 1-5", base, "America/New_York"))
    end)

    it("reports bad patterns and zones clearly", function()
        assert.matches("5 or 6 fields", select(2, cron.next("* * *", base)))
        assert.matches("bad minute", select(2, cron.next("61 * * * *", base)))
        assert.matches("unknown time zone", select(2, cron.next("* * * * *", base, "Mars/Base")))
        assert.matches("invalid time zone", select(2, cron.next("* * * * *", base, "../etc/passwd")))
        assert.matches("does not match within", select(2, cron.next("0 0 31 2 *", base)))
    end)
end)

describe("rex.tz", function()
    it("converts civil dates both ways", function()
        for _, d in ipairs({ 0, 59, 60, 365, 11016, 20000, -1, -719468 }) do
            local y, m, dd = tz.civil(d)
            assert.equal(d, tz.days(y, m, dd))
        end
        assert.same({ 2026, 11, 26 }, { tz.civil(20783) })
    end)

    it("knows DST offsets", function()
        local z = assert(tz.zone("Europe/Paris"))
        assert.equal(3600, tz.offset(z, 1795696800))      -- November: CET
        assert.equal(7200, tz.offset(z, 1783000000))      -- July 2026: CEST
        assert.equal(0, tz.offset(assert(tz.zone(nil)), 1))
    end)
end)
