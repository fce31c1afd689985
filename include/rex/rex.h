/* rex-worker public C API: version, error codes, assertions.
 *
 * Error convention: functions return int, 0 on success and a negative REX_E* code otherwise;
 * rex_strerror() names the code. A function that takes a callback and returns an error never
 * calls that callback. */
#ifndef REX_REX_H
#define REX_REX_H

#include <stddef.h>

#define REX_VERSION_MAJOR 0
#define REX_VERSION_MINOR 1
#define REX_VERSION_PATCH 0
#define REX_VERSION "0.1.0"

enum {
    REX_OK = 0,
    REX_EINVAL = -1,    /* invalid argument or malformed input */
    REX_ENOMEM = -2,    /* allocation refused (only where a ceiling applies) */
    REX_EIO = -3,       /* system call or file failure */
    REX_ECONN = -4,     /* connection to a server failed or was lost */
    REX_EPROTO = -5,    /* server answered something unexpected */
    REX_ENOTFOUND = -6, /* a named thing does not exist */
    REX_ETIMEDOUT = -7, /* a bounded wait ran out */
    REX_ELUA = -8,      /* a Lua chunk raised an error */
    REX_ENOTIMPL = -9,  /* the capability is not built yet */
};

/* Static string naming an error code; never NULL. */
const char *rex_strerror(int err);

/* Allocation that never returns NULL: out of memory goes to one abort handler. */
void *rex_malloc(size_t n);
void *rex_calloc(size_t count, size_t n);
void *rex_realloc(void *p, size_t n);
char *rex_strdup(const char *s);
char *rex_strndup(const char *s, size_t n);
void rex_free(void *p);

/* Logs file:line and the failed expression, then aborts. */
void rex__assert_fail(const char *expr, const char *file, int line);
#define rex_assert(e) ((e) ? (void)0 : rex__assert_fail(#e, __FILE__, __LINE__))

#endif
