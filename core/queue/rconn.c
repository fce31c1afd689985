#include "queue/rconn.h"
#include "queue/replyarena.h"
#include "queue/scripts.h"

#include <rex/log.h>
#include <rex/rex.h>

#include <hiredis/async.h>
#include <openssl/sha.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_UP, ST_CLOSING };

struct rex_rconn {
    uv_loop_t *loop;
    struct rex_redis_url url;
    char *name;
    rex_rconn_state_cb on_state;
    void *ud;
    redisAsyncContext *ac;
    rex_reply_arena *arena; /* where the replies of ac are built */
    int state;
    int handshake_left;
    int backoff_ms;
    int pending;
    unsigned seed;
    uv_timer_t retry;
    int timer_closed;
    void (*done)(void *);
    void *done_ud;
    char errlog[256];
};

/* A request in flight. For scripts the arguments are kept so NOSCRIPT can resend them. */
struct req {
    rex_rconn *c;
    rex_rconn_cb cb;
    void *ud;
    int script; /* -1 for plain commands */
    int resent;
    int argc;
    const char **argv;
    size_t *argvlen;
    /* argv/argvlen/strings follow in the same allocation */
};

/* ---- hiredis on libuv ------------------------------------------------------------------------
 * Our own adapter instead of the one hiredis 0.14 ships (adapters/libuv.h): that one ignores a
 * poll callback with an error status, which libuv delivers when the socket reports POLLERR (a
 * server killed with requests in flight sends RST). The connection then hangs forever without a
 * disconnect. Here an error makes hiredis read the socket, see the error and disconnect.
 *
 * Writes: hiredis asks for write events whenever a command is queued and drops them once the
 * output is written, and asks for read events after every write. Following that literally
 * restarts the poll handle twice or more per command, and each uv_poll_start costs an
 * epoll_ctl DEL now and an ADD before the next poll, plus a loop turn for the writable event.
 * So the watched events change only when they differ, and once connected, queued output is
 * written from the loop's prepare phase (just before it polls, outside any hiredis callback, as
 * the writable event would have it written); only output the socket did not take waits for a
 * writable event. */

struct uvev {
    redisAsyncContext *ctx;
    uv_poll_t poll;
    uv_prepare_t prep;
    int events;     /* the events the poll handle watches */
    int want_write; /* hiredis has output to write */
    int in_prep;    /* inside the prepare callback's write */
    int open;       /* handles not yet closed (the struct is freed at 0) */
};

static void uvev_cb(uv_poll_t *h, int status, int events) {
    struct uvev *p = h->data;
    if (!p->ctx)
        return;
    if (status != 0) {
        redisAsyncHandleRead(p->ctx); /* read() reports the socket's error: hiredis disconnects */
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(p->ctx);
    if (p->ctx && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ctx);
}

static void uvev_set(struct uvev *p, int events) {
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->poll, events, uvev_cb);
    else
        uv_poll_stop(&p->poll);
}

static void uvev_prep_cb(uv_prepare_t *h) {
    struct uvev *p = h->data;
    uv_prepare_stop(&p->prep);
    if (!p->ctx || !p->want_write)
        return;
    p->in_prep = 1;
    redisAsyncHandleWrite(p->ctx); /* on a write error hiredis disconnects: p->ctx is NULL */
    p->in_prep = 0;
}

static void uvev_add_read(void *d) {
    struct uvev *p = d;
    uvev_set(p, p->events | UV_READABLE);
}

static void uvev_del_read(void *d) {
    struct uvev *p = d;
    uvev_set(p, p->events & ~UV_READABLE);
}

static void uvev_add_write(void *d) {
    struct uvev *p = d;
    p->want_write = 1;
    if (p->events & UV_WRITABLE)
        return; /* already waiting until the socket takes more */
    /* Not connected yet (the writable event completes the connect), or the socket did not take
     * everything just now: wait for the writable event. Otherwise write before the next poll. */
    if (p->in_prep || !(p->ctx->c.flags & REDIS_CONNECTED))
        uvev_set(p, p->events | UV_WRITABLE);
    else
        uv_prepare_start(&p->prep, uvev_prep_cb);
}

static void uvev_del_write(void *d) {
    struct uvev *p = d;
    p->want_write = 0;
    uv_prepare_stop(&p->prep);
    uvev_set(p, p->events & ~UV_WRITABLE);
}

static void uvev_closed(uv_handle_t *h) {
    struct uvev *p = h->data;
    if (--p->open == 0)
        rex_free(p);
}

