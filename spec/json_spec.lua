-- rex.json: the codec between C, Lua and Redis, on the cases lua-cjson 2.1.0 gets wrong.
local json = require("rex.json")

local function roundtrip(s)
    local v = assert(json.decode(s))
    return assert(json.encode(v))
end

describe("rex.json", function()
    it("keeps empty arrays and empty objects apart", function()
        assert.equal("[]", roundtrip("[]"))
        assert.equal("{}", roundtrip("{}"))
        local back = json.decode(roundtrip('{"a":[],"b":{},"c":[[],{}]}'))
        assert.is_true(json.is_array(back.a))
        assert.is_false(json.is_array(back.b))
        assert.is_true(json.is_array(back.c) and json.is_array(back.c[1]))
        assert.equal("{}", json.encode(back.c[2]))
        local t = json.decode('{"list":[]}')
        assert.is_true(json.is_array(t.list))
        table.insert(t.list, 5)
        assert.equal('{"list":[5]}', json.encode(t))
        assert.equal("[]", json.encode(json.array()))
        assert.equal("{}", json.encode({}))
    end)

    it("treats 1..n tables as arrays and anything else as objects", function()
        assert.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
        local s = json.encode({ [1] = "a", [3] = "c" })
        assert.is_truthy(s == '{"1":"a","3":"c"}' or s == '{"3":"c","1":"a"}')
        assert.equal('{"x":1}', json.encode({ x = 1 }))
    end)

    it("prints integers exactly, as JavaScript does", function()
        assert.equal("9007199254740992", json.encode(2 ^ 53))
        assert.equal("1732624155123", json.encode(1732624155123))
        assert.equal("-42", json.encode(-42))
        assert.equal("0", json.encode(-0.0))
        assert.equal("100000000000000000000", json.encode(1e20))
        assert.equal("1e+21", json.encode(1e21))
        local big = json.decode("[9007199254740993, 12345678901234567890]")
        assert.equal(2 ^ 53, big[1]) -- the nearest double, as JSON.parse gives
        assert.equal("[9007199254740992,12345678901234567168]", json.encode(big))
    end)

    it("prints fractions with the shortest text that reads back the same", function()
        assert.equal("0.1", json.encode(0.1))
        assert.equal("0.30000000000000004", json.encode(0.1 + 0.2))
        assert.equal("1.5e-07", json.encode(1.5e-7))
        for _, x in ipairs({ math.pi, 1 / 3, 2 ^ -1074, 1.7976931348623157e308 }) do
            assert.equal(x, json.decode(json.encode(x)))
        end
    end)

    it("refuses NaN and infinities", function()
        local v, err = json.encode({ x = 0 / 0 })
        assert.is_nil(v)
        assert.matches("NaN", err)
        v, err = json.encode(math.huge)
        assert.is_nil(v)
        assert.matches("infinit", err)
    end)

    it("rejects invalid UTF-8 on both sides, naming the byte", function()
        local v, err = json.decode('"ab\255"')
        assert.is_nil(v)
        assert.matches("invalid UTF%-8 at byte 4", err)
        v, err = json.encode({ s = "ok\192\128" }) -- overlong encoding of NUL
        assert.is_nil(v)
        assert.matches("invalid UTF%-8", err)
        v, err = json.decode('"\237\160\128"') -- a surrogate encoded in UTF-8
        assert.is_nil(v)
        assert.equal('"é 😀"', json.encode(json.decode('"é \\ud83d\\ude00"')))
    end)

    it("turns lone surrogate escapes into U+FFFD", function()
        assert.equal("\239\191\189x", json.decode('"\\ud800x"'))
        assert.equal("\239\191\189", json.decode('"\\udc00"'))
    end)

    it("escapes control characters and keeps other text as it is", function()
        assert.equal('"a\\nb\\t\\u0001\\"\\\\/"', json.encode("a\nb\t\1\"\\/"))
        assert.equal("a/b", json.decode('"a\\/b"'))
        assert.equal('"\226\128\168"', json.encode("\226\128\168"))
    end)

    it("limits nesting depth without crashing, on both sides", function()
        local deep = ("["):rep(1001) .. ("]"):rep(1001)
        local v, err = json.decode(deep)
        assert.is_nil(v)
        assert.matches("nesting deeper than 1000", err)
        local ok = ("["):rep(1000) .. ("]"):rep(1000)
        assert.equal(ok, json.encode(assert(json.decode(ok))))
        local t = {}
        t.self = t
        v, err = json.encode(t)
        assert.is_nil(v)
        assert.matches("contains itself", err)
        assert.is_nil(json.decode(("{\"a\":"):rep(100000)))
    end)

    it("keeps null as a value that survives a round trip", function()
        local t = json.decode('{"a":null,"b":[null,1]}')
        assert.equal(json.null, t.a)
        assert.equal(json.null, t.b[1])
        local s = json.encode(t)
        assert.is_truthy(s:find('"a":null', 1, true))
        assert.is_truthy(s:find('"b":[null,1]', 1, true))
        assert.equal(require("cjson").null, json.null)
    end)

    it("reports malformed input with a position", function()
        for _, bad in ipairs({ "", "{", '{"a":}', "[1,]", "01", "1.", "-", "tru", '{"a" 1}',
                               "[1] x", '"\\x"', "'a'", "NaN", '"a\nb"' }) do
            local v, err = json.decode(bad)
            assert.is_nil(v, bad)
            assert.matches("^invalid JSON: ", err)
        end
        local _, err = json.decode('{"a": tru}')
        assert.matches("at byte 7", err)
    end)

    it("refuses values JSON cannot carry", function()
        for _, bad in ipairs({ print, coroutine.create(print), { [true] = 1 } }) do
            local v, err = json.encode(bad)
            assert.is_nil(v)
            assert.matches("cannot encode", err)
        end
    end)

    it("round-trips a large document", function()
        local parts = {}
        for i = 1, 20000 do
            parts[i] = { id = i, name = "item " .. i, tags = json.array(), score = i / 7 }
        end
        local s = assert(json.encode(parts))
        local back = assert(json.decode(s))
        assert.equal(20000, #back)
        assert.equal(13 / 7, back[13].score)
        assert.is_true(json.is_array(back[20000].tags))
    end)

    it("writes a table met several times in one document the same way each time", function()
        local shared = { a = { 1, 2.5, "x" }, b = "a string long enough to be remembered",
                         e = json.array() }
        local doc = { first = shared, list = { shared, { inner = shared } }, a = shared.a }
        local alone = assert(json.encode(shared))
        local s = assert(json.encode(doc))
        local _, copies = s:gsub(alone:gsub("%p", "%%%0"), "")
        assert.equal(3, copies)
        local back = assert(json.decode(s))
        assert.same(back.first, back.list[2].inner)
        assert.is_true(json.is_array(back.list[1].e))
    end)

    it("keeps the nesting limit for a table repeated deeper than it first appeared", function()
        local chain = {}
        local c = chain
        for _ = 1, 990 do
            c.n = {}
            c = c.n
        end
        c.v = "a leaf string long enough to be remembered"
        assert.is_string(json.encode({ chain }))
        local deep = {}
        local d = deep
        for _ = 1, 20 do
            d.n = {}
            d = d.n
        end
        d.c = chain
        local v, err = json.encode({ chain, deep })
        assert.is_nil(v)
        assert.matches("nesting deeper than 1000", err)
        local cyc = {}
        cyc.self = { back = cyc, pad = "a string long enough to be remembered" }
        v, err = json.encode({ cyc, cyc })
        assert.is_nil(v)
        assert.matches("nesting deeper than 1000", err)
    end)
end)
