/* Corpus snapshots: float32 matrix (L2-normalized rows), int8 copy with per-row scale and error
 * bound, ids, tags, and the lexical indexes. Also the model registry. */
#include "knowledge/corpus.h"

#include <rex/rex.h>

#include <math.h>
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
