/* The queue worker's event-loop side: fetches jobs (with marker blocking), hands them to the
 * worker threads, finishes them (with fetch-next in the same round trip), renews locks, runs the
 * stalled check, reconnects, and closes gracefully. Everything here runs on the loop's thread;
 * Lua job code never runs here, so a busy job cannot delay lock renewal. */
#include "queue/worker.h"
#include "queue/rconn.h"

#include <rex/log.h>
#include <rex/queue.h>
#include <rex/rex.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

enum {
    S_FETCH,
    S_FINISH,
    S_DELAY,
    S_RETRY,
    S_EXTEND,
    S_STALLED,
    S_PROGRESS,
    S_LOG,
    S_SCHEDULER,
    S_FINISH_MANY,
    S_COUNT
};
static const char *const script_names[S_COUNT] = {
    "fetch",   "finish",   "delay", "retry",          "extend_locks",
    "stalled", "progress", "log",   "scheduler_next", "finish_many"};

struct rex_worker {
    uv_loop_t *loop;
    const struct rex_config *cfg;
    char *key; /* P = "<prefix>:<queue>:" */
    int script[S_COUNT];
    rex_rconn *cmd; /* scripts */
    rex_rconn *blk; /* BZPOPMIN on the marker; named so Queue.getWorkers() lists us */
    rex_pool *pool;
    rex_mailbox mailbox;
    struct rex_worker_thread_opts thread_opts;

    struct rex_job *held; /* jobs we hold (dispatched or finishing), a doubly linked list */
    int inflight;
    int fetching;
    int blocking;
    int drained;
    double block_until;
    double limit_until;
    struct rex_job *unfinished; /* finishes to resend after a reconnect (via ->resend) */
    struct rex_job *batch;      /* completed/failed jobs gathered during one mailbox drain */
    int batch_n;

    char token_base[40];
    unsigned long token_seq;

    uv_timer_t renew_timer, stalled_timer, limit_timer, block_watchdog, grace_timer, idle_timer;
    uv_timer_t nudge_timer; /* runs while more jobs are held than the pool's budget */
    int nudging;
    int idle_pending; /* an idle call is on a worker thread */
    uv_signal_t sigterm, sigint;
    int closing;
    int close_started;
    int exit_code;
    unsigned long completed, failed;
};

static double now_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec * 1000.0 + (double)(tv.tv_usec / 1000);
}

static void fmt_long(char *buf, size_t n, long v) {
    snprintf(buf, n, "%ld", v);
}

static void fmt_ms(char *buf, size_t n, double v) {
    snprintf(buf, n, "%.0f", v);
}

static void maybe_fetch(struct rex_worker *w);
static void maybe_close(struct rex_worker *w);

/* ---- held jobs ------------------------------------------------------------------------------ */

/* A job waits for a thread only when more are held than the pool runs at once (runtime/pool.h);
 * then every 2 ms, jobs that waited 2 ms while no thread took any get a thread each, in case the
 * running ones block in a call that did not say so. The timer runs from a job's hand-off until
 * no job is waiting for a thread (long I/O-bound jobs do not keep the loop waking). */
#define NUDGE_MS 2

static void on_nudge_timer(uv_timer_t *t) {
    struct rex_worker *w = t->data;
    if (rex_pool_queued(w->pool) == 0) { /* every held job has a thread: until the next one */
        uv_timer_stop(&w->nudge_timer);
        w->nudging = 0;
        return;
    }
    rex_pool_nudge(w->pool, NUDGE_MS);
}

static void update_nudging(struct rex_worker *w) {
    int want = w->inflight + w->idle_pending > rex_pool_budget(w->pool) && !w->close_started;
    if (want && !w->nudging)
        uv_timer_start(&w->nudge_timer, on_nudge_timer, NUDGE_MS, NUDGE_MS);
    else if (!want && w->nudging)
        uv_timer_stop(&w->nudge_timer);
    w->nudging = want;
}

static void hold(struct rex_worker *w, struct rex_job *j) {
    j->prev = NULL;
    j->next = w->held;
    if (w->held)
        w->held->prev = j;
    w->held = j;
    w->inflight++;
    update_nudging(w);
}

static void release(struct rex_worker *w, struct rex_job *j) {
    if (j->prev)
        j->prev->next = j->next;
    else
        w->held = j->next;
    if (j->next)
        j->next->prev = j->prev;
    w->inflight--;
    update_nudging(w);
    rex__job_free(j);
}

static void new_token(struct rex_worker *w, char *out, size_t n) {
    snprintf(out, n, "%s:%lu", w->token_base, ++w->token_seq);
}

/* ---- fetch ---------------------------------------------------------------------------------- */

