/* Knowledge core internals shared by chunk.c, embed_*.c, bm25.c and topk.c. */
#ifndef REX_KNOWLEDGE_KN_H
#define REX_KNOWLEDGE_KN_H

#include <rex/knowledge.h>

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s (valid UTF-8 assumed: callers validate first) and returns its
 * byte length. */
static inline size_t rex__kn_decode(const unsigned char *s, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

/* JavaScript's \s (and String.prototype.trim) set. */
static inline int rex__kn_is_space(uint32_t cp) {
    if (cp <= 0x20)
        return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0xA0)
        return 0;
    return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* The upper-case form of a lower-case letter, 0 if cp does not change under toUpperCase
 * (within the covered scripts: Latin, Greek, Cyrillic, Armenian, fullwidth Latin; other scripts
 * are treated as caseless). lower_of is the inverse for lower-casing. */
uint32_t rex__kn_upper_of(uint32_t cp);
uint32_t rex__kn_lower_of(uint32_t cp);

/* Word tokenizer of rex-lex-v1 and BM25: calls fn for each normalized token (see embed_lex.c).
 * Returns the number of tokens. */
typedef void (*rex__kn_token_fn)(void *ud, const char *tok, size_t len);
size_t rex__kn_tokens(const char *text, size_t len, rex__kn_token_fn fn, void *ud);

/* The original's tokenizer (6.4): ASCII lower-case alphanumeric runs longer than one char. */
size_t rex__kn_orig_tokens(const char *text, size_t len, rex__kn_token_fn fn, void *ud);

/* 64-bit hash of bytes (FNV-1a 64 followed by the splitmix64 finalizer), seeded. */
uint64_t rex__kn_hash(const void *p, size_t n, uint64_t seed);

/* Float kernels: dot of q with rows[i*dims..] for i in [0, n), out[i]. dims % 16 == 0. Every
 * kernel sums in the same order (16 lanes, fused multiply-add, then a fixed pairwise tree), so
 * results are bit-identical across kernels. */
typedef void (*rex__kn_dot_f32_fn)(const float *q, const float *rows, size_t n, size_t dims,
                                   float *out);
/* int8 kernels: exact int32 dots of q with rows (values in [-127, 127]). */
typedef void (*rex__kn_dot_i8_fn)(const int8_t *q, const int8_t *rows, size_t n, size_t dims,
                                  int32_t *out);
rex__kn_dot_f32_fn rex__kn_dot_f32_kernel(int kernel);
rex__kn_dot_i8_fn rex__kn_dot_i8_kernel(int kernel);
/* The kernel actually used for a requested one on this CPU. */
int rex__kn_kernel_resolve(int kernel);

/* Quantizes v[dims] (norm ~1) to q with scale s = max|v| / 127; returns the scale and sets *err
 * to an upper bound of ||v - s q||_2. */
float rex__kn_quantize(const float *v, size_t dims, int8_t *q, float *err);

#endif
