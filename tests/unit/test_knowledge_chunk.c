/* Chunking: windows, pages, section paths and offsets as the original (rex-behaviour 6.1, 6.2),
 * checked against the rows the original persisted (fixtures original-persisted-rows.json). */
#include "rextest.h"

#include <rex/knowledge.h>
#include <rex/rex.h>

#include "base/buf.h"

#include <stdint.h>
#include <time.h>

static rex_kn_chunks *chunk(const char *text, size_t len, int page_path) {
    struct rex_kn_chunk_opts o = {0, 0, page_path};
    rex_kn_chunks *c = NULL;
    CHECK_INT(rex_kn_chunk_text(text, len, &o, &c, NULL), 0);
    return c;
}

/* Collapses whitespace runs (ASCII, NBSP, U+2028) to one space and trims. */
static char *normalize(const char *s, size_t n) {
    rex_buf b;
    rex_buf_init(&b);
    int pending = 0;
    for (size_t i = 0; i < n;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t l = 0;
        if (*u == ' ' || (*u >= 9 && *u <= 13))
            l = 1;
        else if (u[0] == 0xC2 && i + 1 < n && u[1] == 0xA0)
            l = 2;
        else if (u[0] == 0xE2 && i + 2 < n && u[1] == 0x80 && u[2] == 0xA8)
            l = 3;
        if (l) {
            pending = b.len > 0;
            i += l;
            continue;
        }
        if (pending)
            rex_buf_addc(&b, ' ');
        pending = 0;
        rex_buf_addc(&b, s[i]);
        i++;
    }
    return rex_buf_steal(&b, NULL);
}

/* Every chunk's content is its raw span normalized, and is valid UTF-8. */
static void check_spans(const char *text, const rex_kn_chunks *c) {
    for (size_t i = 0; i < rex_kn_chunks_count(c); i++) {
        const rex_kn_chunk *ch = rex_kn_chunks_get(c, i);
        CHECK(ch->byte_end > ch->byte_start);
        char *n = normalize(text + ch->byte_start, ch->byte_end - ch->byte_start);
        CHECK_STR(n, ch->content);
        rex_free(n);
        CHECK_INT(rex_kn_utf8_check(ch->content, ch->content_len), ch->content_len);
        CHECK_INT(ch->index, i);
    }
}

/* Appends pseudo-words to b until it is exactly `len` bytes long (ASCII). */
static void fill(rex_buf *b, size_t len) {
    static const char *words[] = {"torsin", "brizen", "delka", "quar", "harlo", "mib", "tzer"};
    size_t k = 0;
    while (b->len + 8 < len) {
        rex_buf_addc(b, ' ');
        rex_buf_adds(b, words[k++ % 7]);
    }
    while (b->len < len)
        rex_buf_addc(b, 'x');
}

TEST(fixture_ingestion_rows) {
    /* The ingestion job's document (3045 characters, 5 pages, page 4 empty): the fixture keeps
     * each chunk's head, length and metadata; the rest is filler of the same lengths. */
    rex_buf d;
    rex_buf_init(&d);
    rex_buf p;
    rex_buf_init(&p);
    rex_buf_adds(&p, "# Intro Section 1 of document 7\ntorsinlen brizendelka deltzr");
    fill(&p, 1006);
    rex_buf_add(&d, p.data, p.len);
    rex_buf_addc(&d, '\f');
    p.len = 0;
    rex_buf_adds(&p, "PART 2 OVERVIEW\nharrantorsin tzranzen quarharlo tztersin mib");
    fill(&p, 999);
    rex_buf_add(&d, p.data, p.len);
    rex_buf_addc(&d, '\f');
    p.len = 0;
    rex_buf_adds(&p, "# Section 3 of document 7\nranborkatz stokabri quarmitervel t");
    fill(&p, 1000);
    rex_buf_add(&d, p.data, p.len);
    rex_buf_adds(&d, "\f\fshort final page with lowercase only");
    CHECK_INT(d.len, 3045);

    static const struct {
        int page;
        size_t start, end, tokens, len;
        const char *section, *head;
    } want[] = {
        {1, 0, 1006, 252, 1006, "Intro Section 1 of document 7",
         "# Intro Section 1 of document 7 torsinlen brizendelka deltzr"},
        {2, 1007, 2006, 250, 999, "PART 2 OVERVIEW",
         "PART 2 OVERVIEW harrantorsin tzranzen quarharlo tztersin mib"},
        {3, 2007, 3007, 250, 1000, "Section 3 of document 7",
         "# Section 3 of document 7 ranborkatz stokabri quarmitervel t"},
        {5, 3009, 3045, 9, 36, "page-5", "short final page with lowercase only"},
    };
    rex_kn_chunks *c = chunk(d.data, d.len, 0);
    CHECK_INT(rex_kn_chunks_count(c), 4);
    for (size_t i = 0; i < 4; i++) {
        const rex_kn_chunk *ch = rex_kn_chunks_get(c, i);
        CHECK_INT(ch->index, i);
        CHECK_INT(ch->page, want[i].page);
        CHECK_INT(ch->start, want[i].start);
        CHECK_INT(ch->end, want[i].end);
        CHECK_INT(ch->token_count, want[i].tokens);
        CHECK_INT(ch->content_len, want[i].len);
        CHECK_STR(ch->section, want[i].section);
        CHECK(!strncmp(ch->content, want[i].head, strlen(want[i].head)));
    }
    check_spans(d.data, c);
    rex_kn_chunks_free(c);
    rex_buf_free(&d);
    rex_buf_free(&p);
}

