/* Integration: the store against the PostgreSQL of scripts/services.sh — migrations (idempotent,
 * concurrent), schema introspection of a database missing optional tables, pipelined writes
 * through rex.store_c (round trips counted), and reconnection after the server restarts. Each
 * test works in a database of its own, created and dropped here. */
#include "lua_eval.h"
#include "rextest.h"

#include <rex/log.h>
#include <rex/rex.h>
#include <rex/runtime.h>
#include <rex/store.h>

#include <lauxlib.h>
#include <lua.h>

#include <libpq-fe.h>

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char err[4096];
static char dburl[1024];
static char dbname[128];

static void need_pg(void) {
    if (!getenv("DATABASE_URL"))
        rextest_skip("DATABASE_URL not set (run through scripts/test.sh)");
}

static char admin_url[1024];

static PGconn *admin(void) {
    PGconn *c = NULL;
    if (!admin_url[0]) /* before lua_with_db() points DATABASE_URL at the test's database */
        snprintf(admin_url, sizeof(admin_url), "%s", getenv("DATABASE_URL"));
    if (rex_pg_connect(admin_url, 5, &c, err, sizeof(err)))
        rextest_fail(__FILE__, __LINE__, "connect: %s", err);
    return c;
}

static void sql(PGconn *c, const char *q) {
    PGresult *r = PQexec(c, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rextest_fail(__FILE__, __LINE__, "%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
}

static long count(PGconn *c, const char *q) {
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rextest_fail(__FILE__, __LINE__, "%s: %s", q, PQresultErrorMessage(r));
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* A fresh database on the test server; dburl points at it. */
static void fresh_db(const char *tag) {
    need_pg();
    snprintf(dbname, sizeof(dbname), "rex_it_%s_%d", tag, (int)getpid());
    PGconn *c = admin();
    char q[256];
    snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    sql(c, q);
    snprintf(q, sizeof(q), "CREATE DATABASE %s", dbname);
    sql(c, q);
    PQfinish(c);
    const char *base = admin_url;
    const char *slash = strrchr(base, '/');
    CHECK(slash != NULL);
    snprintf(dburl, sizeof(dburl), "%.*s/%s", (int)(slash - base), base, dbname);
}

static void drop_db(void) {
    PGconn *c = admin();
    char q[256];
    snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    sql(c, q);
    PQfinish(c);
}

static PGconn *open_db(void) {
    PGconn *c = NULL;
    if (rex_pg_connect(dburl, 5, &c, err, sizeof(err)))
        rextest_fail(__FILE__, __LINE__, "connect: %s", err);
    return c;
}

TEST(migrations_apply_once_and_are_recorded) {
    fresh_db("mig");
    PGconn *c = open_db();
    int applied = -1;
    CHECK_INT(rex_store_migrate(c, &applied, err, sizeof(err)), 0);
    CHECK_INT(applied, rex_store_migration_count());
    CHECK_INT(rex_store_migrate(c, &applied, err, sizeof(err)), 0);
    CHECK_INT(applied, 0);
    CHECK_INT(count(c, "SELECT count(*) FROM rex_migrations"), rex_store_migration_count());
    CHECK_INT(count(c, "SELECT count(*) FROM tenants WHERE id = "
                       "'00000000-0000-0000-0000-000000000001'"),
              1);
    CHECK_INT(count(c, "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                       "'execution_context_snapshots' AND column_name = 'tenant_id' AND "
                       "is_nullable = 'YES'"),
              1);
    CHECK_INT(count(c, "SELECT character_maximum_length FROM information_schema.columns WHERE "
                       "table_name = 'executions' AND column_name = 'error_message'"),
              4096);
    /* lz4 for the jsonb written per execution, where the server can (Debian's can) */
    PGresult *lz = PQexec(c, "SET default_toast_compression = 'lz4'");
    int has_lz4 = PQresultStatus(lz) == PGRES_COMMAND_OK;
    PQclear(lz);
    CHECK_INT(count(c,
                    "SELECT count(*) FROM pg_attribute WHERE attcompression = 'l' AND "
                    "((attrelid = 'execution_context_snapshots'::regclass AND attname = 'state') "
                    "OR (attrelid = 'execution_steps'::regclass AND attname IN ('input', "
                    "'output')))"),
              has_lz4 ? 3 : 0);
    /* the vector column exists exactly when pgvector is available */
    long has_ext = count(c, "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'");
    CHECK_INT(count(c, "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                       "'knowledge_chunks' AND column_name = 'embedding_vector'"),
              has_ext ? 1 : 0);
    PQfinish(c);
    drop_db();
}

struct racer {
    int rc, applied;
    char err[512];
};

static void *race(void *arg) {
    struct racer *r = arg;
    PGconn *c = NULL;
    if ((r->rc = rex_pg_connect(dburl, 5, &c, r->err, sizeof(r->err))))
        return NULL;
    r->rc = rex_store_migrate(c, &r->applied, r->err, sizeof(r->err));
    PQfinish(c);
    return NULL;
}

TEST(concurrent_migrations_do_not_race) {
    fresh_db("race");
    struct racer rs[4] = {{0}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, race, &rs[i]);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (rs[i].rc)
            rextest_fail(__FILE__, __LINE__, "migrate %d: %s", i, rs[i].err);
        total += rs[i].applied;
    }
    CHECK_INT(total, rex_store_migration_count());
    drop_db();
}

static rex_lstate *lua_with_db(void) {
    setenv("DATABASE_URL", dburl, 1);
    rex_lstate *s;
    CHECK_INT(rex_lstate_new(NULL, &s, err, sizeof(err)), 0);
    return s;
}

TEST(introspection_sees_missing_optional_tables) {
    fresh_db("intro");
    PGconn *c = open_db();
    CHECK_INT(rex_store_migrate(c, NULL, err, sizeof(err)), 0);
    sql(c, "DROP TABLE execution_step_attempts, guardrail_events, execution_authorizations");
    sql(c, "ALTER TABLE execution_steps DROP COLUMN tenant_id");
    PQfinish(c);
    rex_lstate *s = lua_with_db();
    CHECK_STR(lua_eval(s, "local db = require('rex.store').get() "
                          "return table.concat({ tostring(db:has_table('executions')), "
                          "tostring(db:has_table('execution_step_attempts')), "
                          "tostring(db:has_table('guardrail_events')), "
                          "tostring(db:has_table('execution_authorizations')), "
                          "tostring(db:has_column('execution_steps', 'tenant_id')), "
                          "tostring(db:has_column('workflows', 'tenant_id')), "
                          "db:column_type('execution_steps', 'output') }, ',')"),
              "true,false,false,false,false,true,jsonb");
    rex_lstate_close(s);
    drop_db();
}

TEST(pipelined_writes_take_one_round_trip) {
    fresh_db("pipe");
    PGconn *c = open_db();
    sql(c, "CREATE TABLE t (i int PRIMARY KEY, v jsonb)");
    PQfinish(c);
    rex_lstate *s = lua_with_db();
    /* 200 inserts queued, one of them failing (duplicate key): one sync, one round trip; the
     * failure is reported with its tag and does not take its neighbours down */
    CHECK_STR(lua_eval(s, "local db = require('rex.store').get() "
                          "local before = db:stats().roundtrips "
                          "for i = 1, 200 do db:send('INSERT INTO t VALUES ($1, $2::jsonb)', "
                          "  { i == 100 and 99 or i, { n = i } }, 'row' .. i) end "
                          "local f = db:sync() "
                          "local rt = db:stats().roundtrips - before "
                          "local n = db:exec('SELECT count(*) AS n FROM t')[1].n "
                          "return table.concat({ rt, #f, f[1].tag, f[1].sqlstate, n }, ',')"),
              "1,1,row100,23505,199");
    /* the per-row baseline: one round trip each */
    CHECK_STR(lua_eval(s,
                       "local db = require('rex.store').get() db:set_per_row(true) "
                       "local before = db:stats().roundtrips "
                       "for i = 201, 250 do db:send('INSERT INTO t VALUES ($1, NULL)', { i }) end "
                       "db:sync() db:set_per_row(false) "
                       "return tostring(db:stats().roundtrips - before)"),
              "50");
    /* a transaction spanning pipelined statements rolls back as a whole */
    CHECK_STR(lua_eval(s,
                       "local db = require('rex.store').get() "
                       "local ok = pcall(db.transaction, db, function() "
                       "  db:exec('DELETE FROM t') error('boom') end) "
                       "return tostring(ok) .. ',' .. db:exec('SELECT count(*) AS n FROM t')[1].n"),
              "false,249");
    rex_lstate_close(s);
    drop_db();
}

static void restart_postgres(void) {
    /* ctest sets REX_HOME to the source tree */
    const char *dir = getenv("REX_SERVICES_DIR"), *home = getenv("REX_HOME");
    if (!home)
        rextest_skip("REX_HOME not set");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s/scripts/services.sh' restart-postgres '%s' >/dev/null", home,
             dir);
    CHECK_INT(system(cmd), 0);
}

TEST(reconnects_after_the_server_restarts) {
    if (!getenv("REX_SERVICES_DIR"))
        rextest_skip("REX_SERVICES_DIR not set");
    fresh_db("restart");
    rex_lstate *s = lua_with_db();
    CHECK_STR(lua_eval(s, "return require('rex.store').get():exec('SELECT 1 AS x')[1].x"), "1");
    restart_postgres();
    /* the first use after the restart fails with a connection error ... */
    CHECK_STR(
        lua_eval(s, "local store = require('rex.store') "
                    "local ok, e = pcall(function() return store.get():exec('SELECT 1') end) "
                    "return tostring(ok) .. ',' .. tostring(type(e) == 'table' and e.connection)"),
        "false,true");
    /* ... and the next one reconnects */
    CHECK_STR(lua_eval(s, "return require('rex.store').get():exec('SELECT 2 AS x')[1].x"), "2");
    rex_lstate_close(s);
    drop_db();
}
