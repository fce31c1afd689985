/* rex.core: the C functions behind the `rex` Lua module (internal; scripts use `rex`). */
#include <rex/log.h>
#include <rex/rex.h>

#include "runtime/lcache.h"
#include "runtime/pool.h"

#include <lauxlib.h>
#include <lua.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* log(level_name, msg, fields_json_or_nil) */
static int l_log(lua_State *L) {
    const char *lvl = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    size_t n = 0;
    const char *fields = luaL_optlstring(L, 3, NULL, &n);
    int level;
    if (rex_log_parse_level(lvl, &level))
        return luaL_argerror(L, 1, "unknown log level");
    rex_log_json(level, msg, fields, n);
    return 0;
}

static int l_log_enabled(lua_State *L) {
    int level;
    if (rex_log_parse_level(luaL_checkstring(L, 1), &level))
        return luaL_argerror(L, 1, "unknown log level");
    lua_pushboolean(L, level >= rex_log_get_level() && level < REX_LOG_OFF);
    return 1;
}

static int l_redact(lua_State *L) {
    size_t n, rn;
    const char *s = luaL_checklstring(L, 1, &n);
    char *r = rex_redact(s, n, &rn);
    lua_pushlstring(L, r, rn);
    rex_free(r);
    return 1;
}

static int l_secret_key(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_pushboolean(L, rex_log_secret_key(s, n));
    return 1;
}

/* Wall clock in milliseconds since the epoch (a double, exact for the next 280,000 years). */
static int l_now_ms(lua_State *L) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (double)tv.tv_sec * 1000.0 + (double)(tv.tv_usec / 1000));
    return 1;
}

/* Monotonic clock in milliseconds, fractional. */
static int l_monotonic_ms(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
    return 1;
}

/* sleep(ms): waits without using the CPU, announced to the worker pool so another job runs
 * meanwhile (runtime/pool.h). Fractions of a millisecond are kept; ms <= 0 returns at once. */
static int l_sleep(lua_State *L) {
    double ms = luaL_checknumber(L, 1);
    if (!(ms > 0))
        return 0;
    if (ms > 86400000.0)
        ms = 86400000.0;
    struct timespec ts = {(time_t)(ms / 1000.0), (long)(fmod(ms, 1000.0) * 1e6)};
    rex_pool_block_begin();
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
    rex_pool_block_end();
    return 0;
}

/* listdir(path) -> sorted array of entry names (without . and ..), or nil, err */
static int l_listdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    DIR *d = opendir(path);
    if (!d) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    lua_newtable(L);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    closedir(d);
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    return 1;
}

/* core.load_cached(path) -> chunk | nil, message: loadfile through the process-wide cache of
 * compiled chunks (for the installation's own files) */
static int l_load_cached(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    if (rex__lua_load_cached(L, path)) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    return 1;
}

int rex__lcore_open(lua_State *L) {
    static const luaL_Reg fns[] = {{"log", l_log},
                                   {"log_enabled", l_log_enabled},
                                   {"redact", l_redact},
                                   {"secret_key", l_secret_key},
                                   {"now_ms", l_now_ms},
                                   {"monotonic_ms", l_monotonic_ms},
                                   {"listdir", l_listdir},
                                   {"sleep", l_sleep},
                                   {"load_cached", l_load_cached},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    lua_pushstring(L, REX_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
