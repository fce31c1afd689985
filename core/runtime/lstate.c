#include <rex/log.h>
#include <rex/rex.h>
#include <rex/runtime.h>

#include "runtime/http.h"
#include "runtime/json.h"
#include "runtime/lcache.h"
#include "runtime/lsandbox.h"

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern int luaopen_cjson(lua_State *L);
extern int luaopen_cjson_safe(lua_State *L);
int rex__lcore_open(lua_State *L);
int rex__lknowledge_open(lua_State *L);
int rex__lstore_open(lua_State *L);

struct rex_lstate {
    lua_State *L;
    size_t used;
    size_t peak;
    size_t limit;
};

/* Allocator with a ceiling: past the limit it refuses, and LuaJIT raises a catchable "not enough
 * memory" error in the script. (Debian's LuaJIT is a GC64 build, so lua_newstate with a custom
 * allocator is allowed.) */
static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct rex_lstate *s = ud;
    if (nsize == 0) {
        if (ptr)
            s->used -= osize;
        free(ptr);
        return NULL;
    }
    size_t old = ptr ? osize : 0;
    if (s->limit && nsize > old && s->used + (nsize - old) > s->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    s->used = s->used - old + nsize;
    if (s->used > s->peak)
        s->peak = s->used;
    return p;
}

static char g_home[PATH_MAX];
static pthread_once_t g_home_once = PTHREAD_ONCE_INIT;

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void find_home(void) {
    const char *env = getenv("REX_HOME");
    if (env && *env) {
        snprintf(g_home, sizeof(g_home), "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char cand[PATH_MAX + 64];
            snprintf(cand, sizeof(cand), "%s/../share/rex-worker/lua/rex", exe);
            if (is_dir(cand) && strlen(exe) + 32 < sizeof(g_home)) {
                memcpy(g_home, cand, strlen(cand) - strlen("/lua/rex"));
                g_home[strlen(cand) - strlen("/lua/rex")] = '\0';
                return;
            }
        }
    }
    snprintf(g_home, sizeof(g_home), "%s", REX_SOURCE_DIR);
}

const char *rex_runtime_home(void) {
    pthread_once(&g_home_once, find_home);
    return g_home;
}

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int rex_lstate_pcall(rex_lstate *s, int nargs, int nresults, char *err, size_t errlen) {
    lua_State *L = s->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        lua_pop(L, 1);
        return REX_ELUA;
    }
    return 0;
}

static void preload(lua_State *L, const char *name, lua_CFunction f) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

int rex_lstate_new(const struct rex_lstate_opts *opts, rex_lstate **out, char *err, size_t errlen) {
    struct rex_lstate *s = rex_calloc(1, sizeof(*s));
    s->limit = opts ? opts->memory_limit : 0;
    /* Without a ceiling, LuaJIT's own allocator: much faster than going through malloc for every
     * object (the sandbox still wraps it for its per-run ceiling, via lua_setallocf). */
    lua_State *L = s->limit ? lua_newstate(lalloc, s) : luaL_newstate();
    if (!L) {
        rex_free(s);
        snprintf(err, errlen, "cannot create a Lua state");
        return REX_ENOMEM;
    }
    s->L = L;
    luaL_openlibs(L);
    preload(L, "cjson", luaopen_cjson);
    preload(L, "cjson.safe", luaopen_cjson_safe);
    preload(L, "rex.json", rex_json_open);
    preload(L, "rex.core", rex__lcore_open);
    preload(L, "rex.knowledge.native", rex__lknowledge_open);
    preload(L, "rex.http_c", rex__http_open);
    preload(L, "rex.sandbox_c", rex__lsandbox_open);
    preload(L, "rex.store_c", rex__lstore_open);

    const char *home = opts && opts->home ? opts->home : rex_runtime_home();
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", home, home);
    lua_getfield(L, -2, "path");
    lua_concat(L, 2);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, home);
    lua_setfield(L, -2, "rex_home");
    lua_pop(L, 1);
    /* the project's modules are parsed once per process, not once per state */
    lua_pushfstring(L, "%s/lua/", home);
    rex__lua_install_cached_loader(L, lua_tostring(L, -1));
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushstring(L, "rex");
    int rc = rex_lstate_pcall(s, 1, 0, err, errlen);
    if (rc) {
        lua_close(L);
        rex_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void rex_lstate_close(rex_lstate *s) {
    if (!s)
        return;
    lua_close(s->L);
    rex_free(s);
}

lua_State *rex_lstate_L(rex_lstate *s) {
    return s->L;
}

size_t rex_lstate_memory(const rex_lstate *s) {
    if (!s->limit) /* LuaJIT's allocator: ask the collector */
        return (size_t)lua_gc(s->L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(s->L, LUA_GCCOUNTB, 0);
    return s->used;
}

size_t rex_lstate_memory_peak(const rex_lstate *s) {
    return s->peak;
}
