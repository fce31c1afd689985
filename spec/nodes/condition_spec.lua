-- condition (rex-behaviour §5.2): JavaScript comparisons.
local H = require("spec.support.engine_helper")
local null = H.null

local function check(op, actual, value)
    local out = H.node("condition", { field = "x.v", operator = op, value = value },
        { x = { v = actual } })
    return out._condition.result
end

describe("condition", function()
    it("compares with String() for equals and contains", function()
        assert.is_true(check("equals", 5, "5"))
        assert.is_true(check("equals", true, "true"))
        assert.is_false(check("not_equals", 5, "5"))
        assert.is_true(check("contains", H.json.decode('["a","b"]'), "a,b"))
        assert.is_true(check("not_contains", "abc", "z"))
        assert.is_true(check("equals", null, "null"))
        assert.is_true(check("equals", nil, "undefined"))
        assert.is_true(check("equals", 0.1 + 0.2, "0.30000000000000004"))
    end)

    it("compares with Number() for ordering operators", function()
        assert.is_true(check("greater_than", " 12 ", 11))
        assert.is_true(check("greater_than", "0x10", 15))
        assert.is_false(check("greater_than", "12px", 1))
        assert.is_true(check("less_than_or_equal", null, 0))
        assert.is_true(check("greater_than_or_equal", H.json.decode("[7]"), 7))
        assert.is_false(check("less_than", {}, 1))
        assert.is_true(check("greater_than", true, 0))
    end)

    it("handles empty/exists", function()
        assert.is_true(check("is_empty", "", nil))
        assert.is_true(check("is_empty", H.json.decode("[]"), nil))
        assert.is_false(check("is_empty", {}, nil)) -- an empty object is not empty
        assert.is_true(check("exists", 0, nil))
        assert.is_true(check("not_exists", null, nil))
    end)

    it("passes input and records the comparison", function()
        local out = H.node("condition", { field = "amount", operator = "greater_than", value = 100 },
            { amount = 250 })
        assert.equal(250, out.amount)
        assert.same({ field = "amount", operator = "greater_than", expected = 100, actual = 250,
                      result = true }, out._condition)
        local o2 = H.node("condition", { field = "nope" }, {})
        -- String(undefined) === String(undefined), as in the original
        assert.same({ field = "nope", operator = "equals", result = true }, o2._condition)
    end)

    it("validates field and operator", function()
        assert.same({ "ConditionNode requires a 'field' path in config" }, H.problems("condition", {}))
        local p = H.problems("condition", { field = "a", operator = "like" })
        assert.matches('^Invalid operator: "like"%. Valid: equals, not_equals, contains', p[1])
    end)
end)