static struct rex_job *job_from_reply(struct rex_worker *w, redisReply *fields, redisReply *id) {
    struct rex_job *j = rex_calloc(1, sizeof(*j));
    j->w = w;
    j->id = rex_strndup(id->str, id->len);
    j->fetched_ms = now_ms();
    size_t n = fields->type == REDIS_REPLY_ARRAY ? fields->elements : 0;
    size_t bytes = n * (sizeof(char *) + sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        bytes += fields->element[i]->len + 1;
    char **fv = rex_malloc(bytes ? bytes : 1);
    size_t *fvlen = (size_t *)(fv + n);
    char *p = (char *)(fvlen + n);
    for (size_t i = 0; i < n; i++) {
        redisReply *e = fields->element[i];
        size_t len = e->type == REDIS_REPLY_STRING ? e->len : 0;
        if (len)
            memcpy(p, e->str, len);
        p[len] = '\0';
        fv[i] = p;
        fvlen[i] = len;
        p += len + 1;
    }
    j->fv = fv;
    j->fvlen = fvlen;
    j->nfields = (int)(n / 2);
    return j;
}

/* A fetched job: hold it and hand it to a worker thread. */
static void take_job(struct rex_worker *w, redisReply *fields, redisReply *id, const char *token) {
    struct rex_job *j = job_from_reply(w, fields, id);
    snprintf(j->token, sizeof(j->token), "%s", token);
    hold(w, j);
    w->drained = 0;
    w->block_until = 0;
    rex_pool_submit(w->pool, &j->link);
}

/* Handles a fetch reply {fields|0, id|0, rateLimitDelay, nextDelayedMs}. The token is the one
 * the fetch was made with. */
static void handle_fetch_result(struct rex_worker *w, redisReply *r, const char *token) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        rex_log_error("unexpected fetch reply", NULL);
        return;
    }
    redisReply *fields = r->element[0], *id = r->element[1];
    long long limit_delay = r->element[2]->type == REDIS_REPLY_INTEGER ? r->element[2]->integer : 0;
    long long next_delayed =
        r->element[3]->type == REDIS_REPLY_INTEGER ? r->element[3]->integer : 0;
    double now = now_ms();
    w->limit_until = limit_delay > 0 ? now + (double)limit_delay : 0;
    if (id->type == REDIS_REPLY_STRING) {
        take_job(w, fields, id, token);
        return;
    }
    w->block_until = next_delayed > 0 ? (double)next_delayed : 0;
    if (!w->drained)
        rex_log_debug("queue drained", "queue", w->cfg->queue_name, NULL);
    w->drained = 1;
}

struct fetch_req {
    struct rex_worker *w;
    char token[64];
};

static void on_fetch(rex_rconn *c, redisReply *r, void *ud) {
    struct fetch_req *f = ud;
    struct rex_worker *w = f->w;
    (void)c;
    w->fetching = 0;
    if (!r) {
        /* connection lost: if the script ran, its job stays active with our lock and comes back
         * through the stalled check */
    } else if (r->type == REDIS_REPLY_ERROR) {
        rex_log_error("fetch script failed", "error", r->str, NULL);
        w->limit_until = now_ms() + 1000; /* do not spin on a broken script */
    } else {
        handle_fetch_result(w, r, f->token);
    }
    rex_free(f);
    maybe_fetch(w);
    maybe_close(w);
}

/* The fetch arguments shared by fetch and finish-with-fetchNext: token, lockDuration, limiter
 * max, limiter duration, worker name. */
struct fetch_args {
    char lock[24], max[24], dur[24];
};

static void fill_fetch_args(struct rex_worker *w, struct fetch_args *a) {
    fmt_long(a->lock, sizeof(a->lock), w->cfg->lock_duration_ms);
    if (w->cfg->limiter_max > 0) {
        fmt_long(a->max, sizeof(a->max), w->cfg->limiter_max);
        fmt_long(a->dur, sizeof(a->dur), w->cfg->limiter_duration_ms);
    } else {
        a->max[0] = a->dur[0] = '\0';
    }
}

static void send_fetch(struct rex_worker *w) {
    struct fetch_req *f = rex_malloc(sizeof(*f));
    f->w = w;
    new_token(w, f->token, sizeof(f->token));
    char now[24];
    fmt_ms(now, sizeof(now), now_ms());
    struct fetch_args a;
    fill_fetch_args(w, &a);
    const char *argv[] = {now,   f->token, a.lock,
                          a.max, a.dur,    w->cfg->worker_name ? w->cfg->worker_name : ""};
    if (rex_rconn_script(w->cmd, w->script[S_FETCH], w->key, on_fetch, f, 6, argv, NULL)) {
        rex_free(f);
        return;
    }
    w->fetching = 1;
}

/* ---- blocking on the marker ------------------------------------------------------------------ */

static void on_block(rex_rconn *c, redisReply *r, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    w->blocking = 0;
    uv_timer_stop(&w->block_watchdog);
    if (!r || w->closing)
        return; /* the connection went away; on_blk_state re-arms when it is back */
    if (r->type == REDIS_REPLY_ERROR) {
        rex_log_error("waiting for jobs failed", "error", r->str, NULL);
        w->drained = 0;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        double score = strtod(r->element[2]->str ? r->element[2]->str : "0", NULL);
        double until = (double)(long long)score;
        if (w->block_until > 0 && w->block_until < until)
            until = w->block_until;
        w->block_until = until;
        if (until <= 0 || until - now_ms() < 1)
            w->drained = 0; /* fetch now */
    } else {
        /* timed out: fetch once (this also promotes due delayed jobs) */
        w->block_until = 0;
        w->drained = 0;
    }
    maybe_fetch(w);
}

