/* rex-worker query: offline retrieval with the worker's chunking, embedding and ranking code.
 *
 * DOCS lines {"id":..., "text":...}, QUERIES lines {"id":..., "text":...}; one output line per
 * query {"id":..., "hits":[{"id":doc_id,"score":s},...]}, a document's score being its best
 * chunk's, documents ordered by score then id. Every input problem is reported with its file and
 * line and exits 2 before any output. */
#include <rex/knowledge.h>
#include <rex/rex.h>

#include "base/buf.h"
#include "cli/cli.h"
#include "runtime/json.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id_json; /* the id as it appeared, re-encoded */
    char *text;
    size_t len;
    size_t line;
} record;

typedef struct {
    record *v;
    size_t n, cap;
} records;

static void records_free(records *r) {
    for (size_t i = 0; i < r->n; i++) {
        rex_free(r->v[i].id_json);
        rex_free(r->v[i].text);
    }
    rex_free(r->v);
}

/* Reads a JSON-lines file of {"id", "text"} objects. Returns 0, or 2 after printing the reason. */
static int read_records(lua_State *L, const char *path, const char *what, records *out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "rex-worker query: cannot open %s '%s': %s\n", what, path, strerror(errno));
        return REX_EXIT_USAGE;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (!n)
            continue;
        char err[256];
        if (rex_json_decode_lua(L, line, n, err, sizeof(err))) {
            fprintf(stderr, "rex-worker query: %s:%zu: %s\n", path, lineno, err);
            rc = REX_EXIT_USAGE;
            break;
        }
        if (!lua_istable(L, -1)) {
            fprintf(stderr,
                    "rex-worker query: %s:%zu: expected an object {\"id\":..., "
                    "\"text\":...}\n",
                    path, lineno);
            lua_pop(L, 1);
            rc = REX_EXIT_USAGE;
            break;
        }
        lua_getfield(L, -1, "id");
        lua_getfield(L, -2, "text");
        int idt = lua_type(L, -2);
        if ((idt != LUA_TSTRING && idt != LUA_TNUMBER) || lua_type(L, -1) != LUA_TSTRING) {
            fprintf(stderr,
                    "rex-worker query: %s:%zu: \"id\" must be a string or number and \"text\" a "
                    "string\n",
                    path, lineno);
            lua_pop(L, 3);
            rc = REX_EXIT_USAGE;
            break;
        }
        size_t tlen;
        const char *text = lua_tolstring(L, -1, &tlen);
        size_t idlen;
        char *id_json = rex_json_encode_lua(L, -2, &idlen, err, sizeof(err));
        if (!id_json) {
            fprintf(stderr, "rex-worker query: %s:%zu: bad id: %s\n", path, lineno, err);
            lua_pop(L, 3);
            rc = REX_EXIT_USAGE;
            break;
        }
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 64;
            out->v = rex_realloc(out->v, out->cap * sizeof(record));
        }
        out->v[out->n++] = (record){id_json, rex_strndup(text, tlen), tlen, lineno};
        lua_pop(L, 3);
    }
    free(line);
    fclose(f);
    return rc;
}

typedef struct {
    float score;
    size_t doc;
} doc_score;

static const records *g_docs; /* for the comparator */

static int by_score_then_id(const void *a, const void *b) {
    const doc_score *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return strcmp(g_docs->v[x->doc].id_json, g_docs->v[y->doc].id_json);
}

/* The shortest decimal that reads back as the same float. */
static void add_float(rex_buf *b, float f) {
    char s[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(s, sizeof(s), "%.*g", p, (double)f);
        if (strtof(s, NULL) == f)
            break;
    }
    rex_buf_adds(b, s);
}

static int parse_ranking(const char *s) {
    if (!strcmp(s, "hybrid"))
        return REX_KN_RANK_HYBRID;
    if (!strcmp(s, "cosine"))
        return REX_KN_RANK_COSINE;
    if (!strcmp(s, "bm25"))
        return REX_KN_RANK_BM25;
    if (!strcmp(s, "original"))
        return REX_KN_RANK_ORIGINAL;
    return -1;
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "rex-worker query: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    fprintf(stderr, "usage: rex-worker query --docs DOCS.jsonl --queries QUERIES.jsonl [--top-k K] "
                    "[--model rex-lex-v1-1536|rex-hash-v1-1536] "
                    "[--ranking hybrid|cosine|bm25|original]\n");
    return REX_EXIT_USAGE;
}

