-- rex.knowledge: chunking, embeddings, corpora and exact top-K search from Lua (the C core through
-- the FFI; docs/knowledge.md). Expected failures return nil, err.
--
--   local kn = require("rex.knowledge")
--   local chunks = kn.chunk(text)                       -- rex-behaviour 6.1/6.2, offsets into text
--   local c = kn.corpus("rex-lex-v1-1536")
--   c:add("chunk-1", "some text")                       -- embeds with the corpus model
--   local hits = kn.search({ c }, "query", { topK = 8 }) -- { {corpus, index, tag, score, ...} }
local ffi = require("ffi")
local C = require("rex.knowledge.ffi")

local type, tostring, tonumber, setmetatable = type, tostring, tonumber, setmetatable
local floor = math.floor
local ffi_string, ffi_new, ffi_gc = ffi.string, ffi.new, ffi.gc

local knowledge = {}

knowledge.DEFAULT_MODEL = "rex-lex-v1-1536"
knowledge.DIMS = C.DIMS
knowledge.QUERY_MAX = C.QUERY_MAX
knowledge.TOPK_MAX = C.TOPK_MAX
knowledge.RANKINGS = { "hybrid", "cosine", "bm25", "original" }

-- Model id for a name, or nil, err.
function knowledge.model_id(name)
    local id = type(name) == "string" and C.model_from_name(name) or -1
    if id < 0 then
        return nil, ("unknown embedding model %q (rex-lex-v1-1536, rex-hash-v1-1536)"):format(
            tostring(name))
    end
    return id
end

-- Byte offset (0-based) of the first invalid UTF-8 sequence or NUL, or nil if the text is clean.
function knowledge.utf8_error(text)
    local n = #text
    local off = tonumber(C.utf8_check(text, n))
    if off < n then
        return off
    end
    return nil
end

local chunk_opts = ffi.typeof("struct rex_kn_chunk_opts")
local chunks_pp = ffi.typeof("rex_kn_chunks *[1]")
local size_p = ffi.typeof("size_t[1]")
local size_arr = ffi.typeof("size_t[?]")

