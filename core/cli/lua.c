/* rex-worker lua SCRIPT [ARGS]: runs a script in the same Lua state a worker thread gets, with
 * the global `arg` as the luajit command line sets it. Used by tools and tests. */
#include <rex/rex.h>
#include <rex/runtime.h>

#include "cli/cli.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>

int rex_cli_lua(int argc, char **argv, struct rex_config *cfg) {
    (void)cfg;
    if (argc < 2) {
        fprintf(stderr, "usage: rex-worker lua SCRIPT.lua [ARGS...]\n");
        return REX_EXIT_USAGE;
    }
    rex_lstate *s;
    char err[2048];
    if (rex_lstate_new(NULL, &s, err, sizeof(err))) {
        fprintf(stderr, "rex-worker: %s\n", err);
        return REX_EXIT_FAILED;
    }
    lua_State *L = rex_lstate_L(s);
    lua_createtable(L, argc - 2, 2);
    for (int i = 1; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    int rc = REX_EXIT_OK;
    if (luaL_loadfile(L, argv[1])) {
        fprintf(stderr, "rex-worker: %s\n", lua_tostring(L, -1));
        rc = REX_EXIT_USAGE;
    } else {
        for (int i = 2; i < argc; i++)
            lua_pushstring(L, argv[i]);
        if (rex_lstate_pcall(s, argc - 2, 0, err, sizeof(err))) {
            fprintf(stderr, "rex-worker: %s\n", err);
            rc = REX_EXIT_FAILED;
        }
    }
    rex_lstate_close(s);
    return rc;
}
