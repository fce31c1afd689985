-- transformer (rex-behaviour §5.3; expressions are Lua per decisions.md §4).
local H = require("spec.support.engine_helper")

describe("transformer", function()
    it("maps dot paths exactly as the original, missing keys vanish", function()
        local out = H.node("transformer", { mappings = { name = "user.name", first = "items.0",
                                                         count = "items.length", none = "x.y" } },
            { user = { name = "Ann" }, items = H.json.decode('["a","b"]') })
        assert.same({ name = "Ann", first = "a", count = 2 }, out)
    end)

    it("evaluates a Lua expression over data/input", function()
        local out = H.node("transformer", { expression =
            "{ total = data.a + input.b, tier = data.a > 1 and 'gold' or 'basic' }" }, { a = 2, b = 3 })
        assert.same({ total = 5, tier = "gold" }, out)
        local o2 = H.node("transformer", { expression = "#data.list" },
            { list = H.json.decode("[1,2,3]") })
        assert.same({ result = 3 }, o2)
    end)

    it("fails with the original prefix on runtime errors", function()
        local _, res = H.node("transformer", { expression = "data.missing.x" }, {})
        assert.matches('^Node "n" %(transformer%) failed: Transform expression failed: ', res.errorMessage)
    end)

    it("rejects JavaScript and missing config at validation", function()
        local p = H.problems("transformer", { expression = "({ a: data.x })" })
        assert.matches("^Transform expression is not valid Lua: .*Lua, not JavaScript", p[1])
        assert.same({ "TransformerNode requires either 'expression' (Lua) or 'mappings' "
            .. "(field mapping object) in config" }, H.problems("transformer", {}))
        assert.same({ 'TransformerNode mapping "a" must be a string path' },
            H.problems("transformer", { mappings = { a = 5 } }))
    end)
end)