static void uvev_cleanup(void *d) {
    struct uvev *p = d;
    p->ctx = NULL; /* hiredis is freeing the context */
    p->want_write = 0;
    uv_close((uv_handle_t *)&p->poll, uvev_closed);
    uv_close((uv_handle_t *)&p->prep, uvev_closed);
}

static int uvev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    struct uvev *p = rex_calloc(1, sizeof(*p));
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        rex_free(p);
        return REDIS_ERR;
    }
    uv_prepare_init(loop, &p->prep);
    p->open = 2;
    p->poll.data = p;
    p->prep.data = p;
    p->ctx = ac;
    ac->ev.data = p;
    ac->ev.addRead = uvev_add_read;
    ac->ev.delRead = uvev_del_read;
    ac->ev.addWrite = uvev_add_write;
    ac->ev.delWrite = uvev_del_write;
    ac->ev.cleanup = uvev_cleanup;
    return REDIS_OK;
}

void rex_rconn_flush(rex_rconn *c) {
    redisAsyncContext *ac = c ? c->ac : NULL;
    if (!ac || (ac->c.flags & (REDIS_IN_CALLBACK | REDIS_DISCONNECTING | REDIS_FREEING)) ||
        !(ac->c.flags & REDIS_CONNECTED))
        return;
    struct uvev *p = ac->ev.data;
    if (p && p->want_write && !(p->events & UV_WRITABLE))
        uvev_prep_cb(&p->prep);
}

static char g_shas[64][41];
static pthread_once_t g_sha_once = PTHREAD_ONCE_INIT;

static void compute_shas(void) {
    rex_assert(rex__queue_nscripts <= 64);
    for (int i = 0; i < rex__queue_nscripts; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)rex__queue_scripts[i].text, rex__queue_scripts[i].len, md);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++)
            snprintf(g_shas[i] + 2 * k, 3, "%02x", md[k]);
    }
}

int rex_rconn_script_index(const char *name) {
    for (int i = 0; i < rex__queue_nscripts; i++)
        if (strcmp(rex__queue_scripts[i].name, name) == 0)
            return i;
    return -1;
}

static void start_connect(rex_rconn *c);

static void set_state(rex_rconn *c, int st) {
    int was_up = c->state == ST_UP;
    c->state = st;
    if (was_up && st != ST_UP && c->on_state)
        c->on_state(c, 0, c->ud);
    if (!was_up && st == ST_UP && c->on_state)
        c->on_state(c, 1, c->ud);
}

static void maybe_done(rex_rconn *c) {
    if (c->state == ST_CLOSING && !c->ac && c->timer_closed) {
        void (*done)(void *) = c->done;
        void *ud = c->done_ud;
        rex_redis_url_free(&c->url);
        rex_free(c->name);
        rex_reply_arena_release(c->arena);
        rex_free(c);
        if (done)
            done(ud);
    }
}

static void on_retry(uv_timer_t *t) {
    rex_rconn *c = t->data;
    if (c->state == ST_DOWN)
        start_connect(c);
}

static void schedule_retry(rex_rconn *c) {
    if (c->state == ST_CLOSING)
        return;
    int base = c->backoff_ms;
    int delay = base / 2 + (int)(rand_r(&c->seed) % (unsigned)(base / 2 + 1));
    c->backoff_ms = base * 2 > 5000 ? 5000 : base * 2;
    uv_timer_start(&c->retry, on_retry, (uint64_t)delay, 0);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    rex_rconn *c = ac->data;
    if (!c)
        return;
    c->ac = NULL;
    if (c->state == ST_CLOSING) {
        maybe_done(c);
        return;
    }
    if (status != REDIS_OK)
        rex_log_warn("redis connection lost", "connection", c->name ? c->name : "", "error",
                     ac->errstr[0] ? ac->errstr : "disconnected", NULL);
    set_state(c, ST_DOWN);
    schedule_retry(c);
}

