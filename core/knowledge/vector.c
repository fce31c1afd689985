/* The knowledge_chunks.embedding_vector text form (rex-behaviour 6.3).
 *
 * Writing: `[` + values joined by `,` + `]`, non-finite values dropped, each value rounded to 8
 * decimals as JavaScript's Math.round(v * 1e8) / 1e8 (half up) and printed in JavaScript's
 * shortest form (Number.prototype.toString: 0.5, -1, 5e-8, never -0). Reading: text starting
 * with `[` and ending with `]` holding comma-separated numbers; anything else is refused, and
 * the caller falls back to the jsonb `embedding` as the original did. */
#include "knowledge/kn.h"

#include "base/buf.h"

#include <rex/rex.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends d as JavaScript's Number.prototype.toString would (d finite). */
static void add_js_number(rex_buf *b, double d) {
    if (d == 0) {
        rex_buf_addc(b, '0');
        return;
    }
    char e[40];
    int p = 0;
    for (; p < 17; p++) { /* shortest digits that read back as d */
        snprintf(e, sizeof(e), "%.*e", p, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e = [-]D[.DDD]e[+-]XX: split into sign, digits and exponent */
    const char *s = e;
    int neg = *s == '-';
    if (neg)
        s++;
    char digits[24];
    int k = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[k++] = *s;
    int x = atoi(s + 1);
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int n = x + 1; /* position of the decimal point */
    if (neg)
        rex_buf_addc(b, '-');
    if (k <= n && n <= 21) {
        rex_buf_add(b, digits, (size_t)k);
        for (int i = k; i < n; i++)
            rex_buf_addc(b, '0');
    } else if (0 < n && n <= 21) {
        rex_buf_add(b, digits, (size_t)n);
        rex_buf_addc(b, '.');
        rex_buf_add(b, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        rex_buf_adds(b, "0.");
        for (int i = 0; i < -n; i++)
            rex_buf_addc(b, '0');
        rex_buf_add(b, digits, (size_t)k);
    } else {
        rex_buf_addc(b, digits[0]);
        if (k > 1) {
            rex_buf_addc(b, '.');
            rex_buf_add(b, digits + 1, (size_t)(k - 1));
        }
        rex_buf_printf(b, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
}

char *rex_kn_vector_literal(const double *v, size_t n, size_t *len) {
    rex_buf b;
    rex_buf_init(&b);
    rex_buf_addc(&b, '[');
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        /* Math.round(v * 1e8) / 1e8: the nearest integer, halves up (x - floor(x) is exact) */
        double x = v[i] * 1e8, f = floor(x);
        double r = (x - f >= 0.5 ? f + 1 : f) / 1e8;
        if (!isfinite(r))
            continue;
        if (!first)
            rex_buf_addc(&b, ',');
        first = 0;
        add_js_number(&b, r);
    }
    rex_buf_addc(&b, ']');
    return rex_buf_steal(&b, len);
}

static int is_ws(char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

int rex_kn_vector_parse(const char *s, size_t len, float *out, size_t max, size_t *n) {
    *n = 0;
    size_t b = 0, e = len;
    while (b < e && is_ws(s[b]))
        b++;
    while (e > b && is_ws(s[e - 1]))
        e--;
    if (e - b < 2 || s[b] != '[' || s[e - 1] != ']')
        return REX_EINVAL;
    b++, e--; /* inside the brackets */
    size_t k = b;
    while (k < e && is_ws(s[k]))
        k++;
    if (k == e)
        return 0; /* [] */
    size_t count = 0;
    for (size_t pos = b;;) {
        size_t j = pos;
        while (j < e && s[j] != ',')
            j++;
        size_t x = pos, y = j;
        while (x < y && is_ws(s[x]))
            x++;
        while (y > x && is_ws(s[y - 1]))
            y--;
        char num[64];
        if (y == x || y - x >= sizeof(num) || !strchr("-0123456789", s[x]))
            return REX_EINVAL;
        memcpy(num, s + x, y - x);
        num[y - x] = '\0';
        char *end;
        double d = strtod(num, &end);
        if (*end)
            return REX_EINVAL;
        if (isfinite(d)) {
            if (count >= max)
                return REX_EINVAL;
            out[count++] = (float)d;
        }
        if (j == e)
            break;
        pos = j + 1;
    }
    *n = count;
    return 0;
}
