/* Exact top-K: SIMD and scalar kernels bit-identical, int8 scan identical to float32, ties by
 * chunk id, BM25 against its formula, limits, and the corpus cache (bound, invalidation). */
#include "rextest.h"

#include <rex/knowledge.h>
#include <rex/rex.h>

#include "knowledge/corpus.h"
#include "knowledge/kn.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

static uint32_t rng = 2463534242u;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

TEST(kernels_bit_identical) {
    size_t n = 37, dims = REX_KN_DIMS;
    float *rows = rex_malloc(n * dims * sizeof(float)), q[REX_KN_DIMS];
    int8_t *r8 = rex_malloc(n * dims), q8[REX_KN_DIMS];
    for (size_t i = 0; i < n * dims; i++) {
        rows[i] = ((float)(next() % 2000001) - 1000000.0f) * 1e-6f;
        r8[i] = (int8_t)((int)(next() % 255) - 127);
    }
    for (size_t i = 0; i < dims; i++) {
        q[i] = ((float)(next() % 2000001) - 1000000.0f) * 1e-6f;
        q8[i] = (int8_t)((int)(next() % 255) - 127);
    }
    float ref[37], out[37];
    int32_t iref[37], iout[37];
    rex__kn_dot_f32_kernel(REX_KN_KERNEL_SCALAR)(q, rows, n, dims, ref);
    rex__kn_dot_i8_kernel(REX_KN_KERNEL_SCALAR)(q8, r8, n, dims, iref);
    printf("best kernel on this CPU: %s\n", rex_kn_kernel_name(rex_kn_kernel_best()));
    for (int k = REX_KN_KERNEL_AVX2; k <= REX_KN_KERNEL_AVX512; k++) {
        if (rex__kn_kernel_resolve(k) != k)
            continue; /* not on this CPU */
        rex__kn_dot_f32_kernel(k)(q, rows, n, dims, out);
        CHECK(!memcmp(ref, out, sizeof(out)));
        rex__kn_dot_i8_kernel(k)(q8, r8, n, dims, iout);
        CHECK(!memcmp(iref, iout, sizeof(iout)));
        if (k == REX_KN_KERNEL_AVX512) { /* also the AVX-512 path without VNNI */
            setenv("REX_KN_NO_VNNI", "1", 1);
            rex__kn_dot_i8_kernel(k)(q8, r8, n, dims, iout);
            CHECK(!memcmp(iref, iout, sizeof(iout)));
            unsetenv("REX_KN_NO_VNNI");
        }
    }
    /* the integer dot is exact */
    long long want = 0;
    for (size_t d = 0; d < dims; d++)
        want += (long long)r8[dims + d] * q8[d];
    CHECK_INT(iref[1], want);
    rex_free(rows);
    rex_free(r8);
}

/* A corpus of random texts embedded with rex-hash (dense vectors), with a group of five chunks
 * sharing one text (ties) inserted in scrambled id order. */
static rex_kn_corpus *random_corpus(size_t n, int model) {
    rex_kn_corpus *c;
    CHECK_INT(rex_kn_corpus_new(model, &c), 0);
    static const char *words[] = {"alpha", "beta",  "gamma", "delta", "omega",
                                  "sigma", "kappa", "theta", "lambda"};
    for (size_t i = 0; i < n; i++) {
        char id[32], text[256];
        snprintf(id, sizeof(id), "chunk-%06zu", (i * 7919) % n);
        int len = 0;
        for (int w = 0; w < 6; w++)
            len += snprintf(text + len, sizeof(text) - (size_t)len, "%s%u ", words[next() % 9],
                            next() % 50);
        if (i % (n / 5) == 3)
            len = snprintf(text, sizeof(text), "the tied text alpha1 beta2");
        CHECK_INT(rex_kn_corpus_add(c, id, text, (size_t)len, NULL, (int64_t)i), 0);
    }
    rex_kn_corpus_seal(c);
    return c;
}

