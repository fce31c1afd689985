/* Chunking as the original's chunkDocumentByPage / chunkText (rex-behaviour 6.1, 6.2).
 *
 * Pages are split on form feed; each page is normalized (whitespace runs -> one space, trimmed)
 * and cut into windows of `size` units with `overlap` units of overlap (stride size - overlap).
 *
 * Units: the original counts JavaScript UTF-16 code units. We count the same units, so every
 * window, content length and token count is identical to the original's for any text, except
 * where the original would cut a surrogate pair in half (a code point outside the BMP straddling a
 * window edge): there the edge moves one unit earlier so the code point stays whole (never split a
 * code point). The normalized page is never materialized: a cursor walks the raw page and yields
 * normalized characters, which also gives each chunk its span in the raw text, so chunk offsets
 * point into the stored document (the original's mixed normalized/raw offsets are a bug, 9.26). */
#include "knowledge/kn.h"

#include "base/buf.h"

#include <rex/rex.h>

#include <stdint.h>
#include <string.h>

struct rex_kn_chunks {
    rex_kn_chunk *v;
    size_t n, cap;
    char *arena;
};

/* Position in the raw text, in normalized-text units (u) and raw bytes / raw UTF-16 units. */
typedef struct {
    size_t p;  /* raw byte */
    size_t ru; /* raw UTF-16 units */
    size_t u;  /* normalized UTF-16 units within the page */
} cursor;

size_t rex_kn_utf8_check(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] >= 0x20 && s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] == 0)
            return i;
        size_t l = rex_utf8_seq_len(s + i, len - i);
        if (!l)
            return i;
        i += l;
    }
    return len;
}

static size_t cp_units(uint32_t cp) {
    return cp >= 0x10000 ? 2 : 1;
}

/* The next normalized character after c, into *nx; *space tells whether it is a collapsed
 * whitespace run. Returns 0 at the end of the normalized page (trailing whitespace is trimmed). */
static inline int peek(const unsigned char *t, size_t pe, const cursor *c, cursor *nx, int *space) {
    if (c->p >= pe)
        return 0;
    unsigned char b = t[c->p];
    if (b > 0x20 && b < 0x80) { /* fast path: printable ASCII */
        nx->p = c->p + 1;
        nx->ru = c->ru + 1;
        nx->u = c->u + 1;
        *space = 0;
        return 1;
    }
    uint32_t cp;
    size_t l = rex__kn_decode(t + c->p, &cp);
    if (!rex__kn_is_space(cp)) {
        nx->p = c->p + l;
        nx->ru = c->ru + cp_units(cp);
        nx->u = c->u + cp_units(cp);
        *space = 0;
        return 1;
    }
    size_t p = c->p, ru = c->ru;
    while (p < pe) {
        l = rex__kn_decode(t + p, &cp);
        if (!rex__kn_is_space(cp))
            break;
        p += l;
        ru += 1; /* every whitespace code point is in the BMP */
    }
    if (p >= pe)
        return 0;
    nx->p = p;
    nx->ru = ru;
    nx->u = c->u + 1;
    *space = 1;
    return 1;
}

static void push_chunk(rex_kn_chunks *cs, const rex_kn_chunk *ch) {
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 16;
        cs->v = rex_realloc(cs->v, cs->cap * sizeof(*cs->v));
    }
    cs->v[cs->n++] = *ch;
}

/* JavaScript-trimmed [*b, *e) of a line. */
static void trim_span(const unsigned char *t, size_t *b, size_t *e) {
    uint32_t cp;
    while (*b < *e) {
        size_t l = rex__kn_decode(t + *b, &cp);
        if (!rex__kn_is_space(cp))
            break;
        *b += l;
    }
    while (*e > *b) {
        size_t k = *e - 1;
        while (k > *b && (t[k] & 0xC0) == 0x80)
            k--;
        rex__kn_decode(t + k, &cp);
        if (!rex__kn_is_space(cp))
            break;
        *e = k;
    }
}

/* Bytes of [b, e) that fit in max UTF-16 units without splitting a code point; *units gets the
 * units of the whole span when it fits. */
