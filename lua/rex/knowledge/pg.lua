-- rex.knowledge.pg: the knowledge runtime over PostgreSQL's knowledge_corpora,
-- knowledge_documents and knowledge_chunks (rex-behaviour 6.5-6.7, decisions.md 5), and the
-- `ingest-knowledge-document` job.
--
--   local kpg = require("rex.knowledge.pg")
--   local k = kpg.new(db, { tenant_id = ..., retrieval = domain_config.retrieval })
--   k:ingest(params); k:retrieve(params)    -- as rex.knowledge.runtime (6.6, 6.5)
--   kpg.ingest_job(db, job)                 -- 6.7
--
-- Retrieval ranks every chunk of the ready documents of the ready corpora in scope, in C, from
-- a process-wide corpus cache (rex.knowledge shared_cache, KNOWLEDGE_CACHE_MB). Each query
-- reads the corpora in scope together with a version of each (count, newest updated_at and a
-- hash of its ready documents), which changes whenever a document is ingested, re-ingested,
-- failed or deleted, by this process or any other: a changed version reloads the corpus. A
-- load runs in one REPEATABLE READ transaction through a cursor, so the cached snapshot is
-- exactly the version it is stored under. The top K chunks' rows are then read by id.
--
-- Vectors of the deterministic models (rex-lex-v1-1536, rex-hash-v1-1536) are a function of
-- the chunk content, so they are recomputed when a corpus is loaded and not stored: the
-- embedding column holds [] (as the original wrote when it had no vector) unless
-- KNOWLEDGE_STORE_EMBEDDINGS=1. Writing 1536 numbers of jsonb per chunk costs about 0.7 ms of
-- PostgreSQL time per chunk here (docs/knowledge.md), which alone would cap ingestion far
-- below its target. Provider vectors cannot be recomputed: they are stored in `embedding`
-- (and `embedding_vector` when that column exists) and parsed back when a corpus is loaded.
local ffi = require("ffi")
local kn = require("rex.knowledge")
local runtime = require("rex.knowledge.runtime")
local json = require("rex.json")

local setmetatable, ipairs, pairs, next, tostring, tonumber, type, error, pcall = setmetatable,
    ipairs, pairs, next, tostring, tonumber, type, error, pcall
local concat, format, sqrt = table.concat, string.format, math.sqrt

local pg = {}
local PG = setmetatable({}, { __index = runtime.Runtime })
PG.__index = PG
pg.PG = PG

local DETERMINISTIC = { ["rex-lex-v1-1536"] = true, ["rex-hash-v1-1536"] = true,
                        ["rex-hash-v1"] = true }
local DETERMINISTIC_SQL = "('rex-lex-v1-1536', 'rex-hash-v1-1536', 'rex-hash-v1')"
local FETCH_ROWS = 1000

-- The version of a corpus's searchable content: content_version (migration 0003, a trigger
-- on knowledge_documents), or on a database without it an aggregate of its ready documents
-- (count, newest updated_at, a hash of ids and times: linear in the documents).
local VERSION_SQL = "k.content_version::text"
local VERSION_AGG_SQL = "(SELECT count(*) || ':' || coalesce(max(d.updated_at)::text, '-') "
    .. "|| ':' || coalesce(sum(hashtext(d.id::text || d.updated_at::text)), 0) FROM "
    .. "knowledge_documents d WHERE d.corpus_id = k.id AND d.status = 'ready')"
pg.MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

-- the column default of knowledge_chunks.embedding_model is the old name of rex-hash-v1-1536
local function canonical_model(m)
    if m == "rex-hash-v1" then
        return "rex-hash-v1-1536"
    end
    return m
end

local is_uuid = require("rex.util").is_uuid
local null = require("rex.util").null
pg.is_uuid = is_uuid

local function raise_db(what, err)
    local t = type(err) == "table" and err or {}
    error({ message = what .. ": " .. tostring(t.message or err), connection = t.connection,
            sqlstate = t.sqlstate, db = true }, 0)
end