static void same_hits(const rex_kn_hit *a, size_t na, const rex_kn_hit *b, size_t nb) {
    CHECK_INT(na, nb);
    for (size_t i = 0; i < na; i++) {
        CHECK_INT(a[i].corpus, b[i].corpus);
        CHECK_INT(a[i].index, b[i].index);
        CHECK(!memcmp(&a[i].score, &b[i].score, sizeof(float)));
    }
}

static void topk_identical(int model) {
    size_t n = 3000;
    rex_kn_corpus *c = random_corpus(n, model);
    const char *queries[] = {"the tied text alpha1 beta2", "gamma7 delta3 omega", "kappa"};
    for (size_t qi = 0; qi < 3; qi++) {
        for (int rank = 0; rank <= REX_KN_RANK_ORIGINAL; rank++) {
            const char *q = queries[qi];
            struct rex_kn_search_opts o = {50, rank, 0, REX_KN_KERNEL_SCALAR, 1};
            rex_kn_hit ref[50], got[50];
            size_t nref, ngot;
            CHECK_INT(rex_kn_search(&c, 1, q, strlen(q), &o, ref, &nref), 0);
            CHECK_INT(nref, 50);
            /* brute force: every score, sorted by score then id */
            float *all = rex_malloc(n * sizeof(float));
            CHECK_INT(rex_kn_score_all(c, q, strlen(q), &o, all), 0);
            for (size_t i = 0; i < nref; i++) {
                CHECK(!memcmp(&all[ref[i].index], &ref[i].score, sizeof(float)));
                if (i) {
                    CHECK(ref[i - 1].score >= ref[i].score);
                    if (ref[i - 1].score == ref[i].score)
                        CHECK(strcmp(rex_kn_corpus_id_at(c, ref[i - 1].index),
                                     rex_kn_corpus_id_at(c, ref[i].index)) < 0);
                }
            }
            size_t better = 0;
            for (size_t i = 0; i < n; i++)
                if (all[i] > ref[nref - 1].score)
                    better++;
            CHECK(better < nref); /* nothing outside the top-K beats it */
            rex_free(all);
            for (int k = REX_KN_KERNEL_SCALAR; k <= REX_KN_KERNEL_AVX512; k++)
                for (int exact = 0; exact <= 1; exact++) {
                    o.kernel = k;
                    o.exact_f32 = exact;
                    CHECK_INT(rex_kn_search(&c, 1, q, strlen(q), &o, got, &ngot), 0);
                    same_hits(ref, nref, got, ngot);
                }
            if (qi == 0 && rank == REX_KN_RANK_COSINE && model == REX_KN_MODEL_HASH_V1) {
                /* the five identical chunks tie at the top, ordered by id */
                for (size_t i = 0; i < 5; i++)
                    CHECK(fabsf(ref[i].score - 1.0f) < 1e-5f);
                for (size_t i = 1; i < 5; i++)
                    CHECK(ref[i - 1].score == ref[i].score);
            }
        }
    }
    rex_kn_corpus_release(c);
}

TEST(topk_identical_hash_model) {
    topk_identical(REX_KN_MODEL_HASH_V1);
}

TEST(topk_identical_lex_model) {
    topk_identical(REX_KN_MODEL_LEX_V1);
}

TEST(topk_across_corpora) {
    rex_kn_corpus *cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = random_corpus(500, REX_KN_MODEL_LEX_V1);
    const char *q = "the tied text alpha1 beta2";
    /* cosine: BM25 statistics are per corpus, so only the cosine ties across corpora */
    struct rex_kn_search_opts o = {20, REX_KN_RANK_COSINE, 0, 0, 0};
    rex_kn_hit h[20];
    size_t n;
    CHECK_INT(rex_kn_search(cs, 3, q, strlen(q), &o, h, &n), 0);
    CHECK_INT(n, 20);
    /* 15 identical chunks (5 per corpus, same ids in each): corpora interleave by id */
    for (size_t i = 1; i < 15; i++) {
        CHECK(h[i - 1].score == h[i].score);
        CHECK(strcmp(rex_kn_corpus_id_at(cs[h[i - 1].corpus], h[i - 1].index),
                     rex_kn_corpus_id_at(cs[h[i].corpus], h[i].index)) <= 0);
    }
    CHECK(h[14].score > h[15].score);
    rex_kn_corpus *mixed[2] = {cs[0], NULL};
    CHECK_INT(rex_kn_corpus_new(REX_KN_MODEL_HASH_V1, &mixed[1]), 0);
    CHECK_INT(rex_kn_search(mixed, 2, q, strlen(q), &o, h, &n), REX_EINVAL);
    rex_kn_corpus_release(mixed[1]);
    for (int i = 0; i < 3; i++)
        rex_kn_corpus_release(cs[i]);
}