static size_t cut_units(const unsigned char *t, size_t b, size_t e, size_t max, size_t *units) {
    size_t u = 0, p = b;
    while (p < e) {
        uint32_t cp;
        size_t l = rex__kn_decode(t + p, &cp);
        if (u + cp_units(cp) > max)
            break;
        u += cp_units(cp);
        p += l;
    }
    if (units)
        *units = u;
    return p - b;
}

/* Section path of a raw page (6.2) appended to arena; returns its length. */
static size_t section_path(const unsigned char *t, size_t pb, size_t pe, int page,
                           int empty_heading_page_path, rex_buf *arena) {
    size_t ls = pb;
    while (ls <= pe) {
        size_t le = ls;
        while (le < pe && t[le] != '\n')
            le++;
        size_t b = ls, e = le;
        trim_span(t, &b, &e);
        if (b < e) {
            if (t[b] == '#') {
                while (b < e && t[b] == '#')
                    b++;
                trim_span(t, &b, &e); /* leading whitespace after the # run; the end is trimmed */
                size_t n = cut_units(t, b, e, 255, NULL);
                if (n == 0 && empty_heading_page_path)
                    break;
                rex_buf_add(arena, t + b, n);
                return n;
            }
            size_t units = 0, n = cut_units(t, b, e, 81, &units);
            if (n == e - b && units >= 5 && units <= 80) {
                int upper = 1;
                for (size_t p = b; p < e && upper;) {
                    uint32_t cp;
                    p += rex__kn_decode(t + p, &cp);
                    if (rex__kn_upper_of(cp))
                        upper = 0;
                }
                if (upper) {
                    rex_buf_add(arena, t + b, e - b);
                    return e - b;
                }
            }
        }
        ls = le + 1;
    }
    size_t before = arena->len;
    rex_buf_printf(arena, "page-%d", page);
    return arena->len - before;
}

static void chunk_page(const unsigned char *t, size_t pb, size_t pe, size_t page_ru, int page,
                       size_t size, size_t overlap, int empty_heading_page_path, rex_kn_chunks *cs,
                       rex_buf *arena) {
    cursor s = {pb, page_ru, 0}, nx;
    int space;
    /* leading whitespace is trimmed: start at the first non-space character */
    while (s.p < pe) {
        uint32_t cp;
        size_t l = rex__kn_decode(t + s.p, &cp);
        if (!rex__kn_is_space(cp))
            break;
        s.p += l;
        s.ru += 1;
    }
    if (s.p >= pe)
        return; /* empty page: no chunks, the number is still consumed */
    size_t sec_off = arena->len;
    size_t sec_len = section_path(t, pb, pe, page, empty_heading_page_path, arena);
    rex_buf_addc(arena, '\0');

    for (;;) {
        /* One walk per window: builds the content (normalized [s, e) trimmed) with its raw span,
         * finds the end e (the last code point boundary <= s + size) and remembers the last
         * boundaries <= s + size - overlap, where the next window starts. */
        size_t limit = s.u + size, tgt = limit - overlap;
        size_t coff = arena->len, first_u = 0, last_u = 0;
        size_t rb = 0, rbu = 0, re = 0, reu = 0;
        int have = 0;
        cursor c = s, mark = s, before_mark = s;
        size_t span = SIZE_MAX; /* start of the raw bytes being copied verbatim */
        /* (c.u == s.u: a window narrower than one code point still makes progress) */
        while (peek(t, pe, &c, &nx, &space) && (nx.u <= limit || c.u == s.u)) {
            if (space) {
                if (span != SIZE_MAX)
                    rex_buf_add(arena, t + span, c.p - span);
                span = SIZE_MAX;
                if (have)
                    rex_buf_addc(arena, ' ');
            } else {
                /* a non-space character starts exactly at c.p */
                if (!have) {
                    have = 1;
                    rb = c.p;
                    rbu = c.ru;
                    first_u = c.u;
                }
                if (span == SIZE_MAX)
                    span = c.p;
                re = nx.p;
                reu = nx.ru;
                last_u = nx.u;
            }
            c = nx;
            if (c.u <= tgt) {
                before_mark = mark;
                mark = c;
            }
        }
        cursor e = c;
        if (span != SIZE_MAX)
            rex_buf_add(arena, t + span, c.p - span);
        if (have) {
            /* a collapsed space at the window's end is trimmed */
            size_t clen = arena->len - coff;
            while (clen && arena->data[coff + clen - 1] == ' ')
                clen--;
            arena->len = coff + clen;
            rex_buf_addc(arena, '\0');
            rex_kn_chunk ch = {0};
            ch.index = cs->n;
            ch.page = page;
            ch.start = rbu;
            ch.end = reu;
            ch.byte_start = rb;
            ch.byte_end = re;
            ch.token_count = (last_u - first_u + 3) / 4;
            ch.content = (const char *)(uintptr_t)coff; /* fixed up to pointers at the end */
            ch.content_len = clen;
            ch.section = (const char *)(uintptr_t)sec_off;
            ch.section_len = sec_len;
            push_chunk(cs, &ch);
        } else {
            arena->len = coff;
        }
        if (!peek(t, pe, &e, &nx, &space))
            break; /* end >= length */
        /* next start = the last boundary <= e - overlap: e is limit, or one unit less when a
         * surrogate pair straddled the limit, and then the boundary before the mark is it */
        size_t target = e.u > overlap ? e.u - overlap : 0;
        cursor ns = mark.u <= target ? mark : before_mark;
        if (ns.u <= s.u)
            ns = e;
        s = ns;
    }
}