static void on_block_watchdog(uv_timer_t *t) {
    struct rex_worker *w = t->data;
    /* a BZPOPMIN reply that never comes (e.g. lost across a reconnect) must not hang the worker */
    rex_log_warn("no reply to the blocking wait, reconnecting it", NULL);
    rex_rconn_reset(w->blk);
}

static void start_block(struct rex_worker *w) {
    double now = now_ms();
    double timeout_s;
    if (w->block_until > 0) {
        double left = w->block_until - now;
        if (left <= 0) {
            w->drained = 0;
            send_fetch(w);
            return;
        }
        timeout_s = left / 1000.0;
        if (timeout_s < 0.002)
            timeout_s = 0.002;
        if (timeout_s > 10)
            timeout_s = 10;
    } else {
        timeout_s = (double)w->cfg->drain_delay_ms / 1000.0;
    }
    char marker[512], tmo[32];
    snprintf(marker, sizeof(marker), "%smarker", w->key);
    snprintf(tmo, sizeof(tmo), "%.3f", timeout_s);
    const char *argv[] = {"BZPOPMIN", marker, tmo};
    size_t len[] = {8, strlen(marker), strlen(tmo)};
    if (rex_rconn_cmd(w->blk, on_block, w, 3, argv, len))
        return;
    w->blocking = 1;
    uv_timer_start(&w->block_watchdog, on_block_watchdog, (uint64_t)(timeout_s * 1000) + 2000, 0);
}

static void on_limit_timer(uv_timer_t *t) {
    struct rex_worker *w = t->data;
    w->limit_until = 0;
    w->drained = 0;
    maybe_fetch(w);
}

static void maybe_fetch(struct rex_worker *w) {
    if (w->closing || !rex_rconn_up(w->cmd) || w->fetching || w->inflight >= w->cfg->concurrency)
        return;
    double now = now_ms();
    if (w->limit_until > now) {
        if (!uv_is_active((uv_handle_t *)&w->limit_timer)) {
            double wait = w->limit_until - now;
            if (wait > 30000)
                wait = 30000; /* maximumRateLimitDelay: delayed jobs still get promoted */
            uv_timer_start(&w->limit_timer, on_limit_timer, (uint64_t)wait + 1, 0);
        }
        return;
    }
    if (w->drained) {
        if (!w->blocking && rex_rconn_up(w->blk))
            start_block(w);
        return;
    }
    send_fetch(w);
}

/* ---- finishing ------------------------------------------------------------------------------ */

static const char *code_text(long long code) {
    switch (code) {
    case -1:
        return "the job no longer exists";
    case -2:
        return "the job's lock is gone (it expired or was released)";
    case -3:
        return "the job is not active any more";
    case -4:
        return "the job has pending dependencies";
    case -6:
        return "the job's lock is held by another worker";
    case -9:
        return "the job has failed children";
    default:
        return "unexpected reply";
    }
}

static void submit_failure(struct rex_worker *w, struct rex_job *j, const char *msg, int unrec) {
    rex_free(j->fail_message);
    j->fail_message = rex_strdup(msg);
    j->fail_unrecoverable = unrec;
    rex_free(j->value);
    rex_free(j->keep);
    rex_free(j->stacktrace);
    j->value = j->keep = j->stacktrace = NULL;
    rex_pool_submit(w->pool, &j->link);
    update_nudging(w); /* the timer may have stopped while no job waited */
}

struct finish_req {
    struct rex_job *job;
    int fetch_next;
    char next_token[64];
};

static void send_finish(struct rex_worker *w, struct rex_job *j);

/* The outcome of one job's finish: code 0 = done, < 0 = the script's code. Returns 1 if the job
 * was handed back to a worker thread (a completion turned into a failure), else 0 (released). */
static int finish_outcome(struct rex_worker *w, struct rex_job *j, long long code) {
    int completed = j->outcome == REX_OUT_COMPLETED;
    if (code < 0) {
        if (completed && (code == -4 || code == -9)) {
            /* as BullMQ: pending children is an ordinary failure, failed children unrecoverable */
            char msg[512];
            if (code == -4)
                snprintf(msg, sizeof(msg), "Job %s has pending dependencies. moveToFinished",
                         j->id);
            else
                snprintf(msg, sizeof(msg),
                         "Cannot complete job %s because it has at least one failed child. "
                         "moveToFinished",
                         j->id);
            submit_failure(w, j, msg, code == -9);
            return 1;
        }
        rex_log_error(completed ? "could not complete job" : "could not fail job", "job", j->id,
                      "reason", code_text(code), NULL);
    } else if (completed) {
        w->completed++;
        rex_log_debug("job completed", "job", j->id, NULL);
    } else {
        w->failed++;
        rex_log_info("job failed", "job", j->id, "reason", j->value, NULL);
    }
    release(w, j);
    return 0;
}

static void requeue_finish(struct rex_worker *w, struct rex_job *j) {
    j->resend = w->unfinished;
    w->unfinished = j;
}

