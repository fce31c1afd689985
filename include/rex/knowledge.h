/* rex-worker knowledge core: chunking, embeddings, BM25, exact top-K over a corpus cache.
 *
 * Everything here is pure computation: no I/O (except one log warning from rex_kn_cache_shared),
 * no threads (except those rex_kn_corpus_add_batch starts and joins within the call), and no
 * shared mutable state except caches (which lock; one of them process-wide), a per-thread scratch
 * table and the CPU features detected once. Errors follow rex.h: 0 on success, a negative
 * REX_E* code otherwise. Text is UTF-8; functions taking text reject invalid UTF-8 and NUL bytes
 * with REX_EINVAL (PostgreSQL text cannot hold either, so a document that has them could not be
 * stored anyway). docs/knowledge.md describes the models and the ranking. */
#ifndef REX_KNOWLEDGE_H
#define REX_KNOWLEDGE_H

#include <stddef.h>
#include <stdint.h>

#define REX_KN_DIMS 1536
/* Queries longer than this many bytes are refused with REX_EINVAL. */
#define REX_KN_QUERY_MAX 8192
#define REX_KN_TOPK_MAX 1000

/* Embedding models, recorded per chunk as knowledge_chunks.embedding_model. */
enum {
    REX_KN_MODEL_HASH_V1 = 1, /* "rex-hash-v1-1536": the original's SHA-256 noise, bit-exact */
    REX_KN_MODEL_LEX_V1 = 2,  /* "rex-lex-v1-1536": lexical feature hashing (the default) */
};
#define REX_KN_MODEL_DEFAULT_NAME "rex-lex-v1-1536"

/* Model id for a name, or REX_EINVAL for an unknown name. */
int rex_kn_model_from_name(const char *name);
/* Static name of a model id; NULL for an unknown id. */
const char *rex_kn_model_name(int model);

/* ---- Chunking ------------------------------------------------------------------------------ */

/* One chunk. Offsets point into the text given to rex_kn_chunk_text: the chunk's content is that
 * span with whitespace runs collapsed to one space. `start`/`end` count UTF-16 code units (the
 * original's JavaScript string indices), `byte_start`/`byte_end` count bytes. */
typedef struct rex_kn_chunk {
    size_t index;      /* continuous over pages: 0, 1, 2, ... */
    int page;          /* 1-based page (pages are split on form feed) */
    size_t start, end; /* UTF-16 code units */
    size_t byte_start, byte_end;
    size_t token_count;  /* ceil(UTF-16 length of content / 4) */
    const char *content; /* normalized, NUL-terminated, owned by the chunk set */
    size_t content_len;  /* bytes */
    const char *section; /* section path (rex-behaviour 6.2), NUL-terminated, owned */
    size_t section_len;
} rex_kn_chunk;

typedef struct rex_kn_chunks rex_kn_chunks;

struct rex_kn_chunk_opts {
    size_t size;    /* window in UTF-16 code units; 0 = 1200 */
    size_t overlap; /* 0 = 200; must be < size. Use REX_KN_NO_OVERLAP for none. */
    /* A `#` heading that is empty after stripping: 1 = section "page-<n>" (runtime ingestion),
     * 0 = "" (the ingestion job). */
    int empty_heading_page_path;
};
#define REX_KN_NO_OVERLAP ((size_t)-1)

/* Chunks a document. Returns 0 and sets *out (possibly with zero chunks for empty or whitespace
 * text); REX_EINVAL for invalid UTF-8 or a NUL byte (*bad_offset, if not NULL, gets the byte
 * offset) or bad options. The caller frees *out with rex_kn_chunks_free. opts may be NULL. */
int rex_kn_chunk_text(const char *text, size_t len, const struct rex_kn_chunk_opts *opts,
                      rex_kn_chunks **out, size_t *bad_offset);
size_t rex_kn_chunks_count(const rex_kn_chunks *c);
/* Borrowed pointer valid until rex_kn_chunks_free; NULL past the end. */
const rex_kn_chunk *rex_kn_chunks_get(const rex_kn_chunks *c, size_t i);
void rex_kn_chunks_free(rex_kn_chunks *c);

/* Offset of the first invalid UTF-8 sequence or NUL byte, or len if the text is clean. */
size_t rex_kn_utf8_check(const char *text, size_t len);

/* ---- Embeddings ---------------------------------------------------------------------------- */

/* Embeds text with a model into out[REX_KN_DIMS] (float32). rex-lex vectors are L2-normalized
 * (all zeros for text without features); rex-hash vectors are the original's raw values.
 * REX_EINVAL for an unknown model or invalid UTF-8. */
int rex_kn_embed(int model, const char *text, size_t len, float *out);

/* The original's buildDeterministicEmbedding(text, dims) in double precision, bit-exact:
 * out[dims]. */