-- Whether a raised error is the database failing (connection lost, timeouts, resources,
-- serialization) rather than the request: the caller retries the job instead of failing the node.
function pg.is_transient(err)
    if type(err) ~= "table" or not err.db then
        return false
    end
    local class = type(err.sqlstate) == "string" and err.sqlstate:sub(1, 2) or ""
    return err.connection == true or class == "08" or class == "53" or class == "57"
        or class == "40" or class == "58"
end

local function batch(db, what, list)
    local ok, res = pcall(db.batch, db, list)
    if not ok then
        raise_db(what, res)
    end
    for _, r in ipairs(res) do
        if r.error then
            raise_db(what, r.error)
        end
    end
    return res
end

local function exec(db, what, sql, params)
    local ok, rows, affected = pcall(db.exec, db, sql, params)
    if not ok then
        raise_db(what, rows)
    end
    return rows, affected
end

local vec_t = ffi.typeof("float[1536]")

-- A stored vector (jsonb text) as a float[1536], L2-normalized and zero-padded, or nil.
local function unit_vector(text)
    local v = text and kn.vector_parse(text, kn.DIMS)
    if not v or #v == 0 then
        return nil
    end
    local ss = 0
    for i = 1, #v do
        ss = ss + v[i] * v[i]
    end
    if not (ss > 0) then
        return nil
    end
    local out, inv = vec_t(), 1 / sqrt(ss)
    for i = 1, #v do
        out[i - 1] = v[i] * inv
    end
    return out
end

local function now_ms()
    local ok, rex = pcall(require, "rex")
    return ok and rex.monotonic_ms and rex.monotonic_ms() or os.clock() * 1000
end

-- corpora holding chunks of several models (legacy data), per Lua state: id -> {version,
-- labels}; their parts are cached under "<id>#mixed#<label>" so that a state that does not know
-- misses and loads
local mixed = {}

local shared
local function cache()
    if not shared then
        shared = kn.shared_cache and kn.shared_cache()
            or kn.cache(1024 * 1024 * 1024) -- one per Lua state until the shared one exists
    end
    return shared
end
pg.cache = cache

