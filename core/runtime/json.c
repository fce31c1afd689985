/* rex.json: the JSON codec used between C, Lua and Redis.
 *
 * Written here rather than taken from Debian's lua-cjson 2.1.0 because that version cannot keep
 * the distinctions a job worker must keep when it round-trips other programs' JSON: it prints
 * numbers with 14 significant digits (2^53 comes out as 9.007199254741e+15), it has no way to mark
 * an empty array (`[]` decodes to a table that encodes back as `{}`), and it passes invalid UTF-8
 * through into its output. Semantics here:
 *  - null is a light userdata NULL (rex.json.null, equal to cjson.null);
 *  - decoded arrays carry rex.json.array_mt, so `[]` encodes back as `[]`;
 *  - numbers: integers are printed exactly (as JavaScript prints them), others with the shortest
 *    representation that reads back to the same double; NaN and infinities are an error;
 *  - strings must be valid UTF-8 on both sides (an error names the byte offset); a lone surrogate
 *    in a \u escape decodes to U+FFFD;
 *  - nesting deeper than 1000 is an error (this also stops reference cycles);
 *  - a table with array_mt, or whose keys are exactly 1..n, is an array; any other table is an
 *    object, with number keys written as their decimal string (as JavaScript does).
 * Functions return the value, or nil and an error message; they raise only on wrong arguments. */
#include "runtime/json.h"

#include "base/buf.h"

#include <rex/rex.h>

#include <lauxlib.h>
#include <lua.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 1000

static char array_mt_key;

/* ---- encode -------------------------------------------------------------------------------- */

/* A table met again within one encode (execution snapshots share most of their sub-tables:
 * the trigger payload, retry outcomes, the wave plan) is copied from its first encoding in the
 * output instead of being walked again. Tables cannot change during an encode (no Lua code runs,
 * access is raw), so the copy is byte for byte what a second walk would give. An entry records
 * how deep the table nests, so a copy placed deeper still fails the depth limit as a walk would;
 * a table still being encoded (a cycle) has no entry yet. */
struct memo_ent {
    const void *t; /* NULL = free */
    size_t off, len;
    int height; /* deepest table depth below it, relative to its own */
};

enum { MEMO_MIN_LEN = 24, MEMO_MAX = 1 << 14 };

struct enc {
    lua_State *L;
    rex_buf b;
    struct memo_ent *memo; /* open addressing, NULL until the first entry */
    size_t memo_cap, memo_used;
    int deepest; /* deepest table depth reached in the table being encoded */
    char err[160];
};

static size_t memo_hash(const void *t, size_t cap) {
    uintptr_t x = (uintptr_t)t;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 7) & (cap - 1);
}

static struct memo_ent *memo_find(struct enc *e, const void *t) {
    if (!e->memo)
        return NULL;
    for (size_t i = memo_hash(t, e->memo_cap);; i = (i + 1) & (e->memo_cap - 1)) {
        if (e->memo[i].t == t)
            return &e->memo[i];
        if (!e->memo[i].t)
            return NULL;
    }
}

static void memo_put(struct enc *e, const void *t, size_t off, size_t len, int height) {
    if (e->memo_used * 2 >= e->memo_cap) {
        if (e->memo_used >= MEMO_MAX)
            return;
        size_t ncap = e->memo_cap ? e->memo_cap * 2 : 64;
        struct memo_ent *old = e->memo, *nm = rex_calloc(ncap, sizeof(*nm));
        for (size_t i = 0; i < e->memo_cap; i++) {
            if (!old[i].t)
                continue;
            size_t j = memo_hash(old[i].t, ncap);
            while (nm[j].t)
                j = (j + 1) & (ncap - 1);
            nm[j] = old[i];
        }
        rex_free(old);
        e->memo = nm;
        e->memo_cap = ncap;
    }
    size_t i = memo_hash(t, e->memo_cap);
    while (e->memo[i].t)
        i = (i + 1) & (e->memo_cap - 1);
    e->memo[i] = (struct memo_ent){t, off, len, height};
    e->memo_used++;
}

static int enc_value(struct enc *e, int idx, int depth);

/* Room for n more bytes (and the terminating NUL the buffer keeps). */
static inline char *room(rex_buf *b, size_t n) {
    if (b->len + n + 1 > b->cap)
        rex_buf_reserve(b, n);
    return b->data + b->len;
}

static inline void put_c(rex_buf *b, char c) {
    *room(b, 1) = c;
    b->len++;
}

