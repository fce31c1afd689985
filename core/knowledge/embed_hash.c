/* rex-hash-v1: the original's buildDeterministicEmbedding (rex-behaviour 6.3), bit-exact.
 *
 * Value j of the vector is byte j % 32 of SHA-256("<j / 32>:" + text), mapped to b / 127.5 - 1.
 * The original computes in IEEE doubles; so do we (b / 127.5 - 1 is one division and one
 * subtraction, correctly rounded in both languages). It carries no meaning: kept only so corpora
 * embedded by the original keep working. */
#include "knowledge/kn.h"

#include <rex/rex.h>

#include <openssl/evp.h>

#include <stdio.h>
#include <string.h>

void rex_kn_embed_hash_f64(const char *text, size_t len, size_t dims, double *out) {
    size_t produced = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    rex_assert(ctx);
    const EVP_MD *sha256 = EVP_sha256();
    for (unsigned long i = 0; produced < dims; i++) {
        char prefix[32];
        int pl = snprintf(prefix, sizeof(prefix), "%lu:", i);
        unsigned char md[32];
        unsigned int mdlen = 0;
        int ok = EVP_DigestInit_ex(ctx, sha256, NULL) &&
                 EVP_DigestUpdate(ctx, prefix, (size_t)pl) && EVP_DigestUpdate(ctx, text, len) &&
                 EVP_DigestFinal_ex(ctx, md, &mdlen);
        rex_assert(ok && mdlen == 32);
        for (size_t b = 0; b < 32 && produced < dims; b++)
            out[produced++] = md[b] / 127.5 - 1;
    }
    EVP_MD_CTX_free(ctx);
}

void rex__kn_embed_hash_f32(const char *text, size_t len, float *out) {
    double v[REX_KN_DIMS];
    rex_kn_embed_hash_f64(text, len, REX_KN_DIMS, v);
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        out[i] = (float)v[i];
}
