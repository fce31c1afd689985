/* rex-worker migrate: applies the embedded SQL migrations to DATABASE_URL (idempotent). */
#include <rex/config.h>
#include <rex/log.h>
#include <rex/rex.h>
#include <rex/store.h>

#include "cli/cli.h"

#include <libpq-fe.h>

#include <stdio.h>
#include <string.h>

int rex_cli_migrate(int argc, char **argv, struct rex_config *cfg) {
    for (int i = 1; i < argc; i++) {
        fprintf(stderr, "rex-worker migrate: unexpected argument '%s'\n", argv[i]);
        return REX_EXIT_USAGE;
    }
    if (!cfg->database_url || !*cfg->database_url) {
        fprintf(stderr, "rex-worker migrate: DATABASE_URL is not set\n");
        return REX_EXIT_USAGE;
    }
    PGconn *c = NULL;
    char err[1024];
    if (rex_pg_connect(cfg->database_url, 10, &c, err, sizeof(err))) {
        rex_log(REX_LOG_ERROR, "migrate failed", "error", err, NULL);
        fprintf(stderr, "rex-worker migrate: %s\n", err);
        return REX_EXIT_FAILED;
    }
    int applied = 0;
    int rc = rex_store_migrate(c, &applied, err, sizeof(err));
    PQfinish(c);
    if (rc) {
        char *r = rex_redact(err, strlen(err), NULL);
        rex_log(REX_LOG_ERROR, "migrate failed", "error", r, NULL);
        fprintf(stderr, "rex-worker migrate: %s\n", r);
        rex_free(r);
        return REX_EXIT_FAILED;
    }
    printf("%d migration%s applied, %d known\n", applied, applied == 1 ? "" : "s",
           rex_store_migration_count());
    return REX_EXIT_OK;
}
