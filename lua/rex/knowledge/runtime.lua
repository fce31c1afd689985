-- rex.knowledge.runtime: the knowledge runtime of rex-behaviour 6.5-6.8 (runtime ingestion and
-- query, provider embeddings, reranking), independent of where rows live. Two stores build on
-- it: rex.knowledge.memory (Lua tables, `rex-worker run` without a database) and
-- rex.knowledge.pg (PostgreSQL's knowledge_* tables, the worker).
--
-- A store is a table whose metatable's __index chains to runtime.Runtime and that provides:
--   :_resolve_corpus(p, scope, wf, ex)  -> corpus {id, embedding_model?} (6.6 step 2; raises)
--   :_empty_content(corpus)             content was empty: recompute the corpus status
--   :_insert_document(corpus, doc)      doc: {id, user_id, source_type, title, content_text,
--                                       metadata}; stored `processing`, corpus `ingesting`
--   :_commit_chunks(corpus, doc, rows, model)  replaces the document's chunks by rows (fields
--                                       below), document `ready`, corpus status recomputed
--   :_fail_document(corpus, doc, err)   document `failed` with err, corpus status recomputed
--   :_scope_corpora(p, scope, wf, ex)   -> the ready corpora of the query's user in scope
--   :_parts(corpus)                     -> array of {model, snap}: the corpus's searchable
--                                       chunks (ready documents) by embedding model, snap a
--                                       sealed rex.knowledge Corpus whose chunk ids are the
--                                       chunk row ids
--   :_details(ids)                      -> chunk id -> {corpus_id, document_id, chunk_index,
--                                       content, metadata, page_number, section_path, title,
--                                       source_type}
-- Chunk rows given to _commit_chunks: {id, chunk_index, content, token_count, page_number,
-- section_path, metadata, vec (float[1536] cdata; for a deterministic model only when the
-- store sets embed_deterministic: the vector is a function of the content), stored (true when
-- vec is a provider's: it cannot be recomputed from the content)}.
local kn = require("rex.knowledge")
local providers = require("rex.knowledge.providers")

local type, pairs, ipairs, tostring, tonumber, error, pcall = type, pairs, ipairs, tostring,
    tonumber, error, pcall
local floor, max, min = math.floor, math.max, math.min
local sort, concat = table.sort, table.concat
local byte, sub, format = string.byte, string.sub, string.format

local runtime = {}
local Runtime = {}
Runtime.__index = Runtime
runtime.Runtime = Runtime

runtime.DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"

local array = function(t)
    return t
end
do
    local ok, rex = pcall(require, "rex")
    if ok and type(rex) == "table" and rex.array then
        array = rex.array
    end
end

local function default_log(level, msg, fields)
    local ok, rex = pcall(require, "rex")
    if ok and type(rex) == "table" and rex.log and rex.log[level] then
        rex.log[level](msg, fields)
    end
end

-- Provider settings for local runs when opts.retrieval is not given (nil when none is set).
local function env_retrieval(getenv)
    local r, any = {}, false
    for key, name in pairs({
        embeddingProvider = "REX_EMBEDDING_PROVIDER", embeddingModel = "REX_EMBEDDING_MODEL",
        embeddingDimensions = "REX_EMBEDDING_DIMENSIONS",
        embeddingFallback = "REX_EMBEDDING_FALLBACK", rerankEnabled = "REX_RERANK_ENABLED",
        rerankerProvider = "REX_RERANKER_PROVIDER", rerankerModel = "REX_RERANKER_MODEL",
    }) do
        local v = getenv(name)
        if v and v ~= "" then
            r[key], any = v, true
        end
    end
    return any and r or nil
end

function runtime.random_uuid()
    local f = io.open("/dev/urandom", "rb")
    local b = f and f:read(16)
    if f then
        f:close()
    end
    local bytes = {}
    for i = 1, 16 do
        bytes[i] = b and byte(b, i) or math.random(0, 255)
    end
    bytes[7] = bytes[7] % 16 + 64
    bytes[9] = bytes[9] % 64 + 128
    local hex = {}
    for i = 1, 16 do
        hex[i] = format("%02x", bytes[i])
    end
    return concat(hex, "", 1, 4) .. "-" .. concat(hex, "", 5, 6) .. "-" .. concat(hex, "", 7, 8)
        .. "-" .. concat(hex, "", 9, 10) .. "-" .. concat(hex, "", 11, 16)
end

function runtime.iso(ms)
    local s = floor(ms / 1000)
    return os.date("!%Y-%m-%dT%H:%M:%S", s) .. format(".%03dZ", floor(ms - s * 1000))
end

-- JavaScript's String.prototype.trim (its whitespace set, in UTF-8).
local space_seqs = {
    "\194\160", "\225\154\128", "\226\128\168", "\226\128\169", "\226\128\175", "\226\129\159",
    "\227\128\128", "\239\187\191",
}
for c = 0x80, 0x8A do
    space_seqs[#space_seqs + 1] = "\226\128" .. string.char(c)
end

function runtime.trim(s)
    local changed = true
    while changed do
        changed = false
        local a = s:match("^[ \t\n\v\f\r]+")
        if a then
            s, changed = sub(s, #a + 1), true
        end
        local z = s:match("[ \t\n\v\f\r]+$")
        if z then
            s, changed = sub(s, 1, #s - #z), true
        end
        for _, q in ipairs(space_seqs) do
            if sub(s, 1, #q) == q then
                s, changed = sub(s, #q + 1), true
            end
            if #s >= #q and sub(s, -#q) == q then
                s, changed = sub(s, 1, #s - #q), true
            end
        end
    end
    return s
end
local trim = runtime.trim

-- The first n UTF-16 units of s, never splitting a code point.
function runtime.cut_units(s, n)
    local units, i = 0, 1
    while i <= #s do
        local c = byte(s, i)
        local len = c < 0x80 and 1 or c < 0xE0 and 2 or c < 0xF0 and 3 or 4
        local u = len == 4 and 2 or 1
        if units + u > n then
            return sub(s, 1, i - 1)
        end
        units, i = units + u, i + len
    end
    return s
end

-- 6.5 step 2 / 6.6 step 1: the scope of an ingestion.
function runtime.ingest_scope(p)
    if p.scopeType == "workflow" then
        return "workflow", p.workflowIdScope or p.workflowId, nil
    elseif p.scopeType == "execution" then
        return "execution", nil, p.executionIdScope or p.executionId
    end
    return "user", nil, nil
end

-- ... and of a query (no scopeType: any scope).
function runtime.query_scope(p)
    local scope, wf, ex = p.scopeType, p.workflowIdScope, p.executionIdScope
    if scope == "workflow" then
        wf, ex = wf or p.workflowId, nil
    elseif scope == "execution" then
        wf, ex = nil, ex or p.executionId
    end
    return scope, wf, ex
end

-- The text of an ingestion: contentText, content or text (decisions.md 5).
function runtime.content_of(p)
    local content = p.contentText
    if type(content) ~= "string" then
        content = type(p.content) == "string" and p.content or p.text
    end
    return type(content) == "string" and content or nil
end

-- Fills the fields every store shares. opts: model (embedding model of new corpora, default
-- rex-lex-v1-1536), ranking ("hybrid" | "cosine" | "bm25" | "original"), weight (hybrid cosine
-- weight), exact (float32 scan only; same results), rerank (rerankEnabled: 6.5 step 7), candidate_multiplier (4; candidates reranked),
-- tenant_id, now (function returning epoch ms), new_id (function returning a new id string).
-- Providers: retrieval (the domain config's `retrieval` keys: embeddingProvider,
-- embeddingModel, rerankEnabled, rerankerProvider, rerankerModel, and embeddingBaseUrl,
-- embeddingDimensions, embeddingBatchSize, embeddingTimeoutMs, embeddingFallback,
-- rerankerBaseUrl, rerankerTimeoutMs; default: the REX_EMBEDDING_* / REX_RERANK* environment
-- variables, else none; false ignores the environment), get_api_key (function(provider) ->
-- key, may raise; default <PROVIDER>_API_KEY from the environment), http_allowlist (default
-- REX_HTTP_ALLOWLIST), log (function(level, msg, fields); default rex.log), getenv (default
-- os.getenv). `model` stays the deterministic model (new corpora without a provider, and the
-- fallback).
function runtime.init(self, opts)
    opts = opts or {}
    local model = opts.model or kn.DEFAULT_MODEL
    assert(kn.model_id(model), "unknown embedding model " .. tostring(model))
    local retrieval = opts.retrieval
    if retrieval == nil then
        retrieval = env_retrieval(opts.getenv or os.getenv)
    end
    local settings, serr = providers.settings(retrieval or nil, {
        get_api_key = opts.get_api_key, allowlist = opts.http_allowlist, getenv = opts.getenv,
    })
    if not settings then
        error(serr, 0)
    end
    self.model = model
    self.ranking = opts.ranking or "hybrid"
    self.weight = opts.weight
    self.exact = opts.exact -- true: float32 scan only (the default scans int8, rescoring exactly)
    self.rerank = (opts.rerank or settings.rerank) and true or false
    self.settings = settings
    self.provider_opts = { get_api_key = opts.get_api_key, allowlist = opts.http_allowlist,
                           getenv = opts.getenv }
    self.log = opts.log or default_log
    self.candidate_multiplier = tonumber(opts.candidate_multiplier) or 4
    self.tenant_id = opts.tenant_id or runtime.DEFAULT_TENANT
    self.now = opts.now or function()
        local ok, rex = pcall(require, "rex")
        return ok and rex.now_ms and rex.now_ms() or os.time() * 1000
    end
    self.new_id = opts.new_id or runtime.random_uuid
    return self
end

-- Runtime ingestion (6.6). params: {executionId, workflowId, userId, nodeId, nodeType, title,
-- contentText (or content, or text), sourceType?, corpusId?, scopeType?, workflowIdScope?,
-- executionIdScope?, metadata?, embeddingModel?}. Returns {corpusId, documentId, chunkCount,
-- status = "ready"}; raises the original's messages on failure.
function Runtime:ingest(p)
    if type(p) ~= "table" then
        error("Knowledge ingestion parameters are missing", 0)
    end
    local corpus = self:_resolve_corpus(p, runtime.ingest_scope(p))
    local content = trim(runtime.content_of(p) or "")
    local title = type(p.title) == "string" and runtime.cut_units(trim(p.title), 255) or ""
    if title == "" then
        title = "Runtime Document"
    end
    if content == "" then
        self:_empty_content(corpus) -- the original left a new corpus `ingesting` here
        error("Knowledge ingestion content is empty", 0)
    end
    local doc = {
        id = self.new_id(), user_id = p.userId, source_type = p.sourceType or "inline",
        title = title, content_text = content,
        metadata = p.metadata ~= nil and p.metadata
            or { runtimeIngestion = true, executionId = p.executionId, nodeId = p.nodeId },
    }
    self:_insert_document(corpus, doc)
    local ok, res = pcall(function()
        local model, rows = self:_chunk_rows(content, p.embeddingModel, corpus, doc, true)
        self:_commit_chunks(corpus, doc, rows, model)
        return #rows
    end)
    if not ok then
        local msg = type(res) == "table" and tostring(res.message) or tostring(res)
        self:_fail_document(corpus, doc, msg)
        if type(res) == "table" then -- a store's error (the database failing): kept for the caller
            res.message = "Knowledge ingestion failed: " .. msg
            error(res, 0)
        end
        error("Knowledge ingestion failed: " .. msg, 0)
    end
    return { corpusId = corpus.id, documentId = doc.id, chunkCount = res, status = "ready" }
end

-- Chunks and embeds a document's content: model, rows (see the top of this file). model: the
-- model the caller asked for, or nil (the corpus's, else the configured provider's, else
-- self.model). runtime_md: the chunk metadata carries runtimeIngestion = true (6.6 vs 6.7).
function Runtime:_chunk_rows(content, model, corpus, doc, runtime_md)
    model = model or corpus.embedding_model
    if model ~= nil and not providers.is_provider_label(model) then
        local model_ok, merr = kn.model_id(model)
        if not model_ok then
            error(merr, 0)
        end
    end
    if model ~= nil and corpus.embedding_model and corpus.embedding_model ~= model then
        error(format("corpus %s holds %s embeddings; cannot add %s embeddings to it",
            corpus.id, corpus.embedding_model, model), 0)
    end
    local chunks, cerr = kn.chunk(content, not runtime_md and { empty_heading = "empty" } or nil)
    if not chunks then
        error(cerr, 0)
    end
    if #chunks == 0 then
        error("Document content is empty after normalization", 0)
    end
    local vecs
    model, vecs = self:_embed_chunks(model, chunks, corpus, doc)
    local rows = {}
    for i, ch in ipairs(chunks) do
        local md = { start = ch.start, ["end"] = ch["end"], pageNumber = ch.page,
                     sectionPath = ch.sectionPath }
        if runtime_md then
            md.runtimeIngestion = true
        end
        rows[i] = {
            id = self.new_id(), chunk_index = ch.index, content = ch.content,
            token_count = ch.tokenCount, page_number = ch.page, section_path = ch.sectionPath,
            metadata = md, stored = vecs ~= nil,
            vec = vecs and vecs[i] or (self.embed_deterministic and kn.embed(model, ch.content))
                or nil,
        }
    end
    return model, rows
end

-- The model and (for provider models) the vectors of a document's chunks. model: the model the
-- corpus or the caller fixed, or nil for a corpus without one. The fallback rule
-- (docs/knowledge.md): a corpus without a model tries the configured provider and, when it
-- fails, falls back to the deterministic model (embeddingFallback "deterministic", the
-- original's rule) or fails the document (embeddingFallback "fail"); a corpus whose model is a
-- provider's never falls back (that would mix models): the document fails.
function Runtime:_embed_chunks(model, chunks, corpus, doc)
    local configured = self.settings.embedding
    local texts = {}
    for i, ch in ipairs(chunks) do
        texts[i] = ch.content
    end
    if model == nil then
        if not configured then
            return self.model, nil
        end
        local vecs, err = providers.embed(configured, texts, "search_document")
        if vecs then
            return configured.label, vecs
        end
        if configured.fallback == "fail" then
            error(err, 0)
        end
        self.log("warn", "Embedding provider failed; falling back to deterministic embeddings", {
            provider = configured.provider, model = configured.model, error = err,
            fallbackModel = self.model, corpusId = corpus.id, documentId = doc.id,
        })
        return self.model, nil
    end
    if not providers.is_provider_label(model) then
        return model, nil
    end
    local spec = assert(providers.for_label(model, configured, self.provider_opts))
    local vecs, err = providers.embed(spec, texts, "search_document")
    if not vecs then
        error(err .. format(" (corpus %s holds %s embeddings; no fallback)", corpus.id, model), 0)
    end
    return model, vecs
end

-- The query vector for chunks of a provider model label, or nil after a warning (the caller
-- then ranks by BM25 alone, never against a vector of another model). A label that is not
-- "<provider>:<model>" (rows written by the original record the bare model name) can only be
-- embedded when it is the configured provider's model.
function Runtime:_query_vector(label, query)
    local configured = self.settings.embedding
    local spec
    if providers.is_provider_label(label) then
        spec = providers.for_label(label, configured, self.provider_opts)
    elseif configured and (configured.model == label or configured.label == label) then
        spec = configured
    end
    if not spec then
        self.log("warn", "Query embedding not possible for this model; ranking by BM25 alone", {
            model = label,
        })
        return nil
    end
    local qvecs, qerr = providers.embed(spec, { query }, "search_query")
    if not (qvecs and qvecs[1]) then
        self.log("warn", "Query embedding failed; ranking by BM25 alone", {
            model = label, error = qerr,
        })
        return nil
    end
    return qvecs[1]
end

-- Exact top-`want` over snaps (one model): hits of kn.search, or raises.
function Runtime:_search(model, snaps, query, want)
    local opts = { topK = want, ranking = self.ranking, weight = self.weight, exact = self.exact }
    if not kn.model_id(model) then
        -- provider vectors: cosine against the provider's query vector
        opts.query_vector = self:_query_vector(model, query)
        if not opts.query_vector then
            opts.query_vector, opts.ranking = false, "bm25" -- semantic 0, not another model's
        end
    end
    local hits, err = kn.search(snaps, query, opts)
    if not hits then
        error("Knowledge query failed: " .. err, 0)
    end
    return hits
end

local function clamp_topk(v)
    local n = floor(tonumber(v) or 8)
    if n ~= n then
        n = 8
    end
    return max(1, min(50, n))
end

local function copy(t)
    local r = {}
    if type(t) == "table" then
        for k, v in pairs(t) do
            r[k] = v
        end
    end
    return r
end

local function finite(s)
    return s == s and s ~= math.huge and s ~= -math.huge
end

-- Runtime knowledge query (6.5). params: {executionId, workflowId, userId, nodeId, nodeType,
-- query, topK, corpusId?, scopeType?, workflowIdScope?, executionIdScope?, retrieverKey?,
-- retrievalStrategy?, branchIndex?}. Returns {query, topK, matches}; raises on a bad query.
function Runtime:retrieve(p)
    if type(p) ~= "table" then
        error("Knowledge query parameters are missing", 0)
    end
    local topk = clamp_topk(p.topK)
    local query = p.query
    if type(query) ~= "string" or not query:find("%S") then
        error("Knowledge query is empty", 0)
    end
    if #query > kn.QUERY_MAX then
        error(format("Knowledge query is longer than %d bytes", kn.QUERY_MAX), 0)
    end
    if kn.utf8_error(query) then
        error("Knowledge query is not valid UTF-8", 0)
    end
    -- the searchable parts of the ready corpora in scope, grouped by embedding model
    local groups, order = {}, {}
    for _, c in ipairs(self:_scope_corpora(p, runtime.query_scope(p))) do
        for _, part in ipairs(self:_parts(c)) do
            if not groups[part.model] then
                groups[part.model] = {}
                order[#order + 1] = part.model
            end
            local g = groups[part.model]
            g[#g + 1] = part.snap
        end
    end
    local want = topk
    if self.rerank then
        want = min(kn.TOPK_MAX, max(min(topk * self.candidate_multiplier, 1000), topk * 8))
    end
    local found, ids = {}, {}
    for _, model in ipairs(order) do
        local snaps = groups[model]
        for _, h in ipairs(self:_search(model, snaps, query, want)) do
            local id = snaps[h.corpus]:id_at(h.index)
            found[#found + 1] = { id = id, h = h }
            ids[#ids + 1] = id
        end
    end
    local details = #ids > 0 and self:_details(ids) or {}
    local matches = {}
    for _, f in ipairs(found) do
        local r, h = details[f.id], f.h
        if r then -- a chunk deleted since the corpus was cached is skipped
            local md = copy(r.metadata)
            md.pageNumber, md.sectionPath = r.page_number, r.section_path
            md.semanticScore, md.lexicalScore = h.semantic, h.lexical
            matches[#matches + 1] = {
                corpusId = r.corpus_id, documentId = r.document_id, chunkId = f.id,
                chunkIndex = r.chunk_index, score = h.score, semanticScore = h.semantic,
                lexicalScore = h.lexical, content = r.content, title = r.title,
                sourceType = r.source_type, metadata = md,
            }
        end
    end
    local function by_score(a, b)
        if a.score ~= b.score then
            return a.score > b.score
        end
        return a.chunkId < b.chunkId
    end
    if #order > 1 then
        sort(matches, by_score)
    end
    if self.rerank and #matches > 1 then
        self:_rerank(query, matches)
        sort(matches, by_score)
    end
    local out = {}
    for i = 1, min(topk, #matches) do
        out[i] = matches[i]
    end
    return { query = query, topK = topk, matches = array(out) }
end

-- 6.5 step 7: Cohere when configured with a key, else (and on any error) the heuristic.
function Runtime:_rerank(query, matches)
    local scores, reranker = nil, "heuristic"
    local spec = self.settings.reranker
    if spec then
        local docs = {}
        for i, m in ipairs(matches) do
            docs[i] = m.content
        end
        local rerr
        scores, rerr = providers.rerank(spec, query, docs)
        if scores then
            reranker = "cohere"
        else
            self.log("warn", "Reranker failed; using heuristic reranking", {
                provider = spec.provider, model = spec.model, error = rerr,
            })
        end
    end
    for i, m in ipairs(matches) do
        local rr = scores and scores[i] or kn.overlap_score(query, m.content)
        local s = 0.65 * m.score + 0.35 * rr
        m.score = finite(s) and s or 0
        m.metadata.rerankScore, m.metadata.reranker = rr, reranker
    end
end

-- The engine's runtime callbacks (retrieve_knowledge, ingest_knowledge) for this runtime; they
-- raise messages (a store's error tables become their message).
function Runtime:callbacks()
    local function call(method, p)
        local ok, res = pcall(method, self, p)
        if ok then
            return res
        end
        error(type(res) == "table" and tostring(res.message) or res, 0)
    end
    return {
        retrieve_knowledge = function(p)
            return call(self.retrieve, p)
        end,
        ingest_knowledge = function(p)
            return call(self.ingest, p)
        end,
    }
end

return runtime
