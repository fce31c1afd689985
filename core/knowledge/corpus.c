/* Corpus snapshots: float32 matrix (L2-normalized rows), int8 copy with per-row scale and error
 * bound, ids, tags, and the lexical indexes. Also the model registry. */
#include "knowledge/corpus.h"

#include <rex/rex.h>

#include <math.h>
#include <pthread.h>
#include <string.h>

void rex__kn_embed_hash_f32(const char *text, size_t len, float *out);
void rex__kn_embed_lex(const char *text, size_t len, float *out);

int rex_kn_model_from_name(const char *name) {
    if (name && !strcmp(name, "rex-hash-v1-1536"))
        return REX_KN_MODEL_HASH_V1;
    if (name && !strcmp(name, "rex-lex-v1-1536"))
        return REX_KN_MODEL_LEX_V1;
    return REX_EINVAL;
}

const char *rex_kn_model_name(int model) {
    switch (model) {
    case REX_KN_MODEL_HASH_V1:
        return "rex-hash-v1-1536";
    case REX_KN_MODEL_LEX_V1:
        return "rex-lex-v1-1536";
    default:
        return NULL;
    }
}

int rex_kn_embed(int model, const char *text, size_t len, float *out) {
    if (!rex_kn_model_name(model) || (!text && len) || rex_kn_utf8_check(text, len) < len)
        return REX_EINVAL;
    if (model == REX_KN_MODEL_HASH_V1)
        rex__kn_embed_hash_f32(text ? text : "", len, out);
    else
        rex__kn_embed_lex(text ? text : "", len, out);
    return 0;
}

int rex_kn_corpus_new(int model, rex_kn_corpus **out) {
    if (!rex_kn_model_name(model))
        return REX_EINVAL;
    rex_kn_corpus *c = rex_calloc(1, sizeof(*c));
    c->model = model;
    c->refs = 1;
    c->bm25 = rex__kn_index_new(0);
    c->orig = rex__kn_index_new(1);
    *out = c;
    return 0;
}

/* Normalizes v in place (double accumulation with explicit FMA: the same on every machine). */
static void normalize(float *v) {
    double s = 0;
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        s = fma((double)v[i], (double)v[i], s);
    if (s <= 0) {
        memset(v, 0, REX_KN_DIMS * sizeof(float));
        return;
    }
    double inv = 1.0 / sqrt(s);
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        v[i] = (float)((double)v[i] * inv);
}

int rex_kn_corpus_add(rex_kn_corpus *c, const char *id, const char *content, size_t content_len,
                      const float *vec, int64_t tag) {
    if (!c || c->sealed || !id || (!content && content_len) ||
        rex_kn_utf8_check(content, content_len) < content_len || c->n >= UINT32_MAX - 1)
        return REX_EINVAL;
    if (vec)
        for (size_t i = 0; i < REX_KN_DIMS; i++)
            if (!isfinite(vec[i]))
                return REX_EINVAL;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->vec = rex_realloc(c->vec, c->cap * REX_KN_DIMS * sizeof(float));
        c->ids = rex_realloc(c->ids, c->cap * sizeof(char *));
        c->tags = rex_realloc(c->tags, c->cap * sizeof(int64_t));
    }
    float *v = c->vec + c->n * REX_KN_DIMS;
    if (vec)
        memcpy(v, vec, REX_KN_DIMS * sizeof(float));
    else
        rex_kn_embed(c->model, content ? content : "", content_len, v);
    normalize(v);
    c->ids[c->n] = rex_strdup(id);
    c->id_bytes += strlen(id) + 1;
    c->tags[c->n] = tag;
    rex__kn_index_add(c->bm25, content ? content : "", content_len);
    rex__kn_index_add(c->orig, content ? content : "", content_len);
    c->n++;
    return 0;
}

/* Bulk adds. The rows' vectors are independent, so they are computed in parallel straight into
 * their final places in c->vec (reserved beforehand; each row written by one thread); the lexical
 * indexes, ids and tags are appended by the caller's thread in row order meanwhile, exactly as
 * rex_kn_corpus_add would. Embedding is by far the larger part; rows are handed out in small
 * blocks from an atomic counter, so a slow thread holds back at most one block. */
#define BATCH_BLOCK 16

typedef struct {
    rex_kn_corpus *c;
    size_t base, n;
    const char *const *contents;
    const size_t *lens;
    const float *const *vecs;
    size_t next; /* atomic: first row not yet taken */
} batch;

static void *batch_embed(void *arg) {
    batch *b = arg;
    for (;;) {
        size_t i0 = __atomic_fetch_add(&b->next, BATCH_BLOCK, __ATOMIC_RELAXED);
        if (i0 >= b->n)
            return NULL;
        size_t end = i0 + BATCH_BLOCK < b->n ? i0 + BATCH_BLOCK : b->n;
        for (size_t i = i0; i < end; i++) {
            float *v = b->c->vec + (b->base + i) * REX_KN_DIMS;
            const float *src = b->vecs ? b->vecs[i] : NULL;
            if (src)
                memcpy(v, src, REX_KN_DIMS * sizeof(float));
            else
                rex_kn_embed(b->c->model, b->contents[i] ? b->contents[i] : "", b->lens[i], v);
            normalize(v);
        }
    }
}

#define BATCH_THREADS_MAX 64

