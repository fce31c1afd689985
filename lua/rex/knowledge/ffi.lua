-- rex.knowledge.ffi: the knowledge C API (include/rex/knowledge.h) through LuaJIT's FFI.
--
-- The C functions come from rex.knowledge.native, a table of function pointers (lightuserdata)
-- registered by the C core: package.preload in the rex-worker executable, and by
-- require("rex.core") when the core is loaded as build/lua/rex/core.so (busted, LuaRocks). Each
-- pointer is cast once to its C type here; calls are then JIT-compiled direct calls, as with
-- ffi.C, without depending on how symbols are exported.
local ffi = require("ffi")

if not pcall(ffi.typeof, "rex_kn_hit") then
    ffi.cdef([[
typedef struct rex_kn_chunk {
    size_t index;
    int page;
    size_t start, end;
    size_t byte_start, byte_end;
    size_t token_count;
    const char *content;
    size_t content_len;
    const char *section;
    size_t section_len;
} rex_kn_chunk;
typedef struct rex_kn_chunks rex_kn_chunks;
struct rex_kn_chunk_opts { size_t size; size_t overlap; int empty_heading_page_path; };
typedef struct rex_kn_corpus rex_kn_corpus;
struct rex_kn_search_opts { size_t top_k; int ranking; float weight; int kernel; int exact_f32; };
typedef struct rex_kn_hit {
    size_t corpus;
    size_t index;
    int64_t tag;
    float score, semantic, lexical;
} rex_kn_hit;
typedef struct rex_kn_cache rex_kn_cache;
struct rex_kn_cache_stats {
    size_t bytes, max_bytes, entries;
    uint64_t hits, misses, evictions;
};
]])
end

local types = {
    rex_kn_model_from_name = "int (*)(const char *)",
    rex_kn_model_name = "const char *(*)(int)",
    rex_kn_chunk_text = "int (*)(const char *, size_t, const struct rex_kn_chunk_opts *, "
        .. "rex_kn_chunks **, size_t *)",
    rex_kn_chunks_count = "size_t (*)(const rex_kn_chunks *)",
    rex_kn_chunks_get = "const rex_kn_chunk *(*)(const rex_kn_chunks *, size_t)",
    rex_kn_chunks_free = "void (*)(rex_kn_chunks *)",
    rex_kn_utf8_check = "size_t (*)(const char *, size_t)",
    rex_kn_embed = "int (*)(int, const char *, size_t, float *)",
    rex_kn_embed_hash_f64 = "void (*)(const char *, size_t, size_t, double *)",
    rex_kn_corpus_new = "int (*)(int, rex_kn_corpus **)",
    rex_kn_corpus_add = "int (*)(rex_kn_corpus *, const char *, const char *, size_t, "
        .. "const float *, int64_t)",
    rex_kn_corpus_add_batch = "int (*)(rex_kn_corpus *, size_t, const char *const *, "
        .. "const char *const *, const size_t *, const float *const *, const int64_t *, int)",
    rex_kn_corpus_seal = "void (*)(rex_kn_corpus *)",
    rex_kn_corpus_size = "size_t (*)(const rex_kn_corpus *)",
    rex_kn_corpus_model = "int (*)(const rex_kn_corpus *)",
    rex_kn_corpus_memory = "size_t (*)(const rex_kn_corpus *)",
    rex_kn_corpus_id_at = "const char *(*)(const rex_kn_corpus *, size_t)",
    rex_kn_corpus_tag_at = "int64_t (*)(const rex_kn_corpus *, size_t)",
    rex_kn_corpus_retain = "void (*)(rex_kn_corpus *)",
    rex_kn_corpus_release = "void (*)(rex_kn_corpus *)",
    rex_kn_search = "int (*)(rex_kn_corpus *const *, size_t, const char *, size_t, "
        .. "const struct rex_kn_search_opts *, rex_kn_hit *, size_t *)",
    rex_kn_search_vec = "int (*)(rex_kn_corpus *const *, size_t, const float *, const char *, "
        .. "size_t, const struct rex_kn_search_opts *, rex_kn_hit *, size_t *)",
    rex_kn_score_all = "int (*)(rex_kn_corpus *, const char *, size_t, "
        .. "const struct rex_kn_search_opts *, float *)",
    rex_kn_kernel_best = "int (*)(void)",
    rex_kn_kernel_name = "const char *(*)(int)",
    rex_kn_overlap_score = "double (*)(const char *, size_t, const char *, size_t)",
    rex_kn_cache_new = "rex_kn_cache *(*)(size_t)",
    rex_kn_cache_free = "void (*)(rex_kn_cache *)",
    rex_kn_cache_get = "rex_kn_corpus *(*)(rex_kn_cache *, const char *, const char *)",
    rex_kn_cache_put = "int (*)(rex_kn_cache *, const char *, const char *, rex_kn_corpus *)",
    rex_kn_cache_invalidate = "int (*)(rex_kn_cache *, const char *)",
    rex_kn_cache_stats = "void (*)(rex_kn_cache *, struct rex_kn_cache_stats *)",
    rex_kn_cache_shared = "rex_kn_cache *(*)(void)",
    rex_kn_vector_literal = "char *(*)(const double *, size_t, size_t *)",
    rex_kn_vector_parse = "int (*)(const char *, size_t, float *, size_t, size_t *)",
    rex_free = "void (*)(void *)",
}

-- busted/LuaRocks: loading rex.core registers the preload; in the executable it is already there.
pcall(require, "rex.core")
local ok, native = pcall(require, "rex.knowledge.native")
if not ok then
    error("rex.knowledge: the C core is not available (" .. tostring(native) .. ")", 0)
end

local C = {}
for name, ctype in pairs(types) do
    local p = native[name]
    -- rex_kn_chunk_text -> C.chunk_text; rex_free -> C.free
    local key = name:sub(1, 7) == "rex_kn_" and name:sub(8) or name:sub(5)
    if p == nil then
        -- a binary older than these Lua files: fail only when the function is used
        C[key] = function()
            error("rex.knowledge: the C core lacks " .. name .. " (rebuild rex-worker)", 2)
        end
    else
        C[key] = ffi.cast(ctype, p)
    end
end

C.DIMS = 1536
C.QUERY_MAX = 8192
C.TOPK_MAX = 1000
C.EINVAL, C.ENOMEM = -1, -2
C.RANK = { hybrid = 0, cosine = 1, bm25 = 2, original = 3 }
C.KERNEL = { auto = 0, scalar = 1, avx2 = 2, avx512 = 3 }

return C
