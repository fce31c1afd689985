/* The corpus structure (internal; see corpus.c). Immutable once sealed. */
#ifndef REX_KNOWLEDGE_CORPUS_H
#define REX_KNOWLEDGE_CORPUS_H

#include "knowledge/bm25.h"
#include "knowledge/kn.h"

struct rex_kn_corpus {
    int refs;
    int model;
    int sealed;
    size_t n, cap;
    float *vec;    /* n x REX_KN_DIMS, rows L2-normalized (or zero) */
    int8_t *q8;    /* n x REX_KN_DIMS, after seal */
    float *qscale; /* per row: vec ~= qscale * q8 */
    float *qerr;   /* per row: upper bound of ||vec - qscale * q8|| */
    float *norm;   /* per row: upper bound of ||vec|| */
    char **ids;
    int64_t *tags;
    size_t id_bytes;
    rex__kn_index *bm25; /* rex-lex tokens */
    rex__kn_index *orig; /* the original's tokens */
};

/* KNOWLEDGE_CACHE_MB's value (NULL or empty = unset) as a byte bound: 0 and *bytes set, or
 * REX_EINVAL with *bytes = the default (cache.c). */
int rex__kn_cache_bytes_from_env(const char *s, size_t *bytes);

#endif