TEST(query_limits) {
    rex_kn_corpus *c = random_corpus(50, REX_KN_MODEL_LEX_V1);
    struct rex_kn_search_opts o = {5, 0, 0, 0, 0};
    rex_kn_hit h[REX_KN_TOPK_MAX];
    size_t n;
    char *big = rex_malloc(REX_KN_QUERY_MAX + 1);
    memset(big, 'a', REX_KN_QUERY_MAX + 1);
    CHECK_INT(rex_kn_search(&c, 1, big, REX_KN_QUERY_MAX, &o, h, &n), 0);
    CHECK_INT(rex_kn_search(&c, 1, big, REX_KN_QUERY_MAX + 1, &o, h, &n), REX_EINVAL);
    CHECK_INT(rex_kn_search(&c, 1, "", 0, &o, h, &n), REX_EINVAL);
    CHECK_INT(rex_kn_search(&c, 1, " \t\n", 3, &o, h, &n), REX_EINVAL);
    CHECK_INT(rex_kn_search(&c, 1, "\xC3", 1, &o, h, &n), REX_EINVAL);
    o.top_k = 0;
    CHECK_INT(rex_kn_search(&c, 1, "alpha", 5, &o, h, &n), REX_EINVAL);
    o.top_k = REX_KN_TOPK_MAX;
    CHECK_INT(rex_kn_search(&c, 1, "alpha", 5, &o, h, &n), 0);
    CHECK_INT(n, 50); /* fewer chunks than K */
    /* a query without features still answers (cosine 0, BM25 0: ties by id) */
    CHECK_INT(rex_kn_search(&c, 1, "the", 3, &o, h, &n), 0);
    CHECK_INT(n, 50);
    CHECK_STR(rex_kn_corpus_id_at(c, h[0].index), "chunk-000000");
    /* no corpora: no hits */
    CHECK_INT(rex_kn_search(NULL, 0, "alpha", 5, &o, h, &n), 0);
    CHECK_INT(n, 0);
    float bad[REX_KN_DIMS] = {0};
    bad[3] = NAN;
    CHECK_INT(rex_kn_corpus_add(c, "x", "x", 1, bad, 0), REX_EINVAL); /* sealed, and NaN */
    rex_kn_corpus *e;
    CHECK_INT(rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &e), 0);
    CHECK_INT(rex_kn_corpus_add(e, "x", "x", 1, bad, 0), REX_EINVAL);
    CHECK_INT(rex_kn_corpus_add(e, "x", "\xFF", 1, NULL, 0), REX_EINVAL);
    rex_kn_corpus_release(e);
    rex_free(big);
    rex_kn_corpus_release(c);
}

