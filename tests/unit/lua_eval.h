/* For C tests of LuaJIT states: runs code in a state and returns its result as a string. */
#ifndef REXTEST_LUA_EVAL_H
#define REXTEST_LUA_EVAL_H

#include "rextest.h"

#include <rex/runtime.h>

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>

/* The string result of code run in s (a static buffer), or the test fails. */
static inline const char *lua_eval(rex_lstate *s, const char *code) {
    static char out[4096], err[4096];
    lua_State *L = rex_lstate_L(s);
    if (luaL_loadstring(L, code))
        rextest_fail(__FILE__, __LINE__, "load: %s", lua_tostring(L, -1));
    if (rex_lstate_pcall(s, 0, 1, err, sizeof(err)))
        rextest_fail(__FILE__, __LINE__, "run: %s", err);
    snprintf(out, sizeof(out), "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(nil)");
    lua_pop(L, 1);
    return out;
}

#endif