static void on_finish(rex_rconn *c, redisReply *r, void *ud) {
    struct finish_req *f = ud;
    struct rex_job *j = f->job;
    struct rex_worker *w = j->w;
    (void)c;
    if (!r) {
        /* connection lost: finish again once it is back (a script that did run answers -2/-3
         * then, so nothing finishes twice) */
        requeue_finish(w, j);
        rex_free(f);
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer < 0) {
        finish_outcome(w, j, r->integer);
    } else if (r->type == REDIS_REPLY_ERROR) {
        rex_log_error("finish script failed", "job", j->id, "error", r->str, NULL);
        release(w, j);
    } else {
        finish_outcome(w, j, 0);
        if (r->type == REDIS_REPLY_ARRAY) {
            handle_fetch_result(w, r, f->next_token);
        } else if (f->fetch_next && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            /* fetchNext found nothing at all pending: wait on the marker, no extra fetch */
            w->drained = 1;
            w->block_until = 0;
        }
    }
    rex_free(f);
    maybe_fetch(w);
    maybe_close(w);
}

/* ---- finishing several jobs in one round trip (finish_many) --------------------------------- */

struct many_req {
    struct rex_worker *w;
    int n;
    int fetch_next;
    struct rex_job **jobs;
    char (*tokens)[64];
};

