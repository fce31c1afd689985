/* Bulk loading (rex_kn_corpus_add_batch: the same corpus as sequential adds, with any number of
 * threads) and the process-wide corpus cache (rex_kn_cache_shared, KNOWLEDGE_CACHE_MB). */
#include "rextest.h"

#include <rex/knowledge.h>
#include <rex/log.h>
#include <rex/rex.h>

#include "knowledge/corpus.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static uint32_t rng = 2463534242u;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

typedef struct {
    size_t n;
    char **ids, **texts;
    size_t *lens;
    float **vecs; /* NULL for rows embedded with the corpus model */
    float *store;
    int64_t *tags;
} rows;

/* n rows of varied prose-like text (some empty, some non-ASCII), every fifth with its own
 * unnormalized vector. */
static rows make_rows(size_t n) {
    static const char *words[] = {"refund",  "policy",   "Shipping", "orders", "Überweisung",
                                  "invoice", "warranty", "covers",   "défaut", "connections",
                                  "the",     "of",       "東京",     "42",     "configure"};
    rows r = {n,
              rex_calloc(n, sizeof(char *)),
              rex_calloc(n, sizeof(char *)),
              rex_calloc(n, sizeof(size_t)),
              rex_calloc(n, sizeof(float *)),
              rex_calloc(n * REX_KN_DIMS, sizeof(float)),
              rex_calloc(n, sizeof(int64_t))};
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "row-%05zu", (i * 7919) % n);
        r.ids[i] = rex_strdup(id);
        char *t = rex_malloc(1300);
        size_t len = 0, want = i % 37 == 5 ? 0 : 20 + next() % 1180;
        while (len < want) {
            const char *w = words[next() % 15];
            size_t l = strlen(w);
            if (len + l + 1 > want)
                break;
            memcpy(t + len, w, l);
            len += l;
            t[len++] = ' ';
        }
        t[len] = '\0';
        r.texts[i] = t;
        r.lens[i] = len;
        if (i % 5 == 2) {
            float *v = r.store + i * REX_KN_DIMS;
            for (size_t d = 0; d < 1024; d++)
                v[d] = (float)((int)(next() % 2001) - 1000) * 0.37f;
            r.vecs[i] = v;
        }
        r.tags[i] = (int64_t)(i * 3) - 7;
    }
    return r;
}

static void free_rows(rows *r) {
    for (size_t i = 0; i < r->n; i++) {
        rex_free(r->ids[i]);
        rex_free(r->texts[i]);
    }
    rex_free(r->ids);
    rex_free(r->texts);
    rex_free(r->lens);
    rex_free(r->vecs);
    rex_free(r->store);
    rex_free(r->tags);
}

static rex_kn_corpus *sequential(int model, const rows *r) {
    rex_kn_corpus *c;
    CHECK_INT(rex_kn_corpus_new(model, &c), 0);
    for (size_t i = 0; i < r->n; i++)
        CHECK_INT(rex_kn_corpus_add(c, r->ids[i], r->texts[i], r->lens[i], r->vecs[i], r->tags[i]),
                  0);
    return c;
}

/* Same rows, vectors (bit for bit), ids, tags, memory, and search results. */
static void same_corpus(rex_kn_corpus *a, rex_kn_corpus *b) {
    CHECK_INT(rex_kn_corpus_size(a), rex_kn_corpus_size(b));
    CHECK_INT(rex_kn_corpus_memory(a), rex_kn_corpus_memory(b));
    size_t n = rex_kn_corpus_size(a);
    CHECK(!memcmp(a->vec, b->vec, n * REX_KN_DIMS * sizeof(float)));
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(rex_kn_corpus_id_at(a, i), rex_kn_corpus_id_at(b, i));
        CHECK_INT(rex_kn_corpus_tag_at(a, i), rex_kn_corpus_tag_at(b, i));
    }
    rex_kn_corpus_seal(a);
    rex_kn_corpus_seal(b);
    CHECK_INT(rex_kn_corpus_memory(a), rex_kn_corpus_memory(b));
    const char *queries[] = {"refund policy", "Shipping orders configure", "東京 défaut 42"};
    for (int qi = 0; qi < 3; qi++)
        for (int rank = 0; rank <= REX_KN_RANK_ORIGINAL; rank++) {
            struct rex_kn_search_opts o = {30, rank, 0, 0, 0};
            rex_kn_hit ha[30], hb[30];
            size_t na, nb;
            const char *q = queries[qi];
            CHECK_INT(rex_kn_search(&a, 1, q, strlen(q), &o, ha, &na), 0);
            CHECK_INT(rex_kn_search(&b, 1, q, strlen(q), &o, hb, &nb), 0);
            CHECK_INT(na, nb);
            CHECK(na > 0);
            for (size_t i = 0; i < na; i++) {
                CHECK_INT(ha[i].index, hb[i].index);
                CHECK_INT(ha[i].tag, hb[i].tag);
                CHECK(!memcmp(&ha[i].score, &hb[i].score, sizeof(float)));
                CHECK(!memcmp(&ha[i].lexical, &hb[i].lexical, sizeof(float)));
            }
        }
}

