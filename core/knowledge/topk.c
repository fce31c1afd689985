/* Exact top-K over every chunk of the corpora in scope.
 *
 * score = a * cosine + b * lexical, (a, b) by ranking: hybrid (w, 1 - w) with lexical = BM25 /
 * the highest BM25 in scope; cosine (1, 0); bm25 (0, 1); original (0.7, 0.3) with lexical = the
 * original's word overlap. Ties are broken by chunk id (byte order), so the order is total.
 *
 * Two scans give the same result:
 *  - float32: every cosine computed by the float kernel (bit-identical across kernels);
 *  - int8 (default): cosine approximated from int8 rows (exact integer dots), each with a
 *    rigorous error bound |cos - approx| <= |v| e_q + e_v |q| + e_v e_q + slack (e = the
 *    quantization error norms, stored per row at seal time). The K-th largest lower bound T is
 *    a floor for the true K-th score, so every chunk whose upper bound reaches T is rescored
 *    exactly with the float kernel and the top-K is picked from those: identical to the float32
 *    scan, at a quarter of the memory traffic. */
#include "knowledge/corpus.h"

#include <rex/rex.h>

#include <math.h>
#include <string.h>

#define BLOCK 256
#define SLACK 1e-4

typedef struct {
    float score, cos, lex;
    uint32_t corpus, idx;
    const char *id;
} cand;

typedef struct {
    cand *v;
    size_t n, k;
} heap;

/* a ranks before b */
static int better(const cand *a, const cand *b) {
    if (a->score != b->score)
        return a->score > b->score;
    return strcmp(a->id, b->id) < 0;
}

/* min-heap: the root is the worst kept candidate */
static void sift_down(heap *h, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < h->n && better(&h->v[w], &h->v[l]))
            w = l;
        if (r < h->n && better(&h->v[w], &h->v[r]))
            w = r;
        if (w == i)
            return;
        cand t = h->v[i];
        h->v[i] = h->v[w];
        h->v[w] = t;
        i = w;
    }
}

static void heap_push(heap *h, const cand *c) {
    if (h->n < h->k) {
        size_t i = h->n++;
        h->v[i] = *c;
        while (i) {
            size_t p = (i - 1) / 2;
            if (!better(&h->v[p], &h->v[i]))
                break;
            cand t = h->v[i];
            h->v[i] = h->v[p];
            h->v[p] = t;
            i = p;
        }
        return;
    }
    if (better(c, &h->v[0])) {
        h->v[0] = *c;
        sift_down(h, 0);
    }
}

/* Min-heap of doubles keeping the k largest. */
typedef struct {
    double *v;
    size_t n, k;
} dheap;

static void dheap_push(dheap *h, double x) {
    if (h->n < h->k) {
        size_t i = h->n++;
        h->v[i] = x;
        while (i && h->v[(i - 1) / 2] > h->v[i]) {
            double t = h->v[i];
            h->v[i] = h->v[(i - 1) / 2];
            h->v[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    if (x <= h->v[0])
        return;
    h->v[0] = x;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l] < h->v[m])
            m = l;
        if (r < h->n && h->v[r] < h->v[m])
            m = r;
        if (m == i)
            break;
        double t = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = t;
        i = m;
    }
}

/* One place computes the final score, so every path produces the same float: not inlined, so a
 * compiler that contracts a * cos + b * lex into an FMA (-march=native) does so everywhere. */
__attribute__((noinline)) static float combine(float a, float b, float cos, float lex) {
    return a * cos + b * lex;
}

static void normalize(float *v) {
    double s = 0;
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        s = fma((double)v[i], (double)v[i], s);
    double inv = s > 0 ? 1.0 / sqrt(s) : 0;
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        v[i] = (float)((double)v[i] * inv);
}

static int check_query(const char *query, size_t qlen) {
    if (!query || qlen == 0 || qlen > REX_KN_QUERY_MAX || rex_kn_utf8_check(query, qlen) < qlen)
        return REX_EINVAL;
    for (size_t i = 0; i < qlen;) {
        uint32_t cp;
        i += rex__kn_decode((const unsigned char *)query + i, &cp);
        if (!rex__kn_is_space(cp))
            return 0;
    }
    return REX_EINVAL; /* whitespace only */
}

static void weights(const struct rex_kn_search_opts *o, float *a, float *b) {
    switch (o->ranking) {
    case REX_KN_RANK_COSINE:
        *a = 1, *b = 0;
        break;
    case REX_KN_RANK_BM25:
        *a = 0, *b = 1;
        break;
    case REX_KN_RANK_ORIGINAL:
        *a = 0.7f, *b = 0.3f;
        break;
    default: {
        float w = o->weight > 0 && o->weight <= 1 ? o->weight : REX_KN_HYBRID_WEIGHT;
        *a = w, *b = 1 - w;
    }
    }
}

