/* One out-of-memory policy for the whole process: log and abort (as redis' zmalloc does), so
 * callers never carry a NULL check for allocations that cannot sensibly fail. */
#include <rex/rex.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n) {
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *rex_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rex_calloc(size_t count, size_t n) {
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *rex_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *rex_strndup(const char *s, size_t n) {
    char *d = rex_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *rex_strdup(const char *s) {
    return rex_strndup(s, strlen(s));
}

void rex_free(void *p) {
    free(p);
}

void rex__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr,
            "{\"level\":\"fatal\",\"msg\":\"assertion failed\",\"expr\":\"%s\",\"at\":\"%s:%d\"}\n",
            expr, file, line);
    abort();
}