static void batch_identical(int model) {
    rows r = make_rows(700);
    int threads[] = {1, 2, 4, 0, 100};
    for (int ti = 0; ti < 5; ti++) {
        rex_kn_corpus *a = sequential(model, &r), *b;
        CHECK_INT(rex_kn_corpus_new(model, &b), 0);
        CHECK_INT(rex_kn_corpus_add_batch(b, r.n, (const char *const *)r.ids,
                                          (const char *const *)r.texts, r.lens,
                                          (const float *const *)r.vecs, r.tags, threads[ti]),
                  0);
        same_corpus(a, b);
        rex_kn_corpus_release(a);
        rex_kn_corpus_release(b);
    }
    /* appending in parts, after single adds, without vectors or tags */
    rex_kn_corpus *a, *b;
    CHECK_INT(rex_kn_corpus_new(model, &a), 0);
    CHECK_INT(rex_kn_corpus_new(model, &b), 0);
    for (size_t i = 0; i < r.n; i++)
        CHECK_INT(rex_kn_corpus_add(a, r.ids[i], r.texts[i], r.lens[i], NULL, 0), 0);
    CHECK_INT(rex_kn_corpus_add(b, r.ids[0], r.texts[0], r.lens[0], NULL, 0), 0);
    CHECK_INT(rex_kn_corpus_add_batch(b, 99, (const char *const *)r.ids + 1,
                                      (const char *const *)r.texts + 1, r.lens + 1, NULL, NULL, 4),
              0);
    CHECK_INT(rex_kn_corpus_add_batch(b, r.n - 100, (const char *const *)r.ids + 100,
                                      (const char *const *)r.texts + 100, r.lens + 100, NULL, NULL,
                                      3),
              0);
    same_corpus(a, b);
    rex_kn_corpus_release(a);
    rex_kn_corpus_release(b);
    free_rows(&r);
}

TEST(add_batch_identical_lex_model) {
    batch_identical(REX_KN_MODEL_LEX_V1);
}

TEST(add_batch_identical_hash_model) {
    batch_identical(REX_KN_MODEL_HASH_V1);
}

/* All or nothing: one bad row and nothing is added. */
TEST(add_batch_refuses_bad_rows) {
    rows r = make_rows(50);
    rex_kn_corpus *c;
    CHECK_INT(rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &c), 0);
    CHECK_INT(rex_kn_corpus_add(c, "first", "first row", 9, NULL, 0), 0);
    char *keep = r.texts[31];
    r.texts[31] = "bad \xC3 byte";
    r.lens[31] = strlen(r.texts[31]);
    CHECK_INT(rex_kn_corpus_add_batch(c, r.n, (const char *const *)r.ids,
                                      (const char *const *)r.texts, r.lens,
                                      (const float *const *)r.vecs, r.tags, 2),
              REX_EINVAL);
    CHECK_INT(rex_kn_corpus_size(c), 1);
    r.texts[31] = keep;
    r.lens[31] = strlen(keep);
    r.store[7 * REX_KN_DIMS + 5] = NAN; /* row 7 has a vector */
    CHECK_INT(rex_kn_corpus_add_batch(c, r.n, (const char *const *)r.ids,
                                      (const char *const *)r.texts, r.lens,
                                      (const float *const *)r.vecs, r.tags, 2),
              REX_EINVAL);
    r.store[7 * REX_KN_DIMS + 5] = 1;
    char *id = r.ids[40];
    r.ids[40] = NULL;
    CHECK_INT(rex_kn_corpus_add_batch(c, r.n, (const char *const *)r.ids,
                                      (const char *const *)r.texts, r.lens, NULL, NULL, 1),
              REX_EINVAL);
    r.ids[40] = id;
    CHECK_INT(rex_kn_corpus_size(c), 1);
    CHECK_INT(rex_kn_corpus_add_batch(c, 0, NULL, NULL, NULL, NULL, NULL, 4), 0);
    CHECK_INT(rex_kn_corpus_add_batch(c, r.n, (const char *const *)r.ids,
                                      (const char *const *)r.texts, r.lens,
                                      (const float *const *)r.vecs, r.tags, 2),
              0);
    CHECK_INT(rex_kn_corpus_size(c), 51);
    CHECK_STR(rex_kn_corpus_id_at(c, 50), r.ids[49]);
    rex_kn_corpus_seal(c);
    CHECK_INT(rex_kn_corpus_add_batch(c, 1, (const char *const *)r.ids,
                                      (const char *const *)r.texts, r.lens, NULL, NULL, 1),
              REX_EINVAL);
    CHECK_INT(rex_kn_corpus_size(c), 51);
    rex_kn_corpus_release(c);
    free_rows(&r);
}

