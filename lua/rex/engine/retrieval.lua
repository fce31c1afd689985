-- rex.engine.retrieval: node-level retrieval (`config.retrieval` on any node, rex-behaviour §4.9)
-- and the node-context retrieval call (§4.10).
local util = require("rex.util")
local template = require("rex.engine.template")

local type, ipairs, tostring, pcall = type, ipairs, tostring, pcall
local floor, min, max = math.floor, math.min, math.max
local null, array = util.null, util.array
local non_empty_string, bool_like, is_record = util.non_empty_string, util.bool_like, util.is_record
local trim, is_finite = util.trim, util.is_finite

local M = {}

-- Matches of several retrievals merged: one per chunk id (the higher score wins; matches without
-- an id are kept as they are), ordered by score, ties in first-seen order, at most `limit`.
-- Shared by node-level retrieval (strategy "merge") and the knowledge-retrieve node.
function M.merge_matches(lists, limit)
    local by_chunk, list = {}, {}
    for _, matches in ipairs(lists) do
        for _, m in ipairs(matches) do
            local id = type(m) == "table" and m.chunkId or nil
            local prev = id ~= nil and by_chunk[id] or nil
            if prev then
                if (m.score or 0) > (list[prev].score or 0) then
                    list[prev] = m
                end
            else
                list[#list + 1] = m
                if id ~= nil then
                    by_chunk[id] = #list
                end
            end
        end
    end
    local idx = {}
    for i = 1, #list do
        idx[i] = i
    end
    table.sort(idx, function(a, b)
        local sa, sb = list[a].score or 0, list[b].score or 0
        if sa ~= sb then
            return sa > sb
        end
        return a < b
    end)
    local merged = util.array()
    for i = 1, math.min(limit, #idx) do
        merged[i] = list[idx[i]]
    end
    return merged
end

local function int_field(v, lo, cap, default)
    if type(v) == "number" and v == floor(v) and is_finite(v) and v >= lo then
        return min(v, cap)
    end
    return default
end

local function string_field(v, fallback)
    if type(v) == "string" then
        return v
    end
    return fallback
end

-- Query config fields (per retriever with the base as fallback).
local function parse_query_config(src, base)
    base = base or {}
    local q = {}
    q.query = string_field(src.query, base.query)
    q.queryTemplate = string_field(src.queryTemplate, base.queryTemplate)
    q.fallbackQuery = string_field(src.fallbackQuery, base.fallbackQuery)
    q.fallbackQueryTemplate = string_field(src.fallbackQueryTemplate, base.fallbackQueryTemplate)
    q.queryMaxChars = int_field(src.queryMaxChars, 1, 10000, base.queryMaxChars or 2000)
    q.topK = int_field(src.topK, 1, 50, base.topK or 8)
    q.maxRetries = int_field(src.maxRetries, 0, 5, base.maxRetries or 0)
    if type(src.retryDelayMs) == "number" and is_finite(src.retryDelayMs) and src.retryDelayMs >= 0 then
        q.retryDelayMs = min(floor(src.retryDelayMs), 10000)
    else
        q.retryDelayMs = base.retryDelayMs or 0
    end
    q.minMatches = int_field(src.minMatches, 0, 50, base.minMatches or 1)
    if type(src.minScore) == "number" and is_finite(src.minScore) then
        q.minScore = max(-1, min(1, src.minScore))
    else
        q.minScore = base.minScore
    end
    if type(src.failOnError) == "boolean" then
        q.failOnError = src.failOnError
    elseif base.failOnError ~= nil then
        q.failOnError = base.failOnError
    else
        q.failOnError = true
    end
    q.corpusId = string_field(src.corpusId, base.corpusId)
    q.workflowId = string_field(src.workflowId, base.workflowId)
    q.executionId = string_field(src.executionId, base.executionId)
    local st = src.scopeType
    if st == "user" or st == "workflow" or st == "execution" then
        q.scopeType = st
    else
        q.scopeType = base.scopeType
    end
    return q
end

local STRATEGIES = { single = true, merge = true, ["first-non-empty"] = true,
                     ["best-score"] = true, adaptive = true }

-- Parses config.retrieval. Returns nil when absent or disabled.
function M.parse(cfg)
    if not is_record(cfg) then
        return nil
    end
    if cfg.enabled == false then
        return nil
    end
    local r = {}
    if type(cfg.injectAs) == "string" and trim(cfg.injectAs) ~= "" then
        r.injectAs = cfg.injectAs
    else
        r.injectAs = "_knowledge"
    end
    r.speculative = bool_like(cfg.speculative, false)
    r.preferredRetrieverMemoryKey = non_empty_string(cfg.preferredRetrieverMemoryKey)
    r.base = parse_query_config(cfg, nil)
    local retrievers = {}
    if util.is_array(cfg.retrievers) then
        local pos = 0
        for _, item in ipairs(cfg.retrievers) do
            pos = pos + 1
            if is_record(item) then
                retrievers[#retrievers + 1] = {
                    key = non_empty_string(item.key) or ("retriever_" .. pos),
                    enabled = item.enabled ~= false,
                    config = parse_query_config(item, r.base),
                }
            end
        end
    end
    if #retrievers == 0 then
        retrievers[1] = { key = "primary", enabled = true, config = r.base }
    end
    local enabled, counts = {}, {}
    for _, rv in ipairs(retrievers) do
        if rv.enabled then
            local n = (counts[rv.key] or 0) + 1
            counts[rv.key] = n
            if n >= 2 then
                rv.key = rv.key .. "_" .. n
            end
            enabled[#enabled + 1] = rv
        end
    end
    r.retrievers = enabled
    if type(cfg.strategy) == "string" and STRATEGIES[cfg.strategy] then
        r.strategy = cfg.strategy
    else
        r.strategy = #enabled > 1 and "first-non-empty" or "single"
    end
    return r
end

local function cut(s, n)
    return util.js_slice(s, n)
end

local function build_query(tpl, plain, data, maxc)
    if type(tpl) == "string" and tpl ~= "" then
        local q = trim(template.engine(tpl, data))
        q = cut(q, maxc)
        if q == "" then
            return nil
        end
        return q
    end
    if type(plain) == "string" and trim(plain) ~= "" then
        return cut(trim(plain), maxc)
    end
    return nil
end

-- Budget check against the context's retrieval counters; returns the reason or nil.
function M.budget_reason(rs)
    if rs.totalRequests >= rs.maxRequests then
        return ("maxRequests reached (%d)"):format(rs.maxRequests)
    elseif rs.totalFailures >= rs.maxFailures then
        return ("maxFailures reached (%d)"):format(rs.maxFailures)
    elseif rs.totalDurationMs >= rs.maxDurationMs then
        return ("maxDurationMs reached (%d)"):format(rs.maxDurationMs)
    end
    return nil
end

local function make_error(msg)
    return { message = msg }
end

local function errmsg(e)
    if type(e) == "table" and e.message then
        return e.message
    end
    return util.sanitize(e)
end

-- env: { run helpers }: env.counters() -> retrieval state section; env.update_counters(patch);
-- env.emit(event); env.call(params) -> response (raises on failure); env.sleep(ms);
-- env.ids {executionId, workflowId, userId, nodeId, nodeType}; env.memory(key).
local function run_plan(env, plan, strategy, soft)
    local qc = plan.config
    local queries = { { q = plan.query, attempts = 1 + qc.maxRetries } }
    if plan.fallback then
        queries[2] = { q = plan.fallback, attempts = 1 }
    end
    local last_response, last_error
    local result_query = plan.query
    for _, qd in ipairs(queries) do
        for attempt = 1, qd.attempts do
            local rs = env.counters()
            local reason = M.budget_reason(rs)
            if reason then
                local msg = "Retrieval budget exceeded: " .. reason
                env.emit({
                    query = qd.q, topK = qc.topK, attempt = attempt, maxAttempts = qd.attempts,
                    status = "failed", matchesCount = 0, durationMs = 0, errorMessage = msg,
                    scopeType = plan.scopeType, corpusId = qc.corpusId,
                    workflowIdScope = plan.workflowIdScope, executionIdScope = plan.executionIdScope,
                    strategy = strategy, retrieverKey = plan.key, branchIndex = plan.branchIndex,
                })
                if qc.failOnError and not soft then
                    error(make_error(msg), 0)
                end
                return { key = plan.key, query = qd.q, topK = qc.topK, matches = array(),
                         satisfied = false, error = msg, failOnError = qc.failOnError }
            end
            local t0 = env.clock()
            local ids = env.ids
            local ok, resp = pcall(env.call, {
                executionId = ids.executionId, workflowId = ids.workflowId, userId = ids.userId,
                nodeId = ids.nodeId, nodeType = ids.nodeType, query = qd.q, topK = qc.topK,
                corpusId = qc.corpusId, scopeType = plan.scopeType,
                workflowIdScope = plan.workflowIdScope, executionIdScope = plan.executionIdScope,
                retrieverKey = plan.key, retrievalStrategy = strategy,
                branchIndex = plan.branchIndex,
            })
            local dur = floor(env.clock() - t0)
            if ok and type(resp) == "table" then
                local kept = array()
                local matches = type(resp.matches) == "table" and resp.matches or {}
                for i = 1, #matches do
                    local m = matches[i]
                    if qc.minScore == nil or (type(m) == "table" and type(m.score) == "number"
                        and m.score >= qc.minScore) then
                        kept[#kept + 1] = m
                    end
                end
                local status = #kept >= qc.minMatches and "success" or "empty"
                rs = env.counters()
                env.update_counters({
                    totalRequests = rs.totalRequests + 1,
                    totalDurationMs = rs.totalDurationMs + dur,
                    totalSuccesses = rs.totalSuccesses + (status == "success" and 1 or 0),
                    totalEmpties = rs.totalEmpties + (status == "empty" and 1 or 0),
                })
                env.emit({
                    query = qd.q, topK = qc.topK, attempt = attempt, maxAttempts = qd.attempts,
                    status = status, matchesCount = #kept, durationMs = dur,
                    scopeType = plan.scopeType, corpusId = qc.corpusId,
                    workflowIdScope = plan.workflowIdScope, executionIdScope = plan.executionIdScope,
                    strategy = strategy, retrieverKey = plan.key, branchIndex = plan.branchIndex,
                    selected = (strategy == "single" or status == "success"),
                })
                last_response = { query = qd.q, matches = kept }
                result_query = qd.q
                if status == "success" then
                    return { key = plan.key, query = qd.q, topK = qc.topK, matches = kept,
                             satisfied = true, failOnError = qc.failOnError }
                end
            else
                local msg = ok and "retrieveKnowledge returned no result" or util.sanitize(resp)
                rs = env.counters()
                env.update_counters({
                    totalRequests = rs.totalRequests + 1,
                    totalFailures = rs.totalFailures + 1,
                    totalDurationMs = rs.totalDurationMs + dur,
                })
                env.emit({
                    query = qd.q, topK = qc.topK, attempt = attempt, maxAttempts = qd.attempts,
                    status = "failed", matchesCount = 0, durationMs = dur, errorMessage = msg,
                    scopeType = plan.scopeType, corpusId = qc.corpusId,
                    workflowIdScope = plan.workflowIdScope, executionIdScope = plan.executionIdScope,
                    strategy = strategy, retrieverKey = plan.key, branchIndex = plan.branchIndex,
                })
                last_error = msg
                if attempt < qd.attempts and qc.retryDelayMs > 0 then
                    env.sleep(qc.retryDelayMs)
                end
            end
        end
    end
    if last_response then
        local n = #last_response.matches
        local satisfied = n >= qc.minMatches
        if not satisfied and qc.failOnError and not soft then
            error(make_error(('Retrieval returned %d matches for retriever "%s", below required minMatches=%d')
                :format(n, plan.key, qc.minMatches)), 0)
        end
        return { key = plan.key, query = last_response.query, topK = qc.topK,
                 matches = last_response.matches, satisfied = satisfied, error = last_error,
                 failOnError = qc.failOnError }
    end
    if qc.failOnError and not soft then
        error(make_error(last_error or "Retrieval failed"), 0)
    end
    return { key = plan.key, query = result_query, topK = qc.topK, matches = array(),
             satisfied = false, error = last_error, hard = true, failOnError = qc.failOnError }
end

local function keys_of(results)
    local out = array()
    for i = 1, #results do
        out[i] = results[i].key
    end
    return out
end

-- Runs node-level retrieval. Returns the payload to inject ({query, topK, matches,
-- orchestration}); raises {message=...} on failure.
function M.run(env, r, data)
    local plans = {}
    for _, rv in ipairs(r.retrievers) do
        local qc = rv.config
        local q = build_query(qc.queryTemplate, qc.query, data, qc.queryMaxChars)
        if q then
            local fb = build_query(qc.fallbackQueryTemplate, qc.fallbackQuery, data, qc.queryMaxChars)
            if fb == q then
                fb = nil
            end
            local plan = { key = rv.key, config = qc, query = q, fallback = fb }
            if qc.scopeType == "workflow" then
                plan.scopeType = "workflow"
                plan.workflowIdScope = qc.workflowId or env.ids.workflowId
            elseif qc.scopeType == "execution" then
                plan.scopeType = "execution"
                plan.executionIdScope = qc.executionId or env.ids.executionId
            else
                plan.scopeType = qc.scopeType
                plan.workflowIdScope = qc.workflowId
                plan.executionIdScope = qc.executionId
            end
            plans[#plans + 1] = plan
        end
    end
    local preferred
    if r.preferredRetrieverMemoryKey then
        preferred = env.memory(r.preferredRetrieverMemoryKey)
    end
    if #plans == 0 then
        local msg = "Retrieval enabled but no query or queryTemplate resolved for node"
        if type(preferred) == "string" then
            msg = msg .. ('; preferred retriever "%s" had no resolvable query'):format(preferred)
        end
        error(make_error(msg), 0)
    end
    for i, p in ipairs(plans) do
        p.branchIndex = i
    end
    local strategy = #plans == 1 and "single" or r.strategy
    if strategy == "adaptive" and type(preferred) == "string" then
        local want = trim(preferred)
        for i, p in ipairs(plans) do
            if p.key == want and i > 1 then
                table.remove(plans, i)
                table.insert(plans, 1, p)
                break
            end
        end
    end
    local base = r.base
    local soft = strategy ~= "single"
    local orchestration
    if strategy == "single" then
        local res = run_plan(env, plans[1], strategy, false)
        return { query = res.query, topK = res.topK, matches = res.matches,
                 orchestration = { strategy = "single", speculative = false,
                                   retrieversTried = array({ res.key }),
                                   selectedRetrieverKey = res.key, branchCount = 1 } }
    end
    local function collect_all()
        local results = {}
        for i, p in ipairs(plans) do
            results[i] = run_plan(env, p, strategy, soft)
        end
        return results
    end
    if strategy == "merge" then
        local results = collect_all()
        local lists, any_match = {}, false
        for i, res in ipairs(results) do
            lists[i] = res.matches
            any_match = any_match or #res.matches > 0
        end
        local merged = M.merge_matches(lists, max(1, min(base.topK, 50)))
        if #merged < base.minMatches and base.failOnError then
            local err_plan
            for _, res in ipairs(results) do
                if res.error and res.failOnError then
                    err_plan = res
                    break
                end
            end
            if err_plan then
                error(make_error(err_plan.error), 0)
            elseif not any_match then
                error(make_error(("Merged retrieval returned %d matches, below required minMatches=%d")
                    :format(#merged, base.minMatches)), 0)
            end
        end
        local qs = {}
        for i, res in ipairs(results) do
            qs[i] = res.query
        end
        return { query = table.concat(qs, " || "), topK = base.topK, matches = merged,
                 orchestration = { strategy = "merge", speculative = r.speculative,
                                   retrieversTried = keys_of(results), branchCount = #plans } }
    end
    if strategy == "best-score" then
        local results = collect_all()
        local best
        for _, res in ipairs(results) do
            if #res.matches >= 1 then
                local s = res.matches[1].score or 0
                if not best then
                    best = res
                else
                    local bs = best.matches[1].score or 0
                    if s > bs or (s == bs and #res.matches > #best.matches) then
                        best = res
                    end
                end
            end
        end
        orchestration = { strategy = "best-score", speculative = r.speculative,
                          retrieversTried = keys_of(results), branchCount = #plans }
        if not best then
            if base.failOnError then
                for _, res in ipairs(results) do
                    if res.hard and res.error then
                        error(make_error(res.error), 0)
                    end
                end
                error(make_error("No retrieval result was available from configured retrievers"), 0)
            end
            return { query = results[1].query, topK = base.topK, matches = array(),
                     orchestration = orchestration }
        end
        if not best.satisfied and base.failOnError then
            error(make_error(best.error or
                ("Best-score retrieval returned %d matches, below required minMatches=%d")
                    :format(#best.matches, base.minMatches)), 0)
        end
        orchestration.selectedRetrieverKey = best.key
        return { query = best.query, topK = best.topK, matches = best.matches,
                 orchestration = orchestration }
    end
    -- first-non-empty / adaptive
    if r.speculative then
        local results = collect_all()
        orchestration = { strategy = strategy, speculative = true,
                          retrieversTried = keys_of(results), branchCount = #plans }
        for _, res in ipairs(results) do
            if res.satisfied then
                orchestration.selectedRetrieverKey = res.key
                return { query = res.query, topK = res.topK, matches = res.matches,
                         orchestration = orchestration }
            end
        end
        if base.failOnError then
            for _, res in ipairs(results) do
                if res.hard and res.error then
                    error(make_error(res.error), 0)
                end
            end
            error(make_error("All speculative retrieval branches returned empty"), 0)
        end
        local first = results[1]
        return { query = first.query, topK = first.topK, matches = first.matches,
                 orchestration = orchestration }
    end
    local tried = array()
    local last
    for _, p in ipairs(plans) do
        last = run_plan(env, p, strategy, soft)
        tried[#tried + 1] = last.key
        if last.satisfied then
            return { query = last.query, topK = last.topK, matches = last.matches,
                     orchestration = { strategy = strategy, speculative = false,
                                       retrieversTried = tried, selectedRetrieverKey = last.key,
                                       branchCount = #plans } }
        end
    end
    if last.failOnError and last.error then
        error(make_error(last.error), 0)
    end
    return { query = last.query, topK = last.topK, matches = last.matches,
             orchestration = { strategy = strategy, speculative = false, retrieversTried = tried,
                               branchCount = #plans } }
end

M.errmsg = errmsg
local _ = { null, tostring }

return M
