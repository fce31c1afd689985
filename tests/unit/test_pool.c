/* The worker pool's wake-up policy (runtime/pool.h): CPU-bound items run on at most `budget`
 * threads, items that announce their waits all run at once, items that wait without saying so
 * get threads through rex_pool_nudge, and nothing queued is ever lost. */
#include "runtime/pool.h"

#include "rextest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum kind { SPIN, ANNOUNCED_WAIT, SILENT_WAIT };

struct item {
    struct rex_link link;
    enum kind kind;
    int ms;
};

static atomic_int running, max_running, done;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int init(void *ud, int index, void **tctx, char *err, size_t errlen) {
    (void)ud, (void)index, (void)err, (void)errlen;
    *tctx = NULL;
    return 0;
}

static void run(void *tctx, struct rex_link *link) {
    (void)tctx;
    struct item *it = (struct item *)link;
    int r = atomic_fetch_add(&running, 1) + 1;
    for (int m = atomic_load(&max_running); r > m;)
        if (atomic_compare_exchange_weak(&max_running, &m, r))
            break;
    if (it->kind == SPIN) {
        double end = now_ms() + it->ms;
        while (now_ms() < end)
            ;
    } else {
        if (it->kind == ANNOUNCED_WAIT)
            rex_pool_block_begin();
        usleep((useconds_t)it->ms * 1000);
        if (it->kind == ANNOUNCED_WAIT)
            rex_pool_block_end();
    }
    atomic_fetch_sub(&running, 1);
    atomic_fetch_add(&done, 1);
}

static rex_pool *start_ops(int n, const struct rex_pool_ops *ops) {
    atomic_store(&running, 0);
    atomic_store(&max_running, 0);
    atomic_store(&done, 0);
    rex_pool *p = NULL;
    char err[128];
    CHECK_INT(rex_pool_start(n, ops, &p, err, sizeof(err)), 0);
    CHECK(rex_pool_budget(p) >= 2);
    return p;
}

static rex_pool *start(int n) {
    struct rex_pool_ops ops = {init, run, NULL, NULL};
    return start_ops(n, &ops);
}

static void submit_all(rex_pool *p, struct item *items, int n, enum kind kind, int ms) {
    for (int i = 0; i < n; i++) {
        items[i] = (struct item){.kind = kind, .ms = ms};
        rex_pool_submit(p, &items[i].link);
    }
}

static void wait_done(int n, double timeout_ms) {
    double end = now_ms() + timeout_ms;
    while (atomic_load(&done) < n && now_ms() < end)
        usleep(1000);
    CHECK_INT(atomic_load(&done), n);
}

TEST(pool_cpu_items_run_on_the_budget) {
    rex_pool *p = start(16);
    int budget = rex_pool_budget(p);
    struct item items[40];
    submit_all(p, items, 40, SPIN, 2);
    wait_done(40, 10000);
    CHECK(atomic_load(&max_running) <= budget);
    CHECK(atomic_load(&max_running) >= 1);
    rex_pool_stop(p);
}

TEST(pool_announced_waits_all_run_at_once) {
    rex_pool *p = start(8);
    struct item items[8];
    double t0 = now_ms();
    submit_all(p, items, 8, ANNOUNCED_WAIT, 150);
    wait_done(8, 10000);
    CHECK_INT(atomic_load(&max_running), 8);
    CHECK(now_ms() - t0 < 8 * 150 / 2); /* not one budget's worth at a time */
    rex_pool_stop(p);
}

TEST(pool_silent_waits_get_threads_through_nudge) {
    rex_pool *p = start(6);
    struct item items[6];
    submit_all(p, items, 6, SILENT_WAIT, 300);
    /* without a nudge only the budget runs: the others wait */
    usleep(100 * 1000);
    CHECK(atomic_load(&running) <= rex_pool_budget(p));
    for (int i = 0; i < 50 && atomic_load(&running) < 6 && atomic_load(&done) == 0; i++) {
        rex_pool_nudge(p, 2);
        usleep(2000);
    }
    CHECK_INT(atomic_load(&max_running), 6);
    wait_done(6, 10000);
    rex_pool_stop(p);
}

TEST(pool_nudge_leaves_a_moving_queue_alone) {
    rex_pool *p = start(8);
    int budget = rex_pool_budget(p);
    struct item items[60];
    submit_all(p, items, 60, SPIN, 1);
    /* items are taken every millisecond: a 500 ms stall threshold is never reached */
    while (atomic_load(&done) < 60) {
        rex_pool_nudge(p, 500);
        usleep(500);
    }
    CHECK(atomic_load(&max_running) <= budget);
    rex_pool_stop(p);
}

TEST(pool_stop_runs_what_is_queued) {
    rex_pool *p = start(2);
    struct item items[10];
    submit_all(p, items, 10, SPIN, 1);
    rex_pool_stop(p);
    CHECK_INT(atomic_load(&done), 10);
}

