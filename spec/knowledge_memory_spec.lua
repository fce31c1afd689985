-- rex.knowledge.memory: the in-memory runtime behind `rex-worker run` (rex-behaviour 6.5-6.7).
local memory = require("rex.knowledge.memory")

local DOC = "# Refund Policy\nCustomers may request a refund within 30 days of purchase.\f"
    .. "SHIPPING RULES\nOrders ship within 2 business days. Express shipping costs extra.\f"
    .. "WARRANTY\nHardware carries a one year limited warranty covering defects."

local function ids()
    local n = 0
    return function()
        n = n + 1
        return ("00000000-0000-4000-8000-%012d"):format(n)
    end
end

local function new(opts)
    opts = opts or {}
    opts.new_id = opts.new_id or ids()
    local t = 1700000000000
    opts.now = function()
        t = t + 1
        return t
    end
    return memory.new(opts)
end

local NIL = {} -- removes a default parameter

local function apply(p, extra)
    for k, v in pairs(extra or {}) do
        if v == NIL then
            p[k] = nil
        else
            p[k] = v
        end
    end
    return p
end

local function ingest_params(extra)
    local p = {
        executionId = "exec-1", workflowId = "wf-1", userId = "user-1", nodeId = "ingest",
        nodeType = "knowledge-ingest", title = "Refund policy", contentText = DOC,
        sourceType = "inline", scopeType = "workflow", workflowIdScope = "wf-1", metadata = {},
    }
    return apply(p, extra)
end

local function query_params(extra)
    local p = {
        executionId = "exec-1", workflowId = "wf-1", userId = "user-1", nodeId = "retrieve",
        nodeType = "knowledge-retrieve", query = "how many days for a refund", topK = 3,
        scopeType = "workflow", workflowIdScope = "wf-1",
    }
    return apply(p, extra)
end

