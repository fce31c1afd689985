#include "lua_eval.h"
#include "rextest.h"

#include <rex/rex.h>
#include <rex/runtime.h>

#include <lauxlib.h>
#include <lua.h>

#include <pthread.h>

static char err[4096];

TEST(require_rex_and_cjson) {
    rex_lstate *s;
    CHECK_INT(rex_lstate_new(NULL, &s, err, sizeof(err)), 0);
    CHECK_STR(lua_eval(s, "return require('rex').version"), REX_VERSION);
    CHECK_STR(lua_eval(s, "return require('cjson').encode({1,2,3})"), "[1,2,3]");
    CHECK_STR(
        lua_eval(s, "return require('rex').json.encode(require('rex').json.decode('{\"a\":[]}'))"),
        "{\"a\":[]}");
    CHECK_STR(lua_eval(s, "return tostring(require('cjson').null == require('rex').null)"), "true");
    CHECK_STR(lua_eval(s, "return jit and jit.version or 'no jit'"), "LuaJIT 2.1.0-beta3");
    rex_lstate_close(s);
}

TEST(memory_ceiling_is_a_catchable_error) {
    rex_lstate *s;
    struct rex_lstate_opts o = {.memory_limit = 8u << 20};
    CHECK_INT(rex_lstate_new(&o, &s, err, sizeof(err)), 0);
    const char *r =
        lua_eval(s, "local ok, e = pcall(function() local t = {} "
                    "for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end end) collectgarbage() "
                    "return tostring(ok) .. ':' .. tostring(e)");
    CHECK_CONTAINS(r, "false:");
    CHECK_CONTAINS(r, "not enough memory");
    CHECK(rex_lstate_memory_peak(s) <= (8u << 20));
    /* the state is still usable after the garbage is collected */
    CHECK_STR(lua_eval(s, "collectgarbage() return 'alive'"), "alive");
    rex_lstate_close(s);
}

TEST(error_objects_and_tracebacks) {
    rex_lstate *s;
    CHECK_INT(rex_lstate_new(NULL, &s, err, sizeof(err)), 0);
    lua_State *L = rex_lstate_L(s);
    luaL_loadstring(L, "error({code = 1})");
    CHECK_INT(rex_lstate_pcall(s, 0, 0, err, sizeof(err)), REX_ELUA);
    CHECK_CONTAINS(err, "error object is a table value");
    luaL_loadstring(L, "local function inner() error('boom') end inner()");
    CHECK_INT(rex_lstate_pcall(s, 0, 0, err, sizeof(err)), REX_ELUA);
    CHECK_CONTAINS(err, "boom");
    CHECK_CONTAINS(err, "stack traceback");
    CHECK_INT(lua_gettop(L), 0);
    rex_lstate_close(s);
}

static void *thread_main(void *arg) {
    long id = (long)arg;
    rex_lstate *s;
    char e[512];
    if (rex_lstate_new(NULL, &s, e, sizeof(e)))
        return (void *)1;
    lua_State *L = rex_lstate_L(s);
    /* each state has its own globals: a value set here must not be seen by the other thread */
    lua_pushinteger(L, id);
    lua_setglobal(L, "thread_id");
    luaL_loadstring(
        L, "local json = require('rex.json') local sum = 0 "
           "for i = 1, 20000 do local t = json.decode(json.encode({i = i, id = thread_id})) "
           "sum = sum + t.i end return sum + thread_id");
    long bad = 0;
    if (rex_lstate_pcall(s, 0, 1, e, sizeof(e)))
        bad = 1;
    else if ((long)lua_tonumber(L, -1) != 200010000L + id)
        bad = 1;
    rex_lstate_close(s);
    return (void *)bad;
}

TEST(one_state_per_thread) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        CHECK_INT(pthread_create(&t[i], NULL, thread_main, (void *)i), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
}
