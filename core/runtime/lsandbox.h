/* rex.sandbox_c (internal): allocation ceiling for sandboxed Lua. */
#ifndef REX_RUNTIME_LSANDBOX_H
#define REX_RUNTIME_LSANDBOX_H

#include <lua.h>

/* luaopen-style: pushes the rex.sandbox_c module table. */
int rex__lsandbox_open(lua_State *L);

#endif