static void handshake_reply(redisAsyncContext *ac, void *r, void *priv) {
    rex_rconn *c = ac->data;
    redisReply *reply = r;
    const char *what = priv;
    if (!c || c->state != ST_HANDSHAKE)
        return;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        if (reply)
            rex_log_error("redis connection setup failed", "step", what, "error", reply->str, NULL);
        redisAsyncFree(c->ac); /* on_disconnect schedules the retry */
        return;
    }
    if (--c->handshake_left == 0) {
        c->backoff_ms = 100;
        set_state(c, ST_UP);
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    rex_rconn *c = ac->data;
    if (!c)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        c->ac = NULL;
        if (c->state == ST_CLOSING) {
            maybe_done(c);
            return;
        }
        if (strcmp(c->errlog, ac->errstr) != 0) { /* log each new reason once, not every retry */
            snprintf(c->errlog, sizeof(c->errlog), "%s", ac->errstr);
            rex_log_warn("cannot connect to redis, retrying", "error", ac->errstr, NULL);
        }
        c->state = ST_DOWN;
        schedule_retry(c);
        return;
    }
    c->errlog[0] = '\0';
    c->state = ST_HANDSHAKE;
    redisAsyncContext *a = c->ac;
    c->handshake_left = 0;
    if (c->url.password) {
        if (c->url.username)
            redisAsyncCommand(a, handshake_reply, "AUTH", "AUTH %s %s", c->url.username,
                              c->url.password);
        else
            redisAsyncCommand(a, handshake_reply, "AUTH", "AUTH %s", c->url.password);
        c->handshake_left++;
    }
    if (c->url.db) {
        redisAsyncCommand(a, handshake_reply, "SELECT", "SELECT %d", c->url.db);
        c->handshake_left++;
    }
    if (c->name) {
        redisAsyncCommand(a, handshake_reply, "CLIENT SETNAME", "CLIENT SETNAME %s", c->name);
        c->handshake_left++;
    }
    for (int i = 0; i < rex__queue_nscripts; i++) {
        redisAsyncCommand(a, handshake_reply, "SCRIPT LOAD", "SCRIPT LOAD %b",
                          rex__queue_scripts[i].text, rex__queue_scripts[i].len);
        c->handshake_left++;
    }
    if (c->handshake_left == 0) {
        redisAsyncCommand(a, handshake_reply, "PING", "PING");
        c->handshake_left++;
    }
}

static void start_connect(rex_rconn *c) {
    redisAsyncContext *ac = c->url.unix_path ? redisAsyncConnectUnix(c->url.unix_path)
                                             : redisAsyncConnect(c->url.host, c->url.port);
    if (!ac || ac->err) {
        if (ac) {
            if (strcmp(c->errlog, ac->errstr) != 0) {
                snprintf(c->errlog, sizeof(c->errlog), "%s", ac->errstr);
                rex_log_warn("cannot connect to redis, retrying", "error", ac->errstr, NULL);
            }
            redisAsyncFree(ac);
        }
        c->state = ST_DOWN;
        schedule_retry(c);
        return;
    }
    if (uvev_attach(ac, c->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        c->state = ST_DOWN;
        schedule_retry(c);
        return;
    }
    rex_reply_arena_attach(ac->c.reader, c->arena);
    ac->data = c;
    c->ac = ac;
    c->state = ST_CONNECTING;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

rex_rconn *rex_rconn_open(const struct rex_rconn_opts *o) {
    pthread_once(&g_sha_once, compute_shas);
    rex_rconn *c = rex_calloc(1, sizeof(*c));
    c->loop = o->loop;
    c->url.host = o->url->host ? rex_strdup(o->url->host) : NULL;
    c->url.port = o->url->port;
    c->url.db = o->url->db;
    c->url.username = o->url->username ? rex_strdup(o->url->username) : NULL;
    c->url.password = o->url->password ? rex_strdup(o->url->password) : NULL;
    c->url.unix_path = o->url->unix_path ? rex_strdup(o->url->unix_path) : NULL;
    c->name = o->client_name ? rex_strdup(o->client_name) : NULL;
    c->on_state = o->on_state;
    c->ud = o->ud;
    c->arena = rex_reply_arena_new();
    c->backoff_ms = 100;
    c->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)c;
    uv_timer_init(c->loop, &c->retry);
    c->retry.data = c;
    start_connect(c);
    return c;
}

static void on_timer_closed(uv_handle_t *h) {
    rex_rconn *c = h->data;
    c->timer_closed = 1;
    maybe_done(c);
}

void rex_rconn_close(rex_rconn *c, void (*done)(void *), void *ud) {
    c->done = done;
    c->done_ud = ud;
    c->state = ST_CLOSING;
    uv_timer_stop(&c->retry);
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac) {
        ac->data = NULL;    /* no connect/disconnect callbacks for a closing connection */
        redisAsyncFree(ac); /* pending callbacks get NULL */
    }
}