static inline void put_n(rex_buf *b, const char *p, size_t n) {
    memcpy(room(b, n), p, n);
    b->len += n;
}

/* bytes copied as they are inside a JSON string: printable ASCII but '"' and '\\' */
static inline int plain_byte(unsigned char c) {
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Escapes as rex_buf_add_json_string does, checking UTF-8 in the same pass. */
static int enc_string(struct enc *e, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    rex_buf *b = &e->b;
    room(b, n + 2);
    b->data[b->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && plain_byte(s[run]))
            run++;
        if (run > i) {
            put_n(b, (const char *)s + i, run - i);
            i = run;
            if (i == n)
                break;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t l = rex_utf8_seq_len(s + i, n - i);
            if (!l) {
                snprintf(e->err, sizeof(e->err),
                         "cannot encode a string with invalid UTF-8 (byte %zu)", i + 1);
                return -1;
            }
            put_n(b, (const char *)s + i, l);
            i += l;
            continue;
        }
        char esc[6] = {'\\', 0, '0', '0', hex[c >> 4], hex[c & 15]};
        size_t el = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u', el = 6;
        }
        put_n(b, esc, el);
        i++;
    }
    put_c(b, '"');
    b->data[b->len] = '\0';
    return 0;
}

void rex_json_format_number(rex_buf *b, double d) {
    char tmp[40];
    if (d == floor(d) && fabs(d) < 1e21) {
        if (d == 0) {
            rex_buf_addc(b, '0'); /* -0 prints as 0, as in JavaScript */
            return;
        }
        if (fabs(d) < 9.2e18) {
            long long v = (long long)d;
            unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            char *p = tmp + sizeof(tmp);
            do {
                *--p = (char)('0' + u % 10);
                u /= 10;
            } while (u);
            if (v < 0)
                *--p = '-';
            rex_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
            return;
        }
        snprintf(tmp, sizeof(tmp), "%.0f", d);
        rex_buf_adds(b, tmp);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    rex_buf_adds(b, tmp);
}

static int enc_number(struct enc *e, double d) {
    if (isnan(d) || isinf(d)) {
        snprintf(e->err, sizeof(e->err), "cannot encode %s", isnan(d) ? "NaN" : "an infinity");
        return -1;
    }
    rex_json_format_number(&e->b, d);
    return 0;
}

/* Returns n > 0 if the table at idx is a non-empty sequence 1..n, 0 if it is empty, -1 if not
 * an array. */
static long table_array_len(lua_State *L, int idx) {
    size_t n = lua_objlen(L, idx);
    long count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Number k = lua_tonumber(L, -1);
        if (k != floor(k) || k < 1 || k > (lua_Number)n) {
            lua_pop(L, 1);
            return -1;
        }
        count++;
    }
    return (size_t)count == n ? (long)n : -1;
}

static int has_array_mt(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx))
        return 0;
    lua_pushlightuserdata(L, &array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    int yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

static int enc_table_walk(struct enc *e, int idx, int depth);

static int enc_table(struct enc *e, int idx, int depth) {
    const void *t = lua_topointer(e->L, idx);
    struct memo_ent *m = memo_find(e, t);
    if (m && depth + m->height < JSON_MAX_DEPTH) {
        rex_buf_reserve(&e->b, m->len);
        memcpy(e->b.data + e->b.len, e->b.data + m->off, m->len);
        e->b.len += m->len;
        e->b.data[e->b.len] = '\0';
        if (depth + m->height > e->deepest)
            e->deepest = depth + m->height;
        return 0;
    }
    int outer = e->deepest;
    e->deepest = depth;
    size_t off = e->b.len;
    int rc = enc_table_walk(e, idx, depth);
    int height = e->deepest - depth;
    if (e->deepest < outer)
        e->deepest = outer;
    if (!rc && !m && e->b.len - off >= MEMO_MIN_LEN)
        memo_put(e, t, off, e->b.len - off, height);
    return rc;
}

static int enc_table_walk(struct enc *e, int idx, int depth) {
    lua_State *L = e->L;
    long n;
    if (has_array_mt(L, idx))
        n = (long)lua_objlen(L, idx);
    else
        n = table_array_len(L, idx);
    if (n >= 0 && (n > 0 || has_array_mt(L, idx))) {
        put_c(&e->b, '[');
        for (long i = 1; i <= n; i++) {
            if (i > 1)
                put_c(&e->b, ',');
            lua_rawgeti(L, idx, (int)i);
            int rc = enc_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            if (rc)
                return rc;
        }
        put_c(&e->b, ']');
        return 0;
    }
    put_c(&e->b, '{');
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (!first)
            put_c(&e->b, ',');
        first = 0;
        if (kt == LUA_TSTRING) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            if (enc_string(e, k, kl)) {
                lua_pop(L, 2);
                return -1;
            }
        } else if (kt == LUA_TNUMBER) {
            put_c(&e->b, '"');
            if (enc_number(e, lua_tonumber(L, -2))) {
                lua_pop(L, 2);
                return -1;
            }
            put_c(&e->b, '"');
        } else {
            snprintf(e->err, sizeof(e->err), "cannot encode a table key of type %s",
                     lua_typename(L, kt));
            lua_pop(L, 2);
            return -1;
        }
        put_c(&e->b, ':');
        int rc = enc_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (rc) {
            lua_pop(L, 1);
            return rc;
        }
    }
    put_c(&e->b, '}');
    return 0;
}

