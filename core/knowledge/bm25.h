/* Inverted index over a corpus's chunks (internal; see bm25.c). */
#ifndef REX_KNOWLEDGE_BM25_H
#define REX_KNOWLEDGE_BM25_H

#include "knowledge/kn.h"

typedef struct rex__kn_index rex__kn_index;

/* orig = 1: the original's tokenizer (for the overlap score), 0: the rex-lex tokenizer. */
rex__kn_index *rex__kn_index_new(int orig);
void rex__kn_index_free(rex__kn_index *x);
/* Adds the next chunk (chunks are numbered in the order added). */
void rex__kn_index_add(rex__kn_index *x, const char *text, size_t len);
size_t rex__kn_index_memory(const rex__kn_index *x);
/* BM25 of every chunk for the query: out[number of chunks]. */
void rex__kn_index_bm25(const rex__kn_index *x, const char *query, size_t qlen, float *out);
/* The original's word-overlap score (6.4) of every chunk: out[number of chunks]. */
void rex__kn_index_overlap(const rex__kn_index *x, const char *query, size_t qlen, float *out);

#endif
