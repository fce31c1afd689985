/* rex.sandbox_c: a temporary allocation ceiling for sandboxed Lua (see lua/rex/sandbox.lua).
 *
 * enter(bytes) wraps the state's allocator so that the heap may grow by at most `bytes` from
 * now on; past that the allocation is refused and the running chunk gets LuaJIT's catchable
 * "not enough memory" error. leave() restores the allocator and returns the peak growth. Every
 * call is delegated to the original allocator, so blocks allocated under the ceiling are freed
 * by it later as usual. Count hooks cannot stop a loop of `s = s .. s` in time (it doubles
 * memory in a handful of instructions); the allocator can. */
#include "runtime/lsandbox.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdint.h>

struct ceiling {
    lua_Alloc f;
    void *ud;
    long long grown; /* net bytes since enter (may go negative) */
    long long peak;
    long long limit;
    int active;
};

static char ceiling_key;

static void *ceiling_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    struct ceiling *c = ud;
    long long old = ptr ? (long long)osize : 0;
    if ((long long)nsize > old && c->grown + ((long long)nsize - old) > c->limit)
        return NULL;
    void *p = c->f(c->ud, ptr, osize, nsize);
    if (nsize == 0) {
        c->grown -= old;
    } else if (p) {
        c->grown += (long long)nsize - old;
        if (c->grown > c->peak)
            c->peak = c->grown;
    }
    return p;
}

static struct ceiling *get_ceiling(lua_State *L) {
    lua_pushlightuserdata(L, &ceiling_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    struct ceiling *c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!c) {
        lua_pushlightuserdata(L, &ceiling_key);
        c = lua_newuserdata(L, sizeof(*c));
        c->active = 0;
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    return c;
}

static int l_enter(lua_State *L) {
    lua_Number bytes = luaL_checknumber(L, 1);
    struct ceiling *c = get_ceiling(L);
    if (c->active)
        return luaL_error(L, "a memory ceiling is already active");
    c->f = lua_getallocf(L, &c->ud);
    c->grown = 0;
    c->peak = 0;
    c->limit = bytes > 0 ? (long long)bytes : INT64_MAX / 2;
    c->active = 1;
    lua_setallocf(L, ceiling_alloc, c);
    return 0;
}

static int l_leave(lua_State *L) {
    struct ceiling *c = get_ceiling(L);
    if (!c->active)
        return 0;
    lua_setallocf(L, c->f, c->ud);
    c->active = 0;
    lua_pushnumber(L, (lua_Number)c->peak);
    return 1;
}

static int l_active(lua_State *L) {
    struct ceiling *c = get_ceiling(L);
    lua_pushboolean(L, c->active);
    return 1;
}

int rex__lsandbox_open(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"enter", l_enter}, {"leave", l_leave}, {"active", l_active}, {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    return 1;
}