static int enc_value(struct enc *e, int idx, int depth) {
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        put_n(&e->b, "null", 4);
        return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put_n(&e->b, "true", 4);
        else
            put_n(&e->b, "false", 5);
        return 0;
    case LUA_TNUMBER:
        return enc_number(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return enc_string(e, s, n);
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            put_n(&e->b, "null", 4);
            return 0;
        }
        break;
    case LUA_TTABLE:
        if (depth >= JSON_MAX_DEPTH) {
            snprintf(e->err, sizeof(e->err),
                     "cannot encode: nesting deeper than %d (or a table that contains itself)",
                     JSON_MAX_DEPTH);
            return -1;
        }
        if (!lua_checkstack(L, 8)) {
            snprintf(e->err, sizeof(e->err), "cannot encode: Lua stack exhausted");
            return -1;
        }
        return enc_table(e, idx, depth);
    default:
        break;
    }
    snprintf(e->err, sizeof(e->err), "cannot encode a value of type %s", luaL_typename(L, idx));
    return -1;
}

char *rex_json_encode_lua(lua_State *L, int idx, size_t *len, char *err, size_t errlen) {
    struct enc e;
    e.L = L;
    e.err[0] = '\0';
    e.memo = NULL;
    e.memo_cap = e.memo_used = 0;
    e.deepest = 0;
    rex_buf_init(&e.b);
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    int rc = enc_value(&e, idx, 0);
    rex_free(e.memo);
    if (!rc)
        *room(&e.b, 0) = '\0';
    if (rc) {
        rex_buf_free(&e.b);
        if (err && errlen)
            snprintf(err, errlen, "%s", e.err);
        return NULL;
    }
    return rex_buf_steal(&e.b, len);
}

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    char err[160];
    size_t n;
    char *s = rex_json_encode_lua(L, 1, &n, err, sizeof(err));
    if (!s) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, s, n);
    rex_free(s);
    return 1;
}

/* ---- decode -------------------------------------------------------------------------------- */

struct dec {
    lua_State *L;
    const char *s;
    size_t n;
    size_t i;
    char err[160];
    rex_buf tmp;
};

static int dec_fail(struct dec *d, const char *what) {
    if (d->i >= d->n)
        snprintf(d->err, sizeof(d->err), "invalid JSON: %s at end of input", what);
    else
        snprintf(d->err, sizeof(d->err), "invalid JSON: %s at byte %zu", what, d->i + 1);
    return -1;
}