TEST(bm25_formula) {
    static const char *docs[] = {"refund policy refund window", "shipping policy",
                                 "warranty covers hardware defects for one year", "refund"};
    rex_kn_corpus *c;
    CHECK_INT(rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &c), 0);
    for (int i = 0; i < 4; i++)
        CHECK_INT(rex_kn_corpus_add(c, docs[i], docs[i], strlen(docs[i]), NULL, i), 0);
    /* tokens (stop word "for" dropped, "defects"/"covers" stemmed): lengths 4, 2, 6, 1 */
    double dl[4] = {4, 2, 6, 1}, avg = 13.0 / 4, k1 = 1.2, b = 0.75, N = 4;
    double idf_refund = log(1 + (N - 2 + 0.5) / (2 + 0.5));
    double idf_policy = log(1 + (N - 2 + 0.5) / (2 + 0.5));
    double want[4];
    double tf_refund[4] = {2, 0, 0, 1}, tf_policy[4] = {1, 1, 0, 0};
    double mx = 0;
    for (int i = 0; i < 4; i++) {
        double norm = k1 * (1 - b + b * dl[i] / avg);
        want[i] = idf_refund * tf_refund[i] * (k1 + 1) / (tf_refund[i] + norm) +
                  idf_policy * tf_policy[i] * (k1 + 1) / (tf_policy[i] + norm);
        mx = want[i] > mx ? want[i] : mx;
    }
    struct rex_kn_search_opts o = {4, REX_KN_RANK_BM25, 0, 0, 0};
    float got[4];
    CHECK_INT(rex_kn_score_all(c, "Refund policies?", 16, &o, got), 0);
    for (int i = 0; i < 4; i++)
        CHECK(fabs(got[i] - want[i] / mx) < 1e-6);
    rex_kn_hit h[4];
    size_t n;
    CHECK_INT(rex_kn_search(&c, 1, "Refund policies?", 16, &o, h, &n), 0);
    CHECK_INT(h[0].index, 0);
    CHECK(h[0].score == 1.0f);
    CHECK(h[3].score == 0.0f && h[3].index == 2);
    rex_kn_corpus_release(c);
}

TEST(cache_bound_and_invalidation) {
    rex_kn_corpus *a = random_corpus(100, REX_KN_MODEL_LEX_V1);
    rex_kn_corpus *b = random_corpus(100, REX_KN_MODEL_LEX_V1);
    size_t one = rex_kn_corpus_memory(a);
    CHECK(one > 100 * (REX_KN_DIMS * 5));
    rex_kn_cache *cache = rex_kn_cache_new(one + one / 2); /* room for one corpus */
    CHECK_INT(rex_kn_cache_put(cache, "corpus-a", "v1", a), 0);
    rex_kn_corpus *got = rex_kn_cache_get(cache, "corpus-a", "v1");
    CHECK(got == a);
    rex_kn_corpus_release(got);
    CHECK(rex_kn_cache_get(cache, "corpus-a", "v2") == NULL); /* changed: stale entry dropped */
    CHECK(rex_kn_cache_get(cache, "corpus-a", "v1") == NULL);
    CHECK_INT(rex_kn_cache_put(cache, "corpus-a", "v2", a), 0);
    CHECK_INT(rex_kn_cache_put(cache, "corpus-b", "v1", b), 0); /* evicts a */
    struct rex_kn_cache_stats st;
    rex_kn_cache_stats(cache, &st);
    CHECK_INT(st.entries, 1);
    CHECK_INT(st.evictions, 1);
    CHECK(st.bytes <= st.max_bytes);
    CHECK(rex_kn_cache_get(cache, "corpus-a", "v2") == NULL);
    got = rex_kn_cache_get(cache, "corpus-b", "v1");
    CHECK(got == b);
    /* invalidation (ingestion or deletion) drops it; the reference we hold stays valid */
    CHECK_INT(rex_kn_cache_invalidate(cache, "corpus-b"), 1);
    CHECK_INT(rex_kn_cache_invalidate(cache, "corpus-b"), 0);
    CHECK(rex_kn_cache_get(cache, "corpus-b", "v1") == NULL);
    CHECK_INT(rex_kn_corpus_size(got), 100);
    rex_kn_corpus_release(got);
    /* a corpus larger than the bound is refused */
    rex_kn_cache *tiny = rex_kn_cache_new(1000);
    CHECK_INT(rex_kn_cache_put(tiny, "corpus-a", "v1", a), REX_ENOMEM);
    rex_kn_cache_stats(cache, &st);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.hits, 2);
    rex_kn_cache_free(tiny);
    rex_kn_cache_free(cache);
    rex_kn_corpus_release(a);
    rex_kn_corpus_release(b);
}

/* Searches from several threads while the cache is refilled and invalidated: corpora stay alive
 * through their references and every search sees a complete snapshot. */
struct racer {
    rex_kn_cache *cache;
    int done, searches, failures, current;
};