-- db: a rex.store DB. opts: those of runtime.init (tenant_id: the workflow's tenant), and
-- store_embeddings (default KNOWLEDGE_STORE_EMBEDDINGS=1), load_threads (embedding threads
-- of a cold load, default 2).
function pg.new(db, opts)
    opts = opts or {}
    local self = setmetatable({ db = db }, PG)
    runtime.init(self, opts)
    local getenv = opts.getenv or os.getenv
    self.store_all = opts.store_embeddings
    if self.store_all == nil then
        self.store_all = getenv("KNOWLEDGE_STORE_EMBEDDINGS") == "1"
    end
    self.embed_deterministic = self.store_all -- else recomputed when a corpus is loaded
    self.load_threads = tonumber(opts.load_threads) or 2
    self.tenant_corpora = db:has_column("knowledge_corpora", "tenant_id")
    self.tenant_documents = db:has_column("knowledge_documents", "tenant_id")
    local vt = db:column_type("knowledge_chunks", "embedding_vector")
    self.vector_cast = vt and (vt == "vector" and "::vector" or "") or nil
    self.version_sql = db:has_column("knowledge_corpora", "content_version") and VERSION_SQL
        or VERSION_AGG_SQL
    return self
end

-- Conditions on knowledge_corpora k shared by the statements below; params appended to p.
local function owner_sql(self, p, user_id)
    p[#p + 1] = user_id
    local s = "k.user_id = $" .. #p
    if self.tenant_corpora then
        p[#p + 1] = self.tenant_id
        s = s .. " AND k.tenant_id = $" .. #p
    end
    return s
end

local MODEL_SQL = "(SELECT ch.embedding_model FROM knowledge_chunks ch WHERE ch.corpus_id = k.id "
    .. "LIMIT 1) AS model"

function PG:_resolve_corpus(p, scope, wf, ex)
    if not is_uuid(p.userId) then
        error("Knowledge ingestion needs a user id (a UUID)", 0)
    end
    local db = self.db
    if p.corpusId ~= nil then
        if not is_uuid(p.corpusId) then
            error("Specified corpusId was not found or is not accessible", 0)
        end
        local params = { p.corpusId }
        local rows = exec(db, "Knowledge corpus lookup failed", "SELECT k.id, " .. MODEL_SQL
            .. " FROM knowledge_corpora k WHERE k.id = $1 AND " .. owner_sql(self, params,
            p.userId), params)
        if not rows[1] then
            error("Specified corpusId was not found or is not accessible", 0)
        end
        return { id = rows[1].id, embedding_model = canonical_model(rows[1].model) }
    end
    if (wf ~= nil and not is_uuid(wf)) or (ex ~= nil and not is_uuid(ex)) then
        error("Knowledge ingestion scope ids must be UUIDs", 0)
    end
    local params = {}
    local where = owner_sql(self, params, p.userId)
    params[#params + 1] = scope
    where = where .. " AND k.scope_type = $" .. #params
    if wf ~= nil then
        params[#params + 1] = wf
        where = where .. " AND k.workflow_id = $" .. #params
    end
    if ex ~= nil then
        params[#params + 1] = ex
        where = where .. " AND k.execution_id = $" .. #params
    end
    local rows = exec(db, "Knowledge corpus lookup failed", "SELECT k.id, " .. MODEL_SQL
        .. " FROM knowledge_corpora k WHERE " .. where .. " ORDER BY k.updated_at DESC LIMIT 1",
        params)
    if rows[1] then
        return { id = rows[1].id, embedding_model = canonical_model(rows[1].model) }
    end
    local id = self.new_id()
    local cols = "id, user_id, name, description, scope_type, workflow_id, execution_id, status, "
        .. "metadata"
    local vals = "$1, $2, $3, $4, $5, $6, $7, 'ingesting', $8"
    local ins = { id, p.userId, "Runtime Corpus " .. runtime.iso(self.now()),
                  "Runtime-ingested corpus for workflow execution", scope, wf, ex,
                  { runtimeIngestion = true, executionId = p.executionId } }
    ins.n = 8
    if self.tenant_corpora then
        cols, vals = cols .. ", tenant_id", vals .. ", $9"
        ins[9], ins.n = self.tenant_id, 9
    end
    exec(db, "Knowledge corpus creation failed", "INSERT INTO knowledge_corpora (" .. cols
        .. ") VALUES (" .. vals .. ")", ins)
    return { id = id }
end

-- 6.7: any failed document -> failed; else any pending or processing -> ingesting; else ready
-- (also with no documents). EXISTS probes on (corpus_id, status) (migration 0003), so a bulk
-- ingestion does not rescan the corpus's documents for each one.
local RECOMPUTE = "UPDATE knowledge_corpora SET status = CASE "
    .. "WHEN EXISTS (SELECT 1 FROM knowledge_documents d WHERE d.corpus_id = $1 AND d.status = "
    .. "'failed') THEN 'failed' WHEN EXISTS (SELECT 1 FROM knowledge_documents d WHERE "
    .. "d.corpus_id = $1 AND d.status IN ('pending', 'processing')) THEN 'ingesting' "
    .. "ELSE 'ready' END, updated_at = now() WHERE id = $1"
pg.RECOMPUTE_SQL = RECOMPUTE

function PG:_empty_content(corpus)
    exec(self.db, "Knowledge corpus update failed", RECOMPUTE, { corpus.id })
end

function PG:_insert_document(corpus, doc)
    local cols = "id, corpus_id, user_id, source_type, title, mime_type, content_text, status, "
        .. "error, metadata"
    local vals = "$1, $2, $3, $4, $5, NULL, $6, 'processing', NULL, $7"
    local md = doc.metadata
    if type(md) ~= "table" then
        md = { value = md }
    end
    local params = { doc.id, corpus.id, doc.user_id, doc.source_type, doc.title,
                     doc.content_text, next(md) == nil and "{}" or md }
    if self.tenant_documents then
        cols, vals = cols .. ", tenant_id", vals .. ", $8"
        params[8] = self.tenant_id
    end
    batch(self.db, "Knowledge document insert failed", {
        { "INSERT INTO knowledge_documents (" .. cols .. ") VALUES (" .. vals .. ")", params },
        { "UPDATE knowledge_corpora SET status = 'ingesting', updated_at = now() WHERE id = $1",
          { corpus.id } },
    })
end

-- The chunk rows as one JSON parameter for jsonb_to_recordset.
function PG:_rows_json(rows, model)
    local dims = kn.DIMS
    if not DETERMINISTIC[model] then
        dims = tonumber(model:match("@(%d+)$")) or kn.DIMS
    end
    local out = {}
    for i, r in ipairs(rows) do
        local o = {
            id = r.id, chunk_index = r.chunk_index, content = r.content,
            token_count = r.token_count, page_number = r.page_number,
            section_path = r.section_path, metadata = r.metadata,
        }
        if r.stored or self.store_all then
            local v = {}
            for j = 0, dims - 1 do
                v[j + 1] = tonumber(r.vec[j])
            end
            o.embedding = v
            if self.vector_cast then
                o.embedding_vector = kn.vector_literal(v, dims)
            end
        end
        out[i] = o
    end
    return json.encode(out)
end

-- `run` (optional): the ingestion job's token, the document's updated_at as its start set it.
-- With it the chunks are written only while the document is still that run's: a newer
-- ingestion of the document (a re-run beside a worker frozen past its lock, the document
-- enqueued again) has started it meanwhile otherwise, and only the newer one writes. The
-- replacing statement's `affected` is then 0.
local function fence_doc(n) -- with the token as parameter $n
    return ("($%d::timestamptz IS NULL OR updated_at = $%d::timestamptz)"):format(n, n)
end

function PG:_chunk_statements(doc_id, corpus_id, rows, model, run)
    local vcol, vval = "", ""
    if self.vector_cast then
        vcol, vval = ", embedding_vector", ", x.embedding_vector" .. self.vector_cast
    end
    return {
        -- Two writes of one document's chunks take turns: each first locks the document row,
        -- and its replacing statement, in the same transaction but a statement of its own, then
        -- sees the chunks the other committed and deletes them. One set remains, the last one.
        { "BEGIN" },
        { "SELECT 1 FROM knowledge_documents WHERE id = $1 AND " .. fence_doc(2)
            .. " FOR NO KEY UPDATE", { doc_id, run or null, n = 2 } },
        { "WITH ok AS (SELECT 1 FROM knowledge_documents WHERE id = $1 AND " .. fence_doc(5)
            .. "), del AS (DELETE FROM knowledge_chunks "
            .. "WHERE document_id = $1 AND EXISTS (SELECT 1 FROM ok)), ins AS ("
            .. "INSERT INTO knowledge_chunks (id, corpus_id, document_id, chunk_index, content, "
            .. "token_count, embedding, embedding_model, page_number, section_path, metadata"
            .. vcol .. ") SELECT x.id, $2, $1, x.chunk_index, x.content, x.token_count, "
            .. "coalesce(x.embedding, '[]'::jsonb), $3, x.page_number, x.section_path, "
            .. "x.metadata" .. vval .. " FROM jsonb_to_recordset($4::jsonb) AS x(id uuid, "
            .. "chunk_index integer, content text, token_count integer, embedding jsonb, "
            .. "embedding_vector text, page_number integer, section_path text, metadata jsonb) "
            .. "WHERE EXISTS (SELECT 1 FROM ok)) "
            .. "UPDATE knowledge_documents SET status = 'ready', error = NULL, updated_at = now() "
            .. "WHERE id = $1 AND EXISTS (SELECT 1 FROM ok)",
          { doc_id, corpus_id, model, self:_rows_json(rows, model), run or null, n = 5 } },
        { "COMMIT" },
        { RECOMPUTE, { corpus_id } },
    }
end
pg.CHUNK_WRITE = 3 -- the replacing statement's place in that list

-- One statement replaces the chunks and marks the document ready (atomic, after the document
-- row is locked); a second recomputes the corpus status. Same round trip.
function PG:_commit_chunks(corpus, doc, rows, model)
    batch(self.db, "Knowledge chunk write failed",
        self:_chunk_statements(doc.id, corpus.id, rows, model))
end

-- The document `failed` with the message, and its corpus status recomputed; with `run`, only
-- while the document is still that run's (as above; `affected` 0 otherwise).
local function fail_statements(doc_id, corpus_id, msg, run)
    return {
        { "UPDATE knowledge_documents SET status = 'failed', error = $3, updated_at = now() "
            .. "WHERE id = $1 AND " .. fence_doc(2), { doc_id, run or null,
                runtime.cut_units(tostring(msg), 4096), n = 3 } },
        { RECOMPUTE, { corpus_id } },
    }
end

function PG:_fail_document(corpus, doc, err)
    local ok, ferr = pcall(batch, self.db, "Knowledge document update failed",
        fail_statements(doc.id, corpus.id, err))
    if not ok then
        self.log("error", "Knowledge document status not recorded", {
            documentId = doc.id, corpusId = corpus.id, error = ferr.message or tostring(ferr),
        })
    end
end

function PG:_scope_corpora(p, scope, wf, ex)
    if not is_uuid(p.userId) then
        error("Knowledge query needs a user id (a UUID)", 0)
    end
    for _, v in ipairs({ p.corpusId or false, wf or false, ex or false }) do
        if v and not is_uuid(v) then
            return {} -- no corpus has that id
        end
    end
    local params = {}
    local where = owner_sql(self, params, p.userId) .. " AND k.status = 'ready'"
    for _, c in ipairs({ { "id", p.corpusId }, { "scope_type", scope }, { "workflow_id", wf },
                         { "execution_id", ex } }) do
        if c[2] ~= nil then
            params[#params + 1] = c[2]
            where = where .. " AND k." .. c[1] .. " = $" .. #params
        end
    end
    local rows = exec(self.db, "Knowledge query failed", "SELECT k.id, " .. self.version_sql
        .. " AS version, " .. MODEL_SQL .. " FROM knowledge_corpora k WHERE " .. where
        .. " ORDER BY k.id", params)
    local out = {}
    for i, r in ipairs(rows) do
        out[i] = { id = r.id, version = r.version,
                   model = canonical_model(r.model or "rex-hash-v1-1536") }
    end
    return out
end

-- The cached parts of a corpus, or nil. A corpus of one model (corpus.model, read with its
-- version) is cached under "<id>#<model>".
function PG:_cached_parts(corpus)
    local c = cache()
    local m = mixed[corpus.id]
    if m and m.version == corpus.version then
        local parts = {}
        for i, label in ipairs(m.labels) do
            local snap = c:get(corpus.id .. "#mixed#" .. label, corpus.version)
            if not snap then
                return nil
            end
            parts[i] = { model = label, snap = snap }
        end
        return parts
    end
    local snap = c:get(corpus.id .. "#" .. corpus.model, corpus.version)
    if snap then
        return { { model = corpus.model, snap = snap } }
    end
end

function PG:_parts(corpus)
    return self:_cached_parts(corpus) or self:_load(corpus)
end

-- Loads a corpus from PostgreSQL into one rex.knowledge Corpus per embedding model and caches
-- them under the version read in the same snapshot.
function PG:_load(corpus)
    local db = self.db
    local t0, fetch_ms = now_ms(), 0
    exec(db, "Knowledge corpus load failed", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    local ok, res = pcall(function()
        local v = exec(db, "Knowledge corpus load failed", "SELECT " .. self.version_sql
            .. " AS version FROM knowledge_corpora k WHERE k.id = $1", { corpus.id })
        local version = v[1] and v[1].version or corpus.version
        exec(db, "Knowledge corpus load failed", "DECLARE rex_kn_load NO SCROLL CURSOR FOR "
            .. "SELECT c.id, c.embedding_model AS model, c.content, CASE WHEN c.embedding_model "
            .. "NOT IN " .. DETERMINISTIC_SQL .. " THEN c.embedding::text END AS embedding "
            .. "FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id "
            .. "WHERE c.corpus_id = $1 AND d.status = 'ready'", { corpus.id })
        local snaps, order, bad = {}, {}, 0
        while true do
            local f0 = now_ms()
            local rows = exec(db, "Knowledge corpus load failed",
                "FETCH " .. FETCH_ROWS .. " FROM rex_kn_load")
            fetch_ms = fetch_ms + now_ms() - f0
            if #rows == 0 then
                break
            end
            local batches = {}
            for _, r in ipairs(rows) do
                local label = canonical_model(r.model or "rex-hash-v1-1536")
                local s = snaps[label]
                if not s then
                    -- provider vectors live in a rex-lex corpus: its lexical index is used as
                    -- any other's, its vectors are the stored ones
                    s = assert(kn.corpus(DETERMINISTIC[label] and label or kn.DEFAULT_MODEL))
                    snaps[label] = s
                    order[#order + 1] = label
                end
                local vec
                if not DETERMINISTIC[label] then
                    vec = unit_vector(r.embedding)
                    if not vec then
                        bad = bad + 1
                        vec = vec_t() -- zeros: ranked by its lexical score alone
                    end
                end
                local b = batches[label]
                if not b then
                    b = {}
                    batches[label] = b
                end
                b[#b + 1] = { id = r.id, content = r.content, vec = vec, tag = 0 }
            end
            for label, b in pairs(batches) do
                local s = snaps[label]
                if s.add_batch then
                    assert(s:add_batch(b, self.load_threads))
                else
                    for _, r in ipairs(b) do
                        assert(s:add(r.id, r.content, r.vec, 0))
                    end
                end
            end
        end
        exec(db, "Knowledge corpus load failed", "CLOSE rex_kn_load")
        return { version = version, snaps = snaps, order = order, bad = bad }
    end)
    if not ok then
        pcall(db.exec, db, "ROLLBACK")
        error(res, 0)
    end
    exec(db, "Knowledge corpus load failed", "COMMIT")
    local c, parts, bytes = cache(), {}, 0
    for i, label in ipairs(res.order) do
        local s = res.snaps[label]
        s:seal()
        bytes = bytes + s:memory()
        parts[i] = { model = label, snap = s }
        local key = #res.order == 1 and (corpus.id .. "#" .. label)
            or (corpus.id .. "#mixed#" .. label)
        if not c:put(key, res.version, s) then
            -- used for this query only: every query will load it again
            self.log("warn", "Knowledge corpus is larger than the corpus cache; raise "
                .. "KNOWLEDGE_CACHE_MB", { corpusId = corpus.id, bytes = s:memory(),
                                          cacheBytes = c:stats().maxBytes })
        end
    end
    if #res.order > 1 then
        mixed[corpus.id] = { version = res.version, labels = res.order }
        self.log("warn", "Knowledge corpus holds chunks of several embedding models; each is "
            .. "ranked with its own model", { corpusId = corpus.id, models = res.order })
    end
    if res.bad > 0 then
        self.log("warn", "Knowledge chunks without a usable stored vector rank by lexical score "
            .. "only", { corpusId = corpus.id, chunks = res.bad })
    end
    local n = 0
    for _, p in ipairs(parts) do
        n = n + p.snap:size()
    end
    local st = c:stats()
    self.log("info", "Knowledge corpus loaded", {
        corpusId = corpus.id, chunks = n, bytes = bytes,
        durationMs = now_ms() - t0, fetchMs = fetch_ms,
        cacheBytes = st.bytes, cacheMaxBytes = st.maxBytes, cacheEntries = st.entries,
    })
    return parts
end

function PG:_details(ids)
    local rows = exec(self.db, "Knowledge query failed",
        "SELECT c.id, c.corpus_id, c.document_id, c.chunk_index, c.content, c.metadata::text "
        .. "AS metadata, c.page_number, c.section_path, d.title, d.source_type FROM "
        .. "knowledge_chunks c, LATERAL (SELECT title, source_type FROM knowledge_documents WHERE "
        .. "id = c.document_id) d WHERE c.id = ANY($1::uuid[])", { "{" .. concat(ids, ",") .. "}" })
    local out = {}
    for _, r in ipairs(rows) do
        local md = r.metadata and json.decode(r.metadata)
        out[r.id] = {
            corpus_id = r.corpus_id, document_id = r.document_id,
            chunk_index = tonumber(r.chunk_index), content = r.content,
            metadata = type(md) == "table" and md or {},
            page_number = tonumber(r.page_number), section_path = r.section_path,
            title = r.title, source_type = r.source_type,
        }
    end
    return out
end

-- The ingest-knowledge-document job (6.7) ------------------------------------------------------

-- The job variant's API key lookup (6.8): the user's newest key of the provider, without the
-- tenant filter, decrypted with ENCRYPTION_MASTER_KEY; raises a clear message otherwise.
local function job_api_keys(db, user_id)
    local cache = {}
    return function(provider)
        provider = tostring(provider)
        if cache[provider] then
            return cache[provider]
        end
        local rows = db:has_table("api_keys") and exec(db, "API key lookup failed",
            "SELECT encrypted_key FROM api_keys WHERE user_id = $1 AND provider = $2 ORDER BY "
            .. "created_at DESC, id LIMIT 1", { user_id, provider }) or {}
        if not rows[1] then
            error(format("No %s API key found for user", provider), 0)
        end
        local key = require("rex.store").provider_key(provider, rows[1].encrypted_key)
        cache[provider] = key
        return key
    end
end

local function job_error(msg, unrecoverable)
    error({ message = msg, unrecoverable = unrecoverable }, 0)
end

-- A document still `pending` or `processing` becomes `failed` with message (updated_at: at_ms,
-- ms since the epoch, or now), and so does its corpus (6.7: a corpus with a failed document is
-- failed), in one statement; a document that moved on is left alone and its corpus untouched.
-- Returns whether the document changed. Raises on a database error.
function pg.fail_in_progress(db, corpus_id, doc_id, message, at_ms)
    local _, affected = exec(db, "Knowledge document update failed", "WITH d AS (UPDATE "
        .. "knowledge_documents SET status = 'failed', error = $3, updated_at = "
        .. "COALESCE(to_timestamp($4::float8 / 1000), now()) WHERE id = $1 AND corpus_id = $2 "
        .. "AND status IN ('pending', 'processing') RETURNING corpus_id) UPDATE knowledge_corpora "
        .. "SET status = 'failed', updated_at = now() WHERE id IN (SELECT corpus_id FROM d)",
        { doc_id, corpus_id, runtime.cut_units(tostring(message), 4096),
          type(at_ms) == "number" and at_ms or nil, n = 4 })
    return (tonumber(affected) or 0) > 0
end

-- Runs the job on db. data: {corpusId, documentId, userId}. opts: log, and the runtime options
-- (tests). Returns {corpusId, documentId, chunkCount, embeddingModel}; raises {message,
-- unrecoverable?} (unrecoverable: retrying cannot help: bad payload, missing document,
-- content that cannot be chunked).
function pg.ingest_job(db, job, opts)
    opts = opts or {}
    local log = opts.log or function(level, msg, fields)
        require("rex").log[level](msg, fields)
    end
    local d = type(job.data) == "table" and job.data or {}
    local cid, did, uid = d.corpusId, d.documentId, d.userId
    log("info", "Processing knowledge ingestion job", { jobId = job.id, corpusId = cid,
                                                        documentId = did })
    if not (is_uuid(cid) and is_uuid(did) and is_uuid(uid)) then
        job_error("Knowledge ingestion job needs corpusId, documentId and userId (UUIDs)", true)
    end
    local list = {
        -- its updated_at is this run's token (fence_doc)
        { "UPDATE knowledge_documents SET status = 'processing', updated_at = now(), error = NULL "
            .. "WHERE id = $1 AND corpus_id = $2 AND user_id = $3 RETURNING updated_at",
          { did, cid, uid } },
        -- (already `ingesting` in a bulk ingestion: no second write; the status recomputation
        -- at the end sets updated_at)
        { "UPDATE knowledge_corpora SET status = 'ingesting', updated_at = now() WHERE id = $1 "
            .. "AND status IS DISTINCT FROM 'ingesting'", { cid } },
        { "SELECT d.content_text, k.workflow_id, " .. (db:has_column("knowledge_corpora",
            "tenant_id") and "k.tenant_id" or "NULL AS tenant_id") .. ", (SELECT "
            .. "ch.embedding_model FROM knowledge_chunks ch WHERE ch.corpus_id = k.id AND "
            .. "ch.document_id <> d.id LIMIT 1) AS model FROM knowledge_documents d JOIN "
            .. "knowledge_corpora k ON k.id = d.corpus_id WHERE d.id = $1 AND d.corpus_id = $2 "
            .. "AND d.user_id = $3", { did, cid, uid } },
    }
    if db:has_table("domain_configs") then
        -- 6.7 step 4: the user's and the corpus workflow's configs (not tenant filtered)
        list[4] = { "SELECT config::text AS config, user_id, workflow_id FROM domain_configs "
            .. "WHERE is_active = true AND (user_id IS NULL OR user_id = $1) AND (workflow_id IS "
            .. "NULL OR workflow_id = (SELECT workflow_id FROM knowledge_corpora WHERE id = $2)) "
            .. "ORDER BY created_at, id", { uid, cid } }
    end
    local res = batch(db, "PostgreSQL failure at ingestion start", list)
    local row = res[3].rows[1]
    if not row then
        job_error("Knowledge document not found", true)
    end
    local cfg = require("rex.execution").resolve_domain_config(res[4] and res[4].rows or {})
    local retr = type(cfg.retrieval) == "table" and cfg.retrieval or {}
    local corpus = { id = cid, embedding_model = canonical_model(row.model) }
    local doc = { id = did }
    local run = res[1].rows[1] and res[1].rows[1].updated_at
    local function superseded()
        log("warn", "Knowledge document taken over by a newer ingestion; this run writes nothing",
            { jobId = job.id, corpusId = cid, documentId = did })
    end
    local k
    local ok, err = pcall(function()
        local kopts = {}
        for key, v in pairs(opts) do
            kopts[key] = v
        end
        kopts.retrieval, kopts.tenant_id = retr, row.tenant_id
        kopts.log = log
        kopts.get_api_key = opts.get_api_key or job_api_keys(db, uid)
        if kopts.http_allowlist == nil then
            kopts.http_allowlist = os.getenv("REX_HTTP_ALLOWLIST")
        end
        k = pg.new(db, kopts)
        local content = row.content_text or ""
        if #content > pg.MAX_DOCUMENT_BYTES then
            job_error(format("Document is larger than %d bytes", pg.MAX_DOCUMENT_BYTES), true)
        end
        -- a configured deterministic model (the original's default name) is honoured; a
        -- corpus keeps the model it already holds
        local model = corpus.embedding_model
        local wanted = type(retr.embeddingModel) == "string" and retr.embeddingModel or nil
        if not model and wanted and DETERMINISTIC[wanted] and not k.settings.embedding then
            model = canonical_model(wanted)
        end
        local cok, model_or_err, rows = pcall(k._chunk_rows, k, content, model, corpus, doc,
            false)
        if not cok then
            local m = type(model_or_err) == "table" and model_or_err.message or model_or_err
            -- the content itself cannot be chunked: no retry can change that
            job_error(tostring(m), m == "Document content is empty after normalization"
                or tostring(m):find("not valid UTF%-8") ~= nil)
        end
        local wres = batch(db, "Knowledge chunk write failed",
            k:_chunk_statements(did, cid, rows, model_or_err, run))
        return { corpusId = cid, documentId = did, chunkCount = #rows,
                 embeddingModel = model_or_err,
                 superseded = wres[pg.CHUNK_WRITE].affected == 0 or nil }
    end)
    if not ok then
        local msg = type(err) == "table" and tostring(err.message) or tostring(err)
        local fok, ferr = pcall(batch, db, "Knowledge document update failed",
            fail_statements(did, cid, msg, run))
        log("error", "Knowledge ingestion failed", { corpusId = cid, documentId = did,
                                                     error = msg })
        if not fok then
            log("error", "Knowledge document status not recorded", {
                documentId = did, error = ferr.message or tostring(ferr) })
        elseif ferr[1].affected == 0 then
            superseded()
        end
        error({ message = msg, unrecoverable = type(err) == "table" and err.unrecoverable }, 0)
    end
    if err.superseded then
        superseded()
        return err
    end
    log("info", "Knowledge ingestion completed", { jobId = job.id, corpusId = cid,
                                                   documentId = did, chunkCount = err.chunkCount })
    return err
end

return pg
