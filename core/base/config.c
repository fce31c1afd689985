#include <rex/config.h>
#include <rex/knowledge.h> /* REX_KN_CACHE_MB_DEFAULT */
#include <rex/log.h>
#include <rex/rex.h>

#include "base/buf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return REX_EINVAL;
}

/* ---- .env ---------------------------------------------------------------------------------- */

static char *trim(char *s) {
    while (*s && isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* KEY=VALUE lines; blank lines and '#' comments ignored; an optional "export " prefix; one pair
 * of matching surrounding quotes removed. Existing environment variables are kept (env wins). */
static int load_dotenv(const char *path, int required, char *err, size_t errlen, int *used) {
    *used = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (required)
            return fail(err, errlen, "cannot read env file %s", path);
        return 0;
    }
    *used = 1;
    char line[8192];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        size_t ll = strlen(line);
        if (ll == sizeof(line) - 1 && line[ll - 1] != '\n') {
            fclose(f);
            return fail(err, errlen, "%s:%d: line too long", path, lineno);
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (!eq) {
            fclose(f);
            return fail(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
        }
        *eq = '\0';
        char *key = trim(s);
        char *val = trim(eq + 1);
        int ok = *key != '\0' && (isalpha((unsigned char)*key) || *key == '_');
        for (char *k = key; ok && *k; k++)
            ok = isalnum((unsigned char)*k) || *k == '_';
        if (!ok) {
            fclose(f);
            return fail(err, errlen, "%s:%d: invalid variable name", path, lineno);
        }
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        setenv(key, val, 0);
    }
    fclose(f);
    return 0;
}

/* ---- values -------------------------------------------------------------------------------- */

/* Unset means default; set means it must be valid (an empty value is an error too). */
static int get_long(const char *name, long def, long min, long max, long *out, char *err,
                    size_t errlen) {
    const char *v = getenv(name);
    if (!v) {
        *out = def;
        return 0;
    }
    const char *p = v;
    while (isspace((unsigned char)*p))
        p++;
    char *end = NULL;
    errno = 0;
    long n = strtol(p, &end, 10);
    int digits = end != p && isdigit((unsigned char)p[*p == '-' || *p == '+']);
    while (end && isspace((unsigned char)*end))
        end++;
    if (!digits || errno || !end || *end)
        return fail(err, errlen, "%s must be an integer, got \"%s\"", name, v);
    if (n < min || n > max)
        return fail(err, errlen, "%s must be between %ld and %ld, got %ld", name, min, max, n);
    *out = n;
    return 0;
}

static int get_int(const char *name, int def, int min, int max, int *out, char *err,
                   size_t errlen) {
    long v;
    int rc = get_long(name, def, min, max, &v, err, errlen);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

static char *get_str(const char *name, const char *def) {
    const char *v = getenv(name);
    if (!v || !*v)
        v = def;
    return v ? rex_strdup(v) : NULL;
}

static int get_name(const char *name, const char *def, char **out, char *err, size_t errlen) {
    const char *v = getenv(name);
    if (!v)
        v = def;
    if (!*v)
        return fail(err, errlen, "%s must not be empty", name);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            return fail(err, errlen, "%s must not contain spaces or control characters", name);
    *out = rex_strdup(v);
    return 0;
}

/* ---- redis URL ----------------------------------------------------------------------------- */

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static char *pct_decode(const char *s, size_t n) {
    char *d = rex_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            d[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = '\0';
    return d;
}

void rex_redis_url_free(struct rex_redis_url *u) {
    rex_free(u->host);
    rex_free(u->username);
    rex_free(u->password);
    rex_free(u->unix_path);
    memset(u, 0, sizeof(*u));
}

static int parse_db(const char *s, size_t n, int *db) {
    if (n == 0) {
        *db = 0;
        return 0;
    }
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]) || v > 100000)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *db = (int)v;
    return 0;
}

int rex_redis_url_parse(const char *url, struct rex_redis_url *u, char *err, size_t errlen) {
    memset(u, 0, sizeof(*u));
    u->port = 6379;
    const char *p;
    if (strncmp(url, "rediss://", 9) == 0)
        return fail(err, errlen, "TLS (rediss://) is not supported by this build");
    if (strncmp(url, "unix://", 7) == 0 || strncmp(url, "redis+unix://", 13) == 0) {
        p = strstr(url, "://") + 3;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || p[0] != '/')
            return fail(err, errlen, "expected an absolute socket path after unix://");
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, strlen(q + 4), &u->db))
                return fail(err, errlen, "only ?db=N is understood after the socket path");
        }
        u->unix_path = rex_strndup(p, n);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return fail(err, errlen, "must start with redis:// or unix://");
    p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *s = p; s < end; s++)
        if (*s == '@')
            at = s;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                u->username = pct_decode(p, (size_t)(colon - p));
            u->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        } else if (at > p) {
            u->username = pct_decode(p, (size_t)(at - p)); /* redis://token@host: a password */
            u->password = u->username;
            u->username = NULL;
        }
        p = at + 1;
    }
    const char *hend;
    const char *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            goto bad_host;
        u->host = rex_strndup(p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
        if (hend < end && *hend == ':')
            port = hend + 1;
        else if (hend != end)
            goto bad_host;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon ? colon : end;
        u->host = rex_strndup(p, (size_t)(hend - p));
        if (colon)
            port = colon + 1;
    }
    if (!u->host[0])
        goto bad_host;
    for (const char *h = u->host; *h; h++)
        if (!(isalnum((unsigned char)*h) || *h == '.' || *h == '-' || *h == ':' || *h == '_'))
            goto bad_host;
    if (port) {
        long v = 0;
        if (port == end)
            goto bad_port;
        for (const char *s = port; s < end; s++) {
            if (!isdigit((unsigned char)*s) || v > 65535)
                goto bad_port;
            v = v * 10 + (*s - '0');
        }
        if (v < 1 || v > 65535)
            goto bad_port;
        u->port = (int)v;
    }
    if (*end == '/') {
        const char *db = end + 1;
        size_t n = strcspn(db, "?#");
        if (parse_db(db, n, &u->db)) {
            rex_redis_url_free(u);
            return fail(err, errlen, "the path must be a database number");
        }
        end = db + n;
    }
    if (*end) {
        rex_redis_url_free(u);
        return fail(err, errlen, "unexpected query or fragment");
    }
    return 0;