static void *search_loop(void *arg) {
    struct racer *r = arg;
    struct rex_kn_search_opts o = {5, REX_KN_RANK_HYBRID, 0, 0, 0};
    rex_kn_hit h[5];
    size_t n;
    while (!__atomic_load_n(&r->done, __ATOMIC_ACQUIRE)) {
        char ver[8];
        snprintf(ver, sizeof(ver), "v%d", __atomic_load_n(&r->current, __ATOMIC_ACQUIRE));
        rex_kn_corpus *c = rex_kn_cache_get(r->cache, "corpus", ver);
        if (!c)
            continue;
        if (rex_kn_search(&c, 1, "alpha1 beta2", 12, &o, h, &n) || n != 5)
            __atomic_add_fetch(&r->failures, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->searches, 1, __ATOMIC_RELAXED);
        rex_kn_corpus_release(c);
    }
    return NULL;
}

TEST(cache_concurrent_readers) {
    rex_kn_corpus *cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = random_corpus(200, REX_KN_MODEL_LEX_V1);
    struct racer r = {rex_kn_cache_new(0), 0, 0, 0, 0};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, search_loop, &r);
    for (int round = 0; round < 300 || __atomic_load_n(&r.searches, __ATOMIC_RELAXED) < 300;
         round++) {
        char ver[8];
        snprintf(ver, sizeof(ver), "v%d", round % 3);
        CHECK_INT(rex_kn_cache_put(r.cache, "corpus", ver, cs[round % 3]), 0);
        __atomic_store_n(&r.current, round % 3, __ATOMIC_RELEASE);
        if (round % 7 == 0)
            rex_kn_cache_invalidate(r.cache, "corpus");
    }
    __atomic_store_n(&r.done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(r.failures, 0);
    CHECK(r.searches >= 300);
    rex_kn_cache_free(r.cache);
    for (int i = 0; i < 3; i++)
        rex_kn_corpus_release(cs[i]);
}

/* rex_kn_search_vec with the corpus model's own embedding of the query is rex_kn_search, hit for
 * hit and bit for bit, in every ranking, kernel and scan, over one corpus and over several. */
static void same_hits_exactly(const rex_kn_hit *a, size_t na, const rex_kn_hit *b, size_t nb) {
    CHECK_INT(na, nb);
    for (size_t i = 0; i < na; i++) {
        CHECK_INT(a[i].corpus, b[i].corpus);
        CHECK_INT(a[i].index, b[i].index);
        CHECK_INT(a[i].tag, b[i].tag);
        CHECK(!memcmp(&a[i].score, &b[i].score, sizeof(float)));
        CHECK(!memcmp(&a[i].semantic, &b[i].semantic, sizeof(float)));
        CHECK(!memcmp(&a[i].lexical, &b[i].lexical, sizeof(float)));
    }
}

static void search_vec_is_search(int model) {
    rex_kn_corpus *cs[3];
    cs[0] = random_corpus(1500, model);
    cs[1] = random_corpus(400, model);
    cs[2] = random_corpus(300, model);
    const char *queries[] = {"the tied text alpha1 beta2", "gamma7 delta3 omega", "kappa", "the"};
    for (size_t qi = 0; qi < 4; qi++) {
        const char *q = queries[qi];
        float qv[REX_KN_DIMS]; /* as the model gives it: rex-hash vectors are not normalized */
        CHECK_INT(rex_kn_embed(model, q, strlen(q), qv), 0);
        for (size_t nc = 1; nc <= 3; nc += 2)
            for (int rank = 0; rank <= REX_KN_RANK_ORIGINAL; rank++)
                for (int k = REX_KN_KERNEL_SCALAR; k <= REX_KN_KERNEL_AVX512; k++)
                    for (int exact = 0; exact <= 1; exact++) {
                        struct rex_kn_search_opts o = {40, rank, 0, k, exact};
                        rex_kn_hit ref[40], got[40];
                        size_t nref, ngot;
                        CHECK_INT(rex_kn_search(cs, nc, q, strlen(q), &o, ref, &nref), 0);
                        CHECK_INT(rex_kn_search_vec(cs, nc, qv, q, strlen(q), &o, got, &ngot), 0);
                        CHECK_INT(nref, 40);
                        same_hits_exactly(ref, nref, got, ngot);
                    }
    }
    for (int i = 0; i < 3; i++)
        rex_kn_corpus_release(cs[i]);
}

