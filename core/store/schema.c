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
     * them (current_schemas(false) in order); udt_name gives "vector" for pgvector columns */
    const char *sql =
        "SELECT c.table_name, c.column_name, c.udt_name, c.is_nullable "
        "FROM information_schema.columns c "
        "JOIN (SELECT s.nspname, s.ord FROM unnest(current_schemas(false)) WITH ORDINALITY "
        "AS s(nspname, ord)) sp ON sp.nspname = c.table_schema "
        "WHERE c.table_name = ANY($1::text[]) "
        "ORDER BY c.table_name, sp.ord, c.ordinal_position";
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
