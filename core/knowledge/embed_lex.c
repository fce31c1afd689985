/* rex-lex-v1-1536: a model-free embedding that carries lexical similarity.
 *
 * Design (docs/knowledge.md has the rationale and the measured quality). A change to anything
 * below changes vectors, so it would be a new model name (rex-lex-v2-...), never an edit.
 *
 *  1. Tokens. Text is read as Unicode code points. Letters and digits form words; everything
 *     else separates them: ASCII punctuation, apostrophes, Latin-1 punctuation and symbols
 *     (U+0080-U+00BF except ª µ º, U+00D7, U+00F7), general punctuation, symbols, arrows, math and
 *     box drawing (U+2000-U+2BFF), CJK punctuation (U+3000-U+303F), fullwidth punctuation, private
 *     use (U+E000-U+F8FF), emoji and pictographs (U+1F000-U+1FAFF) and JavaScript whitespace.
 *     Other code points are letters. Han and kana code points (U+3040-U+30FF, U+3400-U+9FFF,
 *     U+F900-U+FAFF) are one token each, since those scripts do not separate words by spaces.
 *     Letters are lower-cased (Latin, Greek, Cyrillic, Armenian, fullwidth Latin; final sigma
 *     becomes sigma). A word is cut at 64 bytes (on a code point boundary).
 *  2. Stop words. A fixed list of 84 frequent English function words is dropped (the list is in
 *     this file); single ASCII letters are dropped; single digits are kept.
 *  3. Stemming. ASCII words of 4 or more letters get Harman's S-stemmer: "ies" -> "y" (not after
 *     e or a), "es" -> "e" (not after a, e, o), "s" -> "" (not after u or s).
 *  4. Features of the token stream: each token (weight 1.0), each pair of consecutive tokens
 *     joined by a space (weight 0.5), and each character trigram of the token wrapped in '<' '>'
 *     (weight 0.25; tokens of one code point contribute no trigrams).
 *  5. Weights are sublinear: a feature seen tf times contributes weight * sqrt(tf) (IEEE square
 *     root is correctly rounded everywhere, unlike log, and the weights are powers of two, so the
 *     product is exact).
 *  6. Signed feature hashing: h = H(kind byte, feature bytes) with H = 64-bit FNV-1a (offset
 *     basis 0xcbf29ce484222325, prime 0x100000001b3) over the bytes, then the splitmix64
 *     finalizer (xor-shift 30, * 0xbf58476d1ce4e5b9, xor-shift 27, * 0x94d049bb133111eb, xor-shift
 *     31). The kind byte is 'u', 'b' or 'c'. Dimension = (h & 0xffffffff) % 1536, sign = + if bit
 *     63 of h is 0, else -.
 *  7. Each feature adds +-round(weight * 2^32) to its dimension in int64 (exact, so the sum does
 *     not depend on feature order). The 1536 sums are L2-normalized in double (the norm summed
 *     in dimension order by explicit fused multiply-adds) and stored as float32. A text
 *     without features gives the zero vector (its cosine with anything is 0).
 *
 * Everything is integer or IEEE double arithmetic in a fixed order: the same text gives the same
 * vector on every machine. */
#include "knowledge/kn.h"

#include "base/buf.h"

#include <rex/rex.h>

#include <math.h>
#include <pthread.h>
#include <string.h>

