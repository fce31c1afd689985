/* Per-process corpus cache: corpora by key (corpus id) and version (anything that changes when
 * the corpus changes, e.g. its updated_at plus chunk count), bounded by bytes, least recently
 * used first out. A corpus in use by a search stays alive through its reference count even if
 * it is evicted meanwhile. A mutex guards the table; searches run outside it. */
#include "knowledge/corpus.h"

#include <rex/log.h>
#include <rex/rex.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key, *version;
    rex_kn_corpus *corpus;
    size_t bytes;
    uint64_t used;
} entry;

struct rex_kn_cache {
    pthread_mutex_t mu;
    entry *v;
    size_t n, cap;
    size_t bytes, max_bytes;
    uint64_t tick, hits, misses, evictions;
};

rex_kn_cache *rex_kn_cache_new(size_t max_bytes) {
    rex_kn_cache *c = rex_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void drop(rex_kn_cache *c, size_t i) {
    rex_free(c->v[i].key);
    rex_free(c->v[i].version);
    rex_kn_corpus_release(c->v[i].corpus);
    c->bytes -= c->v[i].bytes;
    c->v[i] = c->v[--c->n];
}

void rex_kn_cache_free(rex_kn_cache *c) {
    if (!c)
        return;
    while (c->n)
        drop(c, c->n - 1);
    rex_free(c->v);
    pthread_mutex_destroy(&c->mu);
    rex_free(c);
}

static long find(rex_kn_cache *c, const char *key) {
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].key, key))
            return (long)i;
    return -1;
}

rex_kn_corpus *rex_kn_cache_get(rex_kn_cache *c, const char *key, const char *version) {
    rex_kn_corpus *out = NULL;
    pthread_mutex_lock(&c->mu);
    long i = find(c, key);
    if (i >= 0 && !strcmp(c->v[i].version, version ? version : "")) {
        out = c->v[i].corpus;
        rex_kn_corpus_retain(out);
        c->v[i].used = ++c->tick;
        c->hits++;
    } else {
        if (i >= 0)
            drop(c, (size_t)i); /* stale version */
        c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return out;
}

int rex_kn_cache_put(rex_kn_cache *c, const char *key, const char *version, rex_kn_corpus *corpus) {
    if (!c || !key || !corpus)
        return REX_EINVAL;
    rex_kn_corpus_seal(corpus);
    size_t bytes = rex_kn_corpus_memory(corpus);
    if (c->max_bytes && bytes > c->max_bytes)
        return REX_ENOMEM;
    pthread_mutex_lock(&c->mu);
    long i = find(c, key);
    if (i >= 0)
        drop(c, (size_t)i);
    while (c->max_bytes && c->n && c->bytes + bytes > c->max_bytes) {
        size_t lru = 0;
        for (size_t j = 1; j < c->n; j++)
            if (c->v[j].used < c->v[lru].used)
                lru = j;
        drop(c, lru);
        c->evictions++;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 8;
        c->v = rex_realloc(c->v, c->cap * sizeof(entry));
    }
    rex_kn_corpus_retain(corpus);
    c->v[c->n++] =
        (entry){rex_strdup(key), rex_strdup(version ? version : ""), corpus, bytes, ++c->tick};
    c->bytes += bytes;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int rex_kn_cache_invalidate(rex_kn_cache *c, const char *key) {
    pthread_mutex_lock(&c->mu);
    long i = find(c, key);
    if (i >= 0)
        drop(c, (size_t)i);
    pthread_mutex_unlock(&c->mu);
    return i >= 0;
}

void rex_kn_cache_stats(rex_kn_cache *c, struct rex_kn_cache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out =
        (struct rex_kn_cache_stats){c->bytes, c->max_bytes, c->n, c->hits, c->misses, c->evictions};
    pthread_mutex_unlock(&c->mu);
}

/* KNOWLEDGE_CACHE_MB: decimal digits only (no sign, no unit), and small enough that the byte count
 * fits a size_t. */
int rex__kn_cache_bytes_from_env(const char *s, size_t *bytes) {
    *bytes = (size_t)REX_KN_CACHE_MB_DEFAULT << 20;
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return REX_EINVAL;
    errno = 0;
    unsigned long long mb = strtoull(s, NULL, 10);
    if (errno || mb > (SIZE_MAX >> 20))
        return REX_EINVAL;
    *bytes = (size_t)mb << 20;
    return 0;
}

static rex_kn_cache *shared;
static pthread_once_t shared_once = PTHREAD_ONCE_INIT;

static void shared_init(void) {
    const char *env = getenv("KNOWLEDGE_CACHE_MB");
    size_t bytes;
    if (rex__kn_cache_bytes_from_env(env, &bytes)) {
        char def[24];
        snprintf(def, sizeof(def), "%d", REX_KN_CACHE_MB_DEFAULT);
        rex_log_warn("KNOWLEDGE_CACHE_MB is not a whole number of MiB; using the default", "value",
                     env, "defaultMb", def, NULL);
    }
    shared = rex_kn_cache_new(bytes);
}

rex_kn_cache *rex_kn_cache_shared(void) {
    pthread_once(&shared_once, shared_init);
    return shared;
}
