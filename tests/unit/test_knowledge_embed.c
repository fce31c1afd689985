/* Embeddings: rex-hash-v1 bit for bit against the original (rex-behaviour 6.3), rex-lex-v1
 * determinism and lexical similarity, the original's overlap score (6.4). */
#include "rextest.h"

#include <rex/knowledge.h>
#include <rex/rex.h>

#include "knowledge/kn.h"

#include <math.h>
#include <stdlib.h>

static double cosine_js(const double *a, const double *b, size_t n) {
    /* the original's cosineSimilarity: sequential sums, dot / (sqrt(na) * sqrt(nb)) */
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    return dot / (sqrt(na) * sqrt(nb));
}

TEST(hash_v1_test_vector) {
    double v[REX_KN_DIMS], v64[64];
    rex_kn_embed_hash_f64("hello world", 11, REX_KN_DIMS, v);
    /* SHA-256("0:hello world") = 4c2d5a9e6b37a4c5...; b / 127.5 - 1, exact doubles */
    static const double want[8] = {-0.403921568627451,  -0.6470588235294117,  -0.2941176470588235,
                                   0.23921568627450984, -0.16078431372549018, -0.5686274509803921,
                                   0.28627450980392166, 0.5450980392156863};
    for (int i = 0; i < 8; i++)
        CHECK(v[i] == want[i]);
    CHECK(v[0] == 0x4c / 127.5 - 1 && v[31] == 0xf6 / 127.5 - 1);
    rex_kn_embed_hash_f64("hello world", 11, 64, v64);
    CHECK(!memcmp(v, v64, sizeof(v64)));

    double w[REX_KN_DIMS];
    rex_kn_embed_hash_f64("hello world!", 12, REX_KN_DIMS, w);
    CHECK(fabs(cosine_js(v, w, REX_KN_DIMS) - -0.04881941278642718) < 1e-15);

    /* the float32 form used by the cache is the rounded double */
    float f[REX_KN_DIMS];
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_HASH_V1, "hello world", 11, f), 0);
    for (int i = 0; i < REX_KN_DIMS; i++)
        CHECK(f[i] == (float)v[i]);
}

/* How the original read a stored chunk vector back: embedding_vector holds the values rounded to
 * 8 decimals in a pgvector float4 column, printed in the shortest form that identifies the float
 * and parsed by JavaScript as a double. */
static double pgvector_read(double v) {
    float f = (float)(round(v * 1e8) / 1e8);
    char b[64];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof(b), "%.*g", p, (double)f);
        if (strtof(b, NULL) == f)
            break;
    }
    return strtod(b, NULL);
}

TEST(hash_v1_fixture_scores) {
    /* w2-oracle-knowledge: the original's semantic and lexical scores for its first match,
     * reproduced exactly (the query vector at full precision, the chunk's read back from
     * pgvector) */
    const char *q = "how many days for a refund";
    const char *c = "# Refund Policy Customers may request a refund within 30 days of purchase.";
    double a[REX_KN_DIMS], b[REX_KN_DIMS];
    rex_kn_embed_hash_f64(q, strlen(q), REX_KN_DIMS, a);
    rex_kn_embed_hash_f64(c, strlen(c), REX_KN_DIMS, b);
    for (int i = 0; i < REX_KN_DIMS; i++)
        b[i] = pgvector_read(b[i]);
    double sem = cosine_js(a, b, REX_KN_DIMS);
    CHECK(sem == -0.031244777902449842);
    double lex = rex_kn_overlap_score(q, strlen(q), c, strlen(c));
    CHECK(lex == 0.4);
    CHECK(fabs(0.7 * sem + 0.3 * lex - 0.09812865546828511) < 1e-15);
    const char *s =
        "SHIPPING RULES Orders ship within 2 business days. Express shipping costs extra.";
    CHECK(rex_kn_overlap_score(q, strlen(q), s, strlen(s)) == 0.2);
    /* 6.4's example, and the zero cases */
    const char *q2 = "What is the retention policy?", *c2 = "The retention policy is 30 days.";
    CHECK(rex_kn_overlap_score(q2, strlen(q2), c2, strlen(c2)) == 0.8);
    CHECK(rex_kn_overlap_score("a", 1, c2, strlen(c2)) == 0);
    CHECK(rex_kn_overlap_score(q2, strlen(q2), "", 0) == 0);
}

static float cos_lex(const char *a, const char *b) {
    float x[REX_KN_DIMS], y[REX_KN_DIMS];
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, a, strlen(a), x), 0);
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, b, strlen(b), y), 0);
    double d = 0;
    for (int i = 0; i < REX_KN_DIMS; i++)
        d += (double)x[i] * y[i];
    return (float)d;
}

TEST(lex_v1_similarity) {
    const char *q = "database connection pooling";
    float near = cos_lex(q, "Pooling of database connections keeps latency low.");
    float far = cos_lex(q, "Tomorrow's weather forecast: light rain in the afternoon.");
    CHECK(near > 0.4f);
    CHECK(fabs(far) < 0.1f);
    /* case, punctuation, plural and stop words do not matter */
    CHECK(cos_lex("The Refund policy!", "refund policies") > 0.99f);
    /* morphology: shared character trigrams */
    CHECK(cos_lex("configuration", "configure") > 0.2f);
    /* word order matters a little (bigrams) */
    float same = cos_lex("dog bites man", "dog bites man");
    float swapped = cos_lex("dog bites man", "man bites dog");
    CHECK(same > 0.9999f && swapped < same && swapped > 0.5f);
    /* non-Latin scripts are lower-cased and tokenized too */
    CHECK(cos_lex("\xCE\x9A\xCE\x91\xCE\x9B\xCE\x97\xCE\x9C\xCE\x95\xCE\xA1\xCE\x91",
                  "\xCE\xBA\xCE\xB1\xCE\xBB\xCE\xB7\xCE\xBC\xCE\xB5\xCF\x81\xCE\xB1") > 0.99f);
    CHECK(cos_lex("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xE6\x97\xA5\xE6\x9C\xAC") > 0.5f);
}

