/* Integration: the project's own connection code against the throwaway servers that
 * scripts/services.sh started (REDIS_URL, DATABASE_URL, REDIS_PID, REX_SERVICES_DIR). */
#include "rextest.h"

#include <rex/config.h>
#include <rex/log.h>
#include <rex/queue.h>
#include <rex/rex.h>
#include <rex/store.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <stdlib.h>
#include <unistd.h>

static char err[1024];

static void need_services(void) {
    if (!getenv("REDIS_URL") || !getenv("DATABASE_URL") || !getenv("REX_SERVICES_DIR"))
        rextest_skip("REDIS_URL / DATABASE_URL / REX_SERVICES_DIR not set "
                     "(run through scripts/test.sh, which starts the services)");
}

TEST(redis_connect_is_our_server) {
    need_services();
    struct rex_config cfg;
    CHECK_INT(rex_config_load(&cfg, "/dev/null", err, sizeof(err)), 0);
    redisContext *c;
    CHECK_INT(rex_redis_connect_sync(&cfg.redis, 2000, &c, err, sizeof(err)), 0);
    /* the pid file, not $REDIS_PID: other tests may have restarted Redis since it was exported */
    char pidfile[512];
    snprintf(pidfile, sizeof(pidfile), "%s/redis.pid", getenv("REX_SERVICES_DIR"));
    FILE *pf = fopen(pidfile, "r");
    CHECK(pf != NULL);
    long pid = 0;
    CHECK(fscanf(pf, "%ld", &pid) == 1);
    fclose(pf);
    CHECK_INT(rex_redis_server_pid(c), pid);
    redisReply *r = redisCommand(c, "SET %s %b", "rex:test:key", "v\0x", (size_t)3);
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(c, "GET rex:test:key");
    CHECK(r && r->type == REDIS_REPLY_STRING && r->len == 3 && memcmp(r->str, "v\0x", 3) == 0);
    freeReplyObject(r);
    redisFree(c);
    rex_config_free(&cfg);
}

TEST(redis_auth_failure_is_clear_and_secret_free) {
    need_services();
    char url[256];
    snprintf(url, sizeof(url), "redis://:sup3rsecret@%s", getenv("REDIS_URL") + 8);
    struct rex_redis_url u;
    CHECK_INT(rex_redis_url_parse(url, &u, err, sizeof(err)), 0);
    redisContext *c = NULL;
    CHECK_INT(rex_redis_connect_sync(&u, 2000, &c, err, sizeof(err)), REX_EPROTO);
    CHECK_CONTAINS(err, "Redis AUTH failed");
    CHECK(strstr(err, "sup3rsecret") == NULL);
    rex_redis_url_free(&u);
}

TEST(redis_refused_connection) {
    need_services();
    struct rex_redis_url u;
    CHECK_INT(rex_redis_url_parse("redis://127.0.0.1:1", &u, err, sizeof(err)), 0);
    redisContext *c = NULL;
    CHECK_INT(rex_redis_connect_sync(&u, 1000, &c, err, sizeof(err)), REX_ECONN);
    CHECK_CONTAINS(err, "127.0.0.1:1");
    rex_redis_url_free(&u);
}

TEST(postgres_connect_is_our_server) {
    need_services();
    PGconn *c;
    CHECK_INT(rex_pg_connect(getenv("DATABASE_URL"), 5, &c, err, sizeof(err)), 0);
    PGresult *r = PQexec(
        c, "SELECT current_setting('data_directory'), "
           "current_setting('application_name'), current_setting('server_version_num')::int");
    CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
    char want[512];
    snprintf(want, sizeof(want), "%s/pg/data", getenv("REX_SERVICES_DIR"));
    CHECK_STR(PQgetvalue(r, 0, 0), want);
    CHECK_STR(PQgetvalue(r, 0, 1), "rex-worker");
    CHECK(atoi(PQgetvalue(r, 0, 2)) >= 150000);
    PQclear(r);
    PQfinish(c);
}

TEST(postgres_failure_message_masks_the_password) {
    need_services();
    PGconn *c = NULL;
    int rc =
        rex_pg_connect("postgresql://postgres:hunter22@127.0.0.1:1/x", 2, &c, err, sizeof(err));
    CHECK_INT(rc, REX_ECONN);
    CHECK_CONTAINS(err, "cannot connect to PostgreSQL");
    CHECK(strstr(err, "hunter22") == NULL);
}