describe("rex.knowledge.memory", function()
    it("ingests into a new workflow-scope corpus with the original's rows", function()
        local mem = new()
        local r = mem:ingest(ingest_params())
        assert.same({ corpusId = r.corpusId, documentId = r.documentId, chunkCount = 3,
            status = "ready" }, r)
        local c = mem:corpus(r.corpusId)
        assert.equal("workflow", c.scope_type)
        assert.equal("wf-1", c.workflow_id)
        assert.is_nil(c.execution_id)
        assert.equal("ready", c.status)
        assert.matches("^Runtime Corpus %d%d%d%d%-%d%d%-%d%dT", c.name)
        assert.same({ runtimeIngestion = true, executionId = "exec-1" }, c.metadata)
        local d = mem:document(r.documentId)
        assert.same({ "ready", "inline", "Refund policy", DOC },
            { d.status, d.source_type, d.title, d.content_text })
        local rows = mem:chunks(r.documentId)
        assert.equal(3, #rows)
        local want = {
            { 0, 1, "Refund Policy", 0, 74, 19 },
            { 1, 2, "SHIPPING RULES", 75, 155, 20 },
            { 2, 3, "WARRANTY", 156, 227, 18 },
        }
        for i, w in ipairs(want) do
            local row = rows[i]
            assert.same(w, { row.chunk_index, row.page_number, row.section_path,
                row.metadata.start, row.metadata["end"], row.token_count })
            assert.is_true(row.metadata.runtimeIngestion)
            assert.equal("rex-lex-v1-1536", row.embedding_model)
            assert.equal(1536, #mem:embedding(row))
        end
        assert.equal("# Refund Policy Customers may request a refund within 30 days of purchase.",
            rows[1].content)
    end)

    it("retrieves with the original's match shape, best chunk first", function()
        local mem = new()
        local r = mem:ingest(ingest_params())
        local res = mem:retrieve(query_params())
        assert.equal("how many days for a refund", res.query)
        assert.equal(3, res.topK)
        assert.equal(3, #res.matches)
        local m = res.matches[1]
        assert.equal(r.corpusId, m.corpusId)
        assert.equal(r.documentId, m.documentId)
        assert.equal(0, m.chunkIndex)
        assert.equal("Refund policy", m.title)
        assert.equal("inline", m.sourceType)
        assert.equal(mem:chunks(r.documentId)[1].id, m.chunkId)
        assert.equal("Refund Policy", m.metadata.sectionPath)
        assert.equal(1, m.metadata.pageNumber)
        assert.equal(m.semanticScore, m.metadata.semanticScore)
        assert.equal(m.lexicalScore, m.metadata.lexicalScore)
        assert.equal(0, m.metadata.start)
        assert.is_true(m.score > res.matches[2].score)
        assert.is_true(res.matches[2].score >= res.matches[3].score)
    end)

    it("clamps topK to 1..50 and refuses empty and overlong queries", function()
        local mem = new()
        mem:ingest(ingest_params())
        assert.equal(1, mem:retrieve(query_params({ topK = 0 })).topK)
        assert.equal(50, mem:retrieve(query_params({ topK = 500 })).topK)
        assert.equal(2, #mem:retrieve(query_params({ topK = "2.9" })).matches)
        assert.equal(8, mem:retrieve(query_params({ topK = NIL })).topK)
        assert.has_error(function()
            mem:retrieve(query_params({ query = "  " }))
        end, "Knowledge query is empty")
        assert.has_error(function()
            mem:retrieve(query_params({ query = ("x"):rep(8193) }))
        end, "Knowledge query is longer than 8192 bytes")
    end)

    it("scopes queries by user, corpus, workflow and execution", function()
        local mem = new()
        local wf = mem:ingest(ingest_params())
        local ex = mem:ingest(ingest_params({ scopeType = "execution", executionIdScope = "exec-1",
            contentText = "Execution notes: refunds take 30 days." }))
        local us = mem:ingest(ingest_params({ scopeType = NIL, contentText = "User note: refund." }))
        assert.is_true(wf.corpusId ~= ex.corpusId and ex.corpusId ~= us.corpusId)
        assert.equal("user", mem:corpus(us.corpusId).scope_type)
        local function corpora(extra)
            local seen = {}
            for _, m in ipairs(mem:retrieve(query_params(extra)).matches) do
                seen[m.corpusId] = true
            end
            return seen
        end
        assert.same({ [wf.corpusId] = true }, corpora())
        assert.same({ [ex.corpusId] = true },
            corpora({ scopeType = "execution", executionIdScope = "exec-1" }))
        assert.same({}, corpora({ scopeType = "execution", executionIdScope = "exec-2" }))
        assert.same({ [us.corpusId] = true }, corpora({ scopeType = "user", workflowIdScope = NIL }))
        assert.same({ [wf.corpusId] = true, [ex.corpusId] = true, [us.corpusId] = true },
            corpora({ scopeType = NIL, workflowIdScope = NIL, topK = 10 }))
        assert.same({ [ex.corpusId] = true }, corpora({ scopeType = NIL, workflowIdScope = NIL, corpusId = ex.corpusId }))
        assert.same({}, corpora({ userId = "someone-else", scopeType = NIL }))
        -- the same scope reuses its corpus; a foreign corpusId is refused
        local again = mem:ingest(ingest_params({ contentText = "More policy text." }))
        assert.equal(wf.corpusId, again.corpusId)
        assert.has_error(function()
            mem:ingest(ingest_params({ userId = "someone-else", corpusId = wf.corpusId }))
        end, "Specified corpusId was not found or is not accessible")
    end)

    it("reads content or text and defaults the title", function()
        local mem = new()
        local r = mem:ingest(ingest_params({ contentText = NIL, content = "From content.",
            title = "   " }))
        assert.equal("From content.", mem:document(r.documentId).content_text)
        assert.equal("Runtime Document", mem:document(r.documentId).title)
        r = mem:ingest(ingest_params({ contentText = NIL, text = "  From text.  " }))
        assert.equal("From text.", mem:document(r.documentId).content_text)
        r = mem:ingest(ingest_params({ title = ("t"):rep(300) }))
        assert.equal(255, #mem:document(r.documentId).title)
    end)

    it("fails empty and invalid content clearly, and recomputes corpus status", function()
        local mem = new()
        assert.has_error(function()
            mem:ingest(ingest_params({ contentText = " \n " }))
        end, "Knowledge ingestion content is empty")
        -- the corpus created for it is not left `ingesting`
        local c = mem:corpora()[1]
        assert.equal("ready", c.status)
        local ok, err = pcall(mem.ingest, mem, ingest_params({ contentText = "bad \255 bytes" }))
        assert.is_false(ok)
        assert.matches("^Knowledge ingestion failed: content is not valid UTF%-8", err)
        assert.equal("failed", c.status)
        local failed
        for _, d in pairs({ mem:document("00000000-0000-4000-8000-000000000002") }) do
            failed = d
        end
        assert.equal("failed", failed.status)
        -- a failed corpus is invisible; deleting the failed document brings it back
        mem:ingest(ingest_params())
        assert.equal("failed", c.status)
        assert.equal(0, #mem:retrieve(query_params()).matches)
        assert.is_true(mem:delete_document(failed.id))
        assert.equal("ready", c.status)
        assert.equal(3, #mem:retrieve(query_params()).matches)
    end)

    it("invalidates the cached corpus on ingestion and deletion", function()
        local mem = new()
        local r = mem:ingest(ingest_params())
        mem:retrieve(query_params())
        mem:retrieve(query_params())
        local s = mem:stats()
        assert.equal(1, s.cacheHits)
        assert.equal(1, s.cacheEntries)
        local r2 = mem:ingest(ingest_params({ title = "Refund times",
            contentText = "Refunds are paid within 5 days of the refund request." }))
        local res = mem:retrieve(query_params({ topK = 10 }))
        assert.equal(4, #res.matches)
        local docs = {}
        for _, m in ipairs(res.matches) do
            docs[m.documentId] = true
        end
        assert.is_true(docs[r2.documentId])
        mem:delete_document(r.documentId)
        assert.equal(1, #mem:retrieve(query_params({ topK = 10 })).matches)
        mem:delete_corpus(r.corpusId)
        assert.equal(0, #mem:retrieve(query_params({ topK = 10 })).matches)
        assert.equal(0, mem:stats().cacheEntries)
    end)

    it("reproduces the original's scores with rex-hash-v1 and the original ranking", function()
        local mem = new({ model = "rex-hash-v1-1536", ranking = "original" })
        mem:ingest(ingest_params())
        local m = mem:retrieve(query_params()).matches
        -- the original's persisted match (w2-oracle-knowledge): float32 vs its float64 vectors
        assert.is_true(math.abs(m[1].semanticScore - -0.031244777902449842) < 1e-6)
        assert.is_true(math.abs(m[1].lexicalScore - 0.4) < 1e-6)
        assert.is_true(math.abs(m[1].score - 0.09812865546828511) < 1e-6)
        assert.equal(0, m[1].chunkIndex)
        assert.is_true(math.abs(m[2].lexicalScore - 0.2) < 1e-6)
    end)

    it("reranks with the heuristic reranker when enabled", function()
        local mem = new({ rerank = true })
        mem:ingest(ingest_params())
        local m = mem:retrieve(query_params()).matches
        assert.equal("heuristic", m[1].metadata.reranker)
        assert.equal(0.4, m[1].metadata.rerankScore)
        assert.is_true(m[1].score >= m[2].score)
    end)

    it("refuses to mix embedding models in one corpus", function()
        local mem = new()
        local r = mem:ingest(ingest_params())
        local ok, err = pcall(mem.ingest, mem, ingest_params({ corpusId = r.corpusId,
            embeddingModel = "rex-hash-v1-1536" }))
        assert.is_false(ok)
        assert.matches("holds rex%-lex%-v1%-1536 embeddings", err)
    end)
end)
