-- knowledge-retrieve and knowledge-ingest (rex-behaviour §5.15, §5.16) against an in-spec
-- knowledge runtime.
local H = require("spec.support.engine_helper")

local function m(id, score)
    return { chunkId = id, score = score, content = id }
end

describe("knowledge-retrieve", function()
    it("runs every branch and selects per strategy", function()
        local kr = H.fake_knowledge({ a = { m("x", 0.2) }, b = { m("y", 0.9), m("x", 0.5) } })
        local out, res, rec = H.node("knowledge-retrieve", { strategy = "best-score", retrievers = {
            { key = "one", queryTemplate = "{{qa}}" }, { queryPath = "qb", topK = 2 } } },
            { qa = "a", qb = "b" }, { runtime = { retrieve_knowledge = kr.retrieve_knowledge } })
        assert.equal("completed", res.status)
        assert.equal("retriever-2", out._knowledge.orchestration.selectedRetrieverKey)
        assert.same({ "one", "retriever-2" }, out._knowledge.orchestration.retrieversTried)
        assert.same({ 0, 1 }, { kr.calls[1].branchIndex, kr.calls[2].branchIndex })
        assert.equal(2, kr.calls[2].topK)
        assert.equal(2, #rec.events)
        assert.is_true(rec.events[1].selected)
        assert.equal(2, #out._knowledgeBranches)
        assert.equal("best-score", res.context.knowledge["retrieval.n"].strategy)
    end)

    it("merges with dedupe, uses memory corpus and adaptive preference", function()
        local kr = H.fake_knowledge({ a = { m("x", 0.2) }, b = { m("x", 0.9), m("z", 0.1) } })
        local out = H.node("knowledge-retrieve", { strategy = "merge", retrievers = {
            { key = "a", queryTemplate = "a" }, { key = "b", queryTemplate = "b" } } }, {},
            { runtime = { retrieve_knowledge = kr.retrieve_knowledge },
              initial_context = { memory = { ["knowledge.activeCorpusId"] = "corp" } } })
        assert.equal("merged", out._knowledge.orchestration.selectedRetrieverKey)
        assert.equal(2, #out._knowledge.matches)
        assert.equal(0.9, out._knowledge.matches[1].score)
        assert.equal("corp", kr.calls[1].corpusId)
        local o2 = H.node("knowledge-retrieve", { strategy = "adaptive", retrievers = {
            { key = "a", queryTemplate = "a" }, { key = "b", queryTemplate = "b" } } }, {},
            { runtime = { retrieve_knowledge = kr.retrieve_knowledge },
              initial_context = { memory = { ["routing.preferredRetriever"] = "b" } } })
        assert.equal("b", o2._knowledge.orchestration.selectedRetrieverKey)
    end)

    it("renders objects as JSON in queries and records branch errors", function()
        local kr = H.fake_knowledge({}, { fail = { ['{"k":1}'] = "index offline" } })
        local out = H.node("knowledge-retrieve", { queryTemplate = "{{obj}}", outputKey = "kb" },
            { obj = { k = 1 } }, { runtime = { retrieve_knowledge = kr.retrieve_knowledge } })
        assert.equal('{"k":1}', kr.calls[1].query)
        assert.equal("index offline", out._knowledgeBranches[1].error)
        assert.equal(0, #out.kb.matches)
        assert.is_nil(out._knowledge) -- setAsPrimary defaults to outputKey == "_knowledge"
        local o3 = H.node("knowledge-retrieve", { queryTemplate = "q", outputKey = "kb",
                                                  setAsPrimary = true }, {},
            { runtime = { retrieve_knowledge = kr.retrieve_knowledge } })
        assert.same(o3.kb, o3._knowledge)
        local _, res = H.node("knowledge-retrieve", { queryTemplate = "{{obj}}", failOnError = true },
            { obj = { k = 1 } }, { runtime = { retrieve_knowledge = kr.retrieve_knowledge } })
        assert.equal('Node "n" (knowledge-retrieve) failed: Retriever "default" failed: index offline',
            res.errorMessage)
    end)

    it("requires the runtime and validates its config", function()
        local _, res = H.node("knowledge-retrieve", { queryPath = "q" }, { q = "x" })
        assert.equal('Node "n" (knowledge-retrieve) failed: KnowledgeRetrieveNode requires '
            .. "retrieveKnowledge runtime support", res.errorMessage)
        assert.same({ "KnowledgeRetrieveNode requires queryTemplate, queryPath, or retrievers",
                      "Invalid strategy. Valid: single, merge, first-non-empty, best-score, adaptive",
                      "topK must be a positive integer",
                      "workflowIdScope is required when scopeType is workflow" },
            H.problems("knowledge-retrieve", { strategy = "x", topK = 0, scopeType = "workflow" }))
    end)
end)

describe("knowledge-ingest", function()
    it("ingests documents from a path, reading contentText, content or text (decision)", function()
        local kr = H.fake_knowledge({})
        local docs = H.json.decode('[{"contentText":"one","title":"T1"},{"content":"two"},'
            .. '{"text":"three","name":"N3"},{"other":1},"  plain  "]')
        local out, res = H.node("knowledge-ingest", { documentsPath = "docs", scopeType = "execution",
                                                      executionIdScope = "e9" }, { docs = docs },
            { runtime = { ingest_knowledge = kr.ingest_knowledge } })
        assert.equal("completed", res.status)
        assert.equal(4, out._knowledgeIngestion.ingestedCount)
        assert.same({ "one", "two", "three", "plain" }, { kr.ingested[1].contentText,
            kr.ingested[2].contentText, kr.ingested[3].contentText, kr.ingested[4].contentText })
        assert.same({ "T1", "Runtime Document #2", "N3", "Runtime Document #5" },
            { kr.ingested[1].title, kr.ingested[2].title, kr.ingested[3].title, kr.ingested[4].title })
        assert.equal("e9", kr.ingested[1].executionIdScope)
        assert.equal("corpus-1", res.context.memory["knowledge.activeCorpusId"])
    end)

    it("ingests one templated document, or reports nothing found", function()
        local kr = H.fake_knowledge({})
        local out = H.node("knowledge-ingest", { contentTemplate = " {{a}} and {{b}} ",
                                                 titleTemplate = "{{missing}}" }, { a = "x", b = { y = 1 } },
            { runtime = { ingest_knowledge = kr.ingest_knowledge } })
        assert.equal('x and {"y":1}', kr.ingested[1].contentText)
        assert.equal("Runtime Document", kr.ingested[1].title)
        assert.equal(1, out._knowledgeIngestion.ingestedCount)
        local o2 = H.node("knowledge-ingest", { contentPath = "nothing" }, {},
            { runtime = { ingest_knowledge = kr.ingest_knowledge } })
        assert.is_true(o2._knowledgeIngestion.skipped)
        local _, res = H.node("knowledge-ingest", { contentPath = "nothing", required = true }, {},
            { runtime = { ingest_knowledge = kr.ingest_knowledge } })
        assert.equal('Node "n" (knowledge-ingest) failed: KnowledgeIngestNode: no ingestable documents found in input',
            res.errorMessage)
        assert.same({ "sourceType must be one of: upload, inline, api",
                      "required=true but no document extractor is configured (documentsPath/contentPath/contentTemplate)" },
            H.problems("knowledge-ingest", { sourceType = "fax", required = true }))
    end)
end)