static void skip_ws(struct dec *d) {
    while (d->i < d->n) {
        char c = d->s[d->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        d->i++;
    }
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(rex_buf *b, unsigned cp) {
    char o[4];
    if (cp < 0x80) {
        rex_buf_addc(b, (char)cp);
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        rex_buf_add(b, o, 2);
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        rex_buf_add(b, o, 3);
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        rex_buf_add(b, o, 4);
    }
}

/* Parses a string at d->i (which is on the opening quote) and pushes it. */
static int dec_string(struct dec *d) {
    d->i++;
    size_t start = d->i;
    /* fast path: no escapes */
    while (d->i < d->n) {
        unsigned char c = (unsigned char)d->s[d->i];
        if (c == '"') {
            lua_pushlstring(d->L, d->s + start, d->i - start);
            d->i++;
            return 0;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return dec_fail(d, "control character in string");
        if (c >= 0x80) {
            size_t l = rex_utf8_seq_len((const unsigned char *)d->s + d->i, d->n - d->i);
            if (!l)
                return dec_fail(d, "invalid UTF-8");
            d->i += l;
        } else {
            d->i++;
        }
    }
    rex_buf *b = &d->tmp;
    b->len = 0;
    rex_buf_add(b, d->s + start, d->i - start);
    while (d->i < d->n) {
        unsigned char c = (unsigned char)d->s[d->i];
        if (c == '"') {
            lua_pushlstring(d->L, b->data, b->len);
            d->i++;
            return 0;
        }
        if (c < 0x20)
            return dec_fail(d, "control character in string");
        if (c >= 0x80) {
            size_t l = rex_utf8_seq_len((const unsigned char *)d->s + d->i, d->n - d->i);
            if (!l)
                return dec_fail(d, "invalid UTF-8");
            rex_buf_add(b, d->s + d->i, l);
            d->i += l;
            continue;
        }
        if (c != '\\') {
            rex_buf_addc(b, (char)c);
            d->i++;
            continue;
        }
        if (d->i + 1 >= d->n)
            return dec_fail(d, "unterminated escape");
        char e = d->s[d->i + 1];
        d->i += 2;
        switch (e) {
        case '"':
            rex_buf_addc(b, '"');
            break;
        case '\\':
            rex_buf_addc(b, '\\');
            break;
        case '/':
            rex_buf_addc(b, '/');
            break;
        case 'b':
            rex_buf_addc(b, '\b');
            break;
        case 'f':
            rex_buf_addc(b, '\f');
            break;
        case 'n':
            rex_buf_addc(b, '\n');
            break;
        case 'r':
            rex_buf_addc(b, '\r');
            break;
        case 't':
            rex_buf_addc(b, '\t');
            break;
        case 'u': {
            unsigned cp;
            if (d->i + 4 > d->n || hex4(d->s + d->i, &cp))
                return dec_fail(d, "bad \\u escape");
            d->i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (d->i + 6 <= d->n && d->s[d->i] == '\\' && d->s[d->i + 1] == 'u' &&
                    hex4(d->s + d->i + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    d->i += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            put_utf8(b, cp);
            break;
        }
        default:
            d->i -= 1;
            return dec_fail(d, "bad escape");
        }
    }
    return dec_fail(d, "unterminated string");
}

static int dec_number(struct dec *d) {
    size_t st = d->i;
    const char *s = d->s;
    if (d->i < d->n && s[d->i] == '-')
        d->i++;
    if (d->i >= d->n)
        return dec_fail(d, "bad number");
    if (s[d->i] == '0') {
        d->i++;
    } else if (s[d->i] >= '1' && s[d->i] <= '9') {
        while (d->i < d->n && s[d->i] >= '0' && s[d->i] <= '9')
            d->i++;
    } else {
        return dec_fail(d, "bad number");
    }
    if (d->i < d->n && s[d->i] == '.') {
        d->i++;
        size_t f = d->i;
        while (d->i < d->n && s[d->i] >= '0' && s[d->i] <= '9')
            d->i++;
        if (d->i == f)
            return dec_fail(d, "bad number");
    }
    if (d->i < d->n && (s[d->i] == 'e' || s[d->i] == 'E')) {
        d->i++;
        if (d->i < d->n && (s[d->i] == '+' || s[d->i] == '-'))
            d->i++;
        size_t f = d->i;
        while (d->i < d->n && s[d->i] >= '0' && s[d->i] <= '9')
            d->i++;
        if (d->i == f)
            return dec_fail(d, "bad number");
    }
    char tmp[64];
    size_t len = d->i - st;
    double v;
    if (len < sizeof(tmp)) {
        memcpy(tmp, s + st, len);
        tmp[len] = '\0';
        v = strtod(tmp, NULL);
    } else {
        char *big = rex_strndup(s + st, len);
        v = strtod(big, NULL);
        rex_free(big);
    }
    lua_pushnumber(d->L, v);
    return 0;
}

static int dec_value(struct dec *d, int depth);

static int lit(struct dec *d, const char *w, size_t n) {
    if (d->n - d->i >= n && memcmp(d->s + d->i, w, n) == 0) {
        d->i += n;
        return 1;
    }
    return 0;
}

static int dec_value(struct dec *d, int depth) {
    lua_State *L = d->L;
    skip_ws(d);
    if (d->i >= d->n)
        return dec_fail(d, "unexpected end");
    char c = d->s[d->i];
    if ((c == '{' || c == '[') && depth >= JSON_MAX_DEPTH) {
        snprintf(d->err, sizeof(d->err), "invalid JSON: nesting deeper than %d", JSON_MAX_DEPTH);
        return -1;
    }
    switch (c) {
    case '{': {
        if (!lua_checkstack(L, 6))
            return dec_fail(d, "Lua stack exhausted");
        d->i++;
        lua_newtable(L);
        skip_ws(d);
        if (d->i < d->n && d->s[d->i] == '}') {
            d->i++;
            return 0;
        }
        for (;;) {
            skip_ws(d);
            if (d->i >= d->n || d->s[d->i] != '"')
                return dec_fail(d, "expected a string key");
            if (dec_string(d))
                return -1;
            skip_ws(d);
            if (d->i >= d->n || d->s[d->i] != ':')
                return dec_fail(d, "expected ':'");
            d->i++;
            if (dec_value(d, depth + 1))
                return -1;
            lua_rawset(L, -3);
            skip_ws(d);
            if (d->i < d->n && d->s[d->i] == ',') {
                d->i++;
                continue;
            }
            if (d->i < d->n && d->s[d->i] == '}') {
                d->i++;
                return 0;
            }
            return dec_fail(d, "expected ',' or '}'");
        }
    }
    case '[': {
        if (!lua_checkstack(L, 6))
            return dec_fail(d, "Lua stack exhausted");
        d->i++;
        lua_newtable(L);
        lua_pushlightuserdata(L, &array_mt_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_setmetatable(L, -2);
        skip_ws(d);
        if (d->i < d->n && d->s[d->i] == ']') {
            d->i++;
            return 0;
        }
        int k = 1;
        for (;;) {
            if (dec_value(d, depth + 1))
                return -1;
            lua_rawseti(L, -2, k++);
            skip_ws(d);
            if (d->i < d->n && d->s[d->i] == ',') {
                d->i++;
                continue;
            }
            if (d->i < d->n && d->s[d->i] == ']') {
                d->i++;
                return 0;
            }
            return dec_fail(d, "expected ',' or ']'");
        }
    }
    case '"':
        return dec_string(d);
    case 't':
        if (lit(d, "true", 4)) {
            lua_pushboolean(L, 1);
            return 0;
        }
        break;
    case 'f':
        if (lit(d, "false", 5)) {
            lua_pushboolean(L, 0);
            return 0;
        }
        break;
    case 'n':
        if (lit(d, "null", 4)) {
            lua_pushlightuserdata(L, NULL);
            return 0;
        }
        break;
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return dec_number(d);
    }
    return dec_fail(d, "unexpected character");
}

int rex_json_decode_lua(lua_State *L, const char *s, size_t n, char *err, size_t errlen) {
    struct dec d;
    d.L = L;
    d.s = s;
    d.n = n;
    d.i = 0;
    d.err[0] = '\0';
    rex_buf_init(&d.tmp);
    int top = lua_gettop(L);
    int rc = dec_value(&d, 0);
    if (rc == 0) {
        skip_ws(&d);
        if (d.i != d.n)
            rc = dec_fail(&d, "unexpected data after the value");
    }
    rex_buf_free(&d.tmp);
    if (rc) {
        lua_settop(L, top);
        if (err && errlen)
            snprintf(err, errlen, "%s", d.err);
        return REX_EINVAL;
    }
    return 0;
}

static int l_decode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char err[160];
    if (rex_json_decode_lua(L, s, n, err, sizeof(err))) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* rex.json.array(t?): marks t (or a new table) as an array and returns it. */
static int l_array(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
    }
    lua_pushlightuserdata(L, &array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_is_array(lua_State *L) {
    lua_pushboolean(L, lua_type(L, 1) == LUA_TTABLE && has_array_mt(L, 1));
    return 1;
}

int rex_json_open(lua_State *L) {
    lua_pushlightuserdata(L, &array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushstring(L, "array");
        lua_setfield(L, -2, "__name");
        lua_pushlightuserdata(L, &array_mt_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    int mt = lua_gettop(L);
    static const luaL_Reg fns[] = {{"encode", l_encode},
                                   {"decode", l_decode},
                                   {"array", l_array},
                                   {"is_array", l_is_array},
                                   {NULL, NULL}};
    lua_newtable(L);
    luaL_register(L, NULL, fns);
    lua_pushvalue(L, mt);
    lua_setfield(L, -2, "array_mt");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_remove(L, mt);
    return 1;
}