TEST(pool_block_calls_outside_a_pool_are_harmless) {
    rex_pool_block_begin();
    rex_pool_block_end();
}

TEST(pool_held_items_start_at_release_on_the_budget) {
    rex_pool *p = start(8);
    int budget = rex_pool_budget(p);
    struct item items[12];
    rex_pool_hold(p);
    rex_pool_hold(p); /* nested */
    submit_all(p, items, 12, SPIN, 2);
    rex_pool_release(p);
    usleep(50 * 1000);
    CHECK_INT(atomic_load(&done), 0); /* still held */
    CHECK_INT(rex_pool_queued(p), 12);
    rex_pool_release(p);
    wait_done(12, 10000);
    CHECK(atomic_load(&max_running) <= budget);
    rex_pool_stop(p);
}

/* The mailbox: items posted from several threads at once all reach the loop, each thread's in
 * the order posted, and a post after the loop took the list wakes it again (a lost wake-up
 * would leave the loop asleep until the 10 s timer gives up). */
#define POSTERS 4
#define POSTS 20000

struct posted {
    struct rex_link link;
    int poster, seq;
};

static struct {
    rex_mailbox mb;
    uv_timer_t timeout;
    int next[POSTERS];
    int delivered, out_of_order, drains, timed_out;
} mbt;

static void mb_deliver(rex_mailbox *mb, struct rex_link *item) {
    (void)mb;
    struct posted *p = (struct posted *)item;
    if (p->seq != mbt.next[p->poster])
        mbt.out_of_order++;
    mbt.next[p->poster] = p->seq + 1;
    free(p);
    if (++mbt.delivered == POSTERS * POSTS && !mbt.timed_out) {
        uv_timer_stop(&mbt.timeout);
        uv_close((uv_handle_t *)&mbt.timeout, NULL);
        rex_mailbox_close(&mbt.mb, NULL);
    }
}

static void mb_after(rex_mailbox *mb) {
    (void)mb;
    mbt.drains++;
}

static void mb_timeout(uv_timer_t *t) {
    mbt.timed_out = 1;
    uv_close((uv_handle_t *)t, NULL);
    rex_mailbox_close(&mbt.mb, NULL);
}

static void *poster(void *arg) {
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < POSTS; i++) {
        struct posted *p = malloc(sizeof(*p));
        p->poster = id;
        p->seq = i;
        rex_mailbox_post(&mbt.mb, &p->link);
        if (i % 1000 == 0)
            usleep(200); /* let the loop catch up and sleep now and then */
    }
    return NULL;
}

TEST(mailbox_delivers_every_post_in_order_from_many_threads) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    memset(&mbt, 0, sizeof(mbt));
    CHECK_INT(rex_mailbox_init(&mbt.mb, &loop, mb_deliver), 0);
    mbt.mb.after = mb_after;
    uv_timer_init(&loop, &mbt.timeout);
    uv_timer_start(&mbt.timeout, mb_timeout, 10000, 0);
    pthread_t t[POSTERS];
    for (int i = 0; i < POSTERS; i++)
        pthread_create(&t[i], NULL, poster, (void *)(intptr_t)i);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < POSTERS; i++)
        pthread_join(t[i], NULL);
    rex_mailbox_destroy(&mbt.mb);
    CHECK_INT(uv_loop_close(&loop), 0);
    CHECK_INT(mbt.timed_out, 0);
    CHECK_INT(mbt.delivered, POSTERS * POSTS);
    CHECK_INT(mbt.out_of_order, 0);
    CHECK(mbt.drains > 1);
    for (int i = 0; i < POSTERS; i++)
        CHECK_INT(mbt.next[i], POSTS);
}

/* One item at a time, each submitted once the previous thread went back to sleep: every item
 * runs on the thread that ran the one before (the last to sleep is the first woken), not on
 * each thread in turn. */
static atomic_int last_thread, thread_changes;

static int init_index(void *ud, int index, void **tctx, char *err, size_t errlen) {
    (void)ud, (void)err, (void)errlen;
    *tctx = (void *)(intptr_t)(index + 1);
    return 0;
}

static void run_record(void *tctx, struct rex_link *link) {
    (void)link;
    int me = (int)(intptr_t)tctx;
    int prev = atomic_exchange(&last_thread, me);
    if (prev && prev != me)
        atomic_fetch_add(&thread_changes, 1);
    atomic_fetch_add(&done, 1);
}

TEST(pool_wakes_the_thread_that_slept_last) {
    atomic_store(&last_thread, 0);
    atomic_store(&thread_changes, 0);
    struct rex_pool_ops ops = {init_index, run_record, NULL, NULL};
    rex_pool *p = start_ops(6, &ops);
    struct rex_link items[20];
    for (int i = 0; i < 20; i++) {
        rex_pool_submit(p, &items[i]);
        wait_done(i + 1, 5000);
        usleep(3000); /* the thread is back waiting */
    }
    CHECK_INT(atomic_load(&thread_changes), 0);
    rex_pool_stop(p);
}