int rex_kn_chunk_text(const char *text, size_t len, const struct rex_kn_chunk_opts *opts,
                      rex_kn_chunks **out, size_t *bad_offset) {
    size_t size = opts && opts->size ? opts->size : 1200;
    size_t overlap = 200;
    if (opts && opts->overlap)
        overlap = opts->overlap == REX_KN_NO_OVERLAP ? 0 : opts->overlap;
    int page_path = opts ? opts->empty_heading_page_path : 1;
    if (size < 2 || overlap >= size || (!text && len))
        return REX_EINVAL;
    size_t bad = rex_kn_utf8_check(text, len);
    if (bad < len) {
        if (bad_offset)
            *bad_offset = bad;
        return REX_EINVAL;
    }
    const unsigned char *t = (const unsigned char *)text;
    rex_kn_chunks *cs = rex_calloc(1, sizeof(*cs));
    rex_buf arena;
    rex_buf_init(&arena);
    size_t pb = 0, ru = 0;
    int page = 1;
    for (;;) {
        const unsigned char *ff = len > pb ? memchr(t + pb, '\f', len - pb) : NULL;
        size_t pe = ff ? (size_t)(ff - t) : len;
        chunk_page(t, pb, pe, ru, page, size, overlap, page_path, cs, &arena);
        if (!ff)
            break;
        /* raw UTF-16 units of the page plus the form feed */
        for (size_t p = pb; p < pe;) {
            uint32_t cp;
            p += rex__kn_decode(t + p, &cp);
            ru += cp_units(cp);
        }
        ru += 1;
        pb = pe + 1;
        page++;
    }
    size_t alen;
    cs->arena = rex_buf_steal(&arena, &alen);
    for (size_t i = 0; i < cs->n; i++) {
        cs->v[i].content = cs->arena + (uintptr_t)cs->v[i].content;
        cs->v[i].section = cs->arena + (uintptr_t)cs->v[i].section;
    }
    *out = cs;
    return 0;
}

size_t rex_kn_chunks_count(const rex_kn_chunks *c) {
    return c ? c->n : 0;
}

const rex_kn_chunk *rex_kn_chunks_get(const rex_kn_chunks *c, size_t i) {
    return c && i < c->n ? &c->v[i] : NULL;
}

void rex_kn_chunks_free(rex_kn_chunks *c) {
    if (!c)
        return;
    rex_free(c->v);
    rex_free(c->arena);
    rex_free(c);
}
