/* Retrieval quality on real text (tests/fixtures/knowledge/README.md: coreutils manual pages,
 * query = a page's NAME description, relevant = that page's DESCRIPTION text). Documents are
 * chunked and ranked exactly as `rex-worker query` does (a document's score = its best chunk's).
 * Prints Recall@1, Recall@10 and MRR@10 per model and ranking; asserts rex-lex ranks the relevant
 * document first far more often than rex-hash, and the default ranking is at least as good as
 * BM25 on MRR@10 and Recall@10 (decisions.md 5). */
#include "rextest.h"

#include <rex/knowledge.h>
#include <rex/rex.h>

#include "runtime/json.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <math.h>
#include <stdlib.h>

typedef struct {
    char **id, **text;
    size_t n;
} records;

static void load(lua_State *L, const char *name, records *r) {
    char path[4096];
    const char *home = getenv("REX_HOME");
    snprintf(path, sizeof(path), "%s/tests/fixtures/knowledge/%s", home ? home : ".", name);
    FILE *f = fopen(path, "r");
    if (!f)
        rextest_fail(__FILE__, __LINE__, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    memset(r, 0, sizeof(*r));
    while ((len = getline(&line, &cap, f)) > 0) {
        char err[256];
        CHECK_INT(rex_json_decode_lua(L, line, (size_t)len, err, sizeof(err)), 0);
        r->id = rex_realloc(r->id, (r->n + 1) * sizeof(char *));
        r->text = rex_realloc(r->text, (r->n + 1) * sizeof(char *));
        lua_getfield(L, -1, "id");
        r->id[r->n] = rex_strdup(lua_tostring(L, -1));
        lua_getfield(L, -2, "text");
        r->text[r->n] = rex_strdup(lua_tostring(L, -1));
        lua_pop(L, 3);
        r->n++;
    }
    free(line);
    fclose(f);
}

static void free_records(records *r) {
    for (size_t i = 0; i < r->n; i++) {
        rex_free(r->id[i]);
        rex_free(r->text[i]);
    }
    rex_free(r->id);
    rex_free(r->text);
}

typedef struct {
    double r1, r10, mrr10;
} metrics;

static metrics evaluate(const records *docs, const records *qs, int model, int ranking) {
    rex_kn_corpus *c;
    CHECK_INT(rex_kn_corpus_new(model, &c), 0);
    for (size_t d = 0; d < docs->n; d++) {
        rex_kn_chunks *ch;
        CHECK_INT(rex_kn_chunk_text(docs->text[d], strlen(docs->text[d]), NULL, &ch, NULL), 0);
        for (size_t i = 0; i < rex_kn_chunks_count(ch); i++) {
            const rex_kn_chunk *k = rex_kn_chunks_get(ch, i);
            char id[300];
            snprintf(id, sizeof(id), "%s#%06zu", docs->id[d], i);
            CHECK_INT(rex_kn_corpus_add(c, id, k->content, k->content_len, NULL, (int64_t)d), 0);
        }
        rex_kn_chunks_free(ch);
    }
    size_t n = rex_kn_corpus_size(c);
    float *all = rex_malloc(n * sizeof(float));
    float *best = rex_malloc(docs->n * sizeof(float));
    metrics m = {0, 0, 0};
    struct rex_kn_search_opts o = {10, ranking, 0, 0, 1};
    for (size_t q = 0; q < qs->n; q++) {
        CHECK_INT(rex_kn_score_all(c, qs->text[q], strlen(qs->text[q]), &o, all), 0);
        for (size_t d = 0; d < docs->n; d++)
            best[d] = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            size_t d = (size_t)rex_kn_corpus_tag_at(c, i);
            if (all[i] > best[d])
                best[d] = all[i];
        }
        size_t rel = 0;
        for (size_t d = 0; d < docs->n; d++)
            if (!strcmp(docs->id[d], qs->id[q]))
                rel = d;
        size_t rank = 1; /* documents ranked before the relevant one, ties by id */
        for (size_t d = 0; d < docs->n; d++)
            if (best[d] > best[rel] ||
                (best[d] == best[rel] && strcmp(docs->id[d], docs->id[rel]) < 0))
                rank++;
        m.r1 += rank == 1;
        m.r10 += rank <= 10;
        m.mrr10 += rank <= 10 ? 1.0 / (double)rank : 0;
    }
    m.r1 /= (double)qs->n;
    m.r10 /= (double)qs->n;
    m.mrr10 /= (double)qs->n;
    rex_free(all);
    rex_free(best);
    rex_kn_corpus_release(c);
    return m;
}

TEST(quality_on_coreutils_manual) {
    lua_State *L = luaL_newstate();
    records docs, qs;
    load(L, "coreutils-man.docs.jsonl", &docs);
    load(L, "coreutils-man.queries.jsonl", &qs);
    CHECK_INT(docs.n, 104);
    CHECK_INT(qs.n, 104);
    metrics hash = evaluate(&docs, &qs, REX_KN_MODEL_HASH_V1, REX_KN_RANK_COSINE);
    metrics orig = evaluate(&docs, &qs, REX_KN_MODEL_HASH_V1, REX_KN_RANK_ORIGINAL);
    metrics lex = evaluate(&docs, &qs, REX_KN_MODEL_LEX_V1, REX_KN_RANK_COSINE);
    metrics bm25 = evaluate(&docs, &qs, REX_KN_MODEL_LEX_V1, REX_KN_RANK_BM25);
    metrics hyb = evaluate(&docs, &qs, REX_KN_MODEL_LEX_V1, REX_KN_RANK_HYBRID);
    printf("%-44s %9s %9s %9s\n", "model / ranking (104 queries, 104 docs)", "Recall@1",
           "Recall@10", "MRR@10");
    printf("%-44s %9.3f %9.3f %9.3f\n", "rex-hash-v1-1536 cosine", hash.r1, hash.r10, hash.mrr10);
    printf("%-44s %9.3f %9.3f %9.3f\n", "rex-hash-v1-1536 original (0.7 cos+0.3 overlap)", orig.r1,
           orig.r10, orig.mrr10);
    printf("%-44s %9.3f %9.3f %9.3f\n", "rex-lex-v1-1536 cosine", lex.r1, lex.r10, lex.mrr10);
    printf("%-44s %9.3f %9.3f %9.3f\n", "BM25 (k1 1.2, b 0.75)", bm25.r1, bm25.r10, bm25.mrr10);
    printf("%-44s %9.3f %9.3f %9.3f\n", "hybrid rex-lex + BM25 (default)", hyb.r1, hyb.r10,
           hyb.mrr10);
    CHECK(lex.r1 >= hash.r1 + 0.25);
    CHECK(lex.r1 >= 3 * hash.r1);
    CHECK(hyb.mrr10 >= bm25.mrr10);
    CHECK(hyb.r10 >= bm25.r10);
    free_records(&docs);
    free_records(&qs);
    lua_close(L);
}