bad_host:
    rex_redis_url_free(u);
    return fail(err, errlen, "missing or invalid host");
bad_port:
    rex_redis_url_free(u);
    return fail(err, errlen, "invalid port");
}

/* REMOVE_ON_COMPLETE / REMOVE_ON_FAIL: true, false, a count, or a JSON object with only
 * "age", "count" and "limit" as non-negative integers (BullMQ's KeepJobs). */
static int check_keep_option(const char *name, const char *v, char *err, size_t errlen) {
    if (!strcmp(v, "true") || !strcmp(v, "false"))
        return 0;
    const char *p = v;
    if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p))
            p++;
        if (!*p)
            return 0;
    } else if (*p == '{') {
        p++;
        int members = 0;
        for (;;) {
            while (isspace((unsigned char)*p))
                p++;
            if (*p == '}' && members == 0) {
                p++;
                break;
            }
            const char *keys[] = {"\"age\"", "\"count\"", "\"limit\""};
            size_t k = 0;
            for (; k < 3; k++)
                if (!strncmp(p, keys[k], strlen(keys[k])))
                    break;
            if (k == 3)
                goto bad;
            p += strlen(keys[k]);
            while (isspace((unsigned char)*p))
                p++;
            if (*p++ != ':')
                goto bad;
            while (isspace((unsigned char)*p))
                p++;
            if (!isdigit((unsigned char)*p))
                goto bad;
            while (isdigit((unsigned char)*p))
                p++;
            while (isspace((unsigned char)*p))
                p++;
            members++;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == '}') {
                p++;
                break;
            }
            goto bad;
        }
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return 0;
    }
