#include "rextest.h"

#include <rex/log.h>
#include <rex/rex.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static char *capture(void (*fn)(void)) {
    char path[] = "/tmp/rexlogXXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    rex_log_set_fd(fd);
    fn();
    rex_log_set_fd(2);
    off_t n = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    CHECK(pread(fd, buf, (size_t)n, 0) == n);
    close(fd);
    unlink(path);
    return buf;
}

static char *redact(const char *s) {
    return rex_redact(s, strlen(s), NULL);
}

TEST(redact_url_passwords) {
    char *r = redact("connect redis://user:hunter2@host:6379/0 and postgres://u:p%40w@db/x ok");
    CHECK_STR(r, "connect redis://user:***@host:6379/0 and postgres://u:***@db/x ok");
    rex_free(r);
    r = redact("redis://:onlypass@h:1");
    CHECK_STR(r, "redis://:***@h:1");
    rex_free(r);
    r = redact("https://tok3n@api.example/x?y=1");
    CHECK_STR(r, "https://***@api.example/x?y=1");
    rex_free(r);
    r = redact("host=h password=secret dbname=x; PASSWORD='a b' end");
    CHECK_STR(r, "host=h password=*** dbname=x; PASSWORD=*** end");
    rex_free(r);
    r = redact("Authorization: Bearer sk-abc123, next");
    CHECK_STR(r, "Authorization: Bearer ***, next");
    rex_free(r);
    r = redact("no secrets here: http://example.org/path@x");
    CHECK_STR(r, "no secrets here: http://example.org/path@x");
    rex_free(r);
}

TEST(secret_keys) {
    CHECK(rex_log_secret_key("password", 8));
    CHECK(rex_log_secret_key("ENCRYPTION_MASTER_KEY", 21));
    CHECK(rex_log_secret_key("apiKey", 6));
    CHECK(rex_log_secret_key("api_key", 7));
    CHECK(rex_log_secret_key("x-auth-token", 12));
    CHECK(rex_log_secret_key("Authorization", 13));
    CHECK(!rex_log_secret_key("jobId", 5));
    CHECK(!rex_log_secret_key("queue", 5));
    CHECK(!rex_log_secret_key("keyspace", 8));
}

static void emit_lines(void) {
    rex_log_set_level(REX_LOG_INFO);
    rex_log(REX_LOG_DEBUG, "hidden", NULL);
    rex_log(REX_LOG_INFO, "connected to redis://:pw1@h:1", "url", "redis://u:pw2@h:2", "apiKey",
            "pw3", "note", "line\nbreak \"quoted\" \x01", "level", "override", NULL);
    rex_log(REX_LOG_WARN, "bad utf8 \xff here", NULL);
    {
        const char *f = "{\"a\":1,\"b\":[true]}";
        rex_log_json(REX_LOG_ERROR, "from lua", f, strlen(f));
    }
}

TEST(json_lines_with_redaction_and_levels) {
    char *out = capture(emit_lines);
    CHECK(strstr(out, "hidden") == NULL);
    CHECK(strstr(out, "pw1") == NULL && strstr(out, "pw2") == NULL && strstr(out, "pw3") == NULL);
    CHECK_CONTAINS(out, "{\"level\":\"info\",\"time\":\"");
    CHECK_CONTAINS(out, "\"msg\":\"connected to redis://:***@h:1\"");
    CHECK_CONTAINS(out, "\"url\":\"redis://u:***@h:2\"");
    CHECK_CONTAINS(out, "\"apiKey\":\"***\"");
    CHECK_CONTAINS(out, "\"note\":\"line\\nbreak \\\"quoted\\\" \\u0001\"");
    CHECK(strstr(out, "override") == NULL);
    CHECK_CONTAINS(out, "\"msg\":\"bad utf8 \\ufffd here\"");
    CHECK_CONTAINS(out, "\"level\":\"error\"");
    CHECK_CONTAINS(out, "\"msg\":\"from lua\",\"a\":1,\"b\":[true]}\n");
    /* exactly three lines, each a JSON object */
    int lines = 0;
    for (char *p = out; *p; p++)
        if (*p == '\n') {
            lines++;
            CHECK(p[-1] == '}');
        }
    CHECK_INT(lines, 3);
    free(out);
}

TEST(parse_level) {
    int l;
    CHECK_INT(rex_log_parse_level("DEBUG", &l), 0);
    CHECK_INT(l, REX_LOG_DEBUG);
    CHECK_INT(rex_log_parse_level("warning", &l), 0);
    CHECK_INT(l, REX_LOG_WARN);
    CHECK_INT(rex_log_parse_level("silent", &l), 0);
    CHECK_INT(l, REX_LOG_OFF);
    CHECK_INT(rex_log_parse_level("verbose", &l), REX_EINVAL);
}
