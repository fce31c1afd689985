/* rex.knowledge.native: the knowledge C API for LuaJIT's FFI.
 *
 * A table {name = lightuserdata function pointer} for every function of include/rex/knowledge.h;
 * lua/rex/knowledge/ffi.lua casts each pointer to its C type and calls it through the FFI (a
 * JIT-compiled direct call, like ffi.C). The same table works in the executable (package.preload)
 * and in build/lua/rex/core.so under busted (luaopen_rex_core registers the preload), so no
 * symbol lookup (ffi.C / ffi.load) is needed, and referencing the functions here also keeps the
 * linker from dropping them from either binary. */
#include <rex/knowledge.h>
#include <rex/rex.h>

#include <lua.h>

int rex__lknowledge_open(lua_State *L);

#define FN(name)                                                                                   \
    { #name, (void *)(name) }

static const struct {
    const char *name;
    void *fn;
} fns[] = {
    FN(rex_kn_model_from_name),  FN(rex_kn_model_name),     FN(rex_kn_chunk_text),
    FN(rex_kn_chunks_count),     FN(rex_kn_chunks_get),     FN(rex_kn_chunks_free),
    FN(rex_kn_utf8_check),       FN(rex_kn_embed),          FN(rex_kn_embed_hash_f64),
    FN(rex_kn_corpus_new),       FN(rex_kn_corpus_add),     FN(rex_kn_corpus_add_batch),
    FN(rex_kn_corpus_seal),      FN(rex_kn_corpus_size),    FN(rex_kn_corpus_model),
    FN(rex_kn_corpus_memory),    FN(rex_kn_corpus_id_at),   FN(rex_kn_corpus_tag_at),
    FN(rex_kn_corpus_retain),    FN(rex_kn_corpus_release), FN(rex_kn_search),
    FN(rex_kn_search_vec),       FN(rex_kn_score_all),      FN(rex_kn_kernel_best),
    FN(rex_kn_kernel_name),      FN(rex_kn_overlap_score),  FN(rex_kn_cache_new),
    FN(rex_kn_cache_free),       FN(rex_kn_cache_get),      FN(rex_kn_cache_put),
    FN(rex_kn_cache_invalidate), FN(rex_kn_cache_stats),    FN(rex_kn_cache_shared),
    FN(rex_kn_vector_literal),   FN(rex_kn_vector_parse),   FN(rex_free),
};

int rex__lknowledge_open(lua_State *L) {
    lua_createtable(L, 0, (int)(sizeof(fns) / sizeof(fns[0])));
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        lua_pushlightuserdata(L, fns[i].fn);
        lua_setfield(L, -2, fns[i].name);
    }
    return 1;
}