/* Lexical scores of every chunk of every corpus, normalized as the ranking wants. */
static float **lexical(rex_kn_corpus *const *cs, size_t nc, const char *q, size_t qlen,
                       int ranking) {
    float **lex = rex_calloc(nc, sizeof(float *));
    float mx = 0;
    for (size_t c = 0; c < nc; c++) {
        lex[c] = rex_malloc((cs[c]->n ? cs[c]->n : 1) * sizeof(float));
        if (ranking == REX_KN_RANK_ORIGINAL) {
            rex__kn_index_overlap(cs[c]->orig, q, qlen, lex[c]);
            continue;
        }
        rex__kn_index_bm25(cs[c]->bm25, q, qlen, lex[c]);
        for (size_t i = 0; i < cs[c]->n; i++)
            mx = lex[c][i] > mx ? lex[c][i] : mx;
    }
    if (ranking != REX_KN_RANK_ORIGINAL && mx > 0)
        for (size_t c = 0; c < nc; c++)
            for (size_t i = 0; i < cs[c]->n; i++)
                lex[c][i] = lex[c][i] / mx;
    return lex;
}

static void free_lex(float **lex, size_t nc) {
    for (size_t c = 0; c < nc; c++)
        rex_free(lex[c]);
    rex_free(lex);
}

static int check_opts(const struct rex_kn_search_opts *o) {
    if (!o || o->top_k < 1 || o->top_k > REX_KN_TOPK_MAX || o->ranking < 0 ||
        o->ranking > REX_KN_RANK_ORIGINAL || (o->weight != o->weight))
        return REX_EINVAL;
    return 0;
}

/* The scan shared by rex_kn_search and rex_kn_search_vec. qv is the L2-normalized query vector,
 * or NULL for no semantic part (cosine 0 for every chunk). Arguments are checked by the caller. */
static void search(rex_kn_corpus *const *corpora, size_t nc, const float *qv, const char *query,
                   size_t qlen, const struct rex_kn_search_opts *o, rex_kn_hit *hits,
                   size_t *nhits) {
    for (size_t c = 0; c < nc; c++)
        rex_kn_corpus_seal(corpora[c]);

    float a, b;
    weights(o, &a, &b);
    float **lex = lexical(corpora, nc, query, qlen, o->ranking);
    rex__kn_dot_f32_fn dot = rex__kn_dot_f32_kernel(o->kernel);
    heap h = {rex_malloc(o->top_k * sizeof(cand)), 0, o->top_k};
    float buf[BLOCK];

    if (a == 0 || !qv) {
        for (size_t c = 0; c < nc; c++)
            for (size_t i = 0; i < corpora[c]->n; i++) {
                cand x = {combine(a, b, 0, lex[c][i]), 0, lex[c][i], (uint32_t)c, (uint32_t)i,
                          corpora[c]->ids[i]};
                heap_push(&h, &x);
            }
    } else if (o->exact_f32) {
        for (size_t c = 0; c < nc; c++) {
            const rex_kn_corpus *cp = corpora[c];
            for (size_t i0 = 0; i0 < cp->n; i0 += BLOCK) {
                size_t m = cp->n - i0 < BLOCK ? cp->n - i0 : BLOCK;
                dot(qv, cp->vec + i0 * REX_KN_DIMS, m, REX_KN_DIMS, buf);
                for (size_t j = 0; j < m; j++) {
                    size_t i = i0 + j;
                    cand x = {combine(a, b, buf[j], lex[c][i]),
                              buf[j],
                              lex[c][i],
                              (uint32_t)c,
                              (uint32_t)i,
                              cp->ids[i]};
                    heap_push(&h, &x);
                }
            }
        }
    } else {
        int8_t q8[REX_KN_DIMS];
        float eq, sq = rex__kn_quantize(qv, REX_KN_DIMS, q8, &eq);
        double nq = 0;
        for (size_t d = 0; d < REX_KN_DIMS; d++)
            nq += (double)qv[d] * qv[d];
        nq = sqrt(nq) * (1 + 1e-6);
        rex__kn_dot_i8_fn dot8 = rex__kn_dot_i8_kernel(o->kernel);
        dheap lower = {rex_malloc(o->top_k * sizeof(double)), 0, o->top_k};
        double **upper = rex_calloc(nc, sizeof(double *));
        int32_t ibuf[BLOCK];
        for (size_t c = 0; c < nc; c++) {
            const rex_kn_corpus *cp = corpora[c];
            upper[c] = rex_malloc((cp->n ? cp->n : 1) * sizeof(double));
            for (size_t i0 = 0; i0 < cp->n; i0 += BLOCK) {
                size_t m = cp->n - i0 < BLOCK ? cp->n - i0 : BLOCK;
                dot8(q8, cp->q8 + i0 * REX_KN_DIMS, m, REX_KN_DIMS, ibuf);
                for (size_t j = 0; j < m; j++) {
                    size_t i = i0 + j;
                    double approx = (double)sq * cp->qscale[i] * ibuf[j];
                    double bound = cp->norm[i] * (double)eq + cp->qerr[i] * nq +
                                   (double)cp->qerr[i] * eq + SLACK;
                    double l = lex[c][i];
                    dheap_push(&lower, a * (approx - bound) + b * l);
                    upper[c][i] = a * (approx + bound) + b * l;
                }
            }
        }
        double t = lower.n == lower.k ? lower.v[0] : -INFINITY;
        for (size_t c = 0; c < nc; c++) {
            const rex_kn_corpus *cp = corpora[c];
            for (size_t i = 0; i < cp->n; i++) {
                if (upper[c][i] < t)
                    continue;
                float cs;
                dot(qv, cp->vec + i * REX_KN_DIMS, 1, REX_KN_DIMS, &cs);
                cand x = {combine(a, b, cs, lex[c][i]),
                          cs,
                          lex[c][i],
                          (uint32_t)c,
                          (uint32_t)i,
                          cp->ids[i]};
                heap_push(&h, &x);
            }
            rex_free(upper[c]);
        }
        rex_free(upper);
        rex_free(lower.v);
    }

    /* sort the kept candidates best first (heap-sort by popping the worst) */
    size_t n = h.n;
    for (size_t k = n; k > 0; k--) {
        cand worst = h.v[0];
        h.v[0] = h.v[--h.n];
        sift_down(&h, 0);
        const rex_kn_corpus *cp = corpora[worst.corpus];
        float cs = worst.cos;
        if (a == 0 && qv) /* bm25 ranking: report the cosine of the hits anyway */
            dot(qv, cp->vec + (size_t)worst.idx * REX_KN_DIMS, 1, REX_KN_DIMS, &cs);
        hits[k - 1] =
            (rex_kn_hit){worst.corpus, worst.idx, cp->tags[worst.idx], worst.score, cs, worst.lex};
    }
    *nhits = n;
    rex_free(h.v);
    free_lex(lex, nc);
}

