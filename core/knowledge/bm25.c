/* Inverted index for BM25 (k1 1.2, b 0.75) and for the original's word-overlap score (6.4).
 *
 * Terms are keyed by their 64-bit hash (rex__kn_hash); postings list chunk indexes in ascending
 * order with the term frequency. BM25 uses the rex-lex tokenizer (lower-cased words, stop words
 * dropped, S-stemmed), idf = ln(1 + (N - df + 0.5) / (df + 0.5)) (non-negative), each distinct
 * query term counted once. Every score is accumulated in chunk order in double and stored as
 * float, so it does not depend on the vector kernel. */
#include "knowledge/bm25.h"

#include <rex/rex.h>

#include <math.h>
#include <string.h>

typedef struct {
    uint64_t key; /* 0 = empty slot */
    uint32_t *docs;
    uint32_t *tf;
    uint32_t n, cap;
} posting;

struct rex__kn_index {
    posting *slots;
    size_t cap, nterms;
    uint32_t *doclen;
    size_t ndocs, doccap;
    double total_len;
    size_t bytes;
    int orig; /* 1 = the original's tokenizer */
};

rex__kn_index *rex__kn_index_new(int orig) {
    rex__kn_index *x = rex_calloc(1, sizeof(*x));
    x->orig = orig;
    return x;
}

void rex__kn_index_free(rex__kn_index *x) {
    if (!x)
        return;
    for (size_t i = 0; i < x->cap; i++) {
        rex_free(x->slots[i].docs);
        rex_free(x->slots[i].tf);
    }
    rex_free(x->slots);
    rex_free(x->doclen);
    rex_free(x);
}

static posting *find(const rex__kn_index *x, uint64_t key) {
    if (!x->cap)
        return NULL;
    size_t j = key & (x->cap - 1);
    while (x->slots[j].key) {
        if (x->slots[j].key == key)
            return &x->slots[j];
        j = (j + 1) & (x->cap - 1);
    }
    return NULL;
}

static posting *insert(rex__kn_index *x, uint64_t key) {
    if (2 * (x->nterms + 1) > x->cap) {
        size_t ncap = x->cap ? x->cap * 2 : 1024;
        posting *ns = rex_calloc(ncap, sizeof(*ns));
        for (size_t i = 0; i < x->cap; i++) {
            if (!x->slots[i].key)
                continue;
            size_t j = x->slots[i].key & (ncap - 1);
            while (ns[j].key)
                j = (j + 1) & (ncap - 1);
            ns[j] = x->slots[i];
        }
        rex_free(x->slots);
        x->slots = ns;
        x->bytes += (ncap - x->cap) * sizeof(posting);
        x->cap = ncap;
    }
    size_t j = key & (x->cap - 1);
    while (x->slots[j].key && x->slots[j].key != key)
        j = (j + 1) & (x->cap - 1);
    if (!x->slots[j].key) {
        x->slots[j].key = key;
        x->nterms++;
    }
    return &x->slots[j];
}

static uint64_t key_of(const char *tok, size_t len) {
    uint64_t k = rex__kn_hash(tok, len, 't');
    return k ? k : 1;
}

typedef struct {
    rex__kn_index *x;
    uint32_t doc;
    size_t len;
} add_ctx;

static void on_doc_token(void *ud, const char *tok, size_t len) {
    add_ctx *a = ud;
    posting *p = insert(a->x, key_of(tok, len));
    a->len++;
    if (p->n && p->docs[p->n - 1] == a->doc) {
        p->tf[p->n - 1]++;
        return;
    }
    if (p->n == p->cap) {
        size_t old = p->cap;
        p->cap = p->cap ? p->cap * 2 : 2;
        p->docs = rex_realloc(p->docs, p->cap * sizeof(uint32_t));
        p->tf = rex_realloc(p->tf, p->cap * sizeof(uint32_t));
        a->x->bytes += (p->cap - old) * 2 * sizeof(uint32_t);
    }
    p->docs[p->n] = a->doc;
    p->tf[p->n] = 1;
    p->n++;
}

void rex__kn_index_add(rex__kn_index *x, const char *text, size_t len) {
    add_ctx a = {x, (uint32_t)x->ndocs, 0};
    if (x->orig)
        rex__kn_orig_tokens(text, len, on_doc_token, &a);
    else
        rex__kn_tokens(text, len, on_doc_token, &a);
    if (x->ndocs == x->doccap) {
        x->doccap = x->doccap ? x->doccap * 2 : 64;
        x->doclen = rex_realloc(x->doclen, x->doccap * sizeof(uint32_t));
    }
    x->doclen[x->ndocs++] = (uint32_t)a.len;
    x->total_len += (double)a.len;
}