TEST(search_vec_is_search_lex_model) {
    search_vec_is_search(REX_KN_MODEL_LEX_V1);
}

TEST(search_vec_is_search_hash_model) {
    search_vec_is_search(REX_KN_MODEL_HASH_V1);
}

/* Provider-like vectors: dense, 1024 dimensions zero-padded to 1536, stored as given. The query
 * vector is a perturbed row, not normalized. Every kernel and both scans give the same hits, the
 * semantic score is the float32 cosine with the normalized query, and nothing outside the top-K
 * scores higher. */
static float gauss(void) {
    return (float)(((double)(next() % 1000) + (double)(next() % 1000) + (double)(next() % 1000)) /
                       1500.0 -
                   1.0);
}

TEST(search_vec_provider_vectors) {
    size_t n = 2000, dims = 1024;
    rex_kn_corpus *c;
    CHECK_INT(rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &c), 0);
    float *rows = rex_calloc(n * REX_KN_DIMS, sizeof(float));
    static const char *words[] = {"refund", "policy", "shipping", "order", "invoice", "warranty"};
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < dims; d++)
            rows[i * REX_KN_DIMS + d] = gauss();
        char id[32], text[128];
        snprintf(id, sizeof(id), "p-%05zu", (i * 7919) % n);
        int len = snprintf(text, sizeof(text), "%s %s %s", words[next() % 6], words[next() % 6],
                           words[next() % 6]);
        CHECK_INT(rex_kn_corpus_add(c, id, text, (size_t)len, rows + i * REX_KN_DIMS, (int64_t)i),
                  0);
    }
    rex_kn_corpus_seal(c);
    float qv[REX_KN_DIMS] = {0}, qn[REX_KN_DIMS];
    for (size_t d = 0; d < dims; d++)
        qv[d] = 3.0f * rows[777 * REX_KN_DIMS + d] + 0.5f * gauss();
    double s = 0;
    for (size_t d = 0; d < REX_KN_DIMS; d++)
        s = fma((double)qv[d], (double)qv[d], s);
    for (size_t d = 0; d < REX_KN_DIMS; d++)
        qn[d] = (float)((double)qv[d] / sqrt(s));
    const char *q = "refund policy";
    for (int rank = 0; rank <= REX_KN_RANK_ORIGINAL; rank++) {
        struct rex_kn_search_opts o = {25, rank, 0, REX_KN_KERNEL_SCALAR, 1};
        rex_kn_hit ref[25], got[25];
        size_t nref, ngot;
        CHECK_INT(rex_kn_search_vec(&c, 1, qv, q, strlen(q), &o, ref, &nref), 0);
        CHECK_INT(nref, 25);
        for (int k = REX_KN_KERNEL_SCALAR; k <= REX_KN_KERNEL_AVX512; k++)
            for (int exact = 0; exact <= 1; exact++) {
                o.kernel = k;
                o.exact_f32 = exact;
                CHECK_INT(rex_kn_search_vec(&c, 1, qv, q, strlen(q), &o, got, &ngot), 0);
                same_hits_exactly(ref, nref, got, ngot);
            }
        if (rank == REX_KN_RANK_COSINE)
            CHECK_INT(ref[0].index, 777);
        if (rank == REX_KN_RANK_ORIGINAL)
            continue; /* its lexical part (word overlap) is not available alone */
        /* brute force: scalar cosines with the normalized query, BM25 / max from score_all */
        float *cos = rex_malloc(n * sizeof(float)), *lex = rex_malloc(n * sizeof(float));
        rex__kn_dot_f32_kernel(REX_KN_KERNEL_SCALAR)(qn, c->vec, n, REX_KN_DIMS, cos);
        struct rex_kn_search_opts lo = {1, REX_KN_RANK_BM25, 0, 0, 1};
        CHECK_INT(rex_kn_score_all(c, q, strlen(q), &lo, lex), 0);
        float a = rank == REX_KN_RANK_COSINE ? 1.0f : rank == REX_KN_RANK_BM25 ? 0.0f : 0.5f;
        for (size_t i = 0; i < nref; i++) {
            /* renormalizing may change the last bit of a few query values: not bit for bit */
            CHECK(fabsf(ref[i].semantic - cos[ref[i].index]) < 1e-6f);
            CHECK(ref[i].lexical == lex[ref[i].index]);
            CHECK(fabsf(ref[i].score - (a * cos[ref[i].index] + (1 - a) * lex[ref[i].index])) <
                  1e-5f);
            if (i)
                CHECK(ref[i - 1].score >= ref[i].score);
        }
        size_t better = 0;
        for (size_t i = 0; i < n; i++)
            if (a * cos[i] + (1 - a) * lex[i] > ref[nref - 1].score + 1e-5f)
                better++;
        CHECK(better < nref); /* nothing outside the top-K beats it */
        rex_free(cos);
        rex_free(lex);
    }
    rex_free(rows);
    rex_kn_corpus_release(c);
}

