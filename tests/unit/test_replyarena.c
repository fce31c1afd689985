/* Replies built in an arena (queue/replyarena.h) have the same shape as hiredis's own objects,
 * replies of any size come and go one after another on one arena, and a reply still being built
 * keeps the arena alive when its owner lets go (the reader is freed after the connection). */
#include "queue/replyarena.h"

#include "rextest.h"

#include <hiredis/hiredis.h>

static redisReply *read_one(redisReader *r, const char *wire, size_t n) {
    void *reply = NULL;
    CHECK_INT(redisReaderFeed(r, wire, n), REDIS_OK);
    CHECK_INT(redisReaderGetReply(r, &reply), REDIS_OK);
    return reply;
}

TEST(replyarena_builds_the_same_tree) {
    rex_reply_arena *a = rex_reply_arena_new();
    redisReader *r = redisReaderCreate();
    rex_reply_arena_attach(r, a);
    static const char wire[] = "*5\r\n$5\r\nhello\r\n:-42\r\n$-1\r\n*2\r\n+OK\r\n-ERR no\r\n*0\r\n";
    redisReply *x = read_one(r, wire, sizeof(wire) - 1);
    CHECK(x);
    CHECK_INT(x->type, REDIS_REPLY_ARRAY);
    CHECK_INT(x->elements, 5);
    CHECK_INT(x->element[0]->type, REDIS_REPLY_STRING);
    CHECK_STR(x->element[0]->str, "hello");
    CHECK_INT(x->element[0]->len, 5);
    CHECK_INT(x->element[1]->type, REDIS_REPLY_INTEGER);
    CHECK_INT(x->element[1]->integer, -42);
    CHECK_INT(x->element[2]->type, REDIS_REPLY_NIL);
    CHECK_INT(x->element[3]->elements, 2);
    CHECK_INT(x->element[3]->element[0]->type, REDIS_REPLY_STATUS);
    CHECK_STR(x->element[3]->element[0]->str, "OK");
    CHECK_INT(x->element[3]->element[1]->type, REDIS_REPLY_ERROR);
    CHECK_STR(x->element[3]->element[1]->str, "ERR no");
    CHECK_INT(x->element[4]->type, REDIS_REPLY_ARRAY);
    CHECK_INT(x->element[4]->elements, 0);
    r->fn->freeObject(x);
    redisReaderFree(r);
    rex_reply_arena_release(a);
}

TEST(replyarena_replies_of_any_size_one_after_another) {
    rex_reply_arena *a = rex_reply_arena_new();
    redisReader *r = redisReaderCreate();
    rex_reply_arena_attach(r, a);
    /* 1, 3000 and 1 elements of 400 bytes: past the first chunk, then back */
    int sizes[] = {1, 3000, 1, 3000};
    char payload[401];
    memset(payload, 'x', 400);
    payload[400] = '\0';
    for (int round = 0; round < 4; round++) {
        int n = sizes[round];
        size_t cap = (size_t)n * 420 + 32, len = 0;
        char *wire = malloc(cap);
        len += (size_t)snprintf(wire + len, cap - len, "*%d\r\n", n);
        for (int i = 0; i < n; i++) {
            payload[0] = (char)('a' + i % 26);
            len += (size_t)snprintf(wire + len, cap - len, "$400\r\n%s\r\n", payload);
        }
        redisReply *x = read_one(r, wire, len);
        free(wire);
        CHECK_INT(x->elements, n);
        for (int i = 0; i < n; i++) {
            CHECK_INT(x->element[i]->len, 400);
            CHECK_INT(x->element[i]->str[0], 'a' + i % 26);
            CHECK_INT(x->element[i]->str[400], '\0');
        }
        r->fn->freeObject(x);
    }
    redisReaderFree(r);
    rex_reply_arena_release(a);
}

TEST(replyarena_a_half_built_reply_outlives_the_owner) {
    rex_reply_arena *a = rex_reply_arena_new();
    redisReader *r = redisReaderCreate();
    rex_reply_arena_attach(r, a);
    static const char part[] = "*3\r\n$3\r\nabc\r\n:1\r\n"; /* the third element never comes */
    void *reply = NULL;
    CHECK_INT(redisReaderFeed(r, part, sizeof(part) - 1), REDIS_OK);
    CHECK_INT(redisReaderGetReply(r, &reply), REDIS_OK);
    CHECK(reply == NULL);
    rex_reply_arena_release(a); /* the connection goes first ... */
    redisReaderFree(r);         /* ... then hiredis frees the reader and the half reply */
}
