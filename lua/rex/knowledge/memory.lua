-- rex.knowledge.memory: an in-memory knowledge runtime for `rex-worker run` (no database).
--
--   local mem = require("rex.knowledge.memory").new({ model = "rex-lex-v1-1536" })
--   mem:ingest(params)   -- rex-behaviour 6.6 -> {corpusId, documentId, chunkCount, status}
--   mem:retrieve(params) -- rex-behaviour 6.5 -> {query, topK, matches}
--
-- Both take and return the shapes of the worker's runtime callbacks (ingestKnowledge and
-- retrieveKnowledge) and, like them, raise an error (a string, level 0) on failure: the engine
-- calls them as node-context callbacks and turns a raised message into the node's error.
-- Corpora, documents and chunks are kept as rows shaped like the knowledge_* tables
-- (snake_case), readable through :corpus(id), :document(id), :chunks(document_id) and
-- :corpora(). Retrieval is the C core's exact top-K over every chunk of the ready documents of
-- the ready corpora in scope, from a per-instance corpus cache (bounded by opts.cache_bytes)
-- that every ingestion or deletion invalidates.
--
-- Differences from the original, on purpose (decisions.md 5): chunk offsets point into the
-- stored content; the default model is rex-lex-v1-1536 and the default ranking the hybrid of
-- cosine and BM25; every chunk in scope is ranked (no LIMIT sample), ties by chunk id; an
-- ingestion whose content is empty recomputes the corpus status instead of leaving it
-- `ingesting`; content may come from contentText, content or text.
--
-- Provider embeddings (OpenAI-compatible, Cohere) and the Cohere reranker when configured
-- (opts.retrieval, rex.knowledge.providers; docs/knowledge.md "Provider embeddings"): a corpus
-- keeps the model of its first ingestion; a provider failure on a corpus without a model falls
-- back to the deterministic model (rex-behaviour 6.8), recorded as such; on a corpus holding
-- provider embeddings it fails the document, so a corpus never mixes models.
local ffi = require("ffi")
local kn = require("rex.knowledge")
local C = require("rex.knowledge.ffi")
local providers = require("rex.knowledge.providers")

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber,
    error
local floor, max, min = math.floor, math.max, math.min
local sort, concat = table.sort, table.concat
local byte, sub, format = string.byte, string.sub, string.format

local array = function(t)
    return t
end
do
    local ok, rex = pcall(require, "rex")
    if ok and type(rex) == "table" and rex.array then
        array = rex.array
    end
end

local memory = {}
local Mem = {}
Mem.__index = Mem

local DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"

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

local function random_uuid()
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

local function iso(ms)
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

local function trim(s)
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

-- The first n UTF-16 units of s, never splitting a code point.
local function cut_units(s, n)
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

-- opts: model (embedding model of new corpora, default rex-lex-v1-1536), ranking ("hybrid" |
-- "cosine" | "bm25" | "original"), weight (hybrid cosine weight), rerank (rerankEnabled: the
-- heuristic reranker of 6.5 step 7), candidate_multiplier (4; candidates reranked), tenant_id,
-- cache_bytes (corpus cache bound, default 256 MiB), now (function returning epoch ms),
-- new_id (function returning a new id string).
-- Providers: retrieval (the domain config's `retrieval` keys: embeddingProvider, embeddingModel,
-- rerankEnabled, rerankerProvider, rerankerModel, and embeddingBaseUrl, embeddingDimensions,
-- embeddingBatchSize, embeddingTimeoutMs, embeddingFallback, rerankerBaseUrl,
-- rerankerTimeoutMs; default: the REX_EMBEDDING_* / REX_RERANK* environment variables, else
-- none), get_api_key (function(provider) -> key, may raise; default <PROVIDER>_API_KEY from the
-- environment), http_allowlist (default REX_HTTP_ALLOWLIST), log (function(level, msg, fields);
-- default rex.log), getenv (default os.getenv). `model` stays the deterministic model (new
-- corpora without a provider, and the fallback). retrieval = false ignores the environment.
function memory.new(opts)
    opts = opts or {}
    local model = opts.model or kn.DEFAULT_MODEL
    assert(kn.model_id(model), "unknown embedding model " .. tostring(model))
    local retrieval = opts.retrieval
    if retrieval == nil then
        retrieval = env_retrieval(opts.getenv or os.getenv)
    end
    local settings, serr = providers.settings(retrieval, {
        get_api_key = opts.get_api_key, allowlist = opts.http_allowlist, getenv = opts.getenv,
    })
    if not settings then
        error(serr, 0)
    end
    return setmetatable({
        model = model,
        ranking = opts.ranking or "hybrid",
        weight = opts.weight,
        rerank = (opts.rerank or settings.rerank) and true or false,
        settings = settings,
        provider_opts = { get_api_key = opts.get_api_key, allowlist = opts.http_allowlist,
                          getenv = opts.getenv },
        log = opts.log or default_log,
        candidate_multiplier = tonumber(opts.candidate_multiplier) or 4,
        tenant_id = opts.tenant_id or DEFAULT_TENANT,
        now = opts.now or function()
            return os.time() * 1000
        end,
        new_id = opts.new_id or random_uuid,
        _corpora = {},  -- in creation order
        _corpus = {},   -- id -> row
        _docs = {},     -- in creation order
        _doc = {},      -- id -> row
        _chunks = {},   -- document id -> array of chunk rows
        _version = {},  -- corpus id -> integer, bumped on every change
        _rows = {},     -- corpus id -> {version, rows}: the chunk rows of a snapshot, in order
        _seq = 0,       -- orders updates within one millisecond
        _cache = kn.cache(opts.cache_bytes or 256 * 1024 * 1024),
    }, Mem)
