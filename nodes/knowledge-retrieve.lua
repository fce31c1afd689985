-- nodes/knowledge-retrieve.lua: queries the knowledge runtime with one or more retrievers and
-- selects a result by strategy; passes input and adds <outputKey> (default _knowledge) and
-- _knowledgeBranches (rex-behaviour §5.15).
local util = require("rex.util")
local template = require("rex.engine.template")

local null, array, js_string = util.null, util.array, util.js_string
local STRATEGIES = { single = true, merge = true, ["first-non-empty"] = true,
                     ["best-score"] = true, adaptive = true }

local function positive_int(v)
    local n
    if type(v) == "number" then
        n = v
    elseif type(v) == "string" and util.trim(v) ~= "" then
        n = util.js_number(v)
    end
    if not util.is_finite(n) then
        return nil
    end
    n = math.floor(n)
    if n < 1 then
        return nil
    end
    return n
end

local function retrievers_of(config)
    local list = {}
    if util.is_array(config.retrievers) then
        for _, r in ipairs(config.retrievers) do
            if util.is_record(r) then
                local tpl = util.non_empty_string(r.queryTemplate) and r.queryTemplate or nil
                if not tpl and util.non_empty_string(r.queryPath) then
                    tpl = "{{" .. util.trim(r.queryPath) .. "}}"
                end
                if tpl then
                    local tk = positive_int(r.topK)
                    list[#list + 1] = { key = util.non_empty_string(r.key)
                        or ("retriever-" .. (#list + 1)), template = tpl,
                        topK = tk and math.min(tk, 50) or nil }
                end
            end
        end
    end
    return list
end

local function first_score(b)
    local m = b.matches[1]
    if type(m) == "table" and type(m.score) == "number" then
        return m.score
    end
    return -math.huge
end

return {
    type = "knowledge-retrieve",
    version = 1,
    schema = {
        queryTemplate = { type = "any", doc = "query template ({{path}})" },
        queryPath = { type = "any", doc = "dot path of the query in the input" },
        retrievers = { type = "any", doc = "array of {key?, queryTemplate? | queryPath?, topK?}" },
        retrieverKey = { type = "any", doc = "key of the single retriever (default 'default')" },
        fallbackQueryTemplate = { type = "any", doc = "used when a query renders empty" },
        strategy = { type = "any", doc = "single, merge, first-non-empty, best-score, adaptive" },
        topK = { type = "any", doc = "1..50, default 8" },
        minMatches = { type = "any", doc = "0..50, default 0" },
        failOnEmpty = { type = "any", doc = "fail when below minMatches (default false)" },
        failOnError = { type = "any", doc = "fail when a retriever fails (default false)" },
        outputKey = { type = "any", doc = "default _knowledge" },
        setAsPrimary = { type = "any", doc = "also write _knowledge (default: outputKey is it)" },
        scopeType = { type = "any", doc = "user, workflow or execution" },
        workflowIdScope = { type = "any", doc = "workflow id for scope workflow" },
        executionIdScope = { type = "any", doc = "execution id for scope execution" },
        corpusId = { type = "any", doc = "corpus to search (default memory knowledge.activeCorpusId)" },
        speculative = { type = "any", doc = "label only" },
        preferredRetrieverMemoryKey = { type = "any",
                                        doc = "memory key naming the adaptive choice" },
    },
    validate = function(config)
        local errs = {}
        if not util.non_empty_string(config.queryTemplate) and not util.non_empty_string(config.queryPath)
            and #retrievers_of(config) == 0 then
            errs[#errs + 1] = "KnowledgeRetrieveNode requires queryTemplate, queryPath, or retrievers"
        end
        if config.strategy ~= nil and not STRATEGIES[config.strategy] then
            errs[#errs + 1] = "Invalid strategy. Valid: single, merge, first-non-empty, best-score, adaptive"
        end
        if config.topK ~= nil and not positive_int(config.topK) then
            errs[#errs + 1] = "topK must be a positive integer"
        end
        if config.scopeType == "workflow" and not util.non_empty_string(config.workflowIdScope) then
            errs[#errs + 1] = "workflowIdScope is required when scopeType is workflow"
        end
        if config.scopeType == "execution" and not util.non_empty_string(config.executionIdScope) then
            errs[#errs + 1] = "executionIdScope is required when scopeType is execution"
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        if not ctx:has_retrieval() then
            return nil, "KnowledgeRetrieveNode requires retrieveKnowledge runtime support"
        end
        local strategy = STRATEGIES[config.strategy] and config.strategy or "single"
        local topk = math.min(positive_int(config.topK) or 8, 50)
        local mm = util.js_number(config.minMatches)
        local min_matches = util.is_finite(mm) and math.max(0, math.min(50, math.floor(mm))) or 0
        local fail_on_empty = util.bool_like(config.failOnEmpty, false)
        local fail_on_error = util.bool_like(config.failOnError, false)
        local output_key = util.non_empty_string(config.outputKey) and config.outputKey or "_knowledge"
        local set_primary = util.bool_like(config.setAsPrimary, output_key == "_knowledge")
        local speculative = util.bool_like(config.speculative, false)
        local rets = retrievers_of(config)
        if #rets == 0 then
            local tpl = util.non_empty_string(config.queryTemplate) and config.queryTemplate
                or ("{{" .. (util.non_empty_string(config.queryPath) or "query") .. "}}")
            rets[1] = { key = util.non_empty_string(config.retrieverKey) or "default",
                        template = tpl }
        end
        local corpus = util.non_empty_string(config.corpusId)
            or ctx:get_memory("knowledge.activeCorpusId")
        if corpus == null then
            corpus = nil
        end
        local scope = config.scopeType
        local branches = {}
        for i, r in ipairs(rets) do
            local q = util.trim(template.knowledge_retrieve(r.template, input))
            if q == "" and util.non_empty_string(config.fallbackQueryTemplate) then
                q = util.trim(template.knowledge_retrieve(config.fallbackQueryTemplate, input))
            end
            if q == "" then
                if fail_on_error then
                    return nil, ('Retriever "%s" produced an empty query'):format(r.key)
                end
            else
                local btopk = r.topK or topk
                local req = { query = q, topK = btopk, corpusId = corpus, scopeType = scope,
                              retrieverKey = r.key, retrievalStrategy = strategy,
                              branchIndex = i - 1 }
                if scope == "workflow" then
                    req.workflowIdScope = util.non_empty_string(config.workflowIdScope)
                        or ctx.workflow_id
                elseif scope == "execution" then
                    req.executionIdScope = util.non_empty_string(config.executionIdScope)
                        or ctx.execution_id
                end
                local ok, res = pcall(ctx.retrieve_knowledge, ctx, req)
                if ok then
                    local matches = type(res.matches) == "table" and res.matches or array()
                    branches[#branches + 1] = { key = r.key, query = q, topK = btopk,
                                                matches = matches, error = null }
                else
                    local msg = util.sanitize(res)
                    if fail_on_error then
                        return nil, ('Retriever "%s" failed: %s'):format(r.key, msg)
                    end
                    branches[#branches + 1] = { key = r.key, query = q, topK = btopk,
                                                matches = array(), error = msg }
                end
            end
        end
        local out = util.shallow_copy(input)
        if #branches == 0 then
            if fail_on_empty then
                return nil, "Knowledge retrieval produced no queryable branches"
            end
            out[output_key] = { query = "", topK = topk, matches = array(),
                                orchestration = { strategy = strategy, speculative = false,
                                                  retrieversTried = array(), branchCount = 0 } }
            return out
        end
        local selected
        if strategy == "merge" then
            local lists = {}
            for i, b in ipairs(branches) do
                lists[i] = b.matches
            end
            local merged = require("rex.engine.retrieval").merge_matches(lists, branches[1].topK)
            local qs = {}
            for i, b in ipairs(branches) do
                qs[i] = b.query
            end
            selected = { key = "merged", query = table.concat(qs, " || "), topK = branches[1].topK,
                         matches = merged }
        elseif strategy == "first-non-empty" then
            for _, b in ipairs(branches) do
                if #b.matches >= 1 then
                    selected = b
                    break
                end
            end
            selected = selected or branches[1]
        elseif strategy == "best-score" then
            selected = branches[1]
            for i = 2, #branches do
                if first_score(branches[i]) > first_score(selected) then
                    selected = branches[i]
                end
            end
        elseif strategy == "adaptive" then
            local mk = util.non_empty_string(config.preferredRetrieverMemoryKey)
                or "routing.preferredRetriever"
            local pref = ctx:get_memory(mk)
            if util.truthy(pref) then
                for _, b in ipairs(branches) do
                    if b.key == pref then
                        selected = b
                        break
                    end
                end
            end
            if not selected then
                for _, b in ipairs(branches) do
                    if #b.matches >= 1 then
                        selected = b
                        break
                    end
                end
                selected = selected or branches[1]
            end
        else
            selected = branches[1]
        end
        if #selected.matches < min_matches and fail_on_empty then
            return nil, ("Knowledge retrieval returned %d matches, below minMatches=%d"):format(
                #selected.matches, min_matches)
        end
        local tried, summary = array(), array()
        for i, b in ipairs(branches) do
            tried[i] = b.key
            summary[i] = { key = b.key, query = b.query, topK = b.topK, matchesCount = #b.matches,
                           error = b.error }
        end
        local payload = { query = selected.query, topK = selected.topK, matches = selected.matches,
                          orchestration = { strategy = strategy, speculative = speculative,
                                            retrieversTried = tried,
                                            selectedRetrieverKey = selected.key,
                                            branchCount = #branches } }
        out[output_key] = payload
        if set_primary and output_key ~= "_knowledge" then
            out._knowledge = payload
        end
        out._knowledgeBranches = summary
        return out, { contextPatch = { knowledge = { ["retrieval." .. ctx.node_id] = {
            strategy = strategy, selectedRetrieverKey = selected.key, branchCount = #branches,
            matchesCount = #selected.matches, timestamp = util.now_iso() } } } }
    end,
}
