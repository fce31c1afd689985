-- `rex-worker query` (interface.md): output shape, ranking on the quality corpus, exit 2 on bad
-- input. Runs the binary named by REX_WORKER_BIN, else the first of build/, build-knowledge/.
local json = require("rex.json")

local function find_binary()
    for _, p in ipairs({ os.getenv("REX_WORKER_BIN") or "", "build/rex-worker",
                         "build-knowledge/rex-worker" }) do
        local f = p ~= "" and io.open(p)
        if f then
            f:close()
            return p
        end
    end
end

local function sh(cmd)
    local p = io.popen(cmd .. ' 2>/tmp/rex-query-spec.err; echo "__EXIT:$?"')
    local out = p:read("*a")
    p:close()
    local code = tonumber(out:match("__EXIT:(%d+)%s*$"))
    return out:gsub("__EXIT:%d+%s*$", ""), code
end

local function write(lines)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    return path
end

local bin = find_binary()
local DOCS = "tests/fixtures/knowledge/coreutils-man.docs.jsonl"
local QUERIES = "tests/fixtures/knowledge/coreutils-man.queries.jsonl"

describe("rex-worker query", function()
    if not bin then
        pending("no rex-worker binary (set REX_WORKER_BIN)")
        return
    end

    it("prints one line per query with the best documents first", function()
        local out, code = sh(("%s query --docs %s --queries %s --top-k 3"):format(bin, DOCS,
            QUERIES))
        assert.equal(0, code)
        local n, first = 0, 0
        for line in out:gmatch("[^\n]+") do
            local r = json.decode(line)
            n = n + 1
            assert.is_true(#r.hits <= 3)
            for i = 2, #r.hits do
                assert.is_true(r.hits[i - 1].score >= r.hits[i].score)
            end
            if r.hits[1].id == r.id then
                first = first + 1
            end
        end
        assert.equal(104, n)
        assert.is_true(first >= 50) -- Recall@1 of the default ranking is 0.52
    end)

    it("keeps id types and ranks with the chosen model", function()
        local d = write({ '{"id":1,"text":"refund policy: 30 days"}',
                          '{"id":"b","text":"shipping takes two days"}' })
        local q = write({ '{"id":7,"text":"refund"}' })
        for _, args in ipairs({ "", "--model rex-hash-v1-1536 --ranking original",
                                "--ranking bm25", "--ranking cosine" }) do
            local out, code = sh(("%s query --docs %s --queries %s %s"):format(bin, d, q, args))
            assert.equal(0, code)
            local r = json.decode(out)
            assert.equal(7, r.id)
            assert.equal(1, r.hits[1].id)
        end
        os.remove(d)
        os.remove(q)
    end)

    it("exits 2 with the file and line on bad input", function()
        local good = write({ '{"id":"q","text":"hello"}' })
        local cases = {
            { write({ '{"id":"a","text":"ok"}', '{"id":"b","text":' }), ":2: " },
            { write({ '{"id":"a"}' }), '"text" a string' },
            { write({ '{"id":"a","text":"bad \\u0000 nul"}' }), "NUL" },
        }
        for _, c in ipairs(cases) do
            local _, code = sh(("%s query --docs %s --queries %s"):format(bin, c[1], good))
            assert.equal(2, code)
            local f = io.open("/tmp/rex-query-spec.err")
            local err = f:read("*a")
            f:close()
            assert.is_truthy(err:find(c[2], 1, true))
            os.remove(c[1])
        end
        local long = write({ json.encode({ id = "q", text = ("x"):rep(9000) }) })
        local _, code = sh(("%s query --docs %s --queries %s"):format(bin, good, long))
        assert.equal(2, code)
        _, code = sh(("%s query --docs %s --queries %s --top-k 0"):format(bin, good, good))
        assert.equal(2, code)
        _, code = sh(("%s query --docs %s --queries %s --model nope"):format(bin, good, good))
        assert.equal(2, code)
        _, code = sh(("%s query --docs %s"):format(bin, good))
        assert.equal(2, code)
        os.remove(good)
        os.remove(long)
    end)
end)
