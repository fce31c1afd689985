#include "rextest.h"

#include <rex/config.h>
#include <rex/log.h>
#include <rex/rex.h>

#include <stdlib.h>
#include <unistd.h>

static char err[512];

static void clean_env(void) {
    const char *vars[] = {"REDIS_URL",
                          "REDIS_HOST",
                          "REDIS_PORT",
                          "QUEUE_NAME",
                          "BULL_PREFIX",
                          "WORKER_CONCURRENCY",
                          "DATABASE_URL",
                          "LOG_LEVEL",
                          "REX_ENV_FILE",
                          "LOCK_DURATION_MS",
                          "STALLED_INTERVAL_MS",
                          "MAX_STALLED_COUNT",
                          "ENCRYPTION_MASTER_KEY",
                          NULL};
    for (int i = 0; vars[i]; i++)
        unsetenv(vars[i]);
    chdir("/"); /* no stray .env */
}

TEST(defaults) {
    clean_env();
    struct rex_config c;
    CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), 0);
    CHECK_STR(c.redis.host, "127.0.0.1");
    CHECK_INT(c.redis.port, 6379);
    CHECK_STR(c.queue_name, "workflow-execution");
    CHECK_STR(c.prefix, "bull");
    CHECK_INT(c.concurrency, 5);
    CHECK_INT(c.lock_duration_ms, 30000);
    CHECK_INT(c.stalled_interval_ms, 30000);
    CHECK_INT(c.max_stalled_count, 1);
    CHECK_INT(c.log_level, REX_LOG_INFO);
    CHECK(c.database_url == NULL);
    CHECK_INT(c.retrieval_max_requests, 64);
    CHECK_INT(c.retrieval_max_duration_ms, 120000);
    CHECK_INT(c.knowledge_cache_mb, 2048);
    CHECK_INT(c.knowledge_store_embeddings, 0);
    CHECK_INT(c.lua_jit, 0);
    rex_config_free(&c);
}

TEST(bad_concurrency_names_the_variable) {
    const char *bad[] = {"abc", "0", "-3", "5abc", "", " ", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clean_env();
        setenv("WORKER_CONCURRENCY", bad[i], 1);
        struct rex_config c;
        err[0] = '\0';
        CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), REX_EINVAL);
        CHECK_CONTAINS(err, "WORKER_CONCURRENCY");
    }
    clean_env();
    setenv("WORKER_CONCURRENCY", " 12 ", 1);
    struct rex_config c;
    CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), 0);
    CHECK_INT(c.concurrency, 12);
    rex_config_free(&c);
}

TEST(bad_redis_url_is_rejected_without_leaking_password) {
    const char *bad[] = {"http://x:6379",      "redis://",         "redis://host:99999",
                         "redis://host:abc",   "redis://h/notadb", "rediss://h:1",
                         "redis://:s3cret@:1", "redis://a b:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clean_env();
        setenv("REDIS_URL", bad[i], 1);
        struct rex_config c;
        CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), REX_EINVAL);
        CHECK_CONTAINS(err, "REDIS_URL");
        CHECK(strstr(err, "s3cret") == NULL);
    }
}

TEST(redis_url_forms) {
    struct rex_redis_url u;
    CHECK_INT(rex_redis_url_parse("redis://user:p%40ss@example.org:6390/2", &u, err, sizeof(err)),
              0);
    CHECK_STR(u.host, "example.org");
    CHECK_INT(u.port, 6390);
    CHECK_STR(u.username, "user");
    CHECK_STR(u.password, "p@ss");
    CHECK_INT(u.db, 2);
    rex_redis_url_free(&u);
    CHECK_INT(rex_redis_url_parse("redis://[::1]:7000", &u, err, sizeof(err)), 0);
    CHECK_STR(u.host, "::1");
    CHECK_INT(u.port, 7000);
    CHECK(u.password == NULL);
    rex_redis_url_free(&u);
    CHECK_INT(rex_redis_url_parse("redis://:token@localhost", &u, err, sizeof(err)), 0);
    CHECK(u.username == NULL);
    CHECK_STR(u.password, "token");
    CHECK_INT(u.port, 6379);
    rex_redis_url_free(&u);
    CHECK_INT(rex_redis_url_parse("unix:///tmp/r.sock?db=3", &u, err, sizeof(err)), 0);
    CHECK_STR(u.unix_path, "/tmp/r.sock");
    CHECK_INT(u.db, 3);
    rex_redis_url_free(&u);
}

