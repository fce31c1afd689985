#include <rex/log.h>
#include <rex/rex.h>
#include <rex/store.h>

#include "runtime/pool.h"

#include <libpq-fe.h>

#include <stdio.h>
#include <string.h>

int rex_pg_connect(const char *conninfo, int connect_timeout_s, PGconn **out, char *err,
                   size_t errlen) {
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", connect_timeout_s > 0 ? connect_timeout_s : 10);
    /* expand_dbname=1: "dbname" holds the whole conninfo; keywords are processed in order and
     * the last wins, so ours come first and the caller's string can override them. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {timeout, "rex-worker", conninfo, NULL};
    rex_pool_block_begin(); /* a network wait: see runtime/pool.h */
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    rex_pool_block_end();
    if (!c) {
        snprintf(err, errlen, "cannot allocate a PostgreSQL connection");
        return REX_ECONN;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        const char *m = PQerrorMessage(c);
        size_t n = strlen(m);
        while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
            n--;
        char *r = rex_redact(m, n, NULL);
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", r);
        rex_free(r);
        PQfinish(c);
        return REX_ECONN;
    }
    *out = c;
    return 0;
}
