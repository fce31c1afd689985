/* JSON-lines logging to stderr: {"level","time","msg",...fields}, one line per call, thread safe.
 * Secrets never reach a line: field values whose key names a secret are replaced by "***", and
 * passwords inside URLs / libpq strings and bearer tokens are masked in every string written. */
#ifndef REX_LOG_H
#define REX_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum rex_log_level {
    REX_LOG_DEBUG = 0,
    REX_LOG_INFO = 1,
    REX_LOG_WARN = 2,
    REX_LOG_ERROR = 3,
    REX_LOG_FATAL = 4,
    REX_LOG_OFF = 5,
};

/* Parses "debug|info|warn|warning|error|fatal|silent|off" (case-insensitive). Returns 0 and sets
 * *level, or REX_EINVAL. */
int rex_log_parse_level(const char *s, int *level);
void rex_log_set_level(int level);
int rex_log_get_level(void);
const char *rex_log_level_name(int level);

/* Where lines go (default stderr). Not owned; for tests. */
void rex_log_set_fd(int fd);

/* rex_log(level, msg, key1, value1, key2, value2, ..., NULL): string fields only. */
void rex_log(int level, const char *msg, ...);
void rex_logv(int level, const char *msg, va_list ap);

/* Low level: fields_json is a JSON object text ("{...}") or NULL; its members are appended to the
 * line as they are (the caller redacts: the Lua side does so before encoding). */
void rex_log_json(int level, const char *msg, const char *fields_json, size_t fields_len);

/* Returns 1 if a field with this name carries a secret (password, token, api key, ...). */
int rex_log_secret_key(const char *key, size_t len);

/* Returns a newly allocated copy of s with URL passwords, libpq password=..., and bearer tokens
 * masked as ***. The caller frees it with rex_free. */
char *rex_redact(const char *s, size_t len, size_t *out_len);

#define rex_log_debug(...) rex_log(REX_LOG_DEBUG, __VA_ARGS__)
#define rex_log_info(...) rex_log(REX_LOG_INFO, __VA_ARGS__)
#define rex_log_warn(...) rex_log(REX_LOG_WARN, __VA_ARGS__)
#define rex_log_error(...) rex_log(REX_LOG_ERROR, __VA_ARGS__)

#endif
