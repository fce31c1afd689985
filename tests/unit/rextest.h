/* A small test harness: TEST(name) registers a case; the runner executes the case named on the
 * command line (ctest runs each case as its own process), or all cases in-process with no
 * argument. A failed CHECK prints file:line and exits 1; rextest_skip() exits 77. */
#ifndef REXTEST_H
#define REXTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*rextest_fn)(void);
void rextest_register(const char *name, rextest_fn fn);
void rextest_skip(const char *why);
void rextest_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void) {                               \
        rextest_register(#name, test_##name);                                                      \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            rextest_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                  \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            rextest_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_);            \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || !b_ || strcmp(a_, b_) != 0)                                                     \
            rextest_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b,                 \
                         a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                  \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            rextest_fail(__FILE__, __LINE__, "%s contains \"%s\": got \"%s\"", #hay, n_,           \
                         h_ ? h_ : "(null)");                                                      \
    } while (0)

#endif