void rex_rconn_reset(rex_rconn *c) {
    if (c->state == ST_CLOSING || !c->ac)
        return;
    redisAsyncContext *ac = c->ac;
    if (ac->c.flags & REDIS_CONNECTED) {
        redisAsyncFree(ac); /* on_disconnect: DOWN, then the retry */
        return;
    }
    ac->data = NULL; /* still connecting: hiredis would not report a disconnect */
    c->ac = NULL;
    redisAsyncFree(ac);
    set_state(c, ST_DOWN);
    schedule_retry(c);
}

int rex_rconn_up(const rex_rconn *c) {
    return c->state == ST_UP;
}

int rex_rconn_pending(const rex_rconn *c) {
    return c->pending;
}

static void req_reply(redisAsyncContext *ac, void *r, void *priv) {
    struct req *q = priv;
    rex_rconn *c = q->c;
    redisReply *reply = r;
    c->pending--;
    if (!reply && c->state == ST_UP)
        c->state = ST_DOWN; /* lost: on_disconnect follows and reports it */
    if (reply && reply->type == REDIS_REPLY_ERROR && q->script >= 0 && !q->resent &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        /* the server lost the script cache: send it in full once, which caches it again */
        const struct rex__queue_script *s = &rex__queue_scripts[q->script];
        q->argv[0] = "EVAL";
        q->argvlen[0] = 4;
        q->argv[1] = s->text;
        q->argvlen[1] = s->len;
        q->resent = 1;
        if (redisAsyncCommandArgv(ac, req_reply, q, q->argc, q->argv, q->argvlen) == REDIS_OK) {
            c->pending++;
            return;
        }
        reply = NULL;
    }
    if (q->cb)
        q->cb(c, reply, q->ud);
    rex_free(q);
}

static struct req *req_new(rex_rconn *c, rex_rconn_cb cb, void *ud, int script, int argc,
                           const char **argv, const size_t *argvlen, int copy) {
    size_t bytes = sizeof(struct req) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    if (copy)
        for (int i = 0; i < argc; i++)
            bytes += argvlen[i];
    struct req *q = rex_malloc(bytes);
    q->c = c;
    q->cb = cb;
    q->ud = ud;
    q->script = script;
    q->resent = 0;
    q->argc = argc;
    q->argv = (const char **)(q + 1);
    q->argvlen = (size_t *)(q->argv + argc);
    char *p = (char *)(q->argvlen + argc);
    for (int i = 0; i < argc; i++) {
        q->argvlen[i] = argvlen[i];
        if (copy) {
            memcpy(p, argv[i], argvlen[i]);
            q->argv[i] = p;
            p += argvlen[i];
        } else {
            q->argv[i] = argv[i];
        }
    }
    return q;
}

int rex_rconn_cmd(rex_rconn *c, rex_rconn_cb cb, void *ud, int argc, const char **argv,
                  const size_t *argvlen) {
    if (c->state != ST_UP || !c->ac)
        return REX_ECONN;
    struct req *q = req_new(c, cb, ud, -1, argc, argv, argvlen, 0);
    if (redisAsyncCommandArgv(c->ac, req_reply, q, argc, argv, argvlen) != REDIS_OK) {
        rex_free(q);
        return REX_ECONN;
    }
    c->pending++;
    return 0;
}

int rex_rconn_script(rex_rconn *c, int script, const char *key, rex_rconn_cb cb, void *ud, int argc,
                     const char **argv, const size_t *argvlen) {
    if (c->state != ST_UP || !c->ac)
        return REX_ECONN;
    rex_assert(script >= 0 && script < rex__queue_nscripts);
    /* EVALSHA sha 1 key argv... ; the arguments are copied so NOSCRIPT can resend them */
    int n = argc + 4;
    const char *stack_argv[64];
    size_t stack_len[64];
    const char **av = n <= 64 ? stack_argv : rex_malloc(sizeof(char *) * (size_t)n);
    size_t *al = n <= 64 ? stack_len : rex_malloc(sizeof(size_t) * (size_t)n);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = g_shas[script];
    al[1] = 40;
    av[2] = "1";
    al[2] = 1;
    av[3] = key;
    al[3] = strlen(key);
    for (int i = 0; i < argc; i++) {
        av[4 + i] = argv[i];
        al[4 + i] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    struct req *q = req_new(c, cb, ud, script, n, av, al, 1);
    if (av != stack_argv) {
        rex_free(av);
        rex_free(al);
    }
    if (redisAsyncCommandArgv(c->ac, req_reply, q, q->argc, q->argv, q->argvlen) != REDIS_OK) {
        rex_free(q);
        return REX_ECONN;
    }
    c->pending++;
    return 0;
}