uint32_t rex__kn_upper_of(uint32_t cp) {
    if (cp < 0x80)
        return cp >= 'a' && cp <= 'z' ? cp - 0x20 : 0;
    if (cp < 0x100) {
        if (cp == 0xB5)
            return 0x39C;
        if (cp == 0xDF)
            return 'S';
        if (cp == 0xFF)
            return 0x178;
        return cp >= 0xE0 && cp != 0xF7 ? cp - 0x20 : 0;
    }
    if (cp < 0x180) {
        if (cp <= 0x12F)
            return (cp & 1) ? cp - 1 : 0;
        if (cp == 0x131)
            return 'I';
        if (cp >= 0x133 && cp <= 0x137)
            return (cp & 1) ? cp - 1 : 0;
        if (cp >= 0x139 && cp <= 0x148)
            return (cp & 1) ? 0 : cp - 1;
        if (cp == 0x149)
            return 'N';
        if (cp >= 0x14A && cp <= 0x177)
            return (cp & 1) ? cp - 1 : 0;
        if (cp == 0x17A || cp == 0x17C || cp == 0x17E)
            return cp - 1;
        return cp == 0x17F ? 'S' : 0;
    }
    if (cp >= 0x390 && cp <= 0x3CE) {
        if (cp == 0x390 || cp == 0x3B0)
            return 0x399;
        if (cp == 0x3AC)
            return 0x386;
        if (cp >= 0x3AD && cp <= 0x3AF)
            return cp - 37;
        if (cp == 0x3C2)
            return 0x3A3;
        if (cp >= 0x3B1 && cp <= 0x3CB)
            return cp - 0x20;
        if (cp == 0x3CC)
            return 0x38C;
        if (cp == 0x3CD || cp == 0x3CE)
            return cp - 63;
        return 0;
    }
    if (cp >= 0x430 && cp <= 0x52F) {
        if (cp <= 0x44F)
            return cp - 0x20;
        if (cp <= 0x45F)
            return cp - 0x50;
        if (cp <= 0x481 || (cp >= 0x48A && cp <= 0x4BF) || cp >= 0x4D0)
            return (cp & 1) ? cp - 1 : 0;
        if (cp >= 0x4C2 && cp <= 0x4CE)
            return (cp & 1) ? 0 : cp - 1;
        return cp == 0x4CF ? 0x4C0 : 0;
    }
    if (cp >= 0x561 && cp <= 0x586)
        return cp - 0x30;
    if ((cp >= 0x1E00 && cp <= 0x1E95) || (cp >= 0x1EA0 && cp <= 0x1EFF))
        return (cp & 1) ? cp - 1 : 0;
    if (cp >= 0xFF41 && cp <= 0xFF5A)
        return cp - 0x20;
    return 0;
}

uint32_t rex__kn_lower_of(uint32_t cp) {
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 0x20 : cp;
    if (cp < 0x100)
        return cp >= 0xC0 && cp <= 0xDE && cp != 0xD7 ? cp + 0x20 : cp;
    if (cp < 0x180) {
        if (cp <= 0x12F || (cp >= 0x132 && cp <= 0x137) || (cp >= 0x14A && cp <= 0x177))
            return (cp & 1) ? cp : cp + 1;
        if (cp == 0x130)
            return 'i';
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E))
            return (cp & 1) ? cp + 1 : cp;
        return cp == 0x178 ? 0xFF : cp;
    }
    if (cp >= 0x386 && cp <= 0x3AB) {
        if (cp == 0x386)
            return 0x3AC;
        if (cp >= 0x388 && cp <= 0x38A)
            return cp + 37;
        if (cp == 0x38C)
            return 0x3CC;
        if (cp == 0x38E || cp == 0x38F)
            return cp + 63;
        if (cp >= 0x391 && cp != 0x3A2)
            return cp + 0x20;
        return cp;
    }
    if (cp == 0x3C2)
        return 0x3C3; /* final sigma: same word as with sigma */
    if (cp >= 0x400 && cp <= 0x52F) {
        if (cp <= 0x40F)
            return cp + 0x50;
        if (cp <= 0x42F)
            return cp + 0x20;
        if ((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF) || cp >= 0x4D0)
            return (cp & 1) ? cp : cp + 1;
        if (cp == 0x4C0)
            return 0x4CF;
        if (cp >= 0x4C1 && cp <= 0x4CE)
            return (cp & 1) ? cp + 1 : cp;
        return cp;
    }
    if (cp >= 0x531 && cp <= 0x556)
        return cp + 0x30;
    if ((cp >= 0x1E00 && cp <= 0x1E95) || (cp >= 0x1EA0 && cp <= 0x1EFF))
        return (cp & 1) ? cp : cp + 1;
    if (cp >= 0xFF21 && cp <= 0xFF3A)
        return cp + 0x20;
    return cp;
}