TEST(lex_v1_deterministic) {
    const char *t = "Knowledge runtime: chunking, embeddings and exact top-K in C.";
    float a[REX_KN_DIMS], b[REX_KN_DIMS];
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, t, strlen(t), a), 0);
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, t, strlen(t), b), 0);
    CHECK(!memcmp(a, b, sizeof(a)));
    double n = 0;
    for (int i = 0; i < REX_KN_DIMS; i++)
        n += (double)a[i] * a[i];
    CHECK(fabs(n - 1) < 1e-5);
    /* golden values: a change here is a new model name, never an edit */
    uint64_t h = rex__kn_hash(a, sizeof(a), 0);
    printf("rex-lex-v1 golden hash %016llx\n", (unsigned long long)h);
    CHECK(h == 0x8bee33bbc2f9dbfdULL);
    /* the feature hash itself is pinned */
    CHECK(rex__kn_hash("", 0, 0) == 0x25fc6dd36ce04b20ULL);
    /* no features: the zero vector */
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, " , . the a ", 11, a), 0);
    for (int i = 0; i < REX_KN_DIMS; i++)
        CHECK(a[i] == 0);
}

TEST(embed_rejects_bad_input) {
    float v[REX_KN_DIMS];
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, "\xFF", 1, v), REX_EINVAL);
    CHECK_INT(rex_kn_embed(99, "x", 1, v), REX_EINVAL);
    CHECK_INT(rex_kn_model_from_name("rex-lex-v1-1536"), REX_KN_MODEL_LEX_V1);
    CHECK_INT(rex_kn_model_from_name("rex-hash-v1-1536"), REX_KN_MODEL_HASH_V1);
    CHECK_INT(rex_kn_model_from_name("text-embedding-3-small"), REX_EINVAL);
    CHECK_STR(rex_kn_model_name(REX_KN_MODEL_LEX_V1), "rex-lex-v1-1536");
    /* a huge word is cut, not overflowed */
    char big[5000];
    memset(big, 'q', sizeof(big));
    CHECK_INT(rex_kn_embed(REX_KN_MODEL_LEX_V1, big, sizeof(big), v), 0);
}

TEST(vector_literal_and_parse) {
    double v[REX_KN_DIMS];
    rex_kn_embed_hash_f64("hello world", 11, REX_KN_DIMS, v);
    size_t len;
    char *lit = rex_kn_vector_literal(v, REX_KN_DIMS, &len);
    /* rex-behaviour 6.3's example */
    CHECK(!strncmp(lit, "[-0.40392157,-0.64705882,-0.29411765,", 37));
    CHECK(lit[len - 1] == ']');
    float back[REX_KN_DIMS];
    size_t n;
    CHECK_INT(rex_kn_vector_parse(lit, len, back, REX_KN_DIMS, &n), 0);
    CHECK_INT(n, REX_KN_DIMS);
    for (int i = 0; i < REX_KN_DIMS; i++)
        CHECK(fabs(back[i] - v[i]) < 1e-8 + 1e-7);
    rex_free(lit);
    /* JavaScript number forms; -1 stays -1; non-finite dropped; -0 prints 0 */
    double w[] = {-1, 0.5, 5e-8, 0.0000012, 1e-9, -0.0, 123.456789012, NAN, INFINITY, 2};
    lit = rex_kn_vector_literal(w, sizeof(w) / sizeof(w[0]), NULL);
    CHECK_STR(lit, "[-1,0.5,5e-8,0.0000012,0,0,123.45678901,2]");
    rex_free(lit);
    lit = rex_kn_vector_literal(w, 0, NULL);
    CHECK_STR(lit, "[]");
    rex_free(lit);
    /* reading: pgvector's output and JSON arrays; anything else is refused */
    CHECK_INT(rex_kn_vector_parse(" [1, -0.25,3e-2]\n", 17, back, 8, &n), 0);
    CHECK_INT(n, 3);
    CHECK(back[1] == -0.25f && back[2] == 0.03f);
    CHECK_INT(rex_kn_vector_parse("[]", 2, back, 8, &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(rex_kn_vector_parse("[1,2,]", 6, back, 8, &n), REX_EINVAL);
    CHECK_INT(rex_kn_vector_parse("[1,,2]", 6, back, 8, &n), REX_EINVAL);
    CHECK_INT(rex_kn_vector_parse("1,2", 3, back, 8, &n), REX_EINVAL);
    CHECK_INT(rex_kn_vector_parse("[1,x]", 5, back, 8, &n), REX_EINVAL);
    CHECK_INT(rex_kn_vector_parse("[nan]", 5, back, 8, &n), REX_EINVAL);
    CHECK_INT(rex_kn_vector_parse("[1,2,3]", 7, back, 2, &n), REX_EINVAL);
}