void rex_kn_embed_hash_f64(const char *text, size_t len, size_t dims, double *out);

/* knowledge_chunks.embedding_vector text (6.3): "[v1,v2,...]", non-finite values dropped, each
 * rounded to 8 decimals (Math.round(v * 1e8) / 1e8) in JavaScript's shortest number form. Returns
 * a NUL-terminated string the caller frees with rex_free; *len (if not NULL) gets its length. */
char *rex_kn_vector_literal(const double *v, size_t n, size_t *len);
/* Parses such a literal (also pgvector's output) into out[0..max). Returns 0 with *n values, or
 * REX_EINVAL for text that is not a bracketed list of numbers or holds more than max values (the
 * caller then falls back to the jsonb embedding, as the original did). */
int rex_kn_vector_parse(const char *s, size_t len, float *out, size_t max, size_t *n);

/* ---- Corpus: an immutable snapshot of chunks ready for search -------------------------------- */

typedef struct rex_kn_corpus rex_kn_corpus;

/* A new, empty, unsealed corpus for one model. The caller owns it (rex_kn_corpus_release).
 * REX_EINVAL for an unknown model. */
int rex_kn_corpus_new(int model, rex_kn_corpus **out);

/* Adds a chunk. `id` (copied) orders ties; `content` (not kept) feeds the lexical index;
 * `vec` (REX_KN_DIMS floats, copied, normalized here) may be NULL to embed the content with the
 * corpus model. `tag` is the caller's own value, returned with hits. REX_EINVAL after seal, on
 * invalid UTF-8 or a non-finite vector. */
int rex_kn_corpus_add(rex_kn_corpus *c, const char *id, const char *content, size_t content_len,
                      const float *vec, int64_t tag);
/* Adds n chunks, as n calls rex_kn_corpus_add(c, ids[i], contents[i], lens[i], vecs[i], tags[i])
 * in order would (the same corpus to the bit), computing the vectors of rows without one (vecs
 * NULL, or vecs[i] NULL: embedded with the corpus model) with up to `threads` threads: the
 * caller's and threads - 1 it starts and joins before returning (threads <= 1: the caller's
 * only). Nothing is kept of the arrays after the call; tags NULL = all 0. All or nothing:
 * REX_EINVAL (nothing added) after seal, or if any row has a NULL id, invalid UTF-8 or a
 * non-finite vector. The corpus must not be used by another thread during the call. */
int rex_kn_corpus_add_batch(rex_kn_corpus *c, size_t n, const char *const *ids,
                            const char *const *contents, const size_t *lens,
                            const float *const *vecs, const int64_t *tags, int threads);
/* Freezes the corpus: builds the lexical statistics and the int8 form. Searching an unsealed
 * corpus seals it. After sealing the corpus is read-only and may be searched from any thread. */
void rex_kn_corpus_seal(rex_kn_corpus *c);
size_t rex_kn_corpus_size(const rex_kn_corpus *c);
int rex_kn_corpus_model(const rex_kn_corpus *c);
/* Bytes held (vectors, quantized vectors, ids, index). */
size_t rex_kn_corpus_memory(const rex_kn_corpus *c);
const char *rex_kn_corpus_id_at(const rex_kn_corpus *c, size_t i);
int64_t rex_kn_corpus_tag_at(const rex_kn_corpus *c, size_t i);
/* Reference counting: a corpus is freed when its last reference is released. new() returns one
 * reference; rex_kn_cache_get returns another. */
void rex_kn_corpus_retain(rex_kn_corpus *c);
void rex_kn_corpus_release(rex_kn_corpus *c);

/* ---- Search -------------------------------------------------------------------------------- */

enum {
    REX_KN_RANK_HYBRID = 0,   /* default: w * cosine + (1 - w) * BM25 / max BM25 in scope */
    REX_KN_RANK_COSINE = 1,   /* embedding cosine only */
    REX_KN_RANK_BM25 = 2,     /* BM25 (k1 1.2, b 0.75) only */
    REX_KN_RANK_ORIGINAL = 3, /* the original: 0.7 * cosine + 0.3 * word overlap (6.4) */
};
enum {
    REX_KN_KERNEL_AUTO = 0,
    REX_KN_KERNEL_SCALAR = 1,
    REX_KN_KERNEL_AVX2 = 2,
    REX_KN_KERNEL_AVX512 = 3,
};
#define REX_KN_HYBRID_WEIGHT 0.5f

struct rex_kn_search_opts {
    size_t top_k;  /* 1..REX_KN_TOPK_MAX */
    int ranking;   /* REX_KN_RANK_* */
    float weight;  /* cosine weight for HYBRID; <= 0 = REX_KN_HYBRID_WEIGHT */
    int kernel;    /* REX_KN_KERNEL_*; a kernel the CPU lacks falls back to the best one it has */
    int exact_f32; /* 1 = scan float32 only; 0 = int8 scan + exact float32 rescore (same result) */
};