uint64_t rex__kn_hash(const void *p, size_t n, uint64_t seed) {
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    h = (h ^ (seed & 0xff)) * 0x100000001b3ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* ---- tokenizer ----------------------------------------------------------------------------- */

static const char *const stopwords[] = {
    "about", "all",  "also", "an",    "and",   "any",   "are",    "as",    "at",   "be",   "been",
    "being", "but",  "by",   "can",   "could", "did",   "do",     "does",  "each", "for",  "from",
    "had",   "has",  "have", "he",    "her",   "him",   "his",    "how",   "if",   "in",   "into",
    "is",    "it",   "its",  "may",   "me",    "might", "must",   "my",    "no",   "not",  "of",
    "on",    "or",   "our",  "over",  "shall", "she",   "should", "so",    "than", "that", "the",
    "their", "them", "then", "there", "these", "they",  "this",   "those", "to",   "us",   "was",
    "we",    "were", "what", "when",  "where", "which", "who",    "whom",  "why",  "will", "with",
    "would", "you",  "your", "yours", "i",     "am",    "own",
};

static int is_stopword(const char *w, size_t n) {
    if (n > 6)
        return 0;
    for (size_t i = 0; i < sizeof(stopwords) / sizeof(stopwords[0]); i++)
        if (stopwords[i][0] == w[0] && strlen(stopwords[i]) == n && !memcmp(stopwords[i], w, n))
            return 1;
    return 0;
}

static int is_separator(uint32_t cp) {
    if (cp < 0x80)
        return !((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9'));
    if (cp <= 0xBF)
        return !(cp == 0xAA || cp == 0xB5 || cp == 0xBA);
    if (cp == 0xD7 || cp == 0xF7)
        return 1;
    if (rex__kn_is_space(cp))
        return 1;
    return (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
           (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF0F) ||
           (cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) ||
           (cp >= 0xFF5B && cp <= 0xFF65) || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
           (cp >= 0xE000 && cp <= 0xF8FF) || (cp >= 0x1F000 && cp <= 0x1FAFF);
}

static int is_ideograph(uint32_t cp) {
    return (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF);
}

static size_t encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

#define TOK_MAX 64

static int ends_with(const char *w, size_t n, const char *suf) {
    size_t k = strlen(suf);
    return n >= k && !memcmp(w + n - k, suf, k);
}

/* Emits a finished word: stop words and single ASCII letters dropped, S-stemmer applied. */
static size_t emit(char *w, size_t n, size_t ncp, int ascii, rex__kn_token_fn fn, void *ud) {
    if (!n)
        return 0;
    if (ncp == 1 && ascii && !(w[0] >= '0' && w[0] <= '9'))
        return 0;
    if (ascii && is_stopword(w, n))
        return 0;
    if (ascii && n >= 4) {
        if (ends_with(w, n, "ies") && !ends_with(w, n, "eies") && !ends_with(w, n, "aies")) {
            w[n - 3] = 'y';
            n -= 2;
        } else if (ends_with(w, n, "es") && !ends_with(w, n, "aes") && !ends_with(w, n, "ees") &&
                   !ends_with(w, n, "oes")) {
            n -= 1;
        } else if (w[n - 1] == 's' && !ends_with(w, n, "us") && !ends_with(w, n, "ss")) {
            n -= 1;
        }
    }
    fn(ud, w, n);
    return 1;
}

size_t rex__kn_tokens(const char *text, size_t len, rex__kn_token_fn fn, void *ud) {
    const unsigned char *t = (const unsigned char *)text;
    char w[TOK_MAX + 4];
    size_t n = 0, ncp = 0, count = 0;
    int ascii = 1;
    for (size_t p = 0; p < len;) {
        uint32_t cp;
        p += rex__kn_decode(t + p, &cp);
        if (is_separator(cp) || is_ideograph(cp)) {
            count += emit(w, n, ncp, ascii, fn, ud);
            n = ncp = 0;
            ascii = 1;
            if (is_ideograph(cp)) {
                size_t k = encode(cp, w);
                fn(ud, w, k);
                count++;
            }
            continue;
        }
        cp = rex__kn_lower_of(cp);
        char e[4];
        size_t k = encode(cp, e);
        if (n + k > TOK_MAX)
            continue; /* cut long words */
        memcpy(w + n, e, k);
        n += k;
        ncp++;
        if (cp >= 0x80)
            ascii = 0;
    }
    count += emit(w, n, ncp, ascii, fn, ud);
    return count;
}

size_t rex__kn_orig_tokens(const char *text, size_t len, rex__kn_token_fn fn, void *ud) {
    size_t count = 0, start = 0, n = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : ' ';
        int word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (word) {
            if (!n)
                start = i;
            n++;
            continue;
        }
        if (n > 1) {
            char w[TOK_MAX];
            size_t k = n < TOK_MAX ? n : TOK_MAX;
            for (size_t j = 0; j < k; j++) {
                char ch = text[start + j];
                w[j] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 0x20 : ch);
            }
            fn(ud, w, k);
            count++;
        }
        n = 0;
    }
    return count;
}

/* ---- features ------------------------------------------------------------------------------ */

typedef struct {
    uint64_t key; /* 0 = empty */
    uint32_t tf;
    float weight; /* of the feature's kind */
} slot;

/* Open-addressing table of the features of one text. Reused by the thread (cleared slot by slot
 * through `used`), so embedding a chunk allocates nothing once warm. */
typedef struct {
    slot *slots;
    uint32_t *used; /* occupied slot indexes */
    size_t cap, n;
    char prev[TOK_MAX + 4];
    size_t prev_len;
} features;

#define FEAT_KEEP ((size_t)1 << 16) /* larger tables are freed after use */

static void feat_grow(features *f) {
    size_t ncap = f->cap ? f->cap * 2 : 4096;
    slot *ns = rex_calloc(ncap, sizeof(slot));
    uint32_t *nu = rex_malloc(ncap / 2 * sizeof(uint32_t));
    for (size_t i = 0; i < f->n; i++) {
        const slot *o = &f->slots[f->used[i]];
        size_t j = o->key & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *o;
        nu[i] = (uint32_t)j;
    }
    rex_free(f->slots);
    rex_free(f->used);
    f->slots = ns;
    f->used = nu;
    f->cap = ncap;
}

static void feat_add(features *f, uint64_t h, float w) {
    if (h == 0)
        h = 1;
    if (2 * (f->n + 1) > f->cap)
        feat_grow(f);
    size_t j = h & (f->cap - 1);
    while (f->slots[j].key && f->slots[j].key != h)
        j = (j + 1) & (f->cap - 1);
    if (f->slots[j].key) {
        f->slots[j].tf++;
        return;
    }
    f->slots[j] = (slot){h, 1, w};
    f->used[f->n++] = (uint32_t)j;
}

static void on_token(void *ud, const char *tok, size_t len) {
    features *f = ud;
    feat_add(f, rex__kn_hash(tok, len, 'u'), 1.0f);
    if (f->prev_len) {
        char b[2 * TOK_MAX + 8];
        memcpy(b, f->prev, f->prev_len);
        b[f->prev_len] = ' ';
        memcpy(b + f->prev_len + 1, tok, len);
        feat_add(f, rex__kn_hash(b, f->prev_len + 1 + len, 'b'), 0.5f);
    }
    memcpy(f->prev, tok, len);
    f->prev_len = len;
    /* character trigrams of <tok> */
    size_t offs[TOK_MAX + 3], n = 0;
    char w[TOK_MAX + 4];
    w[0] = '<';
    memcpy(w + 1, tok, len);
    w[len + 1] = '>';
    size_t wl = len + 2;
    for (size_t p = 0; p < wl; n++) {
        offs[n] = p;
        p += (((unsigned char)w[p]) & 0x80) ? rex_utf8_seq_len((const unsigned char *)w + p, wl - p)
                                            : 1;
    }
    offs[n] = wl;
    if (n < 4)
        return; /* one code point: no trigrams */
    for (size_t i = 0; i + 3 <= n; i++)
        feat_add(f, rex__kn_hash(w + offs[i], offs[i + 3] - offs[i], 'c'), 0.25f);
}

/* One table per thread, freed when the thread exits. */
static pthread_key_t features_key;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static void features_free(void *p) {
    features *f = p;
    rex_free(f->slots);
    rex_free(f->used);
    rex_free(f);
}

static void features_key_init(void) {
    rex_assert(pthread_key_create(&features_key, features_free) == 0);
}

static features *thread_features(void) {
    pthread_once(&features_once, features_key_init);
    features *f = pthread_getspecific(features_key);
    if (!f) {
        f = rex_calloc(1, sizeof(*f));
        rex_assert(pthread_setspecific(features_key, f) == 0);
    }
    return f;
}

void rex__kn_embed_lex(const char *text, size_t len, float *out) {
    features *f = thread_features();
    f->n = 0;
    f->prev_len = 0;
    rex__kn_tokens(text, len, on_token, f);
    /* Sums in 32.32 fixed point: integer addition is exact and order-free, so the vector does
     * not depend on the order features were seen or stored in. */
    int64_t acc[REX_KN_DIMS];
    memset(acc, 0, sizeof(acc));
    for (size_t i = 0; i < f->n; i++) {
        slot *e = &f->slots[f->used[i]];
        double w = e->weight * sqrt((double)e->tf);
        int64_t fixed = llround(w * 4294967296.0);
        uint64_t h = e->key;
        size_t d = (size_t)((h & 0xffffffffULL) % REX_KN_DIMS);
        acc[d] += (h >> 63) ? -fixed : fixed;
        e->key = 0; /* clear for the next text */
    }
    if (f->cap > FEAT_KEEP) {
        rex_free(f->slots);
        rex_free(f->used);
        f->slots = NULL;
        f->used = NULL;
        f->cap = 0;
    }
    double norm = 0;
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        norm = fma((double)acc[i], (double)acc[i], norm);
    norm = sqrt(norm);
    for (size_t i = 0; i < REX_KN_DIMS; i++)
        out[i] = norm > 0 ? (float)((double)acc[i] / norm) : 0.0f;
}
