/* Migrations: the embedded core/store/sql files, applied in name order, each in a transaction,
 * recorded in rex_migrations. A session advisory lock serialises workers that start together. */
#include <rex/log.h>
#include <rex/rex.h>
#include <rex/store.h>

#include "store/migrations.h"

#include <libpq-fe.h>

#include <stdio.h>
#include <string.h>

/* "rex-migr" as a 64-bit advisory lock key */
#define REX_MIGRATE_LOCK "7310302767283694194"

int rex_store_migration_count(void) {
    return rex__nmigrations;
}

const char *rex_store_migration_name(int i) {
    return i >= 0 && i < rex__nmigrations ? rex__migrations[i].name : NULL;
}

static int run(PGconn *c, const char *sql, const char *what, char *err, size_t errlen) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        PQclear(r);
        return 0;
    }
    const char *m = PQresultErrorMessage(r);
    if (!m || !*m)
        m = PQerrorMessage(c);
    size_t n = strlen(m);
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    snprintf(err, errlen, "%s: %.*s", what, (int)n, m);
    PQclear(r);
    return PQstatus(c) == CONNECTION_OK ? REX_EPROTO : REX_ECONN;
}

static int is_applied(PGconn *c, const char *name, int *yes, char *err, size_t errlen) {
    const char *vals[1] = {name};
    PGresult *r = PQexecParams(c, "SELECT 1 FROM rex_migrations WHERE name = $1", 1, NULL, vals,
                               NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "reading rex_migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
        return PQstatus(c) == CONNECTION_OK ? REX_EPROTO : REX_ECONN;
    }
    *yes = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

int rex_store_migrate(PGconn *c, int *applied, char *err, size_t errlen) {
    int n = 0, rc;
    if (applied)
        *applied = 0;
    if ((rc = run(c, "SET client_min_messages = warning", "session setup", err, errlen)))
        return rc;
    if ((rc = run(c, "SELECT pg_advisory_lock(" REX_MIGRATE_LOCK ")", "taking the migration lock",
                  err, errlen)))
        return rc;
    rc = run(c,
             "CREATE TABLE IF NOT EXISTS rex_migrations (name varchar(255) PRIMARY KEY, "
             "applied_at timestamptz NOT NULL DEFAULT now())",
             "creating rex_migrations", err, errlen);
    for (int i = 0; !rc && i < rex__nmigrations; i++) {
        const struct rex__migration *m = &rex__migrations[i];
        int yes = 0;
        if ((rc = is_applied(c, m->name, &yes, err, errlen)) || yes)
            continue;
        char what[300];
        snprintf(what, sizeof(what), "migration %s", m->name);
        if ((rc = run(c, "BEGIN", what, err, errlen)))
            break;
        if (!(rc = run(c, m->sql, what, err, errlen))) {
            const char *vals[1] = {m->name};
            PGresult *r = PQexecParams(c, "INSERT INTO rex_migrations (name) VALUES ($1)", 1, NULL,
                                       vals, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                snprintf(err, errlen, "%s: recording it: %s", what, PQresultErrorMessage(r));
                rc = REX_EPROTO;
            }
            PQclear(r);
        }
        if (rc) {
            PQclear(PQexec(c, "ROLLBACK"));
            break;
        }
        if ((rc = run(c, "COMMIT", what, err, errlen)))
            break;
        rex_log(REX_LOG_INFO, "migration applied", "name", m->name, NULL);
        n++;
    }
    char e2[256];
    if (PQstatus(c) == CONNECTION_OK)
        run(c, "SELECT pg_advisory_unlock(" REX_MIGRATE_LOCK ")", "releasing the lock", e2,
            sizeof(e2));
    if (applied)
        *applied = n;
    return rc;
}
