/* Knowledge benchmark (not a test): chunk+embed throughput per model, warm top-8 latency over
 * 10,000 and 100,000 chunks x 1536 dims (float32 and int8 scans, SIMD and scalar kernels), the
 * machine's single-core memory read bandwidth and the scan's fraction of it, and the int8 form's
 * measured error. Medians of several runs; one thread throughout, except the bulk load (1 and 2
 * threads).
 *
 * usage: bench_knowledge [--quick]   (--quick: 10,000 chunks only, fewer runs) */
#include <rex/knowledge.h>
#include <rex/rex.h>

#include "knowledge/corpus.h"
#include "knowledge/kn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rng = 88172645463325252ULL;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* English-like text: Zipf-distributed pseudo-words from syllables, sentences, paragraphs and a
 * heading every ~2 KB. */
static char *make_text(size_t len) {
    static const char *syl[] = {"ka",  "re",  "mo",  "ti",   "lan", "ser", "to",
                                "ne",  "dis", "pro", "ment", "ing", "al",  "con",
                                "ver", "sta", "ble", "ion",  "qu",  "er"};
    char *t = rex_malloc(len + 64);
    size_t n = 0, words = 0;
    while (n < len) {
        if (words % 300 == 0) {
            n += (size_t)snprintf(t + n, 64, "\n# Section %zu\n", words / 300);
        }
        /* Zipf-like word id: 1 / rank */
        uint32_t id = (uint32_t)(5000.0 / (1.0 + (double)(rnd() % 5000)));
        int nsyl = 1 + (int)(id % 3);
        for (int s = 0; s < nsyl && n < len; s++) {
            const char *y = syl[(id * 7 + (uint32_t)s * 13) % 20];
            size_t l = strlen(y);
            memcpy(t + n, y, l);
            n += l;
        }
        words++;
        t[n++] = words % 12 == 0 ? '.' : ' ';
        if (words % 12 == 0)
            t[n++] = words % 60 == 0 ? '\n' : ' ';
    }
    t[len] = '\0';
    return t;
}

static void bench_embed(int quick) {
    size_t doc_len = 20000, ndocs = quick ? 50 : 100;
    char **docs = rex_malloc(ndocs * sizeof(char *));
    for (size_t i = 0; i < ndocs; i++)
        docs[i] = make_text(doc_len);
    printf("\n== chunk + embed (20 KB documents, one core) ==\n");
    printf("%-20s %10s %12s %14s\n", "model", "MB/s", "docs/s", "vs original");
    int models[2] = {REX_KN_MODEL_LEX_V1, REX_KN_MODEL_HASH_V1};
    float v[REX_KN_DIMS];
    for (int m = 0; m < 2; m++) {
        double runs[3];
        for (int r = 0; r < 3; r++) {
            double t0 = now_s();
            for (size_t i = 0; i < ndocs; i++) {
                rex_kn_chunks *cs;
                rex_kn_chunk_text(docs[i], doc_len, NULL, &cs, NULL);
                for (size_t k = 0; k < rex_kn_chunks_count(cs); k++) {
                    const rex_kn_chunk *ch = rex_kn_chunks_get(cs, k);
                    rex_kn_embed(models[m], ch->content, ch->content_len, v);
                }
                rex_kn_chunks_free(cs);
            }
            runs[r] = now_s() - t0;
        }
        double t = median(runs, 3);
        double dps = (double)ndocs / t;
        printf("%-20s %10.1f %12.0f %13.0fx\n", rex_kn_model_name(models[m]),
               (double)(ndocs * doc_len) / t / 1e6, dps, dps / 16.0);
    }
    printf("(original: 16 documents/s end to end; target 30x = 480/s; these figures exclude "
           "the database)\n");
    for (size_t i = 0; i < ndocs; i++)
        rex_free(docs[i]);
    rex_free(docs);
}

/* Cold-cache bulk load: rex_kn_corpus_add_batch of 10,000 chunks of 1,200 characters (no vectors
 * given, so every row is embedded with rex-lex; the lexical indexes are built meanwhile), with 1
 * and 2 threads. The one place threads are used. */
