/* The C core as a loadable Lua module (rex.core and rex.json), for busted specs run under the
 * system luajit and for LuaRocks users. The executable registers the same functions through
 * package.preload instead. */
#include "runtime/json.h"

#include <lua.h>

int rex__lcore_open(lua_State *L);

int luaopen_rex_core(lua_State *L);
int luaopen_rex_json(lua_State *L);

int luaopen_rex_core(lua_State *L) {
    return rex__lcore_open(L);
}

int luaopen_rex_json(lua_State *L) {
    return rex_json_open(L);
}
