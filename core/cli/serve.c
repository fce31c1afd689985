/* rex-worker serve: consume the queue until SIGTERM/SIGINT. */
#include <rex/log.h>
#include <rex/queue.h>
#include <rex/rex.h>

#include "cli/cli.h"

#include <stdio.h>

int rex_cli_serve(int argc, char **argv, struct rex_config *cfg) {
    if (argc > 1) {
        fprintf(stderr, "rex-worker serve takes no arguments (configuration comes from the "
                        "environment)\n");
        return REX_EXIT_USAGE;
    }
    (void)argv;
    char err[1024];
    int rc = rex_worker_run(cfg, err, sizeof(err));
    if (rc) {
        rex_log(REX_LOG_FATAL, "worker could not start", "error", err, NULL);
        return REX_EXIT_USAGE;
    }
    return REX_EXIT_OK;
}