static void bench_bulk(int quick) {
    size_t n = 10000, len = 1200;
    char **texts = rex_malloc(n * sizeof(char *)), **ids = rex_malloc(n * sizeof(char *));
    size_t *lens = rex_malloc(n * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        texts[i] = make_text(len);
        lens[i] = len;
        char id[32];
        snprintf(id, sizeof(id), "chunk-%08zu", i);
        ids[i] = rex_strdup(id);
    }
    printf("\n== bulk load: rex_kn_corpus_add_batch, %zu chunks x %zu chars, rex-lex ==\n", n, len);
    printf("%-10s %10s %10s %10s\n", "threads", "s", "MB/s", "speedup");
    double t1 = 0;
    int nruns = quick ? 1 : 3;
    for (int threads = 1; threads <= 2; threads++) {
        double runs[3];
        for (int r = 0; r < nruns; r++) {
            rex_kn_corpus *c;
            rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &c);
            double t0 = now_s();
            rex_kn_corpus_add_batch(c, n, (const char *const *)ids, (const char *const *)texts,
                                    lens, NULL, NULL, threads);
            runs[r] = now_s() - t0;
            rex_kn_corpus_release(c);
        }
        double t = median(runs, nruns);
        if (threads == 1)
            t1 = t;
        printf("%-10d %10.3f %10.1f %9.2fx\n", threads, t, (double)(n * len) / t / 1e6, t1 / t);
    }
    for (size_t i = 0; i < n; i++) {
        rex_free(texts[i]);
        rex_free(ids[i]);
    }
    rex_free(texts);
    rex_free(ids);
    rex_free(lens);
}

/* Reads n bytes as four concurrent streams (one per quarter), the access pattern of the
 * kernels, which scan four rows at a time. */
#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
    size_t q = n / 4;
    const uint8_t *p0 = p, *p1 = p + q, *p2 = p + 2 * q, *p3 = p + 3 * q;
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 64 <= q; i += 64) {
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p0 + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p1 + i)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p2 + i)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p3 + i)));
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p0 + i + 32)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p1 + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p2 + i + 32)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p3 + i + 32)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
#endif

static uint64_t read_scalar(const uint8_t *p, size_t n) {
    size_t q = n / 32;
    const uint64_t *p0 = (const uint64_t *)p, *p1 = p0 + q, *p2 = p1 + q, *p3 = p2 + q;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < q; i++) {
        a ^= p0[i];
        b ^= p1[i];
        c ^= p2[i];
        d ^= p3[i];
    }
    return a ^ b ^ c ^ d;
}

static volatile uint64_t sink;

/* Single-core read bandwidth over a buffer four times the last-level cache of most machines
 * (1 GiB), best of several runs. */
static double bench_bandwidth(void) {
    size_t n = (size_t)1 << 30;
    uint8_t *p = aligned_alloc(64, n);
    memset(p, 1, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now_s();
#if defined(__x86_64__)
        if (rex_kn_kernel_best() >= REX_KN_KERNEL_AVX2)
            sink = read_avx2(p, n);
        else
#endif
            sink = read_scalar(p, n);
        double gbs = (double)n / (now_s() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    free(p);
    return best;
}

static rex_kn_corpus *random_corpus(size_t n, double *build_s) {
    static const char *words[] = {"disk",   "memory", "network", "cache",  "file",  "process",
                                  "signal", "user",   "kernel",  "thread", "queue", "socket"};
    rex_kn_corpus *c;
    rex_kn_corpus_new(REX_KN_MODEL_LEX_V1, &c);
    float *v = rex_malloc(REX_KN_DIMS * sizeof(float));
    double t = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < REX_KN_DIMS; d++) /* sum of uniforms: roughly Gaussian */
            v[d] = (float)((rnd() % 1000 + rnd() % 1000 + rnd() % 1000) / 1500.0 - 1.0);
        char id[32], text[128];
        snprintf(id, sizeof(id), "chunk-%08zu", i);
        int len = snprintf(text, sizeof(text), "%s %s %s %s", words[rnd() % 12], words[rnd() % 12],
                           words[rnd() % 12], words[rnd() % 12]);
        double t0 = now_s();
        rex_kn_corpus_add(c, id, text, (size_t)len, v, (int64_t)i);
        t += now_s() - t0;
    }
    double t0 = now_s();
    rex_kn_corpus_seal(c);
    *build_s = t + now_s() - t0;
    rex_free(v);
    return c;
}