bad:
    return fail(err, errlen,
                "%s must be true, false, a count, or {\"age\":s,\"count\":n,\"limit\":n}; "
                "got \"%s\"",
                name, v);
}

/* ---- load ---------------------------------------------------------------------------------- */

void rex_config_free(struct rex_config *cfg) {
    rex_redis_url_free(&cfg->redis);
    rex_free(cfg->redis_url_redacted);
    rex_free(cfg->queue_name);
    rex_free(cfg->prefix);
    rex_free(cfg->database_url);
    rex_free(cfg->encryption_master_key);
    rex_free(cfg->jobs_path);
    rex_free(cfg->nodes_path);
    rex_free(cfg->hooks_path);
    rex_free(cfg->http_allowlist);
    rex_free(cfg->worker_name);
    rex_free(cfg->remove_on_complete);
    rex_free(cfg->remove_on_fail);
    rex_free(cfg->env_file_used);
    memset(cfg, 0, sizeof(*cfg));
}

static int load(struct rex_config *cfg, char *err, size_t errlen) {
    char why[256];
    int rc;
    const char *lvl = getenv("LOG_LEVEL");
    cfg->log_level = REX_LOG_INFO;
    if (lvl && rex_log_parse_level(lvl, &cfg->log_level))
        return fail(err, errlen,
                    "LOG_LEVEL must be one of debug, info, warn, error, fatal, silent; got \"%s\"",
                    lvl);

    const char *url = getenv("REDIS_URL");
    char built[512];
    if (!url || !*url) {
        /* REX's own variables: REDIS_HOST (+ REDIS_PORT) */
        const char *host = getenv("REDIS_HOST");
        long port;
        if ((rc = get_long("REDIS_PORT", 6379, 1, 65535, &port, err, errlen)))
            return rc;
        if (host && *host) {
            int v6 = strchr(host, ':') != NULL;
            snprintf(built, sizeof(built), "redis://%s%s%s:%ld", v6 ? "[" : "", host, v6 ? "]" : "",
                     port);
        } else {
            snprintf(built, sizeof(built), "redis://127.0.0.1:%ld", port);
        }
        url = built;
    }
    if (rex_redis_url_parse(url, &cfg->redis, why, sizeof(why))) {
        size_t rn;
        char *r = rex_redact(url, strlen(url), &rn);
        fail(err, errlen, "REDIS_URL is not a valid Redis URL (%s): \"%s\"", why, r);
        rex_free(r);
        return REX_EINVAL;
    }
    cfg->redis_url_redacted = rex_redact(url, strlen(url), NULL);

    if ((rc = get_name("QUEUE_NAME", "workflow-execution", &cfg->queue_name, err, errlen)))
        return rc;
    if ((rc = get_name("BULL_PREFIX", "bull", &cfg->prefix, err, errlen)))
        return rc;
    if ((rc = get_int("WORKER_CONCURRENCY", 5, 1, 10000, &cfg->concurrency, err, errlen)))
        return rc;
    if ((rc = get_long("LOCK_DURATION_MS", 30000, 1000, 86400000, &cfg->lock_duration_ms, err,
                       errlen)))
        return rc;
    if ((rc = get_long("STALLED_INTERVAL_MS", 30000, 100, 86400000, &cfg->stalled_interval_ms, err,
                       errlen)))
        return rc;
    if ((rc = get_int("MAX_STALLED_COUNT", 1, 0, 1000000, &cfg->max_stalled_count, err, errlen)))
        return rc;
    if ((rc = get_long("SHUTDOWN_GRACE_MS", 30000, 0, 86400000, &cfg->shutdown_grace_ms, err,
                       errlen)))
        return rc;
    if ((rc = get_int("RETRIEVAL_MAX_REQUESTS_PER_EXECUTION", 64, 1, INT_MAX,
                      &cfg->retrieval_max_requests, err, errlen)))
        return rc;
    if ((rc = get_int("RETRIEVAL_MAX_FAILURES_PER_EXECUTION", 32, 1, INT_MAX,
                      &cfg->retrieval_max_failures, err, errlen)))
        return rc;
    if ((rc = get_long("RETRIEVAL_MAX_DURATION_MS_PER_EXECUTION", 120000, 1000, LONG_MAX,
                       &cfg->retrieval_max_duration_ms, err, errlen)))
        return rc;

    /* read again where they are used (rex_kn_cache_shared, rex.knowledge.pg): checked here so a
     * malformed value stops start-up */
    if ((rc = get_long("KNOWLEDGE_CACHE_MB", REX_KN_CACHE_MB_DEFAULT, 0, 1L << 30,
                       &cfg->knowledge_cache_mb, err, errlen)))
        return rc;
    if ((rc = get_int("KNOWLEDGE_STORE_EMBEDDINGS", 0, 0, 1, &cfg->knowledge_store_embeddings, err,
                      errlen)))
        return rc;

    if ((rc = get_int("REX_LUA_JIT", 0, 0, 1, &cfg->lua_jit, err, errlen)))
        return rc;

    if ((rc = get_long("WORKER_LIMITER_MAX", 0, 0, 1000000000, &cfg->limiter_max, err, errlen)))
        return rc;
    if ((rc = get_long("WORKER_LIMITER_DURATION_MS", 1000, 1, 86400000, &cfg->limiter_duration_ms,
                       err, errlen)))
        return rc;
    if ((rc = get_long("MAX_STARTED_ATTEMPTS", 0, 0, 1000000000, &cfg->max_started_attempts, err,
                       errlen)))
        return rc;
    if ((rc = get_long("DRAIN_DELAY_MS", 5000, 10, 600000, &cfg->drain_delay_ms, err, errlen)))
        return rc;
    if ((rc = get_long("REX_IDLE_INTERVAL_MS", 5000, 100, 86400000, &cfg->idle_interval_ms, err,
                       errlen)))
        return rc;
    if (getenv("WORKER_NAME") && (rc = get_name("WORKER_NAME", "", &cfg->worker_name, err, errlen)))
        return rc;
    /* checked for shape here, interpreted by the Lua side (rex.worker.keep_jobs) */
    cfg->remove_on_complete = get_str("REMOVE_ON_COMPLETE", "{\"count\":1000}");
    cfg->remove_on_fail = get_str("REMOVE_ON_FAIL", "{\"count\":5000}");
    if (check_keep_option("REMOVE_ON_COMPLETE", cfg->remove_on_complete, err, errlen) ||
        check_keep_option("REMOVE_ON_FAIL", cfg->remove_on_fail, err, errlen))
        return REX_EINVAL;

    cfg->database_url = get_str("DATABASE_URL", NULL);
    if (cfg->database_url && strncmp(cfg->database_url, "postgres://", 11) != 0 &&
        strncmp(cfg->database_url, "postgresql://", 13) != 0 && !strchr(cfg->database_url, '='))
        return fail(err, errlen,
                    "DATABASE_URL must be a postgresql:// URI or a libpq key=value string");
    cfg->encryption_master_key = get_str("ENCRYPTION_MASTER_KEY", NULL);
    cfg->jobs_path = get_str("REX_JOBS_PATH", NULL);
    cfg->nodes_path = get_str("REX_NODES_PATH", NULL);
    cfg->hooks_path = get_str("REX_HOOKS_PATH", NULL);
    cfg->http_allowlist = get_str("REX_HTTP_ALLOWLIST", NULL);
    return 0;
}

int rex_config_load(struct rex_config *cfg, const char *env_file, char *err, size_t errlen) {
    memset(cfg, 0, sizeof(*cfg));
    int explicit_file = env_file != NULL;
    if (!env_file) {
        env_file = getenv("REX_ENV_FILE");
        explicit_file = env_file && *env_file;
        if (!explicit_file)
            env_file = ".env";
    }
    int used = 0;
    int rc = load_dotenv(env_file, explicit_file, err, errlen, &used);
    if (rc == 0)
        rc = load(cfg, err, errlen);
    if (rc) {
        rex_config_free(cfg);
        return rc;
    }
    if (used)
        cfg->env_file_used = rex_strdup(env_file);
    return 0;
}
