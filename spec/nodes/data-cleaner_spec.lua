-- data-cleaner (rex-behaviour §5.6).
local H = require("spec.support.engine_helper")

describe("data-cleaner", function()
    it("trims and masks PII like the original (fixture w1)", function()
        local out = H.node("data-cleaner", { operations = { "trim", "mask-pii" } },
            { customer = "  Alice Example  ", amount = "250",
              note = " contact alice@example.com or 555-123-4567 " })
        assert.same({ customer = "Alice Example", amount = "250",
                      note = "contact al***@example.com or 555-123-4567" }, out.cleaned)
        assert.same({ { type = "email", original = "alice@example.com", masked = "al***@example.com",
                        position = 8 },
                      { type = "phone", original = "555-123-4567", masked = "555-123-4567",
                        position = 29 } }, out.piiFound)
        assert.same({ "trim", "mask-pii" }, out.operationsApplied)
    end)

    it("masks unseparated phones and card numbers", function()
        local out = H.node("data-cleaner", { operations = { "mask-pii" } },
            { p = "call 5551234567", c = "card 4111 1111 1111 1234 ok" })
        assert.equal("call ******4567", out.cleaned.p)
        assert.equal("card ****-****-****-1234 ok", out.cleaned.c)
    end)

    it("normalizes case recursively and removes special characters", function()
        local out = H.node("data-cleaner", { operations = { "normalize-case", "remove-special-chars" },
                                             caseType = "titlecase" },
            { t = "hello WORLD ^~`", list = H.json.decode('["ab cD"]'), n = 5 })
        assert.equal("Hello World ", out.cleaned.t)
        assert.equal("Ab Cd", out.cleaned.list[1])
        assert.equal(5, out.cleaned.n)
        local up = H.node("data-cleaner", { operations = { "normalize-case" }, caseType = "uppercase" },
            { t = "abc" })
        assert.equal("ABC", up.cleaned.t)
    end)

    it("validates operations", function()
        assert.same({ "DataCleaner requires an 'operations' array in config" },
            H.problems("data-cleaner", {}))
        local p = H.problems("data-cleaner", { operations = { "trim", "explode" } })
        assert.matches('^Invalid cleaning operation: "explode"%. Valid operations: trim, normalize%-case', p[1])
    end)
end)