TEST(fixture_runtime_document) {
    /* w2-oracle-knowledge: the runtime ingestion's three chunks */
    const char *doc = "# Refund Policy\nCustomers may request a refund within 30 days of purchase."
                      "\fSHIPPING RULES\nOrders ship within 2 business days. Express shipping "
                      "costs extra.\fWARRANTY\nHardware carries a one year limited warranty "
                      "covering defects.";
    rex_kn_chunks *c = chunk(doc, strlen(doc), 1);
    CHECK_INT(rex_kn_chunks_count(c), 3);
    const rex_kn_chunk *a = rex_kn_chunks_get(c, 0), *b = rex_kn_chunks_get(c, 1);
    CHECK_STR(a->content, "# Refund Policy Customers may request a refund within 30 days of "
                          "purchase.");
    CHECK_STR(a->section, "Refund Policy");
    CHECK_INT(a->start, 0);
    CHECK_INT(a->end, 74);
    CHECK_STR(b->content,
              "SHIPPING RULES Orders ship within 2 business days. Express shipping costs extra.");
    CHECK_STR(b->section, "SHIPPING RULES");
    CHECK_INT(b->start, 75);
    CHECK_INT(b->end, 155);
    CHECK_INT(b->page, 2);
    CHECK_STR(rex_kn_chunks_get(c, 2)->section, "WARRANTY");
    CHECK_INT(rex_kn_chunks_get(c, 2)->page, 3);
    check_spans(doc, c);
    rex_kn_chunks_free(c);
}

TEST(windows_1200_200) {
    char t[2601];
    for (int i = 0; i < 2600; i++)
        t[i] = (char)('a' + i % 26);
    t[2600] = 0;
    rex_kn_chunks *c = chunk(t, 1201, 1);
    CHECK_INT(rex_kn_chunks_count(c), 2);
    CHECK_INT(rex_kn_chunks_get(c, 0)->start, 0);
    CHECK_INT(rex_kn_chunks_get(c, 0)->end, 1200);
    CHECK_INT(rex_kn_chunks_get(c, 1)->start, 1000);
    CHECK_INT(rex_kn_chunks_get(c, 1)->end, 1201);
    rex_kn_chunks_free(c);
    c = chunk(t, 2600, 1);
    CHECK_INT(rex_kn_chunks_count(c), 3);
    CHECK_INT(rex_kn_chunks_get(c, 1)->start, 1000);
    CHECK_INT(rex_kn_chunks_get(c, 1)->end, 2200);
    CHECK_INT(rex_kn_chunks_get(c, 2)->start, 2000);
    CHECK_INT(rex_kn_chunks_get(c, 2)->end, 2600);
    CHECK_INT(rex_kn_chunks_get(c, 2)->token_count, 150);
    check_spans(t, c);
    rex_kn_chunks_free(c);
}