static double time_search(rex_kn_corpus *c, int ranking, int kernel, int exact, int runs) {
    const char *q = "cache memory kernel thread";
    struct rex_kn_search_opts o = {8, ranking, 0, kernel, exact};
    rex_kn_hit h[8];
    size_t nh;
    double t[64];
    rex_kn_search(&c, 1, q, strlen(q), &o, h, &nh); /* warm */
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        rex_kn_search(&c, 1, q, strlen(q), &o, h, &nh);
        t[r] = now_s() - t0;
    }
    return median(t, runs);
}

/* The bare scan: int8 or float32 dots of one query against every row. */
static double time_scan(rex_kn_corpus *c, int kernel, int i8, int runs) {
    float qv[REX_KN_DIMS];
    int8_t q8[REX_KN_DIMS];
    rex_kn_embed(REX_KN_MODEL_LEX_V1, "cache memory", 12, qv);
    float e;
    rex__kn_quantize(qv, REX_KN_DIMS, q8, &e);
    float *of = rex_malloc(256 * sizeof(float));
    int32_t *oi = rex_malloc(256 * sizeof(int32_t));
    rex__kn_dot_f32_fn f = rex__kn_dot_f32_kernel(kernel);
    rex__kn_dot_i8_fn g = rex__kn_dot_i8_kernel(kernel);
    double t[64];
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < c->n; i += 256) {
            size_t m = c->n - i < 256 ? c->n - i : 256;
            if (i8)
                g(q8, c->q8 + i * REX_KN_DIMS, m, REX_KN_DIMS, oi);
            else
                f(qv, c->vec + i * REX_KN_DIMS, m, REX_KN_DIMS, of);
        }
        t[r] = now_s() - t0;
    }
    rex_free(of);
    rex_free(oi);
    return median(t, runs);
}

