#include "runtime/pool.h"

#include <rex/rex.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct thread {
    rex_pool *pool;
    pthread_t tid;
    int index;
    int started;
    pthread_cond_t cond;      /* this thread's own wake-up (see `idle`) */
    int woken;                /* under the pool's lock: taken off `idle` to run items */
    struct thread *idle_next; /* under the pool's lock: next on `idle` */
};

struct rex_pool {
    struct rex_pool_ops ops;
    pthread_mutex_t lock;
    pthread_cond_t ready_cond;
    struct rex_link *head, *tail;
    int queued;
    int stopping;
    int ready;
    int failed;
    char err[512];
    int nthreads;
    struct thread *threads;
    /* How many threads are woken (see pool.h): at most `budget` run at once unless some are
     * blocked in a call that said so (rex_pool_block_begin) or the queue stalls. */
    int budget;
    int awake;   /* threads not waiting: running an item or about to look for one */
    int blocked; /* of those, inside rex_pool_block_begin/_end */
    int waiting; /* threads waiting for a wake-up */
    int wakes;   /* wake-ups sent whose thread has not woken yet */
    /* The waiting threads not yet woken, the one that waited last on top. Waking the top one
     * runs the next item on the thread (and LuaJIT state) that ran most recently, whose memory
     * is still in the caches; a shared condition variable wakes the longest waiter, whose state
     * is the coldest. */
    struct thread *idle;
    int held;        /* rex_pool_hold depth: submitted items wait for rex_pool_release */
    double moved_ms; /* when a thread last took an item, or the queue last became non-empty */
};

static __thread rex_pool *thread_pool; /* the pool of the calling worker thread, or NULL */

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Under the lock: takes a waiting thread off `idle` for it to be woken. */
static struct thread *take_idle(rex_pool *p) {
    struct thread *t = p->idle;
    p->idle = t->idle_next;
    t->idle_next = NULL;
    t->woken = 1;
    p->wakes++;
    return t;
}

/* Called with the lock held, returns with it released: wakes waiting threads (one per queued
 * item not yet promised a thread) while fewer than `budget` threads are (or are about to be)
 * running without being blocked. The threads are chosen under the lock and signalled after
 * unlocking: a thread woken while the lock is still held would only wake to wait for it. */
enum { WAKE_BATCH = 32 };
static void wake_due_unlock(rex_pool *p) {
    for (;;) {
        struct thread *w[WAKE_BATCH];
        int n = 0;
        while (n < WAKE_BATCH && !p->held && p->head && p->idle && p->wakes < p->queued &&
               p->awake - p->blocked + p->wakes < p->budget)
            w[n++] = take_idle(p);
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < n; i++)
            pthread_cond_signal(&w[i]->cond);
        if (n < WAKE_BATCH)
            return;
        pthread_mutex_lock(&p->lock);
    }
}

static void *thread_main(void *arg) {
    struct thread *t = arg;
    rex_pool *p = t->pool;
    void *tctx = NULL;
    int first_wait = 1;
    char err[512] = "";
    int rc = p->ops.thread_init(p->ops.ud, t->index, &tctx, err, sizeof(err));
    pthread_mutex_lock(&p->lock);
    if (rc) {
        if (!p->failed)
            snprintf(p->err, sizeof(p->err), "%s", err);
        p->failed = 1;
    }
    p->ready++;
    pthread_cond_broadcast(&p->ready_cond);
    pthread_mutex_unlock(&p->lock);
    if (rc)
        return NULL;
    thread_pool = p;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->awake--;
            p->waiting++;
            t->woken = 0;
            t->idle_next = p->idle;
            p->idle = t;
            if (first_wait) { /* rex_pool_start returns once every thread waits here */
                first_wait = 0;
                pthread_cond_broadcast(&p->ready_cond);
            }
            while (!t->woken && !p->stopping)
                pthread_cond_wait(&t->cond, &p->lock);
            if (t->woken) {
                p->wakes--;
            } else { /* stopping: off the idle list */
                struct thread **pp = &p->idle;
                while (*pp && *pp != t)
                    pp = &(*pp)->idle_next;
                if (*pp)
                    *pp = t->idle_next;
            }
            p->waiting--;
            p->awake++;
        }
        struct rex_link *item = p->head;
        if (!item) /* stopping and nothing left */
            break;
        p->head = item->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        p->moved_ms = mono_ms();
        wake_due_unlock(p); /* more items, and room for another thread */
        item->next = NULL;
        p->ops.run(tctx, item);
        pthread_mutex_lock(&p->lock);
    }
    p->awake--;
    pthread_mutex_unlock(&p->lock);
    if (p->ops.thread_fini)
        p->ops.thread_fini(tctx);
    return NULL;
}

static void stop_threads(rex_pool *p) {
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    for (int i = 0; i < p->nthreads; i++)
        pthread_cond_signal(&p->threads[i].cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        if (p->threads[i].started)
            pthread_join(p->threads[i].tid, NULL);
}

int rex_pool_start(int n, const struct rex_pool_ops *ops, rex_pool **out, char *err,
                   size_t errlen) {
    rex_pool *p = rex_calloc(1, sizeof(*p));
    p->ops = *ops;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->ready_cond, NULL);
    p->threads = rex_calloc((size_t)n, sizeof(struct thread));
    for (int i = 0; i < n; i++)
        pthread_cond_init(&p->threads[i].cond, NULL);
    p->nthreads = n;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    p->budget = cpus > 2 ? (int)cpus : 2;
    p->awake = n; /* each thread counts itself out when it first waits */
    int started = 0;
    for (int i = 0; i < n; i++) {
        p->threads[i].pool = p;
        p->threads[i].index = i;
        if (pthread_create(&p->threads[i].tid, NULL, thread_main, &p->threads[i]) != 0) {
            snprintf(p->err, sizeof(p->err), "cannot start worker thread %d", i);
            p->failed = 1;
            break;
        }
        p->threads[i].started = 1;
        started++;
    }
    /* Every thread has started (or failed to) and, unless one failed, waits for work: from here
     * an item runs only when a thread is woken for it (a hold is never raced by a thread that
     * was still starting). */
    pthread_mutex_lock(&p->lock);
    while (p->ready < started || (!p->failed && p->waiting < started))
        pthread_cond_wait(&p->ready_cond, &p->lock);
    int failed = p->failed;
    pthread_mutex_unlock(&p->lock);
    if (failed) {
        snprintf(err, errlen, "%s", p->err);
        stop_threads(p);
        for (int i = 0; i < n; i++)
            pthread_cond_destroy(&p->threads[i].cond);
        rex_free(p->threads);
        rex_free(p);
        return REX_ELUA;
    }
    *out = p;
    return 0;
}