/* qvec NULL: no semantic part. bm25 gives rex_kn_search's bm25 hits with semantic 0; hybrid
 * scores are the lexical part alone; a non-finite qvec is refused. */
TEST(search_vec_without_vector) {
    rex_kn_corpus *cs[2] = {random_corpus(800, REX_KN_MODEL_LEX_V1),
                            random_corpus(300, REX_KN_MODEL_LEX_V1)};
    const char *q = "gamma7 delta3 omega kappa1";
    struct rex_kn_search_opts o = {30, REX_KN_RANK_BM25, 0, 0, 0};
    rex_kn_hit ref[30], got[30];
    size_t nref, ngot;
    CHECK_INT(rex_kn_search(cs, 2, q, strlen(q), &o, ref, &nref), 0);
    for (int k = REX_KN_KERNEL_SCALAR; k <= REX_KN_KERNEL_AVX512; k++)
        for (int exact = 0; exact <= 1; exact++) {
            o.kernel = k;
            o.exact_f32 = exact;
            CHECK_INT(rex_kn_search_vec(cs, 2, NULL, q, strlen(q), &o, got, &ngot), 0);
            CHECK_INT(ngot, nref);
            for (size_t i = 0; i < ngot; i++) {
                CHECK_INT(got[i].corpus, ref[i].corpus);
                CHECK_INT(got[i].index, ref[i].index);
                CHECK(got[i].score == ref[i].score && got[i].lexical == ref[i].lexical);
                CHECK(got[i].semantic == 0.0f);
            }
        }
    CHECK(ref[0].score == 1.0f); /* BM25 normalized by the highest in scope (both corpora) */
    o.ranking = REX_KN_RANK_HYBRID;
    CHECK_INT(rex_kn_search_vec(cs, 2, NULL, q, strlen(q), &o, got, &ngot), 0);
    for (size_t i = 0; i < ngot; i++) {
        CHECK_INT(got[i].index, ref[i].index);
        CHECK(got[i].score == 0.5f * got[i].lexical && got[i].semantic == 0.0f);
    }
    float bad[REX_KN_DIMS] = {0};
    bad[100] = INFINITY;
    CHECK_INT(rex_kn_search_vec(cs, 2, bad, q, strlen(q), &o, got, &ngot), REX_EINVAL);
    CHECK_INT(ngot, 0);
    CHECK_INT(rex_kn_search_vec(cs, 2, NULL, "  ", 2, &o, got, &ngot), REX_EINVAL);
    /* an all-zero vector: cosine 0 everywhere, like a query without features */
    float zero[REX_KN_DIMS] = {0};
    CHECK_INT(rex_kn_search_vec(cs, 2, zero, q, strlen(q), &o, got, &ngot), 0);
    CHECK(got[0].semantic == 0.0f && got[0].index == ref[0].index);
    rex_kn_corpus_release(cs[0]);
    rex_kn_corpus_release(cs[1]);
}