static void on_finish_many(rex_rconn *c, redisReply *r, void *ud) {
    struct many_req *m = ud;
    struct rex_worker *w = m->w;
    (void)c;
    if (!r) {
        for (int i = 0; i < m->n; i++)
            requeue_finish(w, m->jobs[i]);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
               r->element[0]->type != REDIS_REPLY_ARRAY || (int)r->element[0]->elements != m->n) {
        rex_log_error("finish_many script failed", "error",
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply", NULL);
        for (int i = 0; i < m->n; i++)
            release(w, m->jobs[i]);
    } else {
        redisReply *codes = r->element[0], *jobs = r->element[1], *tail = r->element[2];
        for (int i = 0; i < m->n; i++) {
            redisReply *code = codes->element[i];
            finish_outcome(w, m->jobs[i], code->type == REDIS_REPLY_INTEGER ? code->integer : -3);
        }
        rex_pool_hold(w->pool); /* the jobs of this reply wake threads together */
        if (jobs->type == REDIS_REPLY_ARRAY) {
            w->limit_until = 0;
            for (size_t k = 0; k < jobs->elements; k++) {
                redisReply *e = jobs->element[k];
                if (e->type == REDIS_REPLY_ARRAY && e->elements == 3 &&
                    e->element[1]->type == REDIS_REPLY_STRING &&
                    e->element[2]->type == REDIS_REPLY_STRING)
                    take_job(w, e->element[0], e->element[1], e->element[2]->str);
            }
        }
        if (tail->type == REDIS_REPLY_ARRAY) {
            handle_fetch_result(w, tail, "");
        } else if (m->fetch_next && jobs->elements == 0) {
            w->drained = 1; /* nothing at all pending */
            w->block_until = 0;
        }
        rex_pool_release(w->pool);
    }
    rex_free(m->jobs);
    rex_free(m->tokens);
    rex_free(m);
    maybe_fetch(w);
    maybe_close(w);
}

static void on_retry_reply(rex_rconn *c, redisReply *r, void *ud) {
    struct rex_job *j = ud;
    struct rex_worker *w = j->w;
    (void)c;
    if (!r) {
        j->resend = w->unfinished;
        w->unfinished = j;
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        rex_log_error("could not retry job", "job", j->id, "reason", code_text(r->integer), NULL);
    else if (r->type == REDIS_REPLY_ERROR)
        rex_log_error("retry script failed", "job", j->id, "error", r->str, NULL);
    else
        rex_log_info("job attempt failed, retrying", "job", j->id, "reason", j->value, NULL);
    release(w, j);
    maybe_fetch(w);
    maybe_close(w);
}

static void send_finish(struct rex_worker *w, struct rex_job *j) {
    char now[24], attempts[24], delay[24];
    fmt_ms(now, sizeof(now), now_ms());
    fmt_long(attempts, sizeof(attempts), j->attempts);
    int rc;
    if (j->outcome == REX_OUT_COMPLETED || j->outcome == REX_OUT_FAILED) {
        struct finish_req *f = rex_malloc(sizeof(*f));
        f->job = j;
        int fetch_next =
            !w->closing && w->limit_until <= now_ms() && w->inflight <= w->cfg->concurrency;
        f->fetch_next = fetch_next;
        new_token(w, f->next_token, sizeof(f->next_token));
        struct fetch_args a;
        fill_fetch_args(w, &a);
        const char *argv[] = {j->id,
                              j->token,
                              now,
                              j->outcome == REX_OUT_COMPLETED ? "completed" : "failed",
                              j->value,
                              j->keep ? j->keep : "{\"count\":-1}",
                              attempts,
                              fetch_next ? "1" : "0",
                              j->stacktrace && j->outcome == REX_OUT_FAILED ? j->stacktrace : "",
                              f->next_token,
                              a.lock,
                              a.max,
                              a.dur,
                              w->cfg->worker_name ? w->cfg->worker_name : ""};
        size_t len[14];
        for (int i = 0; i < 14; i++)
            len[i] = strlen(argv[i]);
        len[4] = j->value_len;
        rc = rex_rconn_script(w->cmd, w->script[S_FINISH], w->key, on_finish, f, 14, argv, len);
        if (rc)
            rex_free(f);
    } else if (j->outcome == REX_OUT_DELAY) {
        fmt_long(delay, sizeof(delay), j->delay);
        const char *argv[] = {
            j->id, j->token, now, delay, j->value, j->stacktrace ? j->stacktrace : "", "0"};
        size_t len[7];
        for (int i = 0; i < 7; i++)
            len[i] = strlen(argv[i]);
        len[4] = j->value_len;
        rc = rex_rconn_script(w->cmd, w->script[S_DELAY], w->key, on_retry_reply, j, 7, argv, len);
    } else {
        const char *argv[] = {j->id,    j->token,
                              now,      j->lifo ? "1" : "0",
                              j->value, j->stacktrace ? j->stacktrace : ""};
        size_t len[6];
        for (int i = 0; i < 6; i++)
            len[i] = strlen(argv[i]);
        len[4] = j->value_len;
        rc = rex_rconn_script(w->cmd, w->script[S_RETRY], w->key, on_retry_reply, j, 6, argv, len);
    }
    if (rc) { /* not connected: resend once we are */
        j->resend = w->unfinished;
        w->unfinished = j;
    }
}

/* Sends the jobs gathered in one mailbox drain: one `finish` for a single job, `finish_many`
 * (one round trip, fetch-next for each) for several. */
static void flush_batch(struct rex_worker *w) {
    int n = w->batch_n;
    struct rex_job *list = w->batch;
    w->batch = NULL;
    w->batch_n = 0;
    if (n == 0)
        return;
    if (n == 1) {
        list->resend = NULL;
        send_finish(w, list);
        return;
    }
    struct many_req *m = rex_calloc(1, sizeof(*m));
    m->w = w;
    m->n = n;
    m->jobs = rex_malloc(sizeof(*m->jobs) * (size_t)n);
    m->tokens = rex_malloc(sizeof(*m->tokens) * (size_t)n);
    m->fetch_next = !w->closing && w->limit_until <= now_ms();
    int argc = 6 + 8 * n;
    const char **argv = rex_malloc(sizeof(char *) * (size_t)argc);
    size_t *len = rex_malloc(sizeof(size_t) * (size_t)argc);
    char now[24], count[24];
    fmt_ms(now, sizeof(now), now_ms());
    fmt_long(count, sizeof(count), n);
    struct fetch_args a;
    fill_fetch_args(w, &a);
    char(*attempts)[24] = rex_malloc(sizeof(*attempts) * (size_t)n);
    argv[0] = now;
    argv[1] = a.lock;
    argv[2] = a.max;
    argv[3] = a.dur;
    argv[4] = w->cfg->worker_name ? w->cfg->worker_name : "";
    argv[5] = count;
    int i = 0;
    for (struct rex_job *j = list; j; j = j->resend, i++) {
        m->jobs[i] = j;
        if (m->fetch_next)
            new_token(w, m->tokens[i], sizeof(m->tokens[i]));
        else
            m->tokens[i][0] = '\0';
        fmt_long(attempts[i], sizeof(attempts[i]), j->attempts);
        const char **g = argv + 6 + 8 * i;
        g[0] = j->id;
        g[1] = j->token;
        g[2] = j->outcome == REX_OUT_COMPLETED ? "completed" : "failed";
        g[3] = j->value;
        g[4] = j->keep ? j->keep : "{\"count\":-1}";
        g[5] = attempts[i];
        g[6] = j->stacktrace && j->outcome == REX_OUT_FAILED ? j->stacktrace : "";
        g[7] = m->tokens[i];
    }
    for (int k = 0; k < argc; k++)
        len[k] = strlen(argv[k]);
    for (int k = 0; k < n; k++) {
        len[6 + 8 * k + 3] = m->jobs[k]->value_len;
        m->jobs[k]->resend = NULL;
    }
    int rc = rex_rconn_script(w->cmd, w->script[S_FINISH_MANY], w->key, on_finish_many, m, argc,
                              argv, len);
    rex_free(argv);
    rex_free(len);
    rex_free(attempts);
    if (rc) { /* not connected: resend each once we are */
        for (int k = 0; k < n; k++)
            requeue_finish(w, m->jobs[k]);
        rex_free(m->jobs);
        rex_free(m->tokens);
        rex_free(m);
    }
}

static void after_drain(rex_mailbox *mb) {
    struct rex_worker *w = mb->data;
    flush_batch(w);
    rex_rconn_flush(w->cmd); /* the finishes leave now, not a loop turn later */
}

/* ---- messages from the worker threads ---------------------------------------------------------
 */

static void on_minor_reply(rex_rconn *c, redisReply *r, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    if (r && r->type == REDIS_REPLY_ERROR)
        rex_log_warn("progress or log write failed", "error", r->str, NULL);
    else if (r && r->type == REDIS_REPLY_INTEGER && r->integer < 0)
        rex_log_warn("progress or log for a job that no longer exists", NULL);
    maybe_close(w);
}

static void on_scheduler_reply(rex_rconn *c, redisReply *r, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    if (r && r->type == REDIS_REPLY_ERROR)
        rex_log_error("Failed to add repeatable job for next iteration", "error", r->str, NULL);
    else if (r && r->type == REDIS_REPLY_STRING)
        rex_log_debug("next scheduler iteration added", "job", r->str, NULL);
    maybe_close(w);
}

static void deliver(rex_mailbox *mb, struct rex_link *item) {
    struct rex_worker *w = mb->data;
    struct rex_msg *m = (struct rex_msg *)item;
    if (m->kind == REX_MSG_IDLE_DONE) {
        rex__job_free(m->job);
        rex_free(m);
        w->idle_pending = 0;
        update_nudging(w);
        maybe_close(w);
        return;
    }
    if (m->kind == REX_MSG_JOB_DONE) {
        struct rex_job *j = m->job;
        rex_free(m);
        if (j->outcome == REX_OUT_COMPLETED || j->outcome == REX_OUT_FAILED) {
            j->resend = w->batch; /* sent together after the drain (flush_batch) */
            w->batch = j;
            w->batch_n++;
        } else {
            send_finish(w, j);
        }
        return;
    }
    int rc = 0;
    if (m->kind == REX_MSG_PROGRESS) {
        const char *argv[] = {m->id, m->a};
        size_t len[] = {strlen(m->id), m->alen};
        rc = rex_rconn_script(w->cmd, w->script[S_PROGRESS], w->key, on_minor_reply, w, 2, argv,
                              len);
    } else if (m->kind == REX_MSG_LOG) {
        char kl[24] = "";
        if (m->n >= 0)
            fmt_long(kl, sizeof(kl), m->n);
        const char *argv[] = {m->id, m->a, kl};
        size_t len[] = {strlen(m->id), m->alen, strlen(kl)};
        rc = rex_rconn_script(w->cmd, w->script[S_LOG], w->key, on_minor_reply, w, 3, argv, len);
    } else if (m->kind == REX_MSG_SCHEDULER) {
        char now[24];
        fmt_ms(now, sizeof(now), now_ms());
        const char *argv[] = {m->a, m->b, m->id, now, m->c, m->d};
        rc = rex_rconn_script(w->cmd, w->script[S_SCHEDULER], w->key, on_scheduler_reply, w, 6,
                              argv, NULL);
    }
    if (rc)
        rex_log_warn("redis is not connected: a progress, log or scheduler write was dropped",
                     "job", m->id, NULL);
    rex__msg_free(m);
}

/* ---- locks and stalled jobs -------------------------------------------------------------------
 */

struct extend_req {
    struct rex_worker *w;
};

static void on_extend(rex_rconn *c, redisReply *r, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR)
            rex_log_error("lock renewal failed", "error", r->str, NULL);
        maybe_close(w); /* a closing worker may have waited for this reply only */
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING)
            continue;
        for (struct rex_job *j = w->held; j; j = j->next) {
            if (strlen(j->id) == e->len && !memcmp(j->id, e->str, e->len) && !j->lock_lost) {
                j->lock_lost = 1;
                rex_log_error("could not renew lock for job; another worker may run it", "job",
                              j->id, NULL);
            }
        }
    }
    maybe_close(w);
}

