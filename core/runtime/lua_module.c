/* The C core as a loadable Lua module (rex.core and rex.json), for busted specs run under the
 * system luajit and for LuaRocks users. The executable registers the same functions through
 * package.preload instead. */
#include "runtime/http.h"
#include "runtime/json.h"
#include "runtime/lsandbox.h"

#include <lua.h>

int rex__lcore_open(lua_State *L);
int rex__lknowledge_open(lua_State *L);
int rex__lstore_open(lua_State *L);

int luaopen_rex_core(lua_State *L);
int luaopen_rex_json(lua_State *L);
int luaopen_rex_http_c(lua_State *L);
int luaopen_rex_sandbox_c(lua_State *L);
int luaopen_rex_store_c(lua_State *L);

/* Also registers package.preload["rex.knowledge.native"] (the knowledge FFI function table), so
 * require("rex.core") followed by require("rex.knowledge.native") works as in the executable. */
int luaopen_rex_core(lua_State *L) {
    int n = rex__lcore_open(L);
    lua_getglobal(L, "package");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "preload");
        if (lua_istable(L, -1)) {
            lua_pushcfunction(L, rex__lknowledge_open);
            lua_setfield(L, -2, "rex.knowledge.native");
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

int luaopen_rex_json(lua_State *L) {
    return rex_json_open(L);
}

/* rex.http_c and rex.sandbox_c have no .so of their own in the build tree: Lua loads them from
 * this library with package.loadlib (see lua/rex/native.lua). */
int luaopen_rex_http_c(lua_State *L) {
    return rex__http_open(L);
}

int luaopen_rex_sandbox_c(lua_State *L) {
    return rex__lsandbox_open(L);
}

/* rex.store_c (PostgreSQL, API-key decryption), loaded the same way as rex.http_c. */
int luaopen_rex_store_c(lua_State *L) {
    return rex__lstore_open(L);
}