typedef struct rex_kn_hit {
    size_t corpus; /* index into the corpora array given to rex_kn_search */
    size_t index;  /* chunk index within that corpus */
    int64_t tag;
    float score, semantic, lexical;
} rex_kn_hit;

/* Exact top-K over every chunk of the given corpora (all of one model), ordered by score
 * descending, ties by chunk id ascending (byte order). hits has room for opts->top_k entries;
 * fills hits[0..*nhits), *nhits = min(top_k, chunks). Unsealed corpora are sealed first.
 * REX_EINVAL: query empty or whitespace, longer than REX_KN_QUERY_MAX, invalid UTF-8, mixed
 * models or bad options (nothing filled). */
int rex_kn_search(rex_kn_corpus *const *corpora, size_t ncorpora, const char *query, size_t qlen,
                  const struct rex_kn_search_opts *opts, rex_kn_hit *hits, size_t *nhits);

/* rex_kn_search with the caller's query vector: the same checks, scan, rankings, BM25
 * normalization and tie order, but the semantic score of a chunk is its dot product with qvec
 * (REX_KN_DIMS floats, e.g. a provider embedding zero-padded to 1536, as stored in the corpus) in
 * place of the cosine with the corpus model's embedding of the query. qvec is L2-normalized here
 * (on a copy, as rex_kn_search normalizes its query embedding; an all-zero vector stays zero),
 * so the dot product is the cosine whatever the vector's norm. qvec NULL: no semantic part, the
 * semantic score is 0 for every chunk (use REX_KN_RANK_BM25, e.g. when the query could not be
 * embedded). The query text still feeds the lexical score and is checked as for rex_kn_search.
 * rex_kn_search is this function with qvec = the corpus model's embedding of the query. REX_EINVAL:
 * as rex_kn_search, or a non-finite value in qvec (nothing filled). */
int rex_kn_search_vec(rex_kn_corpus *const *corpora, size_t ncorpora, const float *qvec,
                      const char *query, size_t qlen, const struct rex_kn_search_opts *opts,
                      rex_kn_hit *hits, size_t *nhits);

/* Scores every chunk of one corpus (same scores as rex_kn_search): out[rex_kn_corpus_size]. */
int rex_kn_score_all(rex_kn_corpus *c, const char *query, size_t qlen,
                     const struct rex_kn_search_opts *opts, float *out);

/* The kernel REX_KN_KERNEL_AUTO picks on this CPU, and its name ("scalar", "avx2", "avx512"). */
int rex_kn_kernel_best(void);
const char *rex_kn_kernel_name(int kernel);

/* The original's lexicalRelevanceScore (rex-behaviour 6.4). */
double rex_kn_overlap_score(const char *query, size_t qlen, const char *content, size_t clen);

/* ---- Cache: corpora by key and version, bounded by bytes, least recently used evicted -------- */

typedef struct rex_kn_cache rex_kn_cache;

/* max_bytes 0 = unbounded. The caller owns the cache (rex_kn_cache_free). Thread-safe. */
rex_kn_cache *rex_kn_cache_new(size_t max_bytes);
void rex_kn_cache_free(rex_kn_cache *cache);
/* Returns a new reference to the corpus stored under key with exactly this version (release it
 * with rex_kn_corpus_release), or NULL (a different version counts as a miss and drops the
 * stale entry). */
rex_kn_corpus *rex_kn_cache_get(rex_kn_cache *cache, const char *key, const char *version);
/* Stores a corpus (seals it; the cache takes its own reference, the caller keeps theirs),
 * replacing any entry under key, then evicts least recently used entries over the bound.
 * REX_ENOMEM if the corpus alone exceeds the bound (nothing stored). */
int rex_kn_cache_put(rex_kn_cache *cache, const char *key, const char *version,
                     rex_kn_corpus *corpus);
/* Drops the entry under key (corpus changed or deleted). Returns 1 if there was one. */
int rex_kn_cache_invalidate(rex_kn_cache *cache, const char *key);

/* The process-wide cache, shared by every thread and Lua state of the process: created on the
 * first call (thread-safe), never freed (do not pass it to rex_kn_cache_free). Bounded by the
 * environment variable KNOWLEDGE_CACHE_MB read at that first call: a whole number of MiB
 * (decimal digits), default REX_KN_CACHE_MB_DEFAULT, 0 = unbounded; any other value logs a
 * warning and gives the default. */
#define REX_KN_CACHE_MB_DEFAULT 2048
rex_kn_cache *rex_kn_cache_shared(void);

struct rex_kn_cache_stats {
    size_t bytes, max_bytes, entries;
    uint64_t hits, misses, evictions;
};
void rex_kn_cache_stats(rex_kn_cache *cache, struct rex_kn_cache_stats *out);

#endif
