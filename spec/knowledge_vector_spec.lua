-- rex.knowledge: search with a caller-given query vector (provider embeddings), bulk loading
-- with threads, and the process-wide corpus cache.
local ffi = require("ffi")
local kn = require("rex.knowledge")

local words = { "disk", "memory", "network", "cache", "file", "process", "signal", "user" }

local function text_of(i)
    local t = {}
    for j = 1, 6 do
        t[j] = words[(i * 7 + j * 3) % #words + 1] .. tostring((i + j) % 13)
    end
    return table.concat(t, " ")
end

-- deterministic pseudo-random numbers in [-1, 1)
local seed = 12345
local function rnd()
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed / 1073741824 - 1
end

describe("rex.knowledge search with a query vector", function()
    local function corpus_of(model, n)
        local c = assert(kn.corpus(model))
        for i = 1, n do
            assert(c:add(("c%05d"):format(i), text_of(i), nil, i))
        end
        return c
    end

    it("gives exactly kn.search's hits with the model's own query embedding", function()
        for _, model in ipairs({ "rex-lex-v1-1536", "rex-hash-v1-1536" }) do
            local a, b = corpus_of(model, 400), corpus_of(model, 150)
            local q = "disk3 cache7 memory"
            local as_cdata = assert(kn.embed(model, q))
            local as_table = assert(kn.embed_table(model, q))
            for _, ranking in ipairs(kn.RANKINGS) do
                for _, kernel in ipairs({ "scalar", "avx2", "avx512" }) do
                    local opts = { topK = 25, ranking = ranking, kernel = kernel }
                    local ref = assert(kn.search({ a, b }, q, opts))
                    assert.equal(25, #ref)
                    opts.query_vector = as_cdata
                    assert.same(ref, kn.search({ a, b }, q, opts))
                    opts.query_vector = as_table
                    assert.same(ref, kn.search({ a, b }, q, opts))
                end
            end
        end
    end)

    it("ranks provider vectors by their cosine with the query vector", function()
        local dims, n = 1024, 300
        local c = assert(kn.corpus("rex-lex-v1-1536"))
        local rows = {}
        for i = 1, n do
            local t = {}
            for d = 1, dims do
                t[d] = rnd()
            end
            rows[i] = t
            local v = ffi.new("float[1536]")
            for d = 1, dims do
                v[d - 1] = t[d]
            end
            assert(c:add(("p%04d"):format(i), text_of(i), v, i))
        end
        -- a Lua array of 1024 numbers, not normalized, near row 77
        local qv = {}
        for d = 1, dims do
            qv[d] = 10 * rows[77][d] + rnd()
        end
        local function cosine(x, y)
            local s, nx, ny = 0, 0, 0
            for d = 1, dims do
                s, nx, ny = s + x[d] * y[d], nx + x[d] * x[d], ny + y[d] * y[d]
            end
            return s / math.sqrt(nx * ny)
        end
        local ref
        for _, kernel in ipairs({ "scalar", "avx2", "avx512" }) do
            for _, exact in ipairs({ true, false }) do
                local hits = assert(kn.search({ c }, "disk memory", {
                    topK = 10, ranking = "cosine", kernel = kernel, exact = exact,
                    query_vector = qv }))
                ref = ref or hits
                assert.same(ref, hits)
            end
        end
        assert.equal(77, ref[1].tag)
        for _, h in ipairs(ref) do
            assert.is_true(math.abs(h.semantic - cosine(qv, rows[h.index])) < 1e-5)
            assert.equal(h.semantic, h.score)
        end
        -- the same vector as float[1536] cdata gives the same hits
        local v = ffi.new("float[1536]")
        for d = 1, dims do
            v[d - 1] = qv[d]
        end
        local opts = { topK = 10, ranking = "cosine", query_vector = v }
        local got = assert(kn.search({ c }, "disk memory", opts))
        assert.equal(77, got[1].tag)
        -- hybrid: half cosine, half BM25 / highest
        opts.ranking = "hybrid"
        for _, h in ipairs(assert(kn.search({ c }, "disk memory", opts))) do
            assert.is_true(math.abs(h.score - (0.5 * h.semantic + 0.5 * h.lexical)) < 1e-6)
        end
    end)

    it("ranks by BM25 alone with query_vector = false (semantic 0)", function()
        local c = corpus_of("rex-lex-v1-1536", 300)
        local q = "signal4 user9 file"
        local ref = assert(kn.search({ c }, q, { topK = 20, ranking = "bm25" }))
        local got = assert(kn.search({ c }, q, { topK = 20, ranking = "bm25", query_vector = false }))
        assert.equal(#ref, #got)
        assert.equal(1, got[1].score)
        for i = 1, #ref do
            assert.same({ ref[i].index, ref[i].score, ref[i].lexical },
                { got[i].index, got[i].score, got[i].lexical })
            assert.equal(0, got[i].semantic)
        end
    end)

    it("refuses malformed query vectors", function()
        local c = corpus_of("rex-lex-v1-1536", 10)
        local long = {}
        for i = 1, 1537 do
            long[i] = 0.1
        end
        local r, err = kn.search({ c }, "disk", { query_vector = long })
        assert.is_nil(r)
        assert.matches("1537 values", err)
        r, err = kn.search({ c }, "disk", { query_vector = { 1, "x" } })
        assert.is_nil(r)
        assert.matches("value 2 is not a finite number", err)
        assert.is_nil(kn.search({ c }, "disk", { query_vector = { 1, 0 / 0 } }))
        assert.is_nil(kn.search({ c }, "disk", { query_vector = { math.huge } }))
        assert.is_nil(kn.search({ c }, "disk", { query_vector = ffi.new("double[1536]") }))
        assert.is_nil(kn.search({ c }, "disk", { query_vector = "0.1,0.2" }))
        local nan = ffi.new("float[1536]")
        nan[9] = 0 / 0
        assert.is_nil(kn.search({ c }, "disk", { query_vector = nan }))
        -- an empty array is the zero vector: cosine 0
        local hits = assert(kn.search({ c }, "disk", { query_vector = {}, ranking = "cosine" }))
        assert.equal(0, hits[1].semantic)
    end)
end)

describe("rex.knowledge Corpus:add_batch", function()
    local function rows_of(n)
        local rows = {}
        for i = 1, n do
            local r = { id = ("r%05d"):format((i * 7919) % n), content = text_of(i), tag = i * 2 }
            if i % 4 == 0 then
                local v = ffi.new("float[1536]")
                for d = 0, 1023 do
                    v[d] = rnd()
                end
                r.vec = v
            elseif i % 9 == 0 then
                r.vec = { rnd(), rnd(), rnd() } -- a Lua array: zero-padded
            end
            rows[i] = r
        end
        return rows
    end

    local function hits(c)
        local out = {}
        for _, ranking in ipairs(kn.RANKINGS) do
            out[ranking] = assert(kn.search({ c }, "disk3 cache7 memory",
                { topK = 30, ranking = ranking }))
        end
        return out
    end

    it("builds the corpus n :add calls build, with 1, 2 and 4 threads", function()
        local rows = rows_of(500)
        local seq = assert(kn.corpus("rex-lex-v1-1536"))
        for _, r in ipairs(rows) do
            local v = r.vec
            if type(v) == "table" then
                v = ffi.new("float[1536]", v)
            end
            assert(seq:add(r.id, r.content, v, r.tag))
        end
        local want = hits(seq)
        for _, threads in ipairs({ 1, 2, 4 }) do
            local c = assert(kn.corpus("rex-lex-v1-1536"))
            assert.is_true(c:add_batch(rows, threads))
            assert.equal(seq:size(), c:size())
            for i = 1, c:size(), 37 do
                assert.equal(seq:id_at(i), c:id_at(i))
            end
            assert.same(want, hits(c))
            assert.equal(seq:memory(), c:memory()) -- both sealed by the searches
        end
        local c = assert(kn.corpus("rex-lex-v1-1536"))
        assert.is_true(c:add_batch(rows)) -- threads default to 1
        assert.same(want, hits(c))
    end)

    it("adds nothing when a row is bad", function()
        local c = assert(kn.corpus("rex-lex-v1-1536"))
        local rows = rows_of(20)
        rows[11].content = "bad \255"
        local ok, err = c:add_batch(rows, 2)
        assert.is_nil(ok)
        assert.matches("UTF%-8", err)
        rows[11].content = 42
        ok, err = c:add_batch(rows, 2)
        assert.is_nil(ok)
        assert.matches("row 11", err)
        rows[11].content = "fine"
        rows[12].vec = { 1, "x" }
        assert.is_nil(c:add_batch(rows, 2))
        assert.equal(0, c:size())
        rows[12].vec = nil
        assert.is_true(c:add_batch(rows, 2))
        assert.equal(20, c:size())
        assert.is_true(c:add_batch({}))
        c:seal()
        assert.is_nil(c:add_batch(rows))
    end)
end)

describe("rex.knowledge shared cache", function()
    it("is one cache per process, bounded by KNOWLEDGE_CACHE_MB, never freed", function()
        local s = kn.shared_cache()
        assert.equal(s, kn.shared_cache())
        local mb = tonumber(os.getenv("KNOWLEDGE_CACHE_MB") or "") or 2048
        assert.equal(mb * 1024 * 1024, s:stats().maxBytes)
        local c = assert(kn.corpus("rex-lex-v1-1536"))
        assert(c:add("a", "alpha beta"))
        assert.is_true(s:put("spec-shared-key", "v1", c))
        -- another instance of the module (another Lua state would do the same) sees the entry
        local again = {}
        for k, v in pairs(package.loaded) do
            if k:match("^rex%.knowledge") then
                again[k], package.loaded[k] = v, nil
            end
        end
        local kn2 = require("rex.knowledge")
        for k, v in pairs(again) do
            package.loaded[k] = v
        end
        local s2 = kn2.shared_cache()
        assert.is_false(rawequal(s, s2))
        assert.is_true(ffi.cast("uintptr_t", s.ptr) == ffi.cast("uintptr_t", s2.ptr))
        -- dropping the wrappers frees nothing
        s2, kn2, c = nil, nil, nil
        collectgarbage()
        collectgarbage()
        local got = s:get("spec-shared-key", "v1")
        assert.is_not_nil(got)
        assert.equal(1, got:size())
        assert.is_true(s:invalidate("spec-shared-key"))
        assert.is_nil(s:get("spec-shared-key", "v1"))
    end)
end)
