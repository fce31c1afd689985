#include <rex/log.h>
#include <rex/rex.h>

#include "base/buf.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_level = REX_LOG_INFO;
static int g_fd = 2;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal", "off"};

const char *rex_log_level_name(int level) {
    if (level < REX_LOG_DEBUG || level > REX_LOG_OFF)
        return "info";
    return level_names[level];
}

int rex_log_parse_level(const char *s, int *level) {
    static const struct {
        const char *name;
        int level;
    } names[] = {{"debug", REX_LOG_DEBUG}, {"trace", REX_LOG_DEBUG},  {"info", REX_LOG_INFO},
                 {"warn", REX_LOG_WARN},   {"warning", REX_LOG_WARN}, {"error", REX_LOG_ERROR},
                 {"fatal", REX_LOG_FATAL}, {"silent", REX_LOG_OFF},   {"off", REX_LOG_OFF}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *level = names[i].level;
            return 0;
        }
    }
    return REX_EINVAL;
}

void rex_log_set_level(int level) {
    g_level = level;
}

int rex_log_get_level(void) {
    return g_level;
}

void rex_log_set_fd(int fd) {
    g_fd = fd;
}

/* Secret-bearing field names, compared after lower-casing and dropping '_', '-' and '.'. */
int rex_log_secret_key(const char *key, size_t len) {
    static const char *const words[] = {
        "password",  "passwd",     "secret",     "token",     "apikey", "authorization",
        "masterkey", "credential", "privatekey", "accesskey", "cookie", "encryptionkey"};
    char norm[128];
    size_t n = 0;
    for (size_t i = 0; i < len && n < sizeof(norm) - 1; i++) {
        char c = key[i];
        if (c == '_' || c == '-' || c == '.')
            continue;
        norm[n++] = (char)tolower((unsigned char)c);
    }
    norm[n] = '\0';
    if (strcmp(norm, "key") == 0 || strcmp(norm, "pass") == 0 || strcmp(norm, "pwd") == 0)
        return 1;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(norm, words[i]))
            return 1;
    return 0;
}

static int is_scheme_char(char c) {
    return isalnum((unsigned char)c) || c == '+' || c == '-' || c == '.';
}

/* Masks, in order of appearance: "scheme://user:PASSWORD@", "password=VALUE" (libpq keyword
 * strings, query strings), and "Bearer TOKEN". */
char *rex_redact(const char *s, size_t len, size_t *out_len) {
    rex_buf b;
    rex_buf_init(&b);
    size_t i = 0;
    while (i < len) {
        /* URL userinfo: look for "://" then "user:pass@" before any '/', space or end. */
        if (i + 3 <= len && s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/' && i > 0 &&
            is_scheme_char(s[i - 1])) {
            size_t start = i + 3, j = start, colon = 0, at = 0;
            while (j < len && s[j] != '/' && s[j] != ' ' && s[j] != '"' && s[j] != '\n') {
                if (s[j] == ':' && !colon && !at)
                    colon = j;
                if (s[j] == '@')
                    at = j; /* the last '@' ends the userinfo */
                j++;
            }
            if (at) {
                rex_buf_add(&b, s + i, start - i);
                if (colon && colon < at) {
                    rex_buf_add(&b, s + start, colon - start + 1);
                    rex_buf_adds(&b, "***");
                } else {
                    rex_buf_adds(&b, "***"); /* a lone userinfo is usually a token */
                }
                rex_buf_addc(&b, '@');
                i = at + 1;
                continue;
            }
        }
        if ((i == 0 || !isalnum((unsigned char)s[i - 1])) && len - i >= 9 &&
            strncasecmp(s + i, "password=", 9) == 0) {
            rex_buf_add(&b, s + i, 9);
            rex_buf_adds(&b, "***");
            i += 9;
            if (i < len && (s[i] == '\'' || s[i] == '"')) {
                char q = s[i++];
                while (i < len && s[i] != q)
                    i++;
                if (i < len)
                    i++;
            } else {
                while (i < len && s[i] != ' ' && s[i] != '&' && s[i] != ';' && s[i] != '"' &&
                       s[i] != '\n')
                    i++;
            }
            continue;
        }
        if ((i == 0 || !isalnum((unsigned char)s[i - 1])) && len - i >= 7 &&
            strncasecmp(s + i, "bearer ", 7) == 0) {
            rex_buf_add(&b, s + i, 7);
            i += 7;
            size_t j = i;
            while (j < len && s[j] != ' ' && s[j] != '"' && s[j] != '\n' && s[j] != ',')
                j++;
            if (j > i)
                rex_buf_adds(&b, "***");
            i = j;
            continue;
        }
        rex_buf_addc(&b, s[i]);
        i++;
    }
    return rex_buf_steal(&b, out_len);
}

static void add_time(rex_buf *b) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char t[40];
    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
    rex_buf_printf(b, "\"time\":\"%s.%03ldZ\"", t, (long)(tv.tv_usec / 1000));
}

static void add_redacted_string(rex_buf *b, const char *s, size_t n) {
    size_t rn;
    char *r = rex_redact(s, n, &rn);
    rex_buf_add_json_string(b, r, rn);
    rex_free(r);
}

static void begin_line(rex_buf *b, int level, const char *msg) {
    rex_buf_printf(b, "{\"level\":\"%s\",", rex_log_level_name(level));
    add_time(b);
    rex_buf_adds(b, ",\"msg\":");
    add_redacted_string(b, msg, strlen(msg));
}

static void write_line(rex_buf *b) {
    rex_buf_adds(b, "}\n");
    pthread_mutex_lock(&g_lock);
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(g_fd, b->data + off, b->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&g_lock);
}

void rex_logv(int level, const char *msg, va_list ap) {
    if (level < g_level || level >= REX_LOG_OFF)
        return;
    rex_buf b;
    rex_buf_init(&b);
    begin_line(&b, level, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        size_t kl = strlen(k);
        /* the fixed members cannot be overwritten by a field */
        if (!strcmp(k, "level") || !strcmp(k, "time") || !strcmp(k, "msg"))
            continue;
        rex_buf_addc(&b, ',');
        rex_buf_add_json_string(&b, k, kl);
        rex_buf_addc(&b, ':');
        if (!v)
            rex_buf_adds(&b, "null");
        else if (rex_log_secret_key(k, kl))
            rex_buf_adds(&b, "\"***\"");
        else
            add_redacted_string(&b, v, strlen(v));
    }
    write_line(&b);
    rex_buf_free(&b);
}

void rex_log(int level, const char *msg, ...) {
    va_list ap;
    va_start(ap, msg);
    rex_logv(level, msg, ap);
    va_end(ap);
}

void rex_log_json(int level, const char *msg, const char *fields, size_t n) {
    if (level < g_level || level >= REX_LOG_OFF)
        return;
    rex_buf b;
    rex_buf_init(&b);
    begin_line(&b, level, msg);
    /* append the members of the object, without its braces */
    if (fields && n >= 2 && fields[0] == '{' && fields[n - 1] == '}' && n > 2) {
        rex_buf_addc(&b, ',');
        rex_buf_add(&b, fields + 1, n - 2);
    }
    write_line(&b);
    rex_buf_free(&b);
}
