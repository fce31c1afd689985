/* rex-worker: dispatch to subcommands. */
#include <rex/config.h>
#include <rex/log.h>
#include <rex/rex.h>

#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static int not_built(int argc, char **argv, struct rex_config *cfg) __attribute__((unused));

static const struct rex_cli_cmd commands[] = {
    {"serve", "serve", "consume the BullMQ queue until SIGTERM/SIGINT (default)", 1, rex_cli_serve},
    {"run", "run WORKFLOW.json [--input JSON | --input @FILE]",
     "run one workflow locally, result JSON on stdout", 0, rex_cli_run},
    {"validate", "validate WORKFLOW.json", "check a workflow, listing every problem", 0,
     rex_cli_validate},
    {"migrate", "migrate", "apply the SQL migrations to DATABASE_URL", 1, rex_cli_migrate},
    {"add", "add NAME DATA_JSON [--opts OPTS_JSON]", "add a job as BullMQ's Queue.add would", 1,
     rex_cli_add},
    {"query",
     "query --docs DOCS.jsonl --queries QUERIES.jsonl [--top-k K] [--model M] [--ranking R]",
     "offline retrieval over a set of documents", 0, rex_cli_query},
    {"lua", "lua SCRIPT.lua [ARGS...]", "run a Lua script in a worker's Lua state (for tools)", 0,
     rex_cli_lua},
};

static const size_t ncommands = sizeof(commands) / sizeof(commands[0]);

static int not_built(int argc, char **argv, struct rex_config *cfg) {
    (void)argc;
    (void)cfg;
    fprintf(stderr,
            "rex-worker: '%s' is not built yet in this version (%s); see the README's status "
            "section\n",
            argv[0], REX_VERSION);
    return REX_EXIT_USAGE;
}

static void usage(FILE *f) {
    fprintf(f, "usage: rex-worker [COMMAND] [ARGS...]\n\n"
               "rex-worker runs REX jobs from a BullMQ queue, with Lua job handlers, workflow\n"
               "nodes and hooks. With no command it runs 'serve'.\n\ncommands:\n");
    for (size_t i = 0; i < ncommands; i++)
        fprintf(f, "  %-10s %s\n             %s\n", commands[i].name, commands[i].summary,
                commands[i].usage);
    fprintf(f, "\noptions:\n  -h, --help     this text\n  -V, --version  the version\n"
               "\nConfiguration comes from the environment and ./.env (REX_ENV_FILE names another\n"
               "file); the README lists every variable.\n");
}

int main(int argc, char **argv) {
    const char *name = "serve";
    int first = 1;
    if (argc > 1) {
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
            usage(stdout);
            return REX_EXIT_OK;
        }
        if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version") ||
            !strcmp(argv[1], "version")) {
            printf("rex-worker %s\n", REX_VERSION);
            return REX_EXIT_OK;
        }
        if (argv[1][0] == '-') {
            fprintf(stderr, "rex-worker: unknown option '%s'\n", argv[1]);
            usage(stderr);
            return REX_EXIT_USAGE;
        }
        name = argv[1];
        first = 1;
    } else {
        first = 0;
    }
    const struct rex_cli_cmd *cmd = NULL;
    for (size_t i = 0; i < ncommands; i++)
        if (!strcmp(commands[i].name, name))
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "rex-worker: unknown command '%s'\n", name);
        usage(stderr);
        return REX_EXIT_USAGE;
    }
    int sub_argc = argc - first;
    char **sub_argv = argv + first;
    char *fallback[] = {(char *)cmd->name, NULL};
    if (first == 0) {
        sub_argc = 1;
        sub_argv = fallback;
    }
    for (int i = 1; i < sub_argc; i++) {
        if (!strcmp(sub_argv[i], "-h") || !strcmp(sub_argv[i], "--help")) {
            printf("usage: rex-worker %s\n  %s\n", cmd->usage, cmd->summary);
            return REX_EXIT_OK;
        }
        if (!strcmp(sub_argv[i], "--"))
            break;
    }

    struct rex_config cfg;
    char err[512];
    if (rex_config_load(&cfg, NULL, err, sizeof(err))) {
        /* a configuration error is fatal for every command: no silent defaults */
        rex_log(REX_LOG_FATAL, "invalid configuration", "error", err, NULL);
        fprintf(stderr, "rex-worker: configuration error: %s\n", err);
        return REX_EXIT_USAGE;
    }
    rex_log_set_level(cfg.log_level);
    int rc = cmd->run(sub_argc, sub_argv, &cfg);
    rex_config_free(&cfg);
    return rc;
}
