/* Start-up introspection of the connected database: which of the worker's tables and columns
 * exist, with their types, so statements adapt (optional telemetry tables, tenant_id columns,
 * execution_authorizations, guardrail events, the pgvector column). Plus the process-wide
 * "first time" set behind "warn once per missing optional table". */
#include <rex/rex.h>
#include <rex/store.h>

#include "store/schema.h"

#include <libpq-fe.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

const char *const rex__store_tables[] = {
    "workflows",
    "executions",
    "execution_steps",
    "execution_step_attempts",
    "execution_context_snapshots",
    "execution_retrieval_events",
    "execution_authorizations",
    "guardrail_events",
    "alert_rules",
    "alert_events",
    "domain_configs",
    "api_keys",
    "users",
    "tenants",
    "knowledge_corpora",
    "knowledge_documents",
    "knowledge_chunks",
    NULL,
};

int rex__store_introspect(PGconn *c, rex__column_cb cb, void *ud, char *err, size_t errlen) {
    /* one round trip: the columns of our tables in the first schema of search_path that holds
     * them (current_schemas(false) in order). What information_schema.columns gives (relation
     * kinds, the columns the user may use, the base type of a domain as udt_name: "vector" for
     * pgvector columns, nullability), read from pg_catalog directly: a third of the server's
     * time for that view, per worker thread's connection. */
    const char *sql =
        "SELECT c.relname, a.attname, COALESCE(bt.typname, t.typname), "
        "CASE WHEN a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) THEN 'NO' ELSE 'YES' END "
        "FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "JOIN pg_catalog.pg_namespace nc ON nc.oid = c.relnamespace "
        "JOIN (SELECT s.nspname, s.ord FROM unnest(current_schemas(false)) WITH ORDINALITY "
        "AS s(nspname, ord)) sp ON sp.nspname = nc.nspname "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
        "WHERE c.relname = ANY($1::text[]) AND a.attnum > 0 AND NOT a.attisdropped "
        "AND c.relkind IN ('r', 'v', 'f', 'p') "
        "AND (pg_catalog.pg_has_role(c.relowner, 'USAGE') OR pg_catalog.has_column_privilege("
        "c.oid, a.attnum, 'SELECT, INSERT, UPDATE, REFERENCES')) "
        "ORDER BY c.relname, sp.ord, a.attnum";
    char list[1024];
    size_t o = 0;
    list[o++] = '{';
    for (int i = 0; rex__store_tables[i]; i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? "," : "",
                              rex__store_tables[i]);
    snprintf(list + o, sizeof(list) - o, "}");
    const char *vals[1] = {list};
    PGresult *r = PQexecParams(c, sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "schema introspection failed: %s", PQresultErrorMessage(r));
        PQclear(r);
        return PQstatus(c) == CONNECTION_OK ? REX_EPROTO : REX_ECONN;
    }
    for (int i = 0; i < PQntuples(r); i++)
        cb(ud, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
           PQgetvalue(r, i, 3)[0] == 'Y');
    PQclear(r);
    return 0;
}

struct seen {
    struct seen *next;
    char key[];
};

static pthread_mutex_t g_seen_mu = PTHREAD_MUTEX_INITIALIZER;
static struct seen *g_seen;

int rex_store_first_time(const char *key) {
    int first = 1;
    pthread_mutex_lock(&g_seen_mu);
    for (struct seen *s = g_seen; s; s = s->next)
        if (!strcmp(s->key, key)) {
            first = 0;
            break;
        }
    if (first) {
        size_t n = strlen(key);
        struct seen *s = rex_malloc(sizeof(*s) + n + 1);
        memcpy(s->key, key, n + 1);
        s->next = g_seen;
        g_seen = s;
    }
    pthread_mutex_unlock(&g_seen_mu);
    return first;
}
