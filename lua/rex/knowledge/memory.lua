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
local kn = require("rex.knowledge")
local runtime = require("rex.knowledge.runtime")

local setmetatable, ipairs, pairs, tostring = setmetatable, ipairs, pairs, tostring
local iso = runtime.iso

local memory = {}
local Mem = setmetatable({}, { __index = runtime.Runtime })
Mem.__index = Mem

-- opts: those of runtime.init (rex.knowledge.runtime), and cache_bytes (corpus cache bound,
-- default 256 MiB).
function memory.new(opts)
    opts = opts or {}
    local self = setmetatable({
        _corpora = {},  -- in creation order
        _corpus = {},   -- id -> row
        _docs = {},     -- in creation order
        _doc = {},      -- id -> row
        _chunks = {},   -- document id -> array of chunk rows
        _chunk = {},    -- chunk id -> row
        _version = {},  -- corpus id -> integer, bumped on every change
        _seq = 0,       -- orders updates within one millisecond
        _cache = kn.cache(opts.cache_bytes or 256 * 1024 * 1024),
        embed_deterministic = true, -- chunk rows keep their vectors
    }, Mem)
    return runtime.init(self, opts)
end

function Mem:_touch(row)
    self._seq = self._seq + 1
    row.updated_at = iso(self.now())
    row._seq = self._seq
end

function Mem:_changed(corpus_id)
    self._version[corpus_id] = (self._version[corpus_id] or 0) + 1
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

function Mem:_resolve_corpus(p, scope, wf, ex)
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

function Mem:_empty_content(corpus)
    self:_recompute(corpus)
end

function Mem:_insert_document(corpus, doc)
    doc.tenant_id, doc.corpus_id, doc.status = self.tenant_id, corpus.id, "processing"
    doc.created_at = iso(self.now())
    self:_touch(doc)
    self._docs[#self._docs + 1] = doc
    self._doc[doc.id] = doc
    corpus.status = "ingesting"
end

function Mem:_commit_chunks(corpus, doc, rows, model)
    for _, r in ipairs(self._chunks[doc.id] or {}) do
        self._chunk[r.id] = nil
    end
    for _, r in ipairs(rows) do
        r.corpus_id, r.document_id, r.embedding_model = corpus.id, doc.id, model
        self._chunk[r.id] = r
    end
    corpus.embedding_model = model
    self._chunks[doc.id] = rows -- replaces any previous chunks of the document
    doc.status, doc.error = "ready", nil
    self:_touch(doc)
    self:_recompute(corpus)
    self:_changed(corpus.id)
end

function Mem:_fail_document(corpus, doc, err)
    doc.status, doc.error = "failed", tostring(err)
    self:_touch(doc)
    self:_recompute(corpus)
    self:_changed(corpus.id)
end

function Mem:_scope_corpora(p, scope, wf, ex)
    local out = {}
    for _, c in ipairs(self._corpora) do
        if c.tenant_id == self.tenant_id and c.user_id == p.userId and c.status == "ready"
            and (p.corpusId == nil or c.id == p.corpusId)
            and (scope == nil or c.scope_type == scope)
            and (wf == nil or c.workflow_id == wf) and (ex == nil or c.execution_id == ex) then
            out[#out + 1] = c
        end
    end
    return out
end

-- The searchable snapshot of a corpus (chunks of its ready documents), from the cache. A
-- provider corpus is held in a rex-lex corpus: its vectors are the provider's, its lexical
-- index is used as any other's.
function Mem:_parts(corpus)
    local version = tostring(self._version[corpus.id] or 0)
    local snap = self._cache:get(corpus.id, version)
    local m = corpus.embedding_model or self.model
    if not snap then
        snap = assert(kn.corpus(kn.model_id(m) and m or kn.DEFAULT_MODEL))
        for _, d in ipairs(self._docs) do
            if d.corpus_id == corpus.id and d.status == "ready" then
                for _, r in ipairs(self._chunks[d.id] or {}) do
                    assert(snap:add(r.id, r.content, r.vec, 0))
                end
            end
        end
        snap:seal()
        self._cache:put(corpus.id, version, snap) -- a corpus over the bound is used uncached
    end
    return { { model = m, snap = snap } }
end

function Mem:_details(ids)
    local out = {}
    for _, id in ipairs(ids) do
        local r = self._chunk[id]
        local d = r and self._doc[r.document_id]
        if d then
            out[id] = {
                corpus_id = r.corpus_id, document_id = r.document_id, chunk_index = r.chunk_index,
                content = r.content, metadata = r.metadata, page_number = r.page_number,
                section_path = r.section_path, title = d.title, source_type = d.source_type,
            }
        end
    end
    return out
end

-- Deleting a document or a corpus invalidates the cached corpus.
function Mem:delete_document(id)
    local d = self._doc[id]
    if not d then
        return false
    end
    for _, r in ipairs(self._chunks[id] or {}) do
        self._chunk[r.id] = nil
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
            for _, r in ipairs(self._chunks[d.id] or {}) do
                self._chunk[r.id] = nil
            end
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
        t[i + 1] = chunk.vec[i]
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
