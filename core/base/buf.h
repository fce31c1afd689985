/* Growable byte buffer used across the core (internal). Always NUL-terminated. */
#ifndef REX_BASE_BUF_H
#define REX_BASE_BUF_H

#include <stddef.h>

typedef struct rex_buf {
    char *data;
    size_t len;
    size_t cap;
} rex_buf;

void rex_buf_init(rex_buf *b);
void rex_buf_free(rex_buf *b);
void rex_buf_reserve(rex_buf *b, size_t extra);
void rex_buf_add(rex_buf *b, const void *p, size_t n);
void rex_buf_adds(rex_buf *b, const char *s);
void rex_buf_addc(rex_buf *b, char c);
void rex_buf_printf(rex_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes included). Invalid UTF-8 bytes become U+FFFD. */
void rex_buf_add_json_string(rex_buf *b, const char *s, size_t n);
/* Takes the data out; the buffer is reset. Caller frees with rex_free. */
char *rex_buf_steal(rex_buf *b, size_t *len);

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid / truncated. */
size_t rex_utf8_seq_len(const unsigned char *s, size_t avail);

#endif