TEST(cache_mb_from_env) {
    size_t b;
    CHECK_INT(rex__kn_cache_bytes_from_env(NULL, &b), 0);
    CHECK_INT(b, (size_t)REX_KN_CACHE_MB_DEFAULT << 20);
    CHECK_INT(rex__kn_cache_bytes_from_env("", &b), 0);
    CHECK_INT(b, (size_t)REX_KN_CACHE_MB_DEFAULT << 20);
    CHECK_INT(rex__kn_cache_bytes_from_env("0", &b), 0);
    CHECK_INT(b, 0);
    CHECK_INT(rex__kn_cache_bytes_from_env("3", &b), 0);
    CHECK_INT(b, 3 << 20);
    CHECK_INT(rex__kn_cache_bytes_from_env("0004096", &b), 0);
    CHECK_INT(b, (size_t)4096 << 20);
    /* 17592186044416 MiB = 2^64 bytes */
    const char *bad[] = {
        "12abc", "-1", " 5", "5 ", "1.5", "+8", "2G", "17592186044416", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = 1;
        CHECK_INT(rex__kn_cache_bytes_from_env(bad[i], &b), REX_EINVAL);
        CHECK_INT(b, (size_t)REX_KN_CACHE_MB_DEFAULT << 20);
    }
}

/* The shared cache of a fresh process with KNOWLEDGE_CACHE_MB=env (NULL = unset), its first use
 * raced by eight threads: a child process reports the bound, whether every thread got the same
 * cache, and what the log received. */
struct shared_report {
    size_t max_bytes;
    int same, found;
    char log[512];
};

static void *get_shared(void *arg) {
    *(rex_kn_cache **)arg = rex_kn_cache_shared();
    return NULL;
}

static struct shared_report shared_in_child(const char *env) {
    struct shared_report rep = {0};
    int fd[2], logfd[2];
    CHECK(pipe(fd) == 0 && pipe(logfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (env)
            setenv("KNOWLEDGE_CACHE_MB", env, 1);
        else
            unsetenv("KNOWLEDGE_CACHE_MB");
        rex_log_set_fd(logfd[1]);
        rex_kn_cache *got[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            pthread_create(&t[i], NULL, get_shared, &got[i]);
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
        struct shared_report r = {0};
        r.same = got[0] != NULL;
        for (int i = 1; i < 8; i++)
            r.same &= got[i] == got[0] && rex_kn_cache_shared() == got[0];
        struct rex_kn_cache_stats st;
        rex_kn_cache_stats(got[0], &st);
        r.max_bytes = st.max_bytes;
        /* usable: a corpus put through one pointer is found through another */
        rex_kn_corpus *c;
        rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &c);
        rex_kn_corpus_add(c, "a", "alpha", 5, NULL, 0);
        rex_kn_cache_put(got[3], "k", "v", c);
        rex_kn_corpus *back = rex_kn_cache_get(got[5], "k", "v");
        r.found = back == c;
        rex_kn_corpus_release(back);
        rex_kn_corpus_release(c);
        close(logfd[1]);
        ssize_t k = read(logfd[0], r.log, sizeof(r.log) - 1);
        (void)k;
        if (write(fd[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(2);
        _exit(0);
    }
    close(fd[1]);
    close(logfd[1]);
    CHECK(read(fd[0], &rep, sizeof(rep)) == (ssize_t)sizeof(rep));
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd[0]);
    close(logfd[0]);
    return rep;
}

TEST(shared_cache_once_per_process) {
    struct shared_report r = shared_in_child("7");
    CHECK(r.same);
    CHECK(r.found);
    CHECK_INT(r.max_bytes, 7 << 20);
    CHECK_STR(r.log, "");
    r = shared_in_child(NULL);
    CHECK(r.same);
    CHECK_INT(r.max_bytes, (size_t)REX_KN_CACHE_MB_DEFAULT << 20);
    r = shared_in_child("0");
    CHECK_INT(r.max_bytes, 0); /* unbounded */
    CHECK(r.found);
}

TEST(shared_cache_malformed_bound) {
    struct shared_report r = shared_in_child("512MB");
    CHECK(r.same);
    CHECK_INT(r.max_bytes, (size_t)REX_KN_CACHE_MB_DEFAULT << 20);
    CHECK_CONTAINS(r.log, "\"level\":\"warn\"");
    CHECK_CONTAINS(r.log, "KNOWLEDGE_CACHE_MB");
    CHECK_CONTAINS(r.log, "512MB");
}