static void on_renew_timer(uv_timer_t *t) {
    struct rex_worker *w = t->data;
    if (!w->held || !rex_rconn_up(w->cmd))
        return;
    int n = 0;
    for (struct rex_job *j = w->held; j; j = j->next)
        if (!j->lock_lost)
            n++;
    if (!n)
        return;
    const char **argv = rex_malloc(sizeof(char *) * (size_t)(2 * n + 1));
    char lock[24];
    fmt_long(lock, sizeof(lock), w->cfg->lock_duration_ms);
    argv[0] = lock;
    int k = 1;
    for (struct rex_job *j = w->held; j; j = j->next) {
        if (j->lock_lost)
            continue;
        argv[k++] = j->id;
        argv[k++] = j->token;
    }
    rex_rconn_script(w->cmd, w->script[S_EXTEND], w->key, on_extend, w, k, argv, NULL);
    rex_free(argv);
}

static void on_stalled(rex_rconn *c, redisReply *r, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    if (r && r->type == REDIS_REPLY_ERROR)
        rex_log_error("stalled-job check failed", "error", r->str, NULL);
    else if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                rex_log_warn("stalled job moved back to wait", "job", r->element[i]->str, NULL);
    maybe_close(w);
}

static void run_stalled_check(struct rex_worker *w) {
    if (!rex_rconn_up(w->cmd) || w->closing)
        return;
    char now[24], max[24], interval[24];
    fmt_ms(now, sizeof(now), now_ms());
    fmt_long(max, sizeof(max), w->cfg->max_stalled_count);
    fmt_long(interval, sizeof(interval), w->cfg->stalled_interval_ms);
    const char *argv[] = {now, max, interval};
    rex_rconn_script(w->cmd, w->script[S_STALLED], w->key, on_stalled, w, 3, argv, NULL);
}

