/* Worker threads and the mailbox back to the event loop (internal).
 *
 * rex_pool: N threads, each with its own context made by ops->thread_init on that thread (the
 * LuaJIT state lives there and never leaves it). Items are run FIFO by whichever thread is free.
 *
 * Waking a sleeping thread costs a context switch, more than a short job itself. So a submitted
 * item wakes a thread only while fewer than `budget` threads (the CPU count, at least 2) are
 * running; a running thread that finishes takes the next item without sleeping, and the thread
 * woken is the one that went to sleep last (its LuaJIT state is the likeliest still in cache). A
 * thread about to wait says so (rex_pool_block_begin/_end around the wait: PostgreSQL, HTTP, Redis,
 * sleep), which lets another thread take a waiting item at once. For a call that blocks without
 * saying so (user code through the FFI, say), the loop calls rex_pool_nudge: items that waited that
 * long with no thread taking any each get a thread. All N threads still run at once when the jobs
 * wait on I/O; CPU-bound short jobs run on `budget` threads with far fewer wake-ups.
 * rex_mailbox: items posted from any thread are handed, in order, to a callback on the loop's
 * thread (a locked list that is drained fully, and an eventfd written only when no wake-up is
 * already pending). */
#ifndef REX_RUNTIME_POOL_H
#define REX_RUNTIME_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <uv.h>

/* Embed as the first member of anything submitted or posted. */
struct rex_link {
    struct rex_link *next;
};

struct rex_pool_ops {
    /* On the new thread. Returns 0 and sets *tctx, or an error with a message in err. */
    int (*thread_init)(void *ud, int index, void **tctx, char *err, size_t errlen);
    void (*run)(void *tctx, struct rex_link *item);
    void (*thread_fini)(void *tctx);
    void *ud;
};

typedef struct rex_pool rex_pool;

/* Starts n threads and waits until each has initialised. Returns 0, or the first thread_init
 * error (the threads already started are stopped). */
int rex_pool_start(int n, const struct rex_pool_ops *ops, rex_pool **out, char *err, size_t errlen);
void rex_pool_submit(rex_pool *p, struct rex_link *item);
/* Around the submission of a batch (the jobs of one Redis reply): items submitted in between
 * wake threads only at rex_pool_release, all at once, instead of one thread being woken (and
 * taking the CPU from the submitter) per item. Pairs may nest. */
void rex_pool_hold(rex_pool *p);
void rex_pool_release(rex_pool *p);
/* Items queued and not yet picked up by a thread. */
int rex_pool_queued(rex_pool *p);
/* How many threads run at once before blocked ones make room (>= 2). */
int rex_pool_budget(rex_pool *p);
/* From any thread: if items are queued and no thread took one for stall_ms, wakes a thread for
 * each of them. */
void rex_pool_nudge(rex_pool *p, double stall_ms);
/* On a pool thread, around a wait for I/O (no-ops elsewhere). Keep them paired. */
void rex_pool_block_begin(void);
void rex_pool_block_end(void);
/* Stops the threads after the items already queued, joins them and frees the pool. */
void rex_pool_stop(rex_pool *p);

typedef struct rex_mailbox {
    uv_poll_t poll; /* on efd; poll.data is the mailbox */
    int efd;
    pthread_mutex_t lock;
    struct rex_link *head, *tail;
    int signaled; /* under lock: efd written since the list was last taken */
    void (*deliver)(struct rex_mailbox *mb, struct rex_link *item);
    void (*after)(struct rex_mailbox *mb); /* optional: called after each drain */
    void *data;
} rex_mailbox;

/* On failure (REX_EIO) the loop still has to run (a handle may be closing), then
 * rex_mailbox_destroy. */
int rex_mailbox_init(rex_mailbox *mb, uv_loop_t *loop,
                     void (*deliver)(rex_mailbox *mb, struct rex_link *item));
void rex_mailbox_post(rex_mailbox *mb, struct rex_link *item);
/* Closes the mailbox's handle (cb, if any, is called with it once closed) after delivering the
 * items still queued. Items posted later are not delivered. */
void rex_mailbox_close(rex_mailbox *mb, uv_close_cb cb);
/* After the handle has closed and no thread posts any more (the pool stopped): frees the rest. */
void rex_mailbox_destroy(rex_mailbox *mb);

#endif
