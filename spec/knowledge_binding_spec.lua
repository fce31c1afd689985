-- rex.knowledge: the C knowledge core through the FFI (chunking, embeddings, search, cache).
local kn = require("rex.knowledge")

describe("rex.knowledge", function()
    it("chunks with pages, section paths and offsets into the text", function()
        local doc = "# Refund Policy\nCustomers may request a refund within 30 days.\f\fSHIPPING RULES\n"
            .. "Orders ship fast."
        local chunks = assert(kn.chunk(doc))
        assert.equal(2, #chunks)
        assert.same({ 0, 1, "Refund Policy", 0 }, { chunks[1].index, chunks[1].page,
            chunks[1].sectionPath, chunks[1].start })
        assert.equal("# Refund Policy Customers may request a refund within 30 days.",
            chunks[1].content)
        assert.equal(3, chunks[2].page)
        assert.equal("SHIPPING RULES", chunks[2].sectionPath)
        -- byte offsets are 0-based: the raw span normalizes to the content
        local raw = doc:sub(chunks[2].byteStart + 1, chunks[2].byteEnd)
        assert.equal(chunks[2].content, (raw:gsub("%s+", " ")))
        assert.equal(#doc, chunks[2]["end"])
    end)

    it("keeps the empty-heading variants of the two original handlers", function()
        assert.equal("page-1", kn.chunk("#\nbody")[1].sectionPath)
        assert.equal("", kn.chunk("#\nbody", { empty_heading = "empty" })[1].sectionPath)
    end)

    it("refuses invalid UTF-8 and NUL with the byte offset", function()
        local c, err = kn.chunk("abc\255def")
        assert.is_nil(c)
        assert.matches("byte 3", err)
        assert.is_nil(kn.chunk("a\0b"))
        assert.same({}, kn.chunk(" \n\t "))
        assert.equal(3, kn.utf8_error("abc\255"))
        assert.is_nil(kn.utf8_error("h\195\169"))
    end)

    it("embeds rex-hash-v1 like the original and rex-lex-v1 deterministically", function()
        local v = assert(kn.embed_table("rex-hash-v1-1536", "hello world"))
        assert.equal(1536, #v)
        -- float32 of -0.403921568627451 (the original's first value)
        assert.is_true(math.abs(v[1] - -0.403921568627451) < 1e-7)
        local a = kn.embed_table("rex-lex-v1-1536", "Refund policy for orders")
        local b = kn.embed_table("rex-lex-v1-1536", "Refund policy for orders")
        assert.same(a, b)
        local n = 0
        for i = 1, #a do
            n = n + a[i] * a[i]
        end
        assert.is_true(math.abs(n - 1) < 1e-5)
        assert.is_nil(kn.embed("no-such-model", "x"))
    end)

    it("writes and reads the embedding_vector text", function()
        assert.equal("[-1,0.5,5e-8,0.12345679]", kn.vector_literal({ -1, 0.5, 5e-8, 0.123456789 }))
        local v = assert(kn.vector_parse("[1, -0.25, 3e-2]"))
        assert.equal(3, #v)
        assert.equal(-0.25, v[2])
        assert.is_nil(kn.vector_parse("{1,2}"))
        local e = kn.embed_table("rex-hash-v1-1536", "hello world")
        -- float32 values: the first one rounds like the double, the second not
        assert.matches("^%[%-0%.40392157,%-0%.64705884,", kn.vector_literal(e))
    end)

    it("computes the original's overlap score", function()
        assert.equal(0.8, kn.overlap_score("What is the retention policy?",
            "The retention policy is 30 days."))
    end)

    local function corpus_of(model, n)
        local c = assert(kn.corpus(model))
        local words = { "disk", "memory", "network", "cache", "file", "process", "signal", "user" }
        for i = 1, n do
            local t = {}
            for j = 1, 6 do
                t[j] = words[(i * 7 + j * 3) % #words + 1] .. tostring((i + j) % 13)
            end
            assert(c:add(("c%05d"):format(i), table.concat(t, " "), nil, i))
        end
        return c
    end

    it("returns the same exact top-K from every kernel and scan", function()
        local c = corpus_of("rex-lex-v1-1536", 600)
        for _, ranking in ipairs(kn.RANKINGS) do
            local ref = assert(kn.search({ c }, "disk3 cache7 memory", {
                topK = 20, ranking = ranking, kernel = "scalar", exact = true }))
            assert.equal(20, #ref)
            for _, kernel in ipairs({ "auto", "avx2", "avx512" }) do
                for _, exact in ipairs({ true, false }) do
                    local got = kn.search({ c }, "disk3 cache7 memory", {
                        topK = 20, ranking = ranking, kernel = kernel, exact = exact })
                    assert.same(ref, got)
                end
            end
            for i = 2, #ref do
                assert.is_true(ref[i - 1].score > ref[i].score or (ref[i - 1].score == ref[i].score
                    and c:id_at(ref[i - 1].index) < c:id_at(ref[i].index)))
            end
        end
    end)

    it("refuses bad queries and mixed models", function()
        local c = corpus_of("rex-lex-v1-1536", 10)
        assert.is_nil(kn.search({ c }, ""))
        assert.is_nil(kn.search({ c }, "   "))
        assert.is_nil(kn.search({ c }, ("x"):rep(kn.QUERY_MAX + 1)))
        assert.is_nil(kn.search({ c }, "ok", { topK = 0 }))
        local h = corpus_of("rex-hash-v1-1536", 10)
        local r, err = kn.search({ c, h }, "disk")
        assert.is_nil(r)
        assert.matches("different embedding models", err)
    end)

    it("caches corpora by key and version within a byte bound", function()
        local a = corpus_of("rex-lex-v1-1536", 50)
        local b = corpus_of("rex-lex-v1-1536", 50)
        a:seal()
        local cache = kn.cache(math.floor(a:memory() * 1.5))
        assert.is_true(cache:put("a", "1", a))
        assert.is_not_nil(cache:get("a", "1"))
        assert.is_nil(cache:get("a", "2"))
        assert.is_true(cache:put("a", "2", a))
        assert.is_true(cache:put("b", "1", b))
        local s = cache:stats()
        assert.equal(1, s.entries)
        assert.equal(1, s.evictions)
        assert.is_true(cache:invalidate("b"))
        assert.is_nil(cache:get("b", "1"))
        local tiny = kn.cache(100)
        assert.is_nil(tiny:put("a", "1", a))
    end)
end)