static void on_stalled_timer(uv_timer_t *t) {
    run_stalled_check(t->data);
}

/* Every REX_IDLE_INTERVAL_MS the worker lends a thread to the handlers' idle(): housekeeping
 * that must not wait for a job of the right kind (the pending-final journals of executions and
 * knowledge documents). On a busy worker the call waits for a free thread like a job; one call
 * at a time. */
static void on_idle_timer(uv_timer_t *t) {
    struct rex_worker *w = t->data;
    if (w->closing || w->idle_pending)
        return;
    struct rex_job *item = rex_calloc(1, sizeof(*item));
    item->w = w;
    w->idle_pending = 1;
    update_nudging(w);
    rex_pool_submit(w->pool, &item->link);
}

/* ---- connection state ----------------------------------------------------------------------- */

static void on_cmd_state(rex_rconn *c, int up, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    if (!up) {
        w->fetching = 0;
        return;
    }
    rex_log_info("connected to redis", "url", w->cfg->redis_url_redacted, "queue",
                 w->cfg->queue_name, NULL);
    struct rex_job *list = w->unfinished;
    w->unfinished = NULL;
    while (list) {
        struct rex_job *j = list;
        list = j->resend;
        j->resend = NULL;
        send_finish(w, j);
    }
    run_stalled_check(w);
    maybe_fetch(w);
    maybe_close(w); /* closing, and nothing was left to send */
}

static void on_blk_state(rex_rconn *c, int up, void *ud) {
    struct rex_worker *w = ud;
    (void)c;
    if (!up) {
        w->blocking = 0;
        uv_timer_stop(&w->block_watchdog);
        return;
    }
    maybe_fetch(w);
}

/* ---- closing ----------------------------------------------------------------------------------
 */

/* The loop ends when every handle is closed; nothing to do per handle. */
static void on_handle_closed(uv_handle_t *h) {
    (void)h;
}

static void on_conn_closed(void *ud) {
    (void)ud;
}

/* Called from every reply callback of the command connection (and when it comes back up): the
 * worker closes with the last reply, whichever command it answers. */
static void maybe_close(struct rex_worker *w) {
    if (!w || !w->closing || w->close_started || w->inflight > 0 || w->unfinished ||
        w->idle_pending)
        return;
    if (w->cmd && rex_rconn_pending(w->cmd) > 0)
        return; /* progress/log writes, lock renewals, a stalled check still on their way */
    w->close_started = 1;
    uv_timer_stop(&w->renew_timer);
    uv_timer_stop(&w->stalled_timer);
    uv_timer_stop(&w->limit_timer);
    uv_timer_stop(&w->block_watchdog);
    uv_timer_stop(&w->grace_timer);
    uv_timer_stop(&w->idle_timer);
    uv_timer_stop(&w->nudge_timer);
    w->nudging = 0;
    uv_close((uv_handle_t *)&w->renew_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->idle_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->nudge_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->stalled_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->limit_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->block_watchdog, on_handle_closed);
    uv_close((uv_handle_t *)&w->grace_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&w->sigint, on_handle_closed);
    rex_mailbox_close(&w->mailbox, on_handle_closed);
    rex_rconn_close(w->cmd, on_conn_closed, w);
    if (w->blk)
        rex_rconn_close(w->blk, on_conn_closed, w);
    w->cmd = w->blk = NULL;
}

static void on_grace_timer(uv_timer_t *t) {
    struct rex_worker *w = t->data;
    char n[24];
    fmt_long(n, sizeof(n), w->inflight);
    rex_log_error("shutdown grace period is over with jobs still running; their locks will expire "
                  "and the stalled check will give them to another worker",
                  "jobs", n, NULL);
    _exit(1);
}

static void begin_close(struct rex_worker *w, const char *why) {
    if (w->closing)
        return;
    w->closing = 1;
    char n[24];
    fmt_long(n, sizeof(n), w->inflight);
    rex_log_info("closing: no new jobs, finishing the active ones", "signal", why, "active", n,
                 NULL);
    /* the blocking wait is interrupted; fetching stops; held jobs finish with fetchNext=0 */
    if (w->blk) {
        rex_rconn_close(w->blk, on_conn_closed, w);
        w->blk = NULL;
    }
    uv_timer_stop(&w->stalled_timer);
    uv_timer_stop(&w->limit_timer);
    if (w->cfg->shutdown_grace_ms > 0)
        uv_timer_start(&w->grace_timer, on_grace_timer, (uint64_t)w->cfg->shutdown_grace_ms, 0);
    maybe_close(w);
}

static void on_signal(uv_signal_t *s, int signum) {
    struct rex_worker *w = s->data;
    if (w->closing) {
        rex_log_warn("second signal: exiting now", NULL);
        _exit(1);
    }
    begin_close(w, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start ------------------------------------------------------------------------------------
 */

static void base64(const char *in, char *out, size_t outlen) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < outlen; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

static void random_hex(char *out, size_t bytes) {
    unsigned char buf[32];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, buf, bytes) != (ssize_t)bytes) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        srand((unsigned)(tv.tv_usec ^ getpid()));
        for (size_t i = 0; i < bytes; i++)
            buf[i] = (unsigned char)rand();
    }
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", buf[i]);
}