TEST(offsets_point_into_raw_text) {
    const char *t = "  \t hello \n\n  world   \r\n";
    rex_kn_chunks *c = chunk(t, strlen(t), 1);
    CHECK_INT(rex_kn_chunks_count(c), 1);
    const rex_kn_chunk *ch = rex_kn_chunks_get(c, 0);
    CHECK_STR(ch->content, "hello world");
    CHECK_INT(ch->byte_start, 4);
    CHECK_INT(ch->byte_end, 19);
    CHECK_INT(ch->start, 4);
    CHECK_INT(ch->end, 19);
    CHECK_INT(ch->token_count, 3);
    rex_kn_chunks_free(c);

    /* runs collapse before windows are cut: 1300 words separated by 3 spaces */
    rex_buf b;
    rex_buf_init(&b);
    for (int i = 0; i < 700; i++)
        rex_buf_adds(&b, "ab   ");
    c = chunk(b.data, b.len, 1);
    CHECK_INT(rex_kn_chunks_count(c), 2); /* normalized length 2099: [0,1200), [1000,2099) */
    CHECK_INT(rex_kn_chunks_get(c, 0)->content_len, 1199); /* 1200 units minus trailing space */
    CHECK_INT(rex_kn_chunks_get(c, 1)->byte_start, 1000 / 3 * 5 + 1);
    check_spans(b.data, c);
    rex_kn_chunks_free(c);
    rex_buf_free(&b);
}

TEST(utf8_never_split) {
    /* 1199 ASCII letters then U+1F600 (two UTF-16 units at 1199..1201): the original would cut
     * the surrogate pair at 1200; we end the window before the emoji. */
    rex_buf b;
    rex_buf_init(&b);
    for (int i = 0; i < 1199; i++)
        rex_buf_addc(&b, 'a');
    rex_buf_adds(&b, "\xF0\x9F\x98\x80");
    for (int i = 0; i < 300; i++)
        rex_buf_adds(&b, "\xC3\xA9"); /* e-acute: 2 bytes, 1 unit */
    rex_kn_chunks *c = chunk(b.data, b.len, 1);
    CHECK_INT(rex_kn_chunks_count(c), 2);
    const rex_kn_chunk *a = rex_kn_chunks_get(c, 0), *n = rex_kn_chunks_get(c, 1);
    CHECK_INT(a->end, 1199);
    CHECK_INT(a->content_len, 1199);
    CHECK_INT(n->start, 999);
    CHECK_INT(n->end, 1199 + 2 + 300);
    CHECK_INT(n->byte_end, b.len);
    check_spans(b.data, c);
    rex_kn_chunks_free(c);

    /* two-byte letters count one unit each, as in JavaScript */
    b.len = 0;
    for (int i = 0; i < 1300; i++)
        rex_buf_adds(&b, "\xC3\xA9");
    c = chunk(b.data, b.len, 1);
    CHECK_INT(rex_kn_chunks_count(c), 2);
    CHECK_INT(rex_kn_chunks_get(c, 0)->end, 1200);
    CHECK_INT(rex_kn_chunks_get(c, 0)->content_len, 2400);
    CHECK_INT(rex_kn_chunks_get(c, 0)->token_count, 300);
    check_spans(b.data, c);
    rex_kn_chunks_free(c);

    /* Unicode whitespace (NBSP, U+2028, U+3000, U+FEFF) collapses like ASCII */
    const char *u = "\xEF\xBB\xBF x\xC2\xA0\xE2\x80\xA8y\xE3\x80\x80z ";
    c = chunk(u, strlen(u), 1);
    CHECK_INT(rex_kn_chunks_count(c), 1);
    CHECK_STR(rex_kn_chunks_get(c, 0)->content, "x y z");
    CHECK_INT(rex_kn_chunks_get(c, 0)->start, 2);
    CHECK_INT(rex_kn_chunks_get(c, 0)->end, 8);
    rex_kn_chunks_free(c);
    rex_buf_free(&b);
}

