/* hiredis builds a reply as a tree of objects, each allocated on its own: a fetch-next reply
 * carrying the hashes of 100 jobs is thousands of malloc and free calls, which took about 40 %
 * of the event-loop thread's CPU at concurrency 100 (bench/queue, perf). Here the objects of one
 * reply are carved from one arena instead, with the same redisReply layout, and the whole reply
 * goes at once when hiredis frees it (after the callback). The first chunk is kept for the next
 * reply, sized to what the last one needed (up to KEEP_MAX).
 *
 * hiredis 0.14 frees only root objects through the reader's freeObject (after a callback, on a
 * protocol error, when the reader is freed with a reply half built), and builds one reply at a
 * time per reader; the root is created first (an array before its elements). A reply being built
 * holds a reference on the arena, so a connection can go (rex_reply_arena_release) while hiredis
 * still frees its reader. */
#include "queue/replyarena.h"

#include <rex/rex.h>

#include <stddef.h>
#include <string.h>

enum { ALIGN = 16, FIRST_CHUNK = 16 * 1024, KEEP_MAX = 1024 * 1024 };

struct chunk {
    struct chunk *next;
    size_t cap, used;
    _Alignas(ALIGN) unsigned char data[];
};

struct rex_reply_arena {
    int refs;
    struct chunk *chunks; /* newest first: the chunks of the reply being built */
    size_t want;          /* capacity of the first chunk of the next reply */
};

/* The root object of a reply carries its arena. */
struct root {
    rex_reply_arena *arena;
    redisReply r;
};

static void *carve(rex_reply_arena *a, size_t n) {
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    struct chunk *c = a->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : a->want;
        if (cap < n)
            cap = n;
        struct chunk *nc = rex_malloc(sizeof(*nc) + cap);
        nc->next = c;
        nc->cap = cap;
        nc->used = 0;
        a->chunks = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void free_chunks(struct chunk *c) {
    while (c) {
        struct chunk *next = c->next;
        rex_free(c);
        c = next;
    }
}

static redisReply *new_object(const redisReadTask *task, int type) {
    rex_reply_arena *a = task->privdata;
    redisReply *r;
    if (!task->parent) {
        a->refs++; /* a reply is being built */
        struct root *rt = carve(a, sizeof(*rt));
        memset(rt, 0, sizeof(*rt));
        rt->arena = a;
        r = &rt->r;
    } else {
        r = carve(a, sizeof(*r));
        memset(r, 0, sizeof(*r));
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    r->type = type;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len) {
    redisReply *r = new_object(task, task->type);
    char *buf = carve(task->privdata, len + 1);
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements) {
    redisReply *r = new_object(task, REDIS_REPLY_ARRAY);
    if (elements > 0) {
        r->element = carve(task->privdata, sizeof(*r->element) * (size_t)elements);
        memset(r->element, 0, sizeof(*r->element) * (size_t)elements);
    }
    r->elements = (size_t)elements;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value) {
    redisReply *r = new_object(task, REDIS_REPLY_INTEGER);
    r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task) {
    return new_object(task, REDIS_REPLY_NIL);
}

static void drop(rex_reply_arena *a) {
    if (--a->refs == 0) {
        free_chunks(a->chunks);
        rex_free(a);
    }
}

/* The reply is done with: its chunks go, but one of the size it needed stays for the next. */
static void free_object(void *obj) {
    struct root *rt = (struct root *)((char *)obj - offsetof(struct root, r));
    rex_reply_arena *a = rt->arena;
    size_t used = 0;
    for (struct chunk *c = a->chunks; c; c = c->next)
        used += c->used;
    struct chunk *c = a->chunks;
    if (c && !c->next && c->cap <= KEEP_MAX) {
        c->used = 0;
    } else {
        free_chunks(c);
        a->chunks = NULL;
        a->want = used < FIRST_CHUNK ? FIRST_CHUNK : used > KEEP_MAX ? KEEP_MAX : used;
    }
    drop(a);
}

static redisReplyObjectFunctions g_fns = {
    create_string, create_array, create_integer, create_nil, free_object,
};

rex_reply_arena *rex_reply_arena_new(void) {
    rex_reply_arena *a = rex_calloc(1, sizeof(*a));
    a->refs = 1;
    a->want = FIRST_CHUNK;
    return a;
}

void rex_reply_arena_attach(redisReader *r, rex_reply_arena *a) {
    r->fn = &g_fns;
    r->privdata = a;
}

void rex_reply_arena_release(rex_reply_arena *a) {
    drop(a);
}