int rex_kn_corpus_add_batch(rex_kn_corpus *c, size_t n, const char *const *ids,
                            const char *const *contents, const size_t *lens,
                            const float *const *vecs, const int64_t *tags, int threads) {
    if (!c || c->sealed || (n && (!ids || !contents || !lens)) || n > UINT32_MAX - 1 - c->n)
        return REX_EINVAL;
    for (size_t i = 0; i < n; i++) { /* all or nothing: check every row first */
        if (!ids[i] || (!contents[i] && lens[i]) ||
            rex_kn_utf8_check(contents[i], lens[i]) < lens[i])
            return REX_EINVAL;
        if (vecs && vecs[i])
            for (size_t d = 0; d < REX_KN_DIMS; d++)
                if (!isfinite(vecs[i][d]))
                    return REX_EINVAL;
    }
    if (!n)
        return 0;
    if (c->n + n > c->cap) {
        size_t cap = c->cap ? c->cap : 64;
        while (cap < c->n + n)
            cap *= 2;
        c->cap = cap;
        c->vec = rex_realloc(c->vec, c->cap * REX_KN_DIMS * sizeof(float));
        c->ids = rex_realloc(c->ids, c->cap * sizeof(char *));
        c->tags = rex_realloc(c->tags, c->cap * sizeof(int64_t));
    }
    batch b = {c, c->n, n, contents, lens, vecs, 0};
    size_t want = threads > 1 ? (size_t)threads : 1;
    if (want > BATCH_THREADS_MAX)
        want = BATCH_THREADS_MAX;
    if (want > (n + BATCH_BLOCK - 1) / BATCH_BLOCK)
        want = (n + BATCH_BLOCK - 1) / BATCH_BLOCK;
    pthread_t tid[BATCH_THREADS_MAX];
    size_t started = 0;
    for (; started + 1 < want; started++) /* the caller's thread is the last one */
        if (pthread_create(&tid[started], NULL, batch_embed, &b) != 0)
            break; /* fewer threads: the others take more blocks */
    if (started == 0)
        batch_embed(&b); /* one thread: embed first, as n rex_kn_corpus_add calls would */
    for (size_t i = 0; i < n; i++) {
        const char *text = contents[i] ? contents[i] : "";
        c->ids[c->n + i] = rex_strdup(ids[i]);
        c->id_bytes += strlen(ids[i]) + 1;
        c->tags[c->n + i] = tags ? tags[i] : 0;
        rex__kn_index_add(c->bm25, text, lens[i]);
        rex__kn_index_add(c->orig, text, lens[i]);
    }
    if (started) {
        batch_embed(&b); /* then help with the vectors */
        for (size_t t = 0; t < started; t++)
            pthread_join(tid[t], NULL);
    }
    c->n += n;
    return 0;
}

void rex_kn_corpus_seal(rex_kn_corpus *c) {
    if (c->sealed)
        return;
    if (c->n && c->n < c->cap) { /* exact size: the memory accounting counts rows */
        c->cap = c->n;
        c->vec = rex_realloc(c->vec, c->cap * REX_KN_DIMS * sizeof(float));
        c->ids = rex_realloc(c->ids, c->cap * sizeof(char *));
        c->tags = rex_realloc(c->tags, c->cap * sizeof(int64_t));
    }
    c->q8 = rex_malloc((c->n ? c->n : 1) * REX_KN_DIMS);
    c->qscale = rex_malloc((c->n ? c->n : 1) * sizeof(float));
    c->qerr = rex_malloc((c->n ? c->n : 1) * sizeof(float));
    c->norm = rex_malloc((c->n ? c->n : 1) * sizeof(float));
    for (size_t i = 0; i < c->n; i++) {
        const float *v = c->vec + i * REX_KN_DIMS;
        c->qscale[i] = rex__kn_quantize(v, REX_KN_DIMS, c->q8 + i * REX_KN_DIMS, &c->qerr[i]);
        double s = 0;
        for (size_t d = 0; d < REX_KN_DIMS; d++)
            s += (double)v[d] * v[d];
        c->norm[i] = (float)(sqrt(s) * (1 + 1e-6));
    }
    c->sealed = 1;
}

size_t rex_kn_corpus_size(const rex_kn_corpus *c) {
    return c->n;
}

int rex_kn_corpus_model(const rex_kn_corpus *c) {
    return c->model;
}

size_t rex_kn_corpus_memory(const rex_kn_corpus *c) {
    size_t per = REX_KN_DIMS * sizeof(float) + sizeof(char *) + sizeof(int64_t);
    if (c->sealed)
        per += REX_KN_DIMS + 3 * sizeof(float);
    return sizeof(*c) + c->n * per + c->id_bytes + rex__kn_index_memory(c->bm25) +
           rex__kn_index_memory(c->orig);
}

const char *rex_kn_corpus_id_at(const rex_kn_corpus *c, size_t i) {
    return i < c->n ? c->ids[i] : NULL;
}

int64_t rex_kn_corpus_tag_at(const rex_kn_corpus *c, size_t i) {
    return i < c->n ? c->tags[i] : 0;
}

void rex_kn_corpus_retain(rex_kn_corpus *c) {
    __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void rex_kn_corpus_release(rex_kn_corpus *c) {
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < c->n; i++)
        rex_free(c->ids[i]);
    rex_free(c->ids);
    rex_free(c->tags);
    rex_free(c->vec);
    rex_free(c->q8);
    rex_free(c->qscale);
    rex_free(c->qerr);
    rex_free(c->norm);
    rex__kn_index_free(c->bm25);
    rex__kn_index_free(c->orig);
    rex_free(c);
}