-- Chunks a document. opts: size (1200), overlap (200), empty_heading ("page": a `#` heading that
-- is empty gives section "page-<n>" (runtime ingestion, default); "empty": "" (ingestion job)).
-- Returns an array of {index, page, start, ["end"], byteStart, byteEnd, tokenCount, content,
-- sectionPath} (start/end in UTF-16 units, byte offsets 0-based, all into text), or nil, err.
function knowledge.chunk(text, opts)
    if type(text) ~= "string" then
        return nil, "text must be a string"
    end
    opts = opts or {}
    local o = chunk_opts(opts.size or 0, opts.overlap or 0, opts.empty_heading == "empty" and 0 or 1)
    local out, bad = chunks_pp(), size_p()
    local rc = C.chunk_text(text, #text, o, out, bad)
    if rc ~= 0 then
        if knowledge.utf8_error(text) then
            return nil, ("content is not valid UTF-8 or contains a NUL character (byte %d)"):format(
                tonumber(bad[0]))
        end
        return nil, "invalid chunking options"
    end
    local cs = out[0]
    local n = tonumber(C.chunks_count(cs))
    local res = {}
    for i = 0, n - 1 do
        local ch = C.chunks_get(cs, i)
        res[i + 1] = {
            index = tonumber(ch.index), page = ch.page,
            start = tonumber(ch.start), ["end"] = tonumber(ch["end"]),
            byteStart = tonumber(ch.byte_start), byteEnd = tonumber(ch.byte_end),
            tokenCount = tonumber(ch.token_count),
            content = ffi_string(ch.content, ch.content_len),
            sectionPath = ffi_string(ch.section, ch.section_len),
        }
    end
    C.chunks_free(cs)
    return res
end

local vec_t = ffi.typeof("float[1536]")
local flt_vla = ffi.typeof("float[?]")
local ffi_istype, ffi_sizeof = ffi.istype, ffi.sizeof
local math_huge = math.huge

-- A vector argument as a float[1536] the C core can read: float[1536] cdata (or a float[?] of
-- 1536) as it is; a Lua array of up to 1536 finite numbers copied and zero-padded (the C core
-- normalizes). Returns the cdata, or nil, err.
local function to_vec(v, what)
    if type(v) == "cdata" then
        if ffi_istype(vec_t, v) or (ffi_istype(flt_vla, v) and ffi_sizeof(v) == 4 * C.DIMS) then
            return v
        end
        return nil, what .. " must be a float[1536] cdata or an array of numbers"
    end
    if type(v) ~= "table" then
        return nil, what .. " must be a float[1536] cdata or an array of numbers"
    end
    local n = #v
    if n > C.DIMS then
        return nil, ("%s has %d values (at most %d)"):format(what, n, C.DIMS)
    end
    local out = vec_t()
    for i = 1, n do
        local x = v[i]
        if type(x) ~= "number" or x ~= x or x == math_huge or x == -math_huge then
            return nil, ("%s value %d is not a finite number"):format(what, i)
        end
        out[i - 1] = x
    end
    return out
end

-- Embeds text: a float[1536] cdata, or nil, err.
function knowledge.embed(model, text)
    local id, err = knowledge.model_id(model)
    if not id then
        return nil, err
    end
    local v = vec_t()
    if C.embed(id, text, #text, v) ~= 0 then
        return nil, "text is not valid UTF-8"
    end
    return v
end

-- The same as a Lua array of numbers (for JSON rows).
function knowledge.embed_table(model, text)
    local v, err = knowledge.embed(model, text)
    if not v then
        return nil, err
    end
    local t = {}
    for i = 0, C.DIMS - 1 do
        t[i + 1] = v[i]
    end
    return t
end

local dbl_arr = ffi.typeof("double[?]")
local flt_arr = ffi.typeof("float[?]")

-- The embedding_vector text of a vector (a Lua array or float[1536] cdata; n = its length):
-- "[v1,...]" with values rounded to 8 decimals in JavaScript's shortest form (6.3).
function knowledge.vector_literal(vec, n)
    n = n or (type(vec) == "table" and #vec or C.DIMS)
    local d = dbl_arr(n > 0 and n or 1)
    for i = 0, n - 1 do
        d[i] = type(vec) == "table" and vec[i + 1] or vec[i]
    end
    local len = size_p()
    local p = C.vector_literal(d, n, len)
    local s = ffi_string(p, len[0])
    C.free(p)
    return s
end

-- Parses an embedding_vector text into a Lua array of numbers, or nil, err (the caller then uses
-- the jsonb embedding, as the original did).
function knowledge.vector_parse(text, max)
    max = max or 65536
    local out, n = flt_arr(max), size_p()
    if type(text) ~= "string" or C.vector_parse(text, #text, out, max, n) ~= 0 then
        return nil, "not a vector literal"
    end
    local t = {}
    for i = 0, tonumber(n[0]) - 1 do
        t[i + 1] = out[i]
    end
    return t
end

-- The original's lexicalRelevanceScore (6.4).
function knowledge.overlap_score(query, content)
    return tonumber(C.overlap_score(query, #query, content, #content))
end

function knowledge.kernel()
    return ffi_string(C.kernel_name(C.kernel_best()))
end

-- Corpus -----------------------------------------------------------------------------------

local Corpus = {}
Corpus.__index = Corpus

local corpus_pp = ffi.typeof("rex_kn_corpus *[1]")

local function wrap(ptr, model)
    return setmetatable({ ptr = ffi_gc(ptr, C.corpus_release), model = model }, Corpus)
end

-- A new corpus for a model name, or nil, err.
function knowledge.corpus(model)
    model = model or knowledge.DEFAULT_MODEL
    local id, err = knowledge.model_id(model)
    if not id then
        return nil, err
    end
    local out = corpus_pp()
    C.corpus_new(id, out)
    return wrap(out[0], model)
end

-- Adds a chunk: id (string, orders ties), content, vec (float[1536] cdata or nil = embed the
-- content), tag (integer returned with hits). Returns true, or nil, err.
function Corpus:add(id, content, vec, tag)
    if C.corpus_add(self.ptr, tostring(id), content, #content, vec, tag or 0) ~= 0 then
        return nil, "cannot add chunk " .. tostring(id)
            .. " (corpus sealed, content not valid UTF-8 or vector not finite)"
    end
    return true
end

local str_arr = ffi.typeof("const char *[?]")
local vecp_arr = ffi.typeof("const float *[?]")
local i64_arr = ffi.typeof("int64_t[?]")

-- Adds rows in order, as :add for each would (the same corpus), embedding the rows without a
-- vector with up to `threads` threads (default 1: this thread only). rows: an array of {id,
-- content, vec (nil = embed the content; float[1536] cdata or an array of numbers), tag}.
-- All or nothing: returns true, or nil, err (nothing added).
function Corpus:add_batch(rows, threads)
    if type(rows) ~= "table" then
        return nil, "rows must be an array"
    end
    local n = #rows
    if n == 0 then
        return true
    end
    local ids, contents, lens = str_arr(n), str_arr(n), size_arr(n)
    local vecs, tags = vecp_arr(n), i64_arr(n)
    -- ids and vecs point into these strings and vectors: `keep` holds them until the C call (which
    -- does not enter Lua, so no collection can run during it)
    local keep = {}
    local any_vec = false
    for i = 1, n do
        local r = rows[i]
        if type(r) ~= "table" or r.id == nil or type(r.content) ~= "string" then
            return nil, ("row %d needs an id and a string content"):format(i)
        end
        local id = tostring(r.id)
        keep[#keep + 1] = id
        ids[i - 1], contents[i - 1], lens[i - 1] = id, r.content, #r.content
        if r.vec ~= nil then
            local v, err = to_vec(r.vec, ("row %d vec"):format(i))
            if not v then
                return nil, err
            end
            keep[#keep + 1] = v
            vecs[i - 1] = v
            any_vec = true
        end
        tags[i - 1] = r.tag or 0
    end
    local t = floor(tonumber(threads) or 1)
    if C.corpus_add_batch(self.ptr, n, ids, contents, lens, any_vec and vecs or nil, tags, t) ~= 0
    then
        return nil, "cannot add the rows (corpus sealed, a content not valid UTF-8 or a vector "
            .. "not finite)"
    end
    return true
end

function Corpus:seal()
    C.corpus_seal(self.ptr)
end

function Corpus:size()
    return tonumber(C.corpus_size(self.ptr))
end

function Corpus:memory()
    return tonumber(C.corpus_memory(self.ptr))
end

function Corpus:id_at(i)
    return ffi_string(C.corpus_id_at(self.ptr, i - 1))
end

local search_opts = ffi.typeof("struct rex_kn_search_opts")
local hits_t = ffi.typeof("rex_kn_hit[?]")
local corpora_t = ffi.typeof("rex_kn_corpus *[?]")

-- Exact top-K over corpora (an array of Corpus of one model). opts: topK (8, 1..1000), ranking
-- ("hybrid" | "cosine" | "bm25" | "original"), weight (cosine weight of hybrid), kernel ("auto" |
-- "scalar" | "avx2" | "avx512"), exact (true: float32 scan only), query_vector (the query's
-- vector for corpora holding provider embeddings: float[1536] cdata or an array of up to 1536
-- numbers, zero-padded and L2-normalized; the semantic score is then its cosine with the chunk
-- vectors instead of the corpus model's embedding of the query; false = no semantic part,
-- semantic score 0, for ranking "bm25"). Returns an array of {corpus (1-based position in
-- corpora), index (1-based chunk), tag, score, semantic, lexical}, best first, or nil, err.
function knowledge.search(corpora, query, opts)
    opts = opts or {}
    if type(query) ~= "string" then
        return nil, "query must be a string"
    end
    if #query > C.QUERY_MAX then
        return nil, ("query is longer than %d bytes"):format(C.QUERY_MAX)
    end
    if not query:find("%S") then
        return nil, "query is empty"
    end
    local k = floor(tonumber(opts.topK) or 8)
    if k < 1 or k > C.TOPK_MAX then
        return nil, "topK must be from 1 to " .. C.TOPK_MAX
    end
    local ranking = C.RANK[opts.ranking or "hybrid"]
    local kernel = C.KERNEL[opts.kernel or "auto"]
    if not ranking or not kernel then
        return nil, "unknown ranking or kernel"
    end
    local n = #corpora
    local arr = corpora_t(n > 0 and n or 1)
    for i = 1, n do
        if corpora[i].model ~= corpora[1].model then
            return nil, "corpora with different embedding models cannot be searched together"
        end
        arr[i - 1] = corpora[i].ptr
    end
    local o = search_opts(k, ranking, opts.weight or 0, kernel, opts.exact and 1 or 0)
    local hits, nh = hits_t(k), size_p()
    local qv = opts.query_vector
    local rc
    if qv == nil then
        rc = C.search(arr, n, query, #query, o, hits, nh)
    else
        if qv ~= false then
            local err
            qv, err = to_vec(qv, "query_vector")
            if not qv then
                return nil, err
            end
        end
        rc = C.search_vec(arr, n, qv or nil, query, #query, o, hits, nh)
    end
    if rc ~= 0 then
        return nil, "query is not valid UTF-8 or is empty"
    end
    local res = {}
    for i = 0, tonumber(nh[0]) - 1 do
        local h = hits[i]
        res[i + 1] = {
            corpus = tonumber(h.corpus) + 1, index = tonumber(h.index) + 1, tag = tonumber(h.tag),
            score = h.score, semantic = h.semantic, lexical = h.lexical,
        }
    end
    return res
end

-- Cache ------------------------------------------------------------------------------------

local Cache = {}
Cache.__index = Cache

-- A corpus cache bounded by max_bytes (0 = unbounded), least recently used evicted.
function knowledge.cache(max_bytes)
    return setmetatable({ ptr = ffi_gc(C.cache_new(max_bytes or 0), C.cache_free) }, Cache)
end

local shared

-- The process-wide cache (rex_kn_cache_shared): one for every Lua state and thread of the process,
-- bounded by KNOWLEDGE_CACHE_MB (MiB, default 2048, 0 = unbounded), never freed.
function knowledge.shared_cache()
    if not shared then
        shared = setmetatable({ ptr = C.cache_shared(), shared = true }, Cache)
    end
    return shared
end

-- The Corpus stored under key with this version, or nil.
function Cache:get(key, version)
    local p = C.cache_get(self.ptr, key, version or "")
    if p == nil then
        return nil
    end
    return wrap(p, ffi_string(C.model_name(C.corpus_model(p))))
end

-- Stores a corpus (sealing it). Returns true, or nil, err when it alone exceeds the bound.
function Cache:put(key, version, corpus)
    if C.cache_put(self.ptr, key, version or "", corpus.ptr) ~= 0 then
        return nil, "corpus is larger than the cache bound"
    end
    return true
end

function Cache:invalidate(key)
    return C.cache_invalidate(self.ptr, key) == 1
end

local stats_t = ffi.typeof("struct rex_kn_cache_stats")

function Cache:stats()
    local s = stats_t()
    C.cache_stats(self.ptr, s)
    return {
        bytes = tonumber(s.bytes), maxBytes = tonumber(s.max_bytes), entries = tonumber(s.entries),
        hits = tonumber(s.hits), misses = tonumber(s.misses), evictions = tonumber(s.evictions),
    }
end

return knowledge