TEST(rex_redis_host_and_port_names) {
    clean_env();
    setenv("REDIS_HOST", "10.1.2.3", 1);
    setenv("REDIS_PORT", "6400", 1);
    struct rex_config c;
    CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), 0);
    CHECK_STR(c.redis.host, "10.1.2.3");
    CHECK_INT(c.redis.port, 6400);
    rex_config_free(&c);
    setenv("REDIS_PORT", "x", 1);
    CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), REX_EINVAL);
    CHECK_CONTAINS(err, "REDIS_PORT");
}

TEST(other_bad_values) {
    struct {
        const char *var, *val;
    } bad[] = {{"LOG_LEVEL", "loud"},
               {"LOCK_DURATION_MS", "10"},
               {"MAX_STALLED_COUNT", "-1"},
               {"QUEUE_NAME", "a b"},
               {"BULL_PREFIX", ""},
               {"DATABASE_URL", "mysql://x"},
               {"STALLED_INTERVAL_MS", "1e3"},
               {"RETRIEVAL_MAX_DURATION_MS_PER_EXECUTION", "5"},
               {"KNOWLEDGE_CACHE_MB", "512MB"},
               {"KNOWLEDGE_CACHE_MB", "-1"},
               {"KNOWLEDGE_STORE_EMBEDDINGS", "yes"},
               {"REX_LUA_JIT", "on"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clean_env();
        setenv(bad[i].var, bad[i].val, 1);
        struct rex_config c;
        err[0] = '\0';
        CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), REX_EINVAL);
        CHECK_CONTAINS(err, bad[i].var);
        unsetenv(bad[i].var);
    }
}

TEST(dotenv_environment_wins) {
    clean_env();
    char dir[] = "/tmp/rexcfgXXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/.env", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# comment\n\nexport QUEUE_NAME=from-file\nWORKER_CONCURRENCY = 7\n"
               "BULL_PREFIX=\"{bull}\"\nREX_TEST_ONLY_VAR='quoted value'\n");
    fclose(f);
    setenv("WORKER_CONCURRENCY", "3", 1);
    CHECK_INT(chdir(dir), 0);
    struct rex_config c;
    CHECK_INT(rex_config_load(&c, NULL, err, sizeof(err)), 0);
    CHECK_STR(c.queue_name, "from-file");
    CHECK_INT(c.concurrency, 3); /* the environment wins */
    CHECK_STR(c.prefix, "{bull}");
    CHECK_STR(getenv("REX_TEST_ONLY_VAR"), "quoted value");
    CHECK_STR(c.env_file_used, ".env");
    rex_config_free(&c);
    unlink(path);
    rmdir(dir);
}

TEST(dotenv_malformed_line_is_an_error) {
    clean_env();
    char path[] = "/tmp/rexenvXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "GOOD=1\nthis line has no equals sign\n";
    CHECK(write(fd, text, strlen(text)) > 0);
    close(fd);
    struct rex_config c;
    CHECK_INT(rex_config_load(&c, path, err, sizeof(err)), REX_EINVAL);
    CHECK_CONTAINS(err, ":2:");
    unlink(path);
    /* an explicitly named file that does not exist is an error; the default ./.env is not */
    CHECK_INT(rex_config_load(&c, "/nonexistent/.env", err, sizeof(err)), REX_EINVAL);
    CHECK_CONTAINS(err, "/nonexistent/.env");
}
