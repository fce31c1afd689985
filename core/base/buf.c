#include "base/buf.h"

#include <rex/rex.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void rex_buf_init(rex_buf *b) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void rex_buf_free(rex_buf *b) {
    rex_free(b->data);
    rex_buf_init(b);
}

void rex_buf_reserve(rex_buf *b, size_t extra) {
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = rex_realloc(b->data, cap);
    b->cap = cap;
}

void rex_buf_add(rex_buf *b, const void *p, size_t n) {
    rex_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void rex_buf_adds(rex_buf *b, const char *s) {
    rex_buf_add(b, s, strlen(s));
}

void rex_buf_addc(rex_buf *b, char c) {
    rex_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void rex_buf_printf(rex_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    rex_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

size_t rex_utf8_seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) {
        n = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void rex_buf_add_json_string(rex_buf *b, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    rex_buf_reserve(b, n + 2);
    rex_buf_addc(b, '"');
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            rex_buf_add(b, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t len = rex_utf8_seq_len(s + i, n - i);
            if (len == 0) {
                rex_buf_add(b, "\\ufffd", 6);
                i++;
            } else {
                rex_buf_add(b, s + i, len);
                i += len;
            }
            continue;
        }
        switch (c) {
        case '"':
            rex_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            rex_buf_add(b, "\\\\", 2);
            break;
        case '\n':
            rex_buf_add(b, "\\n", 2);
            break;
        case '\r':
            rex_buf_add(b, "\\r", 2);
            break;
        case '\t':
            rex_buf_add(b, "\\t", 2);
            break;
        case '\b':
            rex_buf_add(b, "\\b", 2);
            break;
        case '\f':
            rex_buf_add(b, "\\f", 2);
            break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rex_buf_add(b, e, 6);
        }
        }
        i++;
    }
    rex_buf_addc(b, '"');
}

char *rex_buf_steal(rex_buf *b, size_t *len) {
    if (!b->data)
        rex_buf_reserve(b, 0), b->data[0] = '\0';
    char *d = b->data;
    if (len)
        *len = b->len;
    rex_buf_init(b);
    return d;
}
