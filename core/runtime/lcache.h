/* Process-wide cache of compiled Lua chunks of the installation (internal; see lcache.c). */
#ifndef REX_RUNTIME_LCACHE_H
#define REX_RUNTIME_LCACHE_H

#include <lua.h>

/* Like luaL_loadfile(path): pushes the chunk (0) or an error message (a LUA_ERR* code); the first
 * successful load of a path keeps its bytecode for every state of the process. */
int rex__lua_load_cached(lua_State *L, const char *path);

/* Adds a package.loaders entry, before the standard Lua loader, that loads modules found under
 * prefix through the cache. */
void rex__lua_install_cached_loader(lua_State *L, const char *prefix);

#endif
