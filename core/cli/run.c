/* rex-worker run WORKFLOW.json [--input JSON | --input @FILE] and rex-worker validate
 * WORKFLOW.json: one workflow in a worker's Lua state, no Redis (lua/rex/cli_run.lua does the
 * work; this file parses arguments and hands over the configuration). */
#include <rex/config.h>
#include <rex/rex.h>
#include <rex/runtime.h>

#include "cli/cli.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lua heap ceiling of the state: the backstop behind the sandbox's own limits. */
#define RUN_MEMORY_LIMIT ((size_t)2048 * 1024 * 1024)

static void set_field(lua_State *L, const char *k, const char *v) {
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static int run_command(const char *command, int argc, char **argv, struct rex_config *cfg) {
    const char *workflow = NULL, *input = NULL;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--input") && !strcmp(command, "run")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rex-worker: --input needs a value (JSON or @FILE)\n");
                return REX_EXIT_USAGE;
            }
            input = argv[++i];
        } else if (!strncmp(argv[i], "--input=", 8) && !strcmp(command, "run")) {
            input = argv[i] + 8;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            quiet = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "rex-worker %s: unknown option '%s'\n", command, argv[i]);
            return REX_EXIT_USAGE;
        } else if (!workflow) {
            workflow = argv[i];
        } else {
            fprintf(stderr, "rex-worker %s: unexpected argument '%s'\n", command, argv[i]);
            return REX_EXIT_USAGE;
        }
    }
    if (!workflow) {
        fprintf(stderr, "usage: rex-worker %s WORKFLOW.json%s\n", command,
                strcmp(command, "run") ? "" : " [--input JSON | --input @FILE]");
        return REX_EXIT_USAGE;
    }
    struct rex_lstate_opts opts = {.memory_limit = RUN_MEMORY_LIMIT, .home = NULL};
    rex_lstate *s;
    char err[4096];
    if (rex_lstate_new(&opts, &s, err, sizeof(err))) {
        fprintf(stderr, "rex-worker: %s\n", err);
        return REX_EXIT_FAILED;
    }
    lua_State *L = rex_lstate_L(s);
    int rc = REX_EXIT_FAILED;
    lua_getglobal(L, "require");
    lua_pushstring(L, "rex.cli_run");
    if (rex_lstate_pcall(s, 1, 1, err, sizeof(err))) {
        fprintf(stderr, "rex-worker: %s\n", err);
        rex_lstate_close(s);
        return REX_EXIT_FAILED;
    }
    lua_getfield(L, -1, "main");
    lua_remove(L, -2);
    lua_newtable(L);
    set_field(L, "command", command);
    set_field(L, "workflow", workflow);
    set_field(L, "input", input);
    set_field(L, "nodes_path", cfg ? cfg->nodes_path : NULL);
    set_field(L, "hooks_path", cfg ? cfg->hooks_path : NULL);
    set_field(L, "http_allowlist", cfg ? cfg->http_allowlist : NULL);
    lua_pushboolean(L, quiet);
    lua_setfield(L, -2, "quiet");
    if (cfg) {
        lua_pushnumber(L, cfg->retrieval_max_requests);
        lua_setfield(L, -2, "retrieval_max_requests");
        lua_pushnumber(L, cfg->retrieval_max_failures);
        lua_setfield(L, -2, "retrieval_max_failures");
        lua_pushnumber(L, (lua_Number)cfg->retrieval_max_duration_ms);
        lua_setfield(L, -2, "retrieval_max_duration_ms");
    }
    if (rex_lstate_pcall(s, 1, 1, err, sizeof(err))) {
        fprintf(stderr, "rex-worker: %s\n", err);
    } else {
        rc = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : REX_EXIT_FAILED;
        lua_pop(L, 1);
    }
    fflush(stdout);
    rex_lstate_close(s);
    return rc;
}

int rex_cli_run(int argc, char **argv, struct rex_config *cfg) {
    return run_command("run", argc, argv, cfg);
}

int rex_cli_validate(int argc, char **argv, struct rex_config *cfg) {
    return run_command("validate", argc, argv, cfg);
}
