/* The queue worker (internal): the event-loop side (worker.c) and the worker-thread side
 * (process.c) share these structures. A job is owned by the loop thread except between
 * rex_pool_submit and the JOB_DONE message, when only its worker thread touches it. */
#ifndef REX_QUEUE_WORKER_H
#define REX_QUEUE_WORKER_H

#include "runtime/pool.h"

#include <rex/config.h>

#include <stddef.h>

enum rex_job_outcome {
    REX_OUT_COMPLETED = 1, /* finish as completed, value = returnvalue JSON */
    REX_OUT_FAILED,        /* finish as failed, value = failedReason */
    REX_OUT_RETRY,         /* retry now (retry script) */
    REX_OUT_DELAY,         /* retry after delay ms (delay script) */
};

struct rex_worker;

struct rex_job {
    struct rex_link link; /* pool queue, then mailbox */
    struct rex_worker *w;
    struct rex_job *prev, *next; /* the worker's list of jobs it holds */
    struct rex_job *resend;      /* the list of finishes to resend after a reconnect */
    char *id;                    /* NULL for the idle call (no job: rex.worker.idle runs) */
    char token[64];
    int nfields; /* the job hash as fetched: field/value pairs */
    char **fv;
    size_t *fvlen;
    double fetched_ms;
    int lock_lost;
    /* set before submitting: fail at once with this message instead of running the handler */
    char *fail_message;
    int fail_unrecoverable;
    /* the outcome, set by the worker thread */
    int outcome;
    char *value;
    size_t value_len;
    char *keep;       /* keepJobs JSON */
    char *stacktrace; /* JSON array or NULL */
    long attempts;
    long delay;
    int lifo;
};

enum rex_msg_kind {
    REX_MSG_JOB_DONE = 1,
    REX_MSG_PROGRESS,
    REX_MSG_LOG,
    REX_MSG_SCHEDULER,
    REX_MSG_IDLE_DONE /* the idle call is over (->job is its item) */
};

struct rex_msg {
    struct rex_link link;
    int kind;
    struct rex_job *job; /* JOB_DONE, IDLE_DONE */
    char *id;            /* PROGRESS, LOG */
    char *a;             /* progress JSON / log line / scheduler id */
    size_t alen;
    char *b, *c, *d; /* SCHEDULER: next ms ("" = from every), next opts JSON, every */
    long n;          /* keepLogs, or -1 */
};

/* Worker-thread side (process.c). */
struct rex_worker_thread_opts {
    const struct rex_config *cfg;
    rex_mailbox *mailbox;
};
int rex__process_thread_init(void *ud, int index, void **tctx, char *err, size_t errlen);
void rex__process_run(void *tctx, struct rex_link *item);
void rex__process_thread_fini(void *tctx);

void rex__job_free(struct rex_job *job);
void rex__msg_free(struct rex_msg *m);

#endif