size_t rex__kn_index_memory(const rex__kn_index *x) {
    return sizeof(*x) + x->bytes + x->doccap * sizeof(uint32_t);
}

/* Distinct query terms with their counts, in first-occurrence order. */
typedef struct {
    uint64_t *keys;
    uint32_t *count;
    size_t n, cap, total;
} qterms;

static void on_query_token(void *ud, const char *tok, size_t len) {
    qterms *q = ud;
    uint64_t k = key_of(tok, len);
    q->total++;
    for (size_t i = 0; i < q->n; i++)
        if (q->keys[i] == k) {
            q->count[i]++;
            return;
        }
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 16;
        q->keys = rex_realloc(q->keys, q->cap * sizeof(uint64_t));
        q->count = rex_realloc(q->count, q->cap * sizeof(uint32_t));
    }
    q->keys[q->n] = k;
    q->count[q->n++] = 1;
}

void rex__kn_index_bm25(const rex__kn_index *x, const char *query, size_t qlen, float *out) {
    size_t N = x->ndocs;
    memset(out, 0, N * sizeof(float));
    if (!N)
        return;
    qterms q = {0};
    rex__kn_tokens(query, qlen, on_query_token, &q);
    double avgdl = x->total_len / (double)N;
    if (avgdl <= 0)
        avgdl = 1;
    const double k1 = 1.2, b = 0.75;
    double *acc = NULL;
    if (q.n) {
        acc = rex_calloc(N, sizeof(double));
        for (size_t t = 0; t < q.n; t++) {
            const posting *p = find(x, q.keys[t]);
            if (!p)
                continue;
            double df = p->n;
            double idf = log(1.0 + ((double)N - df + 0.5) / (df + 0.5));
            for (uint32_t i = 0; i < p->n; i++) {
                double tf = p->tf[i];
                double norm = k1 * (1.0 - b + b * (double)x->doclen[p->docs[i]] / avgdl);
                acc[p->docs[i]] += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
        for (size_t i = 0; i < N; i++)
            out[i] = (float)acc[i];
    }
    rex_free(acc);
    rex_free(q.keys);
    rex_free(q.count);
}

void rex__kn_index_overlap(const rex__kn_index *x, const char *query, size_t qlen, float *out) {
    size_t N = x->ndocs;
    memset(out, 0, N * sizeof(float));
    qterms q = {0};
    rex__kn_orig_tokens(query, qlen, on_query_token, &q);
    if (q.total && N) {
        uint32_t *hits = rex_calloc(N, sizeof(uint32_t));
        for (size_t t = 0; t < q.n; t++) {
            const posting *p = find(x, q.keys[t]);
            if (!p)
                continue;
            for (uint32_t i = 0; i < p->n; i++)
                hits[p->docs[i]] += q.count[t];
        }
        for (size_t i = 0; i < N; i++)
            out[i] = (float)((double)hits[i] / (double)q.total);
        rex_free(hits);
    }
    rex_free(q.keys);
    rex_free(q.count);
}

typedef struct {
    uint64_t *keys;
    size_t n, cap;
} tokset;

static void on_set_token(void *ud, const char *tok, size_t len) {
    tokset *s = ud;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->keys = rex_realloc(s->keys, s->cap * sizeof(uint64_t));
    }
    s->keys[s->n++] = key_of(tok, len);
}

double rex_kn_overlap_score(const char *query, size_t qlen, const char *content, size_t clen) {
    tokset qs = {0}, cs = {0};
    rex__kn_orig_tokens(query, qlen, on_set_token, &qs);
    rex__kn_orig_tokens(content, clen, on_set_token, &cs);
    double score = 0;
    if (qs.n && cs.n) {
        size_t hit = 0;
        for (size_t i = 0; i < qs.n; i++)
            for (size_t j = 0; j < cs.n; j++)
                if (qs.keys[i] == cs.keys[j]) {
                    hit++;
                    break;
                }
        score = (double)hit / (double)qs.n;
    }
    rex_free(qs.keys);
    rex_free(cs.keys);
    return score;
}
