-- Provider embeddings and the Cohere reranker (rex-behaviour 6.5 step 7, 6.8; docs/knowledge.md
-- "Provider embeddings") against spec/support/embed_server.py on 127.0.0.1.
local F = require("spec.support.http_fixture")
local http = require("rex.http")
local json = require("rex").json

local function norm(v)
    local s = 0
    for i = 0, 1535 do
        s = s + v[i] * v[i]
    end
    return math.sqrt(s)
end

local function text_of(words, n, prefix)
    local t = {}
    for i = 1, n do
        t[i] = prefix .. (i % words)
    end
    return table.concat(t, " ")
end

describe("knowledge providers", function()
    if not require("rex.native").load("rex.http_c") then
        pending("rex.http_c not available")
        return
    end
    local ok_kn = pcall(require, "rex.knowledge")
    if not ok_kn then
        pending("the knowledge C core is not available")
        return
    end
    local providers = require("rex.knowledge.providers")
    local memory = require("rex.knowledge.memory")
    local srv, why = F.start("spec/support/embed_server.py")
    if not srv then
        pending("loopback HTTP server unavailable: " .. tostring(why))
        return
    end
    teardown(function()
        F.stop(srv)
    end)
    local B = srv.base

    local ALLOW = "127.0.0.1"
    local function key_ok(provider)
        assert(provider == "openai" or provider == "cohere", provider)
        return "test-key"
    end
    local function requests()
        local r = assert(http.request({ url = B .. "/requests", allowlist = ALLOW }))
        return json.decode(r.body)
    end
    local function reset()
        assert(http.request({ url = B .. "/reset", method = "POST", allowlist = ALLOW }))
    end
    local function settings(r, extra)
        extra = extra or {}
        return assert(providers.settings(r, {
            get_api_key = extra.get_api_key or key_ok,
            allowlist = extra.allowlist == nil and ALLOW or extra.allowlist,
        }))
    end
    local function new_mem(retrieval, extra)
        extra = extra or {}
        local logs = {}
        local mem = memory.new({
            retrieval = retrieval, get_api_key = extra.get_api_key or key_ok,
            http_allowlist = extra.allowlist == nil and ALLOW or extra.allowlist,
            rerank = extra.rerank,
            log = function(level, msg, fields)
                logs[#logs + 1] = { level = level, msg = msg, fields = fields }
            end,
        })
        return mem, logs
    end
    local USER = "user-1"
    local DOCS = {
        { "Refunds", "Refund policy: customers may return goods within thirty days for a full "
            .. "refund of the purchase price." },
        { "Shipping", "Shipping takes five business days; express delivery ships overnight." },
        { "Security", "Passwords are hashed with scrypt and rotated every ninety days." },
    }
    local function ingest_all(mem, extra)
        local out = {}
        for i, d in ipairs(DOCS) do
            local corpus = extra and extra.corpusId or (out[1] and out[1].corpusId)
            out[i] = mem:ingest({ userId = USER, executionId = "e1", workflowId = "w1",
                                  title = d[1], contentText = d[2], corpusId = corpus })
        end
        return out
    end

    before_each(reset)

    describe("settings", function()
        it("defaults: deterministic embeddings, heuristic reranker", function()
            local s = settings(nil)
            assert.is_nil(s.embedding)
            assert.is_nil(s.reranker)
            assert.is_false(s.rerank)
        end)

        it("builds provider specs with labels, defaults and base URLs", function()
            local s = settings({ embeddingProvider = "openai", embeddingBaseUrl = B .. "/openai/",
                                 rerankEnabled = "true", rerankerProvider = "cohere" })
            assert.equal("openai:text-embedding-3-small", s.embedding.label)
            assert.equal(B .. "/openai", s.embedding.base_url)
            assert.equal(96, s.embedding.batch_size)
            assert.equal("deterministic", s.embedding.fallback)
            assert.equal("rerank-v3.5", s.reranker.model)
            assert.is_true(s.rerank)
            -- the original's job sent "rex-hash-v1-1536" to the provider: the default model here
            s = settings({ embeddingProvider = "cohere", embeddingModel = "rex-hash-v1-1536",
                           embeddingDimensions = 1024 })
            assert.equal("cohere:embed-english-v3.0@1024", s.embedding.label)
            assert.same({ "cohere", "embed-english-v3.0", 1024 },
                { providers.parse_label(s.embedding.label) })
            assert.same({ "openai", "text-embedding-3-small", 1536 },
                { providers.parse_label("openai:text-embedding-3-small") })
            assert.is_nil(providers.parse_label("rex-lex-v1-1536"))
        end)

        it("refuses bad values", function()
            for _, r in ipairs({ { embeddingProvider = "voyage" },
                                 { embeddingProvider = "openai", embeddingDimensions = 2048 },
                                 { embeddingProvider = "openai", embeddingBatchSize = 0 },
                                 { embeddingProvider = "openai", embeddingFallback = "maybe" },
                                 { rerankerProvider = "jina" } }) do
                local s, err = providers.settings(r)
                assert.is_nil(s)
                assert.is_string(err)
            end
            assert.has_error(function()
                memory.new({ retrieval = { embeddingProvider = "voyage" } })
            end)
        end)
    end)

    describe("embed", function()
        it("OpenAI: {model, input} with a bearer key, vectors by index, L2-normalized", function()
            local s = settings({ embeddingProvider = "openai", embeddingBaseUrl = B .. "/openai" })
            local vecs, label = providers.embed(s.embedding, { "alpha beta", "gamma", "alpha" })
            assert.equal("openai:text-embedding-3-small", label)
            assert.equal(3, #vecs)
            for _, v in ipairs(vecs) do
                assert.is_true(math.abs(norm(v) - 1) < 1e-6)
            end
            -- the server returns the items reversed: `index` puts them back
            local single = providers.embed(s.embedding, { "gamma" })
            for d = 0, 1535 do
                assert.equal(single[1][d], vecs[2][d])
            end
            local seen = requests()
            assert.equal(2, #seen)
            assert.equal("/openai/embeddings", seen[1].path)
            assert.equal("Bearer test-key", seen[1].auth)
            assert.same({ model = "text-embedding-3-small",
                          input = { "alpha beta", "gamma", "alpha" } }, seen[1].body)
        end)

        it("sends texts in batches of embeddingBatchSize, keeping their order", function()
            local s = settings({ embeddingProvider = "openai", embeddingBatchSize = 4,
                                 embeddingBaseUrl = B .. "/openai" })
            local texts = {}
            for i = 1, 10 do
                texts[i] = "word" .. i
            end
            local vecs = assert(providers.embed(s.embedding, texts))
            local seen = requests()
            assert.equal(3, #seen)
            assert.same({ 4, 4, 2 },
                { #seen[1].body.input, #seen[2].body.input, #seen[3].body.input })
            assert.equal("word9", seen[3].body.input[1])
            local one = providers.embed(s.embedding, { "word7" })
            for d = 0, 1535 do
                assert.equal(one[1][d], vecs[7][d])
            end
        end)

        it("Cohere: {model, texts, input_type}; search_query for queries", function()
            local s = settings({ embeddingProvider = "cohere", embeddingBaseUrl = B .. "/cohere" })
            assert(providers.embed(s.embedding, { "a b" }, "search_document"))
            assert(providers.embed(s.embedding, { "a" }, "search_query"))
            local seen = requests()
            assert.same({ model = "embed-english-v3.0", texts = { "a b" },
                          input_type = "search_document" }, seen[1].body)
            assert.equal("search_query", seen[2].body.input_type)
            assert.equal("/cohere/embed", seen[1].path)
        end)

        it("fails on non-2xx, malformed JSON, a wrong count and a timeout", function()
            local function try(path, extra)
                local r = { embeddingProvider = "openai", embeddingBaseUrl = srv.base .. path }
                for k, v in pairs(extra or {}) do
                    r[k] = v
                end
                return providers.embed(settings(r).embedding, { "one", "two" })
            end
            local v, err, kind = try("/openai-500")
            assert.is_nil(v)
            assert.equal("status", kind)
            assert.matches("OpenAI embeddings request failed with status 500", err, 1, true)
            v, err, kind = try("/openai-bad")
            assert.is_nil(v)
            assert.equal("malformed", kind)
            assert.matches("not a JSON object", err, 1, true)
            v, err, kind = try("/openai-short")
            assert.is_nil(v)
            assert.equal("malformed", kind)
            assert.matches("returned 1 embeddings for 2 texts", err, 1, true)
            local t0 = os.time()
            v, err, kind = try("/openai-slow", { embeddingTimeoutMs = 300 })
            assert.is_nil(v)
            assert.equal("timeout", kind)
            assert.matches("timed out after 300 ms", err, 1, true)
            assert.is_true(os.time() - t0 <= 2)
        end)

        it("checks the dimension; fewer configured dimensions are zero-padded", function()
            local s = settings({ embeddingProvider = "cohere",
                                 embeddingBaseUrl = B .. "/cohere1024" })
            local v, err, kind = providers.embed(s.embedding, { "x y" })
            assert.is_nil(v)
            assert.equal("dimension", kind)
            assert.matches("1024-dimensional embedding; expected 1536", err, 1, true)
            s = settings({ embeddingProvider = "cohere", embeddingDimensions = 1024,
                           embeddingBaseUrl = B .. "/cohere1024" })
            local vecs, label = assert(providers.embed(s.embedding, { "x y", "y z" }))
            assert.equal("cohere:embed-english-v3.0@1024", label)
            assert.is_true(math.abs(norm(vecs[1]) - 1) < 1e-6)
            for d = 1024, 1535 do
                assert.equal(0, vecs[1][d])
            end
            -- OpenAI gets the `dimensions` parameter when they are configured
            s = settings({ embeddingProvider = "openai", embeddingDimensions = 512,
                           embeddingBaseUrl = B .. "/openai" })
            assert(providers.embed(s.embedding, { "x" }))
            local seen = requests()
            assert.equal(512, seen[#seen].body.dimensions)
        end)

        it("without a key: no request", function()
            local s = settings({ embeddingProvider = "openai", embeddingBaseUrl = B .. "/openai" },
                { get_api_key = function(p)
                    error("No " .. p .. " API key found for user", 0)
                end })
            local v, err, kind = providers.embed(s.embedding, { "x" })
            assert.is_nil(v)
            assert.equal("key", kind)
            assert.equal("Missing OpenAI API key for embeddings", err)
            assert.equal(0, #requests())
        end)

        it("refuses a loopback base URL that the allow-list does not name (SSRF)", function()
            local s = settings({ embeddingProvider = "openai", embeddingBaseUrl = B .. "/openai" },
                { allowlist = "" })
            local v, err, kind = providers.embed(s.embedding, { "x" })
            assert.is_nil(v)
            assert.equal("refused", kind)
            assert.is_string(err)
            assert.equal(0, #requests())
        end)
    end)

    describe("memory runtime", function()
        local OPENAI = { embeddingProvider = "openai", embeddingBaseUrl = B .. "/openai" }

        it("ingests with the provider, records the model and ranks with it", function()
            local mem = new_mem(OPENAI)
            local res = ingest_all(mem)
            local corpus = mem:corpus(res[1].corpusId)
            assert.equal("openai:text-embedding-3-small", corpus.embedding_model)
            local rows = mem:chunks(res[1].documentId)
            assert.equal(1, #rows)
            assert.equal("openai:text-embedding-3-small", rows[1].embedding_model)
            -- the stored vector is the provider's, normalized
            local s = settings(OPENAI)
            local expect = providers.embed(s.embedding, { rows[1].content })[1]
            local got = mem:embedding(rows[1])
            for d = 1, 1536 do
                assert.equal(expect[d - 1], got[d])
            end
            reset()
            local out = mem:retrieve({ userId = USER, query = "how long does express shipping take",
                                       topK = 3 })
            assert.equal(3, #out.matches)
            assert.equal("Shipping", out.matches[1].title)
            assert.is_true(out.matches[1].semanticScore > 0.2)
            assert.is_true(out.matches[1].score > out.matches[2].score)
            local seen = requests()
            assert.equal(1, #seen)
            assert.same({ "how long does express shipping take" }, seen[1].body.input)
        end)

        it("a 50-chunk document is one request (batches of 96)", function()
            local mem = new_mem(OPENAI)
            local text = text_of(997, 8000, "tok") -- about 50,000 characters
            local r = mem:ingest({ userId = USER, title = "big", contentText = text })
            assert.is_true(r.chunkCount >= 50)
            local seen = requests()
            assert.equal(1, #seen)
            assert.equal(r.chunkCount, #seen[1].body.input)
        end)

        it("fallback: a new corpus falls back to the deterministic model, recorded", function()
            local mem, logs = new_mem({ embeddingProvider = "openai",
                                        embeddingBaseUrl = B .. "/openai-500" })
            local res = ingest_all(mem)
            local corpus = mem:corpus(res[1].corpusId)
            assert.equal("ready", corpus.status)
            assert.equal("rex-lex-v1-1536", corpus.embedding_model)
            assert.equal("rex-lex-v1-1536", mem:chunks(res[1].documentId)[1].embedding_model)
            assert.equal("warn", logs[1].level)
            assert.equal("Embedding provider failed; falling back to deterministic embeddings",
                logs[1].msg)
            assert.matches("status 500", logs[1].fields.error, 1, true)
            assert.equal("rex-lex-v1-1536", logs[1].fields.fallbackModel)
            -- the corpus keeps its model: only the first document tried the provider
            assert.equal(1, #requests())
            local out = mem:retrieve({ userId = USER, query = "refund policy", topK = 1 })
            assert.equal("Refunds", out.matches[1].title)
        end)

        it("fallback: a missing key or an SSRF refusal falls back the same way", function()
            local mem, logs = new_mem(OPENAI, { get_api_key = function()
                return nil
            end })
            local r = mem:ingest({ userId = USER, title = "t", contentText = "some text" })
            assert.equal("rex-lex-v1-1536", mem:corpus(r.corpusId).embedding_model)
            assert.equal("Missing OpenAI API key for embeddings", logs[1].fields.error)
            mem, logs = new_mem(OPENAI, { allowlist = "" })
            r = mem:ingest({ userId = USER, title = "t", contentText = "some text" })
            assert.equal("rex-lex-v1-1536", mem:corpus(r.corpusId).embedding_model)
            assert.equal(1, #logs)
            assert.equal(0, #requests())
        end)

        it("embeddingFallback = fail: the document fails", function()
            local mem = new_mem({ embeddingProvider = "openai", embeddingFallback = "fail",
                                  embeddingBaseUrl = B .. "/openai-bad" })
            local ok, err = pcall(mem.ingest, mem,
                { userId = USER, title = "t", contentText = "x y" })
            assert.is_false(ok)
            assert.matches("^Knowledge ingestion failed: OpenAI embeddings response is not a "
                .. "JSON object", err)
            local c = mem:corpora()[1]
            assert.equal("failed", c.status)
            assert.is_nil(c.embedding_model)
        end)

        it("a corpus of provider embeddings never falls back: the document fails", function()
            local key = "test-key"
            local mem = new_mem(OPENAI, { get_api_key = function()
                return key
            end })
            local first = mem:ingest({ userId = USER, title = "a", contentText = "alpha beta" })
            key = nil
            local ok, err = pcall(mem.ingest, mem, { userId = USER, title = "b",
                                                     contentText = "gamma delta",
                                                     corpusId = first.corpusId })
            assert.is_false(ok)
            assert.matches("Missing OpenAI API key for embeddings (corpus ", err, 1, true)
            assert.matches("holds openai:text-embedding-3-small embeddings; no fallback", err, 1,
                true)
            local corpus = mem:corpus(first.corpusId)
            assert.equal("openai:text-embedding-3-small", corpus.embedding_model)
            for _, d in ipairs({ first.documentId }) do
                for _, row in ipairs(mem:chunks(d)) do
                    assert.equal("openai:text-embedding-3-small", row.embedding_model)
                end
            end
            -- an explicit deterministic model is refused for that corpus too
            key = "test-key"
            ok, err = pcall(mem.ingest, mem, { userId = USER, title = "c", contentText = "x",
                                               corpusId = first.corpusId,
                                               embeddingModel = "rex-lex-v1-1536" })
            assert.is_false(ok)
            assert.matches("cannot add rex-lex-v1-1536 embeddings", err, 1, true)
        end)

        it("a corpus that fell back stays deterministic when the provider is back", function()
            local key
            local mem = new_mem(OPENAI, { get_api_key = function()
                return key
            end })
            local first = mem:ingest({ userId = USER, title = "a", contentText = "alpha beta" })
            key = "test-key"
            local second = mem:ingest({ userId = USER, title = "b", contentText = "gamma",
                                        corpusId = first.corpusId })
            assert.equal("rex-lex-v1-1536", mem:chunks(second.documentId)[1].embedding_model)
            assert.equal(0, #requests())
        end)

        it("a query that cannot be embedded ranks provider corpora by BM25 alone", function()
            local key = "test-key"
            local mem, logs = new_mem(OPENAI, { get_api_key = function()
                return key
            end })
            ingest_all(mem)
            key = nil
            local out = mem:retrieve({ userId = USER, query = "scrypt passwords", topK = 3 })
            assert.equal("Security", out.matches[1].title)
            assert.equal(0, out.matches[1].semanticScore)
            assert.equal(1, out.matches[1].score) -- BM25 / the highest BM25 in scope
            assert.equal("Query embedding failed; ranking by BM25 alone", logs[#logs].msg)
        end)

        it("rankings over provider vectors: cosine, bm25, original", function()
            for _, ranking in ipairs({ "cosine", "bm25", "original", "hybrid" }) do
                local mem = memory.new({ retrieval = OPENAI, get_api_key = key_ok,
                                         http_allowlist = ALLOW, ranking = ranking,
                                         log = function() end })
                ingest_all(mem)
                local out = mem:retrieve({ userId = USER, query = "refund within thirty days",
                                           topK = 3 })
                assert.equal("Refunds", out.matches[1].title, ranking)
                local m = out.matches[1]
                if ranking == "cosine" then
                    assert.equal(m.semanticScore, m.score)
                elseif ranking == "bm25" then
                    assert.equal(m.lexicalScore, m.score)
                elseif ranking == "original" then
                    -- scored in C in float32
                    assert.is_true(math.abs(m.score - (0.7 * m.semanticScore
                        + 0.3 * m.lexicalScore)) < 1e-6)
                else
                    assert.is_true(math.abs(m.score - (0.5 * m.semanticScore
                        + 0.5 * m.lexicalScore)) < 1e-6)
                end
            end
        end)

        it("searches provider and deterministic corpora of one scope together", function()
            local mem = new_mem(OPENAI)
            local a = ingest_all(mem)
            local plain = memory.new({ retrieval = false })
            assert.is_nil(plain.settings.embedding)
            -- a deterministic corpus in the same instance: an explicit model on a new corpus
            local b = mem:ingest({ userId = USER, title = "Lex", scopeType = "workflow",
                                   workflowId = "w9", contentText = "refund desk opening hours",
                                   embeddingModel = "rex-lex-v1-1536" })
            assert.equal("rex-lex-v1-1536", mem:corpus(b.corpusId).embedding_model)
            assert.are_not.equal(a[1].corpusId, b.corpusId)
            local out = mem:retrieve({ userId = USER, query = "refund", topK = 4 })
            assert.equal(4, #out.matches)
            local titles = {}
            for _, m in ipairs(out.matches) do
                titles[m.title] = true
            end
            assert.is_true(titles.Lex and titles.Refunds)
        end)

        it("two provider corpora in scope share one BM25 normalization", function()
            local mem = new_mem(OPENAI)
            mem:ingest({ userId = USER, title = "one", contentText = "refund refund refund" })
            mem:ingest({ userId = USER, title = "two", scopeType = "workflow", workflowId = "w2",
                         contentText = "refund policy for shipping" })
            local out = mem:retrieve({ userId = USER, query = "refund", topK = 2 })
            assert.equal(2, #out.matches)
            local top = 0
            for _, m in ipairs(out.matches) do
                top = math.max(top, m.lexicalScore)
            end
            assert.equal(1, top)
            assert.is_true(out.matches[2].lexicalScore < 1)
        end)
    end)

    describe("reranker", function()
        local RR = { rerankEnabled = true, rerankerProvider = "cohere",
                     rerankerBaseUrl = B .. "/cohere" }

        it("Cohere rerank: {model, query, documents, top_n}, scores by index", function()
            local mem = new_mem(RR)
            ingest_all(mem)
            reset()
            local out = mem:retrieve({ userId = USER, query = "express delivery overnight",
                                       topK = 3 })
            local seen = requests()
            assert.equal(1, #seen)
            assert.equal("/cohere/rerank", seen[1].path)
            assert.equal("rerank-v3.5", seen[1].body.model)
            assert.equal("express delivery overnight", seen[1].body.query)
            assert.equal(#seen[1].body.documents, seen[1].body.top_n)
            local m = out.matches[1]
            assert.equal("Shipping", m.title)
            assert.equal("cohere", m.metadata.reranker)
            assert.equal(1, m.metadata.rerankScore)
            for _, x in ipairs(out.matches) do
                assert.equal("cohere", x.metadata.reranker)
            end
        end)

        it("falls back to the heuristic on an error or without a key", function()
            local mem, logs = new_mem({ rerankEnabled = true, rerankerProvider = "cohere",
                                        rerankerBaseUrl = B .. "/cohere-500" })
            ingest_all(mem)
            local out = mem:retrieve({ userId = USER, query = "refund policy", topK = 2 })
            assert.equal("heuristic", out.matches[1].metadata.reranker)
            assert.equal("Reranker failed; using heuristic reranking", logs[#logs].msg)
            assert.matches("status 500", logs[#logs].fields.error, 1, true)
            mem = new_mem(RR, { get_api_key = function()
                return nil
            end })
            ingest_all(mem)
            out = mem:retrieve({ userId = USER, query = "refund policy", topK = 2 })
            assert.equal("heuristic", out.matches[1].metadata.reranker)
        end)

        it("without rerankEnabled the reranker is not called", function()
            local mem = new_mem({ rerankerProvider = "cohere", rerankerBaseUrl = B .. "/cohere" })
            ingest_all(mem)
            reset()
            local out = mem:retrieve({ userId = USER, query = "refund policy", topK = 2 })
            assert.is_nil(out.matches[1].metadata.reranker)
            assert.equal(0, #requests())
        end)
    end)
end)