static int check_args(rex_kn_corpus *const *corpora, size_t nc, const char *query, size_t qlen,
                      const struct rex_kn_search_opts *o) {
    if (check_opts(o) || check_query(query, qlen) || (nc && !corpora))
        return REX_EINVAL;
    for (size_t c = 0; c < nc; c++)
        if (!corpora[c] || corpora[c]->model != corpora[0]->model)
            return REX_EINVAL; /* mixed embedding models cannot be compared */
    return 0;
}

int rex_kn_search_vec(rex_kn_corpus *const *corpora, size_t nc, const float *qvec,
                      const char *query, size_t qlen, const struct rex_kn_search_opts *o,
                      rex_kn_hit *hits, size_t *nhits) {
    *nhits = 0;
    if (check_args(corpora, nc, query, qlen, o))
        return REX_EINVAL;
    float qv[REX_KN_DIMS];
    if (qvec) {
        for (size_t d = 0; d < REX_KN_DIMS; d++) {
            if (!isfinite(qvec[d]))
                return REX_EINVAL;
            qv[d] = qvec[d];
        }
        normalize(qv);
    }
    if (nc)
        search(corpora, nc, qvec ? qv : NULL, query, qlen, o, hits, nhits);
    return 0;
}

int rex_kn_search(rex_kn_corpus *const *corpora, size_t nc, const char *query, size_t qlen,
                  const struct rex_kn_search_opts *o, rex_kn_hit *hits, size_t *nhits) {
    *nhits = 0;
    if (check_args(corpora, nc, query, qlen, o))
        return REX_EINVAL;
    if (!nc)
        return 0;
    float qv[REX_KN_DIMS];
    rex_kn_embed(corpora[0]->model, query, qlen, qv);
    return rex_kn_search_vec(corpora, nc, qv, query, qlen, o, hits, nhits);
}

int rex_kn_score_all(rex_kn_corpus *c, const char *query, size_t qlen,
                     const struct rex_kn_search_opts *o, float *out) {
    struct rex_kn_search_opts d = {1, REX_KN_RANK_HYBRID, 0, 0, 1};
    if (!o)
        o = &d;
    if (!c || check_query(query, qlen) || o->ranking < 0 || o->ranking > REX_KN_RANK_ORIGINAL)
        return REX_EINVAL;
    rex_kn_corpus_seal(c);
    float a, b;
    weights(o, &a, &b);
    float qv[REX_KN_DIMS];
    rex_kn_embed(c->model, query, qlen, qv);
    normalize(qv);
    float **lex = lexical(&c, 1, query, qlen, o->ranking);
    rex__kn_dot_f32_fn dot = rex__kn_dot_f32_kernel(o->kernel);
    float buf[BLOCK];
    for (size_t i0 = 0; i0 < c->n; i0 += BLOCK) {
        size_t m = c->n - i0 < BLOCK ? c->n - i0 : BLOCK;
        if (a != 0)
            dot(qv, c->vec + i0 * REX_KN_DIMS, m, REX_KN_DIMS, buf);
        for (size_t j = 0; j < m; j++)
            out[i0 + j] = combine(a, b, a != 0 ? buf[j] : 0, lex[0][i0 + j]);
    }
    free_lex(lex, 1);
    return 0;
}
