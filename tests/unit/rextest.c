#include "rextest.h"

#include <stdarg.h>

#define MAX_CASES 512

static struct {
    const char *name;
    rextest_fn fn;
} cases[MAX_CASES];
static int ncases;

void rextest_register(const char *name, rextest_fn fn) {
    if (ncases == MAX_CASES) {
        fprintf(stderr, "too many test cases\n");
        exit(2);
    }
    cases[ncases].name = name;
    cases[ncases].fn = fn;
    ncases++;
}

void rextest_skip(const char *why) {
    printf("SKIP: %s\n", why);
    fflush(stdout);
    exit(77);
}

void rextest_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ncases; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (int i = 0; i < ncases; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
            continue;
        cases[i].fn();
        printf("ok %s\n", cases[i].name);
        if (argc > 1)
            return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "no test case named %s\n", argv[1]);
        return 2;
    }
    return 0;
}
