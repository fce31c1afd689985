-- Node-level retrieval (`config.retrieval`, rex-behaviour §4.9) and the node-context retrieval
-- call (§4.10), against an in-spec knowledge runtime.
local H = require("spec.support.engine_helper")
local rex = require("rex")
local null = H.null

local function m(id, score)
    return { chunkId = id, score = score, corpusId = "c", documentId = "d", content = id }
end

local probe = { type = "probe", schema = {}, execute = function(ctx, input)
    return rex.merge(input)
end }

local function run(retrieval, kr, opts)
    opts = opts or {}
    local e = H.engine({ probe })
    local wf = H.wf({ { "n1", "probe", { retrieval = retrieval } } })
    opts.runtime = { retrieve_knowledge = kr.retrieve_knowledge }
    return H.run(e, wf, opts)
end

describe("node-level retrieval", function()
    it("first-non-empty selects the downstream retriever (§8 #5)", function()
        local kr = H.fake_knowledge({ ["q-hit"] = { m("c1", 0.9) } })
        local res, rec = run({ strategy = "first-non-empty", retrievers = {
            { key = "lexical", query = "q-empty" }, { key = "semantic", query = "q-hit" } } }, kr)
        assert.equal("completed", res.status)
        local k = res.steps[1].output._knowledge
        assert.equal("first-non-empty", k.orchestration.strategy)
        assert.equal("semantic", k.orchestration.selectedRetrieverKey)
        assert.same({ "lexical", "semantic" }, { kr.calls[1].retrieverKey, kr.calls[2].retrieverKey })
        assert.same({ 1, 2 }, { kr.calls[1].branchIndex, kr.calls[2].branchIndex })
        local found = false
        for _, ev in ipairs(rec.events) do
            if ev.retrieverKey == "semantic" and ev.status == "success" then
                found = true
                assert.is_true(ev.selected)
            end
        end
        assert.is_true(found)
        assert.equal("empty", rec.events[1].status)
        assert.is_false(rec.events[1].selected)
        assert.equal(1, res.context.retrieval.totalEmpties)
        assert.equal(1, res.context.retrieval.totalSuccesses)
        local snap = res.context.knowledge["retrieval.n1"]
        assert.equal(1, #snap.matches)
        assert.equal("c1", snap.matches[1].chunkId)
        assert.equal(1, res.steps[1].input._knowledge and #res.steps[1].input._knowledge.matches)
    end)

    it("merge combines branches with dedupe by chunkId, highest score kept (§8 #6)", function()
        local kr = H.fake_knowledge({ qa = { m("c-shared", 0.6), m("c-a-only", 0.55) },
                                      qb = { m("c-shared", 0.91), m("c-b-only", 0.8) } })
        local res = run({ strategy = "merge", speculative = true, topK = 3, retrievers = {
            { key = "a", query = "qa" }, { key = "b", query = "qb" } } }, kr)
        local k = res.steps[1].output._knowledge
        assert.equal("merge", k.orchestration.strategy)
        assert.equal(2, k.orchestration.branchCount)
        assert.equal(3, #k.matches)
        assert.equal("c-shared", k.matches[1].chunkId)
        assert.equal(0.91, k.matches[1].score)
        assert.equal("qa || qb", k.query)
        assert.is_nil(k.orchestration.selectedRetrieverKey)
    end)

    it("adaptive prefers the retriever named in memory (§8 #7)", function()
        local kr = H.fake_knowledge({ qd = { m("c1", 0.5) } })
        local res = run({ strategy = "adaptive", preferredRetrieverMemoryKey = "routing.preferredRetriever",
                          retrievers = { { key = "lexical", query = "ql" }, { key = "dense", query = "qd" } } },
            kr, { initial_context = { memory = { ["routing.preferredRetriever"] = "dense" } } })
        assert.equal("dense", kr.calls[1].retrieverKey)
        local k = res.steps[1].output._knowledge
        assert.equal("adaptive", k.orchestration.strategy)
        assert.equal("dense", k.orchestration.selectedRetrieverKey)
    end)

    it("fails a single retriever on an empty corpus with the defaults", function()
        local kr = H.fake_knowledge({})
        local res = run({ query = "nothing here" }, kr)
        assert.equal("failed", res.status)
        assert.equal('Node "n1" (probe) failed: Retrieval returned 0 matches for retriever "primary", '
            .. "below required minMatches=1", res.errorMessage)
        assert.equal(null, res.steps[1].output) -- failed before the attempt loop
    end)

    it("passes an empty result with failOnError false or minMatches 0", function()
        local kr = H.fake_knowledge({})
        local res = run({ query = "q", failOnError = false, injectAs = "kb" }, kr)
        assert.equal("completed", res.status)
        assert.equal(0, #res.steps[1].output.kb.matches)
        local res2 = run({ query = "q", minMatches = 0 }, H.fake_knowledge({}))
        assert.equal("completed", res2.status)
    end)

    it("renders queryTemplate with the engine rule, retries, then the fallback query", function()
        local kr = H.fake_knowledge({ ["fallback q"] = { m("c9", 0.4) } },
            { fail = { ["ask about refunds"] = "store offline" } })
        local res, rec = run({ queryTemplate = "ask about {{topic}}", maxRetries = 1,
                               fallbackQuery = "fallback q" }, kr, { payload = { topic = "refunds" } })
        assert.equal("completed", res.status)
        assert.same({ "ask about refunds", "ask about refunds", "fallback q" },
            { kr.calls[1].query, kr.calls[2].query, kr.calls[3].query })
        assert.same({ "failed", "failed", "success" }, { rec.events[1].status, rec.events[2].status,
                                                         rec.events[3].status })
        assert.equal("store offline", rec.events[1].errorMessage)
        assert.equal(2, res.context.retrieval.totalFailures)
        assert.equal(3, res.context.retrieval.totalRequests)
    end)

    it("reports no resolvable query", function()
        local res = run({ queryTemplate = "{{missing}}", preferredRetrieverMemoryKey = "pref" },
            H.fake_knowledge({}), { initial_context = { memory = { pref = "x" } } })
        assert.equal("failed", res.status)
        -- {{missing}} is kept by the engine template rule, so the query is the placeholder itself
        local res2 = run({ query = "   " }, H.fake_knowledge({}), { initial_context = {
            memory = { pref = "x" } } })
        assert.equal('Node "n1" (probe) failed: Retrieval enabled but no query or queryTemplate '
            .. "resolved for node", res2.errorMessage)
        local _ = res
    end)

    it("stops at the budget with a failed event and no counter change", function()
        local kr = H.fake_knowledge({ q = { m("c1", 1) } })
        local res, rec = run({ query = "q" }, kr, { initial_context = { retrieval = {
            totalRequests = 5, maxRequests = 5 } } })
        assert.equal("failed", res.status)
        assert.matches("Retrieval budget exceeded: maxRequests reached %(5%)", res.errorMessage)
        assert.equal(1, #rec.events)
        assert.equal("failed", rec.events[1].status)
        assert.equal(0, rec.events[1].durationMs)
        assert.equal(5, res.context.retrieval.totalRequests)
        assert.equal(0, #kr.calls)
    end)

    it("best-score picks the highest first match and drops matches below minScore", function()
        local kr = H.fake_knowledge({ a = { m("x", 0.4) }, b = { m("y", 0.7), m("z", 0.1) } })
        local res = run({ strategy = "best-score", minScore = 0.2, retrievers = {
            { key = "a", query = "a" }, { key = "b", query = "b" } } }, kr)
        local k = res.steps[1].output._knowledge
        assert.equal("b", k.orchestration.selectedRetrieverKey)
        assert.equal(1, #k.matches)
    end)

    it("names retrievers retriever_<n> and renames duplicates", function()
        local kr = H.fake_knowledge({ q1 = { m("c", 1) } })
        run({ strategy = "merge", retrievers = { { query = "q0" }, { key = "k", query = "q1" },
                                                 { key = "k", query = "q2" },
                                                 { key = "off", query = "x", enabled = false } } }, kr)
        assert.same({ "retriever_1", "k", "k_2" }, { kr.calls[1].retrieverKey,
                                                     kr.calls[2].retrieverKey, kr.calls[3].retrieverKey })
    end)

    it("scopes workflow/execution retrieval to the current ids", function()
        local kr = H.fake_knowledge({ q = { m("c", 1) } })
        run({ query = "q", scopeType = "workflow" }, kr)
        assert.equal("workflow", kr.calls[1].scopeType)
        assert.equal("wf-1", kr.calls[1].workflowIdScope)
        run({ query = "q", scopeType = "execution" }, kr)
        assert.equal("exec-1", kr.calls[2].executionIdScope)
        assert.equal("single", kr.calls[2].retrievalStrategy)
    end)
end)

describe("node-context retrieval", function()
    it("checks the budget before the request and emits one selected event", function()
        local got
        local n = { type = "asker", schema = {}, execute = function(ctx, input)
            got = ctx:retrieve_knowledge({ query = "q", topK = 99.7, scopeType = "workflow",
                                           retrievalStrategy = "custom", branchIndex = 3 })
            return { n = #got.matches }
        end }
        local kr = H.fake_knowledge({ q = { m("c", 1) } })
        local res, rec = H.run(H.engine({ n }), H.wf({ { "a", "asker" } }),
            { runtime = { retrieve_knowledge = kr.retrieve_knowledge } })
        assert.equal("completed", res.status)
        assert.equal(50, kr.calls[1].topK)
        assert.equal("wf-1", kr.calls[1].workflowIdScope)
        assert.equal(1, #rec.events)
        assert.is_true(rec.events[1].selected)
        assert.equal("custom", rec.events[1].strategy)
        local res2 = H.run(H.engine({ n }), H.wf({ { "a", "asker" } }),
            { runtime = { retrieve_knowledge = kr.retrieve_knowledge },
              initial_context = { retrieval = { totalFailures = 1, maxFailures = 1 } } })
        assert.equal('Node "a" (asker) failed: Retrieval limit reached before request: '
            .. "maxFailures reached (1)", res2.errorMessage)
    end)
end)
