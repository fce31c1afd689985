#include <rex/queue.h>
#include <rex/rex.h>

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static int check_status(redisContext *c, redisReply *r, const char *what, char *err,
                        size_t errlen) {
    if (!r) {
        snprintf(err, errlen, "%s: %s", what, c->errstr[0] ? c->errstr : "no reply");
        return REX_ECONN;
    }
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s: %s", what, r->str);
        rc = REX_EPROTO;
    }
    freeReplyObject(r);
    return rc;
}

int rex_redis_connect_sync(const struct rex_redis_url *url, int timeout_ms, redisContext **out,
                           char *err, size_t errlen) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = url->unix_path ? redisConnectUnixWithTimeout(url->unix_path, tv)
                                     : redisConnectWithTimeout(url->host, url->port, tv);
    if (!c) {
        snprintf(err, errlen, "cannot allocate a Redis context");
        return REX_ECONN;
    }
    if (c->err) {
        if (url->unix_path)
            snprintf(err, errlen, "cannot connect to Redis at %s: %s", url->unix_path, c->errstr);
        else
            snprintf(err, errlen, "cannot connect to Redis at %s:%d: %s", url->host, url->port,
                     c->errstr);
        redisFree(c);
        return REX_ECONN;
    }
    redisSetTimeout(c, tv);
    int rc = 0;
    if (url->password) {
        redisReply *r = url->username ? redisCommand(c, "AUTH %s %s", url->username, url->password)
                                      : redisCommand(c, "AUTH %s", url->password);
        rc = check_status(c, r, "Redis AUTH failed", err, errlen);
    }
    if (!rc && url->db)
        rc = check_status(c, redisCommand(c, "SELECT %d", url->db), "Redis SELECT failed", err,
                          errlen);
    if (rc) {
        redisFree(c);
        return rc;
    }
    *out = c;
    return 0;
}

long rex_redis_server_pid(redisContext *c) {
    redisReply *r = redisCommand(c, "INFO server");
    if (!r)
        return REX_ECONN;
    long pid = REX_EPROTO;
    if (r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "process_id:");
        if (p)
            pid = strtol(p + 11, NULL, 10);
    }
    freeReplyObject(r);
    return pid;
}