int rex_cli_query(int argc, char **argv, struct rex_config *cfg) {
    (void)cfg;
    const char *docs_path = NULL, *queries_path = NULL, *model_name = REX_KN_MODEL_DEFAULT_NAME;
    long top_k = 10;
    int ranking = REX_KN_RANK_HYBRID;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage_error("missing value or unknown option", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--docs")) {
            docs_path = v;
        } else if (!strcmp(a, "--queries")) {
            queries_path = v;
        } else if (!strcmp(a, "--model")) {
            model_name = v;
        } else if (!strcmp(a, "--top-k")) {
            char *end;
            errno = 0;
            top_k = strtol(v, &end, 10);
            if (errno || *end || end == v || top_k < 1 || top_k > REX_KN_TOPK_MAX)
                return usage_error("--top-k must be an integer from 1 to 1000", v);
        } else if (!strcmp(a, "--ranking")) {
            ranking = parse_ranking(v);
            if (ranking < 0)
                return usage_error("unknown --ranking (hybrid, cosine, bm25, original)", v);
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (!docs_path || !queries_path)
        return usage_error("--docs and --queries are required", NULL);
    int model = rex_kn_model_from_name(model_name);
    if (model < 0)
        return usage_error("unknown --model (rex-lex-v1-1536, rex-hash-v1-1536)", model_name);

    lua_State *L = luaL_newstate();
    records docs = {0}, queries = {0};
    int rc = read_records(L, docs_path, "documents", &docs);
    if (!rc)
        rc = read_records(L, queries_path, "queries", &queries);
    rex_kn_corpus *corpus = NULL;
    if (!rc)
        rex_kn_corpus_new(model, &corpus);
    for (size_t d = 0; !rc && d < docs.n; d++) {
        rex_kn_chunks *ch;
        size_t bad = 0;
        if (rex_kn_chunk_text(docs.v[d].text, docs.v[d].len, NULL, &ch, &bad)) {
            fprintf(stderr,
                    "rex-worker query: %s:%zu: document %s: text is not valid UTF-8 or holds a "
                    "NUL character (byte %zu)\n",
                    docs_path, docs.v[d].line, docs.v[d].id_json, bad);
            rc = REX_EXIT_USAGE;
            break;
        }
        if (!rex_kn_chunks_count(ch))
            fprintf(stderr,
                    "rex-worker query: %s:%zu: document %s is empty after "
                    "normalization; it is never returned\n",
                    docs_path, docs.v[d].line, docs.v[d].id_json);
        for (size_t i = 0; i < rex_kn_chunks_count(ch); i++) {
            const rex_kn_chunk *k = rex_kn_chunks_get(ch, i);
            char id[48];
            snprintf(id, sizeof(id), "%012zu:%08zu", d, i);
            rex_kn_corpus_add(corpus, id, k->content, k->content_len, NULL, (int64_t)d);
        }
        rex_kn_chunks_free(ch);
    }
    for (size_t q = 0; !rc && q < queries.n; q++) {
        const record *r = &queries.v[q];
        size_t bad = rex_kn_utf8_check(r->text, r->len);
        const char *why = NULL;
        if (bad < r->len)
            why = "is not valid UTF-8 or holds a NUL character";
        else if (r->len > REX_KN_QUERY_MAX)
            why = "is longer than the limit of 8192 bytes";
        else {
            size_t i = 0;
            while (i < r->len && strchr(" \t\r\n\f\v", r->text[i]))
                i++;
            if (i == r->len)
                why = "is empty";
        }
        if (why) {
            fprintf(stderr, "rex-worker query: %s:%zu: query %s %s\n", queries_path, r->line,
                    r->id_json, why);
            rc = REX_EXIT_USAGE;
        }
    }
    if (!rc) {
        size_t n = rex_kn_corpus_size(corpus);
        float *all = rex_malloc((n ? n : 1) * sizeof(float));
        doc_score *best = rex_malloc((docs.n ? docs.n : 1) * sizeof(doc_score));
        struct rex_kn_search_opts o = {(size_t)top_k, ranking, 0, REX_KN_KERNEL_AUTO, 1};
        rex_buf out;
        rex_buf_init(&out);
        g_docs = &docs;
        for (size_t q = 0; q < queries.n && !rc; q++) {
            const record *r = &queries.v[q];
            size_t nd = 0;
            if (n) {
                if (rex_kn_score_all(corpus, r->text, r->len, &o, all)) {
                    /* validated above; only a query that is whitespace by Unicode's rules */
                    fprintf(stderr, "rex-worker query: %s:%zu: query %s is empty\n", queries_path,
                            r->line, r->id_json);
                    rc = REX_EXIT_USAGE;
                    break;
                }
                for (size_t d = 0; d < docs.n; d++)
                    best[d] = (doc_score){-INFINITY, d};
                for (size_t i = 0; i < n; i++) {
                    size_t d = (size_t)rex_kn_corpus_tag_at(corpus, i);
                    if (all[i] > best[d].score)
                        best[d].score = all[i];
                }
                for (size_t d = 0; d < docs.n; d++)
                    if (best[d].score != -INFINITY)
                        best[nd++] = best[d];
                qsort(best, nd, sizeof(doc_score), by_score_then_id);
            }
            out.len = 0;
            rex_buf_adds(&out, "{\"id\":");
            rex_buf_adds(&out, r->id_json);
            rex_buf_adds(&out, ",\"hits\":[");
            for (size_t i = 0; i < nd && i < (size_t)top_k; i++) {
                rex_buf_adds(&out, i ? ",{\"id\":" : "{\"id\":");
                rex_buf_adds(&out, docs.v[best[i].doc].id_json);
                rex_buf_adds(&out, ",\"score\":");
                add_float(&out, best[i].score);
                rex_buf_addc(&out, '}');
            }
            rex_buf_adds(&out, "]}\n");
            fwrite(out.data, 1, out.len, stdout);
        }
        rex_buf_free(&out);
        rex_free(all);
        rex_free(best);
        if (fflush(stdout) != 0)
            rc = REX_EXIT_FAILED;
    }
    rex_kn_corpus_release(corpus);
    records_free(&docs);
    records_free(&queries);
    lua_close(L);
    return rc;
}