void rex_pool_submit(rex_pool *p, struct rex_link *item) {
    item->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = item;
    else
        p->head = item;
    p->tail = item;
    if (p->queued++ == 0)
        p->moved_ms = mono_ms();
    wake_due_unlock(p);
}

void rex_pool_hold(rex_pool *p) {
    pthread_mutex_lock(&p->lock);
    p->held++;
    pthread_mutex_unlock(&p->lock);
}

void rex_pool_release(rex_pool *p) {
    pthread_mutex_lock(&p->lock);
    p->held--;
    wake_due_unlock(p);
}

void rex_pool_nudge(rex_pool *p, double stall_ms) {
    pthread_mutex_lock(&p->lock);
    if (p->head && mono_ms() - p->moved_ms >= stall_ms) {
        /* every thread running seems stuck in a call that did not say it blocks: a thread for
         * each waiting item */
        while (p->idle && p->wakes < p->queued)
            pthread_cond_signal(&take_idle(p)->cond);
        p->moved_ms = mono_ms();
    }
    pthread_mutex_unlock(&p->lock);
}

int rex_pool_budget(rex_pool *p) {
    return p->budget;
}

void rex_pool_block_begin(void) {
    rex_pool *p = thread_pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->blocked++;
    wake_due_unlock(p);
}

void rex_pool_block_end(void) {
    rex_pool *p = thread_pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->blocked--;
    pthread_mutex_unlock(&p->lock);
}

int rex_pool_queued(rex_pool *p) {
    pthread_mutex_lock(&p->lock);
    int n = p->queued;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void rex_pool_stop(rex_pool *p) {
    stop_threads(p);
    pthread_mutex_destroy(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_cond_destroy(&p->threads[i].cond);
    pthread_cond_destroy(&p->ready_cond);
    rex_free(p->threads);
    rex_free(p);
}

/* The mailbox wakes the loop through its own eventfd rather than uv_async_send: libuv 1.44's
 * async handle makes the loop thread spin (up to 997 pauses, then sched_yield) whenever it wakes
 * while the posting thread is still inside its write(), and that spin was the loop thread's
 * hottest user-space spot in profiles of no-op jobs at concurrency 10. Here `signaled`
 * (under the lock) says a wake-up is already on its way: a post writes the eventfd only when it
 * is not, and the loop clears it when it takes the list, so a post after that writes again. */
static void drain(rex_mailbox *mb) {
    pthread_mutex_lock(&mb->lock);
    struct rex_link *item = mb->head;
    mb->head = mb->tail = NULL;
    mb->signaled = 0;
    pthread_mutex_unlock(&mb->lock);
    while (item) {
        struct rex_link *next = item->next;
        item->next = NULL;
        mb->deliver(mb, item);
        item = next;
    }
    if (mb->after)
        mb->after(mb);
}

static void on_wake(uv_poll_t *h, int status, int events) {
    (void)status;
    (void)events;
    rex_mailbox *mb = h->data;
    uint64_t n;
    /* nonblocking: a spurious wake-up (the counter already read) just finds nothing */
    while (read(mb->efd, &n, sizeof(n)) < 0 && errno == EINTR) {
    }
    drain(mb);
}

int rex_mailbox_init(rex_mailbox *mb, uv_loop_t *loop,
                     void (*deliver)(rex_mailbox *mb, struct rex_link *item)) {
    memset(mb, 0, sizeof(*mb));
    pthread_mutex_init(&mb->lock, NULL);
    mb->deliver = deliver;
    mb->poll.data = mb;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0)
        return REX_EIO;
    if (uv_poll_init(loop, &mb->poll, mb->efd))
        return REX_EIO;
    if (uv_poll_start(&mb->poll, UV_READABLE, on_wake)) {
        uv_close((uv_handle_t *)&mb->poll, NULL);
        return REX_EIO;
    }
    return 0;
}

void rex_mailbox_post(rex_mailbox *mb, struct rex_link *item) {
    item->next = NULL;
    pthread_mutex_lock(&mb->lock);
    if (mb->tail)
        mb->tail->next = item;
    else
        mb->head = item;
    mb->tail = item;
    int wake = !mb->signaled;
    mb->signaled = 1;
    pthread_mutex_unlock(&mb->lock);
    if (wake) {
        uint64_t one = 1;
        /* EAGAIN only when the counter is at its maximum, that is already readable */
        while (write(mb->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
        }
    }
}

void rex_mailbox_close(rex_mailbox *mb, uv_close_cb cb) {
    drain(mb);
    uv_close((uv_handle_t *)&mb->poll, cb);
}

void rex_mailbox_destroy(rex_mailbox *mb) {
    if (mb->efd >= 0)
        close(mb->efd);
    mb->efd = -1;
    pthread_mutex_destroy(&mb->lock);
}
