/* Command-line subcommands (internal). Each returns the process exit code. */
#ifndef REX_CLI_H
#define REX_CLI_H

#include <rex/config.h>

struct rex_cli_cmd {
    const char *name;
    const char *usage;
    const char *summary;
    int needs_config;
    int (*run)(int argc, char **argv, struct rex_config *cfg);
};

/* Exit codes shared by the subcommands. */
enum { REX_EXIT_OK = 0, REX_EXIT_FAILED = 1, REX_EXIT_USAGE = 2 };

int rex_cli_lua(int argc, char **argv, struct rex_config *cfg);
int rex_cli_run(int argc, char **argv, struct rex_config *cfg);
int rex_cli_validate(int argc, char **argv, struct rex_config *cfg);
int rex_cli_query(int argc, char **argv, struct rex_config *cfg);
int rex_cli_serve(int argc, char **argv, struct rex_config *cfg);
int rex_cli_add(int argc, char **argv, struct rex_config *cfg);
int rex_cli_migrate(int argc, char **argv, struct rex_config *cfg);

#endif