/* int8 cosine error against float32 over the corpus for a query. */
static void quant_error(rex_kn_corpus *c) {
    float qv[REX_KN_DIMS];
    int8_t q8[REX_KN_DIMS];
    rex_kn_embed(REX_KN_MODEL_LEX_V1, "cache memory kernel thread", 26, qv);
    /* a query near a corpus row, so high similarities are represented too */
    for (size_t d = 0; d < REX_KN_DIMS; d++)
        qv[d] = 0.5f * qv[d] + c->vec[7 * REX_KN_DIMS + d];
    double s = 0;
    for (size_t d = 0; d < REX_KN_DIMS; d++)
        s += (double)qv[d] * qv[d];
    for (size_t d = 0; d < REX_KN_DIMS; d++)
        qv[d] = (float)(qv[d] / sqrt(s));
    float eq, sq = rex__kn_quantize(qv, REX_KN_DIMS, q8, &eq);
    double max_err = 0, sum_err = 0, max_bound = 0;
    for (size_t i = 0; i < c->n; i++) {
        float f;
        int32_t k;
        rex__kn_dot_f32_kernel(0)(qv, c->vec + i * REX_KN_DIMS, 1, REX_KN_DIMS, &f);
        rex__kn_dot_i8_kernel(0)(q8, c->q8 + i * REX_KN_DIMS, 1, REX_KN_DIMS, &k);
        double err = fabs((double)f - (double)sq * c->qscale[i] * k);
        double bound = c->norm[i] * (double)eq + c->qerr[i] + (double)c->qerr[i] * eq;
        max_err = err > max_err ? err : max_err;
        max_bound = bound > max_bound ? bound : max_bound;
        sum_err += err;
    }
    printf("int8 cosine error over %zu chunks: mean %.2e, max %.2e (bound used for exact "
           "rescoring: max %.2e); top-K identical to float32 by construction\n",
           c->n, sum_err / (double)c->n, max_err, max_bound);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    int best = rex_kn_kernel_best();
    printf("rex-worker knowledge benchmark: best kernel %s, one thread\n",
           rex_kn_kernel_name(best));
    bench_embed(quick);
    bench_bulk(quick);

    double bw = bench_bandwidth();
    printf("\n== memory ==\nsingle-core read bandwidth (1 GiB buffer, 4 streams, best of 5): %.1f "
           "GB/s\n",
           bw);

    size_t sizes[2] = {10000, 100000};
    for (int si = 0; si < (quick ? 1 : 2); si++) {
        size_t n = sizes[si];
        double build;
        rex_kn_corpus *c = random_corpus(n, &build);
        int runs = n <= 10000 ? 21 : 7, slow = n <= 10000 ? 5 : 3;
        printf("\n== top-8 over %zu chunks x %d dims (warm, corpus in memory: %.0f MB; built from "
               "rows in %.2f s) ==\n",
               n, REX_KN_DIMS, (double)rex_kn_corpus_memory(c) / 1e6, build);
        printf("%-34s %10s %10s %12s\n", "search (cosine ranking)", "ms", "scan GB/s",
               "of bandwidth");
        struct {
            const char *name;
            int kernel, exact, runs;
        } modes[] = {
            {"int8 + exact rescore, SIMD", REX_KN_KERNEL_AUTO, 0, runs},
            {"float32, SIMD", REX_KN_KERNEL_AUTO, 1, runs},
            {"int8 + exact rescore, scalar", REX_KN_KERNEL_SCALAR, 0, slow},
            {"float32, scalar loop", REX_KN_KERNEL_SCALAR, 1, slow},
        };
        double t_int8 = 0, t_scalar = 0;
        for (int m = 0; m < 4; m++) {
            double t =
                time_search(c, REX_KN_RANK_COSINE, modes[m].kernel, modes[m].exact, modes[m].runs);
            double bytes = (double)n * REX_KN_DIMS * (modes[m].exact ? 4 : 1);
            printf("%-34s %10.3f %10.1f %11.0f%%\n", modes[m].name, t * 1e3, bytes / t / 1e9,
                   100 * bytes / t / 1e9 / bw);
            if (m == 0)
                t_int8 = t;
            if (m == 3)
                t_scalar = t;
        }
        double th = time_search(c, REX_KN_RANK_HYBRID, REX_KN_KERNEL_AUTO, 0, runs);
        printf("%-34s %10.3f\n", "hybrid ranking (default), SIMD", th * 1e3);
        printf("%-34s %10s %10s\n", "bare scan (kernel only)", "ms", "GB/s");
        double s8 = time_scan(c, REX_KN_KERNEL_AUTO, 1, runs);
        double sf = time_scan(c, REX_KN_KERNEL_AUTO, 0, runs);
        printf("%-34s %10.3f %10.1f   (%.0f%% of bandwidth)\n", "int8 scan, SIMD", s8 * 1e3,
               (double)n * REX_KN_DIMS / s8 / 1e9, 100 * (double)n * REX_KN_DIMS / s8 / 1e9 / bw);
        printf("%-34s %10.3f %10.1f   (%.0f%% of bandwidth)\n", "float32 scan, SIMD", sf * 1e3,
               (double)n * REX_KN_DIMS * 4 / sf / 1e9,
               100 * (double)n * REX_KN_DIMS * 4 / sf / 1e9 / bw);
        printf("SIMD int8 search vs scalar float32 loop: %.1fx", t_scalar / t_int8);
        if (n == 10000)
            printf("; vs the original's ~200 ms per top-8: %.0fx (target 100x, < 2 ms)",
                   0.2 / t_int8);
        printf("\n");
        if (n == 10000)
            quant_error(c);
        rex_kn_corpus_release(c);
    }
    printf("\ncold (from PostgreSQL): bench/knowledge/pg.sh; the bulk load above is its in-process "
           "part when vectors are recomputed\n");
    return 0;
}