/* A start that failed once the mailbox was set up: lets its handle close, frees the worker. */
static int abandon_start(struct rex_worker *w, int rc) {
    uv_run(w->loop, UV_RUN_DEFAULT);
    rex_mailbox_destroy(&w->mailbox);
    uv_loop_close(w->loop);
    rex_free(w->key);
    rex_free(w);
    return rc;
}

int rex_worker_run(const struct rex_config *cfg, char *err, size_t errlen) {
    struct rex_worker *w = rex_calloc(1, sizeof(*w));
    uv_loop_t loop;
    uv_loop_init(&loop);
    w->loop = &loop;
    w->cfg = cfg;
    size_t kl = strlen(cfg->prefix) + strlen(cfg->queue_name) + 3;
    w->key = rex_malloc(kl);
    snprintf(w->key, kl, "%s:%s:", cfg->prefix, cfg->queue_name);
    for (int i = 0; i < S_COUNT; i++) {
        w->script[i] = rex_rconn_script_index(script_names[i]);
        if (w->script[i] < 0) {
            snprintf(err, errlen, "the queue script '%s' is missing from this build",
                     script_names[i]);
            return REX_ENOTFOUND;
        }
    }
    random_hex(w->token_base, 16);

    if (rex_mailbox_init(&w->mailbox, w->loop, deliver)) {
        snprintf(err, errlen, "cannot create the worker threads' mailbox: %s", strerror(errno));
        return abandon_start(w, REX_EIO);
    }
    w->mailbox.after = after_drain;
    w->mailbox.data = w;
    w->thread_opts.cfg = cfg;
    w->thread_opts.mailbox = &w->mailbox;
    struct rex_pool_ops ops = {rex__process_thread_init, rex__process_run, rex__process_thread_fini,
                               &w->thread_opts};
    int rc = rex_pool_start(cfg->concurrency, &ops, &w->pool, err, errlen);
    if (rc) {
        rex_mailbox_close(&w->mailbox, NULL);
        return abandon_start(w, rc);
    }

    uv_timer_init(w->loop, &w->renew_timer);
    uv_timer_init(w->loop, &w->stalled_timer);
    uv_timer_init(w->loop, &w->limit_timer);
    uv_timer_init(w->loop, &w->block_watchdog);
    uv_timer_init(w->loop, &w->grace_timer);
    uv_timer_init(w->loop, &w->idle_timer);
    uv_timer_init(w->loop, &w->nudge_timer);
    w->idle_timer.data = w->nudge_timer.data = w;
    w->renew_timer.data = w->stalled_timer.data = w->limit_timer.data = w;
    w->block_watchdog.data = w->grace_timer.data = w;
    uv_signal_init(w->loop, &w->sigterm);
    uv_signal_init(w->loop, &w->sigint);
    w->sigterm.data = w->sigint.data = w;
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    signal(SIGPIPE, SIG_IGN);

    /* Queue.getWorkers() finds workers by this client name (bullmq-protocol.md §2) */
    char b64[512], name[1024];
    base64(cfg->queue_name, b64, sizeof(b64));
    if (cfg->worker_name)
        snprintf(name, sizeof(name), "%s:%s:w:%s", cfg->prefix, b64, cfg->worker_name);
    else
        snprintf(name, sizeof(name), "%s:%s", cfg->prefix, b64);
    struct rex_rconn_opts co = {w->loop, &cfg->redis, NULL, on_cmd_state, w};
    w->cmd = rex_rconn_open(&co);
    struct rex_rconn_opts bo = {w->loop, &cfg->redis, name, on_blk_state, w};
    w->blk = rex_rconn_open(&bo);

    long renew = cfg->lock_duration_ms / 4 > 0 ? cfg->lock_duration_ms / 4 : 1;
    uv_timer_start(&w->renew_timer, on_renew_timer, (uint64_t)renew, (uint64_t)renew);
    uv_timer_start(&w->stalled_timer, on_stalled_timer, (uint64_t)cfg->stalled_interval_ms,
                   (uint64_t)cfg->stalled_interval_ms);
    uv_timer_start(&w->idle_timer, on_idle_timer, (uint64_t)cfg->idle_interval_ms,
                   (uint64_t)cfg->idle_interval_ms);

    char conc[24];
    fmt_long(conc, sizeof(conc), cfg->concurrency);
    rex_log_info("worker started", "queue", cfg->queue_name, "prefix", cfg->prefix, "redis",
                 cfg->redis_url_redacted, "concurrency", conc, "version", REX_VERSION, NULL);
    uv_run(w->loop, UV_RUN_DEFAULT);

    rex_pool_stop(w->pool);
    rex_mailbox_destroy(&w->mailbox);
    uv_loop_close(w->loop);
    char done[24], failed[24];
    fmt_long(done, sizeof(done), (long)w->completed);
    fmt_long(failed, sizeof(failed), (long)w->failed);
    rex_log_info("worker stopped", "completed", done, "failed", failed, NULL);
    int code = w->exit_code;
    rex_free(w->key);
    rex_free(w);
    return code;
}
