/* Process-wide cache of the compiled Lua chunks of the installation (the lua/ modules and the
 * built-in nodes). Every worker thread's state loads the same files at its first job; the first
 * state to load a file parses it and keeps its bytecode, the others load that bytecode, about ten
 * times faster than parsing. The bytecode keeps its debug information, so chunk names, line
 * numbers, error messages and tracebacks are those of the source file. Entries live as long as
 * the process (a few hundred KB); a file is read once per process, as every state of a worker
 * started after the first job would have read the same file anyway. */
#include <rex/rex.h>

#include "base/buf.h"
#include "runtime/lcache.h"

#include <lauxlib.h>
#include <lua.h>

#include <pthread.h>
#include <string.h>

struct chunk {
    struct chunk *next;
    char *code;
    size_t len;
    char path[];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *g_chunks; /* entries are never freed or changed once published */

static const struct chunk *find(const char *path) {
    pthread_mutex_lock(&g_mu);
    const struct chunk *c = g_chunks;
    while (c && strcmp(c->path, path))
        c = c->next;
    pthread_mutex_unlock(&g_mu);
    return c;
}

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
    (void)L;
    rex_buf_add(ud, p, n);
    return 0;
}

int rex__lua_load_cached(lua_State *L, const char *path) {
    const struct chunk *c = find(path);
    if (c)
        return luaL_loadbuffer(L, c->code, c->len, path);
    int rc = luaL_loadfile(L, path);
    if (rc)
        return rc;
    rex_buf b;
    rex_buf_init(&b);
    if (lua_dump(L, writer, &b) || !b.len) {
        rex_buf_free(&b);
        return 0; /* not cached; the function is still on the stack */
    }
    size_t n = strlen(path);
    struct chunk *e = rex_malloc(sizeof(*e) + n + 1);
    memcpy(e->path, path, n + 1);
    e->code = rex_buf_steal(&b, &e->len);
    pthread_mutex_lock(&g_mu);
    const struct chunk *o = g_chunks;
    while (o && strcmp(o->path, path))
        o = o->next;
    if (!o) {
        e->next = g_chunks;
        g_chunks = e;
        e = NULL;
    }
    pthread_mutex_unlock(&g_mu);
    if (e) { /* another thread published it meanwhile */
        rex_free(e->code);
        rex_free(e);
    }
    return 0;
}

/* package.loaders entry (before the standard Lua file loader): a module found by
 * package.searchpath in package.path under the prefix (upvalue 1) is loaded through the cache.
 * Anything else, a missing file included, is left to the standard loaders, so their results and
 * messages are unchanged. */
static int l_loader(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    size_t plen;
    const char *prefix = lua_tolstring(L, lua_upvalueindex(1), &plen);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    if (!lua_isfunction(L, -1))
        return 0;
    lua_pushstring(L, name);
    lua_getfield(L, -3, "path");
    lua_call(L, 2, 1);
    const char *path = lua_tostring(L, -1);
    if (!path || !prefix || strncmp(path, prefix, plen))
        return 0;
    if (rex__lua_load_cached(L, path)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

void rex__lua_install_cached_loader(lua_State *L, const char *prefix) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaders");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return;
    }
    int n = (int)lua_objlen(L, -1);
    for (int i = n; i >= 2; i--) { /* shift the Lua, C and all-in-one loaders up by one */
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, prefix);
    lua_pushcclosure(L, l_loader, 1);
    lua_rawseti(L, -2, 2);
    lua_pop(L, 2);
}