end

function Mem:_touch(row)
    self._seq = self._seq + 1
    row.updated_at = iso(self.now())
    row._seq = self._seq
end

function Mem:_changed(corpus_id)
    self._version[corpus_id] = (self._version[corpus_id] or 0) + 1
    self._rows[corpus_id] = nil
    self._cache:invalidate(corpus_id)
end

-- 6.7: any failed document -> failed; any pending/processing -> ingesting; else ready.
function Mem:_recompute(corpus)
    local status = "ready"
    for _, d in ipairs(self._docs) do
        if d.corpus_id == corpus.id then
            if d.status == "failed" then
                status = "failed"
                break
            elseif d.status == "pending" or d.status == "processing" then
                status = "ingesting"
            end
        end
    end
    corpus.status = status
    self:_touch(corpus)
end

local function scope_of(p)
    if p.scopeType == "workflow" then
        return "workflow", p.workflowIdScope or p.workflowId, nil
    elseif p.scopeType == "execution" then
        return "execution", nil, p.executionIdScope or p.executionId
    end
    return "user", nil, nil
end

function Mem:_resolve_corpus(p)
    local scope, wf, ex = scope_of(p)
    if p.corpusId ~= nil then
        local c = self._corpus[p.corpusId]
        if not c or c.user_id ~= p.userId or c.tenant_id ~= self.tenant_id then
            error("Specified corpusId was not found or is not accessible", 0)
        end
        return c
    end
    local best
    for _, c in ipairs(self._corpora) do
        if c.user_id == p.userId and c.tenant_id == self.tenant_id and c.scope_type == scope
            and (wf == nil or c.workflow_id == wf) and (ex == nil or c.execution_id == ex) then
            if not best or c._seq > best._seq then
                best = c
            end
        end
    end
    if best then
        return best
    end
    local ms = self.now()
    local c = {
        id = self.new_id(), tenant_id = self.tenant_id, user_id = p.userId,
        name = "Runtime Corpus " .. iso(ms),
        description = "Runtime-ingested corpus for workflow execution",
        scope_type = scope, workflow_id = wf, execution_id = ex, status = "ingesting",
        metadata = { runtimeIngestion = true, executionId = p.executionId },
        embedding_model = nil, created_at = iso(ms),
    }
    self:_touch(c)
    self._corpora[#self._corpora + 1] = c
    self._corpus[c.id] = c
    return c
end

-- Runtime ingestion (6.6). params: {executionId, workflowId, userId, nodeId, nodeType, title,
-- contentText (or content, or text), sourceType?, corpusId?, scopeType?, workflowIdScope?,
-- executionIdScope?, metadata?, embeddingModel?}. Returns {corpusId, documentId, chunkCount,
-- status = "ready"}; raises the original's messages on failure.
function Mem:ingest(p)
    if type(p) ~= "table" then
        error("Knowledge ingestion parameters are missing", 0)
    end
    local corpus = self:_resolve_corpus(p)
    local content = p.contentText
    if type(content) ~= "string" then
        content = type(p.content) == "string" and p.content or p.text
    end
    content = type(content) == "string" and trim(content) or ""
    local title = type(p.title) == "string" and cut_units(trim(p.title), 255) or ""
    if title == "" then
        title = "Runtime Document"
    end
    if content == "" then
        self:_recompute(corpus) -- the original left a new corpus `ingesting` here
        error("Knowledge ingestion content is empty", 0)
    end
    local ms = self.now()
    local doc = {
        id = self.new_id(), tenant_id = self.tenant_id, corpus_id = corpus.id, user_id = p.userId,
        source_type = p.sourceType or "inline", title = title, mime_type = nil,
        content_text = content, status = "processing", error = nil,
        metadata = p.metadata ~= nil and p.metadata
            or { runtimeIngestion = true, executionId = p.executionId, nodeId = p.nodeId },
        created_at = iso(ms),
    }
    self:_touch(doc)
    self._docs[#self._docs + 1] = doc
    self._doc[doc.id] = doc
    corpus.status = "ingesting"

    local ok, err = pcall(function()
        local model = p.embeddingModel or corpus.embedding_model
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
        local chunks, cerr = kn.chunk(content)
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
            local vec = vecs and vecs[i] or kn.embed(model, ch.content)
            rows[i] = {
                id = self.new_id(), corpus_id = corpus.id, document_id = doc.id,
                chunk_index = ch.index, content = ch.content, token_count = ch.tokenCount,
                embedding_model = model, page_number = ch.page, section_path = ch.sectionPath,
                metadata = {
                    start = ch.start, ["end"] = ch["end"], runtimeIngestion = true,
                    pageNumber = ch.page, sectionPath = ch.sectionPath,
                },
                _vec = vec,
            }
        end
        corpus.embedding_model = model
        self._chunks[doc.id] = rows -- replaces any previous chunks of the document
        return #rows
    end)
    if not ok then
        doc.status, doc.error = "failed", tostring(err)
        self:_touch(doc)
        self:_recompute(corpus)
        self:_changed(corpus.id)
        error("Knowledge ingestion failed: " .. tostring(err), 0)
    end
    doc.status, doc.error = "ready", nil
    self:_touch(doc)
    self:_recompute(corpus)
    self:_changed(corpus.id)
    return { corpusId = corpus.id, documentId = doc.id, chunkCount = err, status = "ready" }
end

-- The model and (for provider models) the vectors of a document's chunks. model: the model the
-- corpus or the caller fixed, or nil for a corpus without one. The fallback rule
-- (docs/knowledge.md): a corpus without a model tries the configured provider and, when it
-- fails, falls back to the deterministic model (embeddingFallback "deterministic", the
-- original's rule) or fails the document (embeddingFallback "fail"); a corpus whose model is a
-- provider's never falls back (that would mix models): the document fails.
function Mem:_embed_chunks(model, chunks, corpus, doc)
    local configured = self.settings.embedding
    if model == nil then
        if not configured then
            return self.model, nil
        end
        model = configured.label
        local texts = {}
        for i, ch in ipairs(chunks) do
            texts[i] = ch.content
        end
        local vecs, err = providers.embed(configured, texts, "search_document")
        if vecs then
            return model, vecs
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
    local texts = {}
    for i, ch in ipairs(chunks) do
        texts[i] = ch.content
    end
    local vecs, err = providers.embed(spec, texts, "search_document")
    if not vecs then
        error(err .. format(" (corpus %s holds %s embeddings; no fallback)", corpus.id, model), 0)
    end
    return model, vecs
end

-- The searchable snapshot of a corpus: chunks of its ready documents, from the cache.
function Mem:_snapshot(corpus)
    local version = tostring(self._version[corpus.id] or 0)
    local cached = self._rows[corpus.id]
    local rows = cached and cached.version == version and cached.rows
    if not rows then
        rows = {}
        for _, d in ipairs(self._docs) do
            if d.corpus_id == corpus.id and d.status == "ready" then
                for _, r in ipairs(self._chunks[d.id] or {}) do
                    rows[#rows + 1] = r
                end
            end
        end
        self._rows[corpus.id] = { version = version, rows = rows }
    end
    local snap = self._cache:get(corpus.id, version)
    if not snap then
        -- a provider corpus is held in a rex-lex corpus: its vectors are the provider's, and
        -- only its lexical index is used (cosine against the provider query vector in
        -- Mem:_search_provider)
        local m = corpus.embedding_model or self.model
        snap = assert(kn.corpus(providers.is_provider_label(m) and kn.DEFAULT_MODEL or m))
        for i, r in ipairs(rows) do
            assert(snap:add(r.id, r.content, r._vec, i))
        end
        snap:seal()
        self._cache:put(corpus.id, version, snap) -- a corpus over the bound is used uncached
    end
    return snap, rows
end

local search_opts_t = ffi.typeof("struct rex_kn_search_opts")
local float_arr = ffi.typeof("float[?]")

local function dot(a, b)
    local s = 0
    for i = 0, kn.DIMS - 1 do
        s = s + a[i] * b[i]
    end
    return s
end

-- Exact top-`want` over the chunks of corpora holding provider embeddings (label): cosine
-- against the provider's query embedding, in Lua (the C search embeds queries with its own
-- models only), lexical scores from the C core, the same rankings and tie order as kn.search.
-- When the query cannot be embedded, the corpora are ranked by BM25 alone (never against a
-- vector of another model). Returns hits shaped like kn.search's, or nil, err.
function Mem:_search_provider(label, snaps, rowsets, query, want)
    local ranking = self.ranking
    local spec = assert(providers.for_label(label, self.settings.embedding,
        self.provider_opts))
    local qvecs, qerr = providers.embed(spec, { query }, "search_query")
    local qv = qvecs and qvecs[1]
    if not qv then
        self.log("warn", "Query embedding failed; ranking by BM25 alone", {
            model = label, error = qerr,
        })
        ranking = "bm25"
    end
    -- one lexical corpus for the whole scope, so BM25 is normalized by the highest score in
    -- scope as kn.search does
    local lexc, where = snaps[1], {}
    for ci, rows in ipairs(rowsets) do
        for ri in ipairs(rows) do
            where[#where + 1] = { ci, ri }
        end
    end
    if #snaps > 1 then
        lexc = assert(kn.corpus(kn.DEFAULT_MODEL))
        for i, w in ipairs(where) do
            local r = rowsets[w[1]][w[2]]
            assert(lexc:add(r.id, r.content, r._vec, i))
        end
        lexc:seal()
    end
    local n = #where
    local lex = float_arr(n > 0 and n or 1)
    if n > 0 and ranking ~= "original" then
        local o = search_opts_t(1, C.RANK.bm25, 0, 0, 1)
        if C.score_all(lexc.ptr, query, #query, o, lex) ~= 0 then
            return nil, "query is not valid UTF-8 or is empty"
        end
    end
    local w = self.weight
    if not (type(w) == "number" and w > 0 and w <= 1) then
        w = 0.5
    end
    local cands = {}
    for i, wh in ipairs(where) do
        local r = rowsets[wh[1]][wh[2]]
        local cs = qv and dot(qv, r._vec) or 0
        local lx = tonumber(lex[i - 1])
        local score
        if ranking == "cosine" then
            score = cs
        elseif ranking == "bm25" then
            score = lx
        elseif ranking == "original" then
            lx = kn.overlap_score(query, r.content)
            score = 0.7 * cs + 0.3 * lx
        else
            score = w * cs + (1 - w) * lx
        end
        if score == score and score ~= math.huge and score ~= -math.huge then
            cands[#cands + 1] = { corpus = wh[1], tag = wh[2], score = score, semantic = cs,
                                  lexical = lx, id = r.id }
        end
    end
    sort(cands, function(a, b)
        if a.score ~= b.score then
            return a.score > b.score
        end
        return a.id < b.id
    end)
    local hits = {}
    for i = 1, min(want, #cands) do
        hits[i] = cands[i]
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

-- Runtime knowledge query (6.5). params: {executionId, workflowId, userId, nodeId, nodeType,
-- query, topK, corpusId?, scopeType?, workflowIdScope?, executionIdScope?, retrieverKey?,
-- retrievalStrategy?, branchIndex?}. Returns {query, topK, matches}; raises on a bad query.
function Mem:retrieve(p)
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
    local scope, wf, ex = p.scopeType, p.workflowIdScope, p.executionIdScope
    if scope == "workflow" then
        wf, ex = wf or p.workflowId, nil
    elseif scope == "execution" then
        wf, ex = nil, ex or p.executionId
    end
    -- ready corpora of the user in scope, grouped by embedding model
    local groups, order = {}, {}
    for _, c in ipairs(self._corpora) do
        if c.tenant_id == self.tenant_id and c.user_id == p.userId and c.status == "ready"
            and (p.corpusId == nil or c.id == p.corpusId)
            and (scope == nil or c.scope_type == scope)
            and (wf == nil or c.workflow_id == wf) and (ex == nil or c.execution_id == ex) then
            local model = c.embedding_model or self.model
            if not groups[model] then
                groups[model] = {}
                order[#order + 1] = model
            end
            local g = groups[model]
            g[#g + 1] = c
        end
    end
    local want = topk
    if self.rerank then
        want = min(kn.TOPK_MAX, max(min(topk * self.candidate_multiplier, 1000), topk * 8))
    end
    local matches = {}
    for _, model in ipairs(order) do
        local snaps, rowsets, corpora = {}, {}, groups[model]
        for i, c in ipairs(corpora) do
            snaps[i], rowsets[i] = self:_snapshot(c)
        end
        local hits, err
        if providers.is_provider_label(model) then
            hits, err = self:_search_provider(model, snaps, rowsets, query, want)
        else
            hits, err = kn.search(snaps, query, {
                topK = want, ranking = self.ranking, weight = self.weight,
            })
        end
        if not hits then
            error("Knowledge query failed: " .. err, 0)
        end
        for _, h in ipairs(hits) do
            local r = rowsets[h.corpus][h.tag]
            local d = self._doc[r.document_id]
            local md = copy(r.metadata)
            md.pageNumber, md.sectionPath = r.page_number, r.section_path
            md.semanticScore, md.lexicalScore = h.semantic, h.lexical
            matches[#matches + 1] = {
                corpusId = r.corpus_id, documentId = r.document_id, chunkId = r.id,
                chunkIndex = r.chunk_index, score = h.score, semanticScore = h.semantic,
                lexicalScore = h.lexical, content = r.content, title = d.title,
                sourceType = d.source_type, metadata = md,
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
        -- 6.5 step 7: Cohere when configured with a key, else (and on any error) the heuristic
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
            m.score = (s == s and s ~= math.huge and s ~= -math.huge) and s or 0
            m.metadata.rerankScore, m.metadata.reranker = rr, reranker
        end
        sort(matches, by_score)
    end
    local out = {}
    for i = 1, min(topk, #matches) do
        out[i] = matches[i]
    end
    return { query = query, topK = topk, matches = array(out) }
end

-- Deleting a document or a corpus invalidates the cached corpus.
function Mem:delete_document(id)
    local d = self._doc[id]
    if not d then
        return false
    end
    self._doc[id], self._chunks[id] = nil, nil
    for i, x in ipairs(self._docs) do
        if x == d then
            table.remove(self._docs, i)
            break
        end
    end
    local c = self._corpus[d.corpus_id]
    self:_recompute(c)
    self:_changed(c.id)
    return true
end

function Mem:delete_corpus(id)
    local c = self._corpus[id]
    if not c then
        return false
    end
    local keep = {}
    for _, d in ipairs(self._docs) do
        if d.corpus_id == id then
            self._doc[d.id], self._chunks[d.id] = nil, nil
        else
            keep[#keep + 1] = d
        end
    end
    self._docs = keep
    for i, x in ipairs(self._corpora) do
        if x == c then
            table.remove(self._corpora, i)
            break
        end
    end
    self._corpus[id] = nil
    self:_changed(id)
    return true
end

-- Rows (the instance's own tables: read them, do not modify them).
function Mem:corpus(id)
    return self._corpus[id]
end

function Mem:corpora()
    return self._corpora
end

function Mem:document(id)
    return self._doc[id]
end

function Mem:chunks(document_id)
    return self._chunks[document_id] or {}
end

-- The embedding of a chunk row as a Lua array (what knowledge_chunks.embedding would hold).
function Mem:embedding(chunk)
    local t = {}
    for i = 0, kn.DIMS - 1 do
        t[i + 1] = chunk._vec[i]
    end
    return t
end

function Mem:stats()
    local n = 0
    for _, rows in pairs(self._chunks) do
        n = n + #rows
    end
    local s = self._cache:stats()
    return {
        corpora = #self._corpora, documents = #self._docs, chunks = n, cacheBytes = s.bytes,
        cacheEntries = s.entries, cacheHits = s.hits, cacheMisses = s.misses,
    }
end

return memory