TEST(empty_whitespace_invalid_binary) {
    rex_kn_chunks *c = chunk("", 0, 1);
    CHECK_INT(rex_kn_chunks_count(c), 0);
    rex_kn_chunks_free(c);
    c = chunk(" \t\n\f\r\n\f  ", 9, 1);
    CHECK_INT(rex_kn_chunks_count(c), 0);
    rex_kn_chunks_free(c);

    size_t bad = 0;
    c = NULL;
    CHECK_INT(rex_kn_chunk_text("ok \xC3\x28 no", 8, NULL, &c, &bad), REX_EINVAL);
    CHECK_INT(bad, 3);
    CHECK(c == NULL);
    CHECK_INT(rex_kn_chunk_text("a\0b", 3, NULL, &c, &bad), REX_EINVAL);
    CHECK_INT(bad, 1);
    CHECK_INT(rex_kn_chunk_text("\xED\xA0\x80", 3, NULL, &c, &bad), REX_EINVAL); /* surrogate */
    CHECK_INT(rex_kn_chunk_text("abc\xF0\x9F", 5, NULL, &c, &bad), REX_EINVAL);  /* truncated */
    CHECK_INT(bad, 3);
    /* random binary junk is refused, never crashes */
    unsigned char junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    CHECK_INT(rex_kn_chunk_text((const char *)junk, sizeof(junk), NULL, &c, &bad), REX_EINVAL);
    struct rex_kn_chunk_opts o = {100, 100, 1};
    CHECK_INT(rex_kn_chunk_text("abc", 3, &o, &c, NULL), REX_EINVAL);
}

TEST(section_paths) {
    static const struct {
        const char *page;
        int page_path;
        const char *want;
    } cases[] = {
        {"\n\n   ## Heading two  \nbody", 1, "Heading two"},
        {"#\nbody text", 1, "page-1"},
        {"#\nbody text", 0, ""},
        {"###   \nbody text", 0, ""},
        {"body\n# later heading", 1, "later heading"}, /* non-matching lines are skipped */
        {"2024-01-01\nbody", 1, "2024-01-01"},         /* no letters counts as upper case (quirk) */
        {"-----\nbody", 1, "-----"},
        {"ABCD\nbody", 1, "page-1"}, /* under 5 characters */
        {"\xC3\x89T\xC3\x89 CHAUD\nbody", 1, "\xC3\x89T\xC3\x89 CHAUD"},
        {"\xC3\x89t\xC3\xA9 chaud\nbody", 1, "page-1"},
        {"  TITLE WITH SPACES  \r\nbody", 1, "TITLE WITH SPACES"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rex_kn_chunks *c = chunk(cases[i].page, strlen(cases[i].page), cases[i].page_path);
        CHECK_INT(rex_kn_chunks_count(c), 1);
        CHECK_STR(rex_kn_chunks_get(c, 0)->section, cases[i].want);
        rex_kn_chunks_free(c);
    }
    /* upper-case lines longer than 80 are not sections; headings are cut to 255 units */
    rex_buf b;
    rex_buf_init(&b);
    for (int i = 0; i < 81; i++)
        rex_buf_addc(&b, 'A');
    rex_buf_adds(&b, "\nbody\f# ");
    for (int i = 0; i < 300; i++)
        rex_buf_adds(&b, "\xC3\xA9");
    rex_kn_chunks *c = chunk(b.data, b.len, 1);
    CHECK_INT(rex_kn_chunks_count(c), 2);
    CHECK_STR(rex_kn_chunks_get(c, 0)->section, "page-1");
    CHECK_INT(rex_kn_chunks_get(c, 1)->section_len, 510);
    CHECK_INT(rex_kn_chunks_get(c, 1)->page, 2);
    rex_kn_chunks_free(c);
    rex_buf_free(&b);
}

TEST(document_of_50_mb) {
    size_t len = 50u << 20;
    char *t = rex_malloc(len);
    uint32_t x = 7;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        unsigned r = (x >> 16) % 64;
        t[i] = r < 9 ? ' ' : r == 9 ? '\n' : (char)('a' + r % 26);
    }
    for (size_t i = 100000; i < len; i += 1000000)
        t[i] = '\f';
    t[len - 1] = 'z';
    clock_t t0 = clock();
    rex_kn_chunks *c = chunk(t, len, 1);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    size_t n = rex_kn_chunks_count(c);
    CHECK(n > len / 1100 && n < len / 900);
    const rex_kn_chunk *last = rex_kn_chunks_get(c, n - 1);
    CHECK_INT(last->byte_end, len);
    CHECK_INT(last->end, len);
    printf("50 MB: %zu chunks in %.2f s\n", n, secs);
    rex_kn_chunks_free(c);
    rex_free(t);
}
