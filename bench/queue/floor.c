/* The ceiling of the queue protocol on this machine: a client that does nothing but BullMQ's
 * worker round trips, with rex-worker's own scripts. At concurrency 1 it fetches a job
 * (moveToActive), then finishes it with fetch-next (moveToFinished) as soon as the reply arrives,
 * one blocking hiredis round trip per job. At concurrency N it holds N jobs and finishes all of
 * them with fetch-next in one `finish_many` call per round trip (the largest batch rex-worker
 * could ever form). No handler, no thread hand-off, no event loop: Redis does the work it does
 * for rex-worker, so this client's rate bounds what a worker can reach, and its CPU per job is
 * what the round trips alone cost a client here (bench/queue/bench.js runs it next to both
 * workers).
 *
 * usage: bench_queue_floor HOST PORT QUEUE [CONCURRENCY=1] [PREFIX=bull]   (stops on SIGTERM) */
#include "queue/scripts.h"

#include <hiredis/hiredis.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static const char *script(const char *name) {
    for (int i = 0; i < rex__queue_nscripts; i++)
        if (!strcmp(rex__queue_scripts[i].name, name))
            return rex__queue_scripts[i].text;
    fprintf(stderr, "floor: script %s missing\n", name);
    exit(2);
}

static redisReply *cmd(redisContext *c, int argc, const char **argv) {
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) {
        fprintf(stderr, "floor: redis: %s\n", c->errstr);
        exit(1);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "floor: %s\n", r->str);
        exit(1);
    }
    return r;
}

static void load(redisContext *c, const char *name, char *sha) {
    const char *argv[] = {"SCRIPT", "LOAD", script(name)};
    redisReply *r = cmd(c, 3, argv);
    snprintf(sha, 41, "%s", r->str);
    freeReplyObject(r);
}

static void now_ms(char *buf, size_t n) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(buf, n, "%lld", (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/* The job id of a fetch reply {fields|0, id|0, ...} into id; 0 when none. */
static int job_id(const redisReply *r, char *id, size_t n) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    snprintf(id, n, "%s", r->element[1]->str);
    return 1;
}

/* One fetch (moveToActive) with a new token: the job into *job, 1, or 0 when none is ready. */
struct held {
    char id[128];
    char token[64];
};

static unsigned long seq;

static int fetch_one(redisContext *c, const char *sha, const char *key, struct held *job) {
    char now[24];
    now_ms(now, sizeof(now));
    snprintf(job->token, sizeof(job->token), "floor:%lu", ++seq);
    const char *fa[] = {"EVALSHA", sha, "1", key, now, job->token, "30000", "", "", "floor"};
    redisReply *r = cmd(c, 10, fa);
    int have = job_id(r, job->id, sizeof(job->id));
    freeReplyObject(r);
    return have;
}

/* Concurrency 1: finish with fetch-next, one round trip per job, while jobs come back. */
static unsigned long chain_one(redisContext *c, const char *sha, const char *key, struct held *j) {
    unsigned long done = 0;
    char now[24], next[64];
    int have = 1;
    while (have && !stop) {
        now_ms(now, sizeof(now));
        snprintf(next, sizeof(next), "floor:%lu", ++seq);
        const char *xa[] = {
            "EVALSHA",       sha, "1", key, j->id, j->token, now, "completed", "null",
            "{\"count\":0}", "0", "1", "",  next,  "30000",  "",  "",          "floor"};
        redisReply *r = cmd(c, 18, xa);
        done++;
        have = job_id(r, j->id, sizeof(j->id));
        freeReplyObject(r);
        snprintf(j->token, sizeof(j->token), "%s", next);
    }
    return done;
}

/* Concurrency n: every held job finished with fetch-next in one finish_many per round trip;
 * the jobs it returns are the next batch. Returns the jobs finished; *h is left at 0 or the
 * number held when stopped. */
static unsigned long chain_many(redisContext *c, const char *sha, const char *key,
                                struct held *held, int *h) {
    unsigned long done = 0;
    enum { PER = 8 };
    const char **av = malloc(sizeof(char *) * (size_t)(10 + PER * *h + 1));
    char(*next)[64] = malloc(64 * (size_t)*h);
    char now[24], n[16];
    while (*h > 0 && !stop) {
        now_ms(now, sizeof(now));
        snprintf(n, sizeof(n), "%d", *h);
        int a = 0;
        av[a++] = "EVALSHA", av[a++] = sha, av[a++] = "1", av[a++] = key, av[a++] = now;
        av[a++] = "30000", av[a++] = "", av[a++] = "", av[a++] = "floor", av[a++] = n;
        for (int i = 0; i < *h; i++) {
            snprintf(next[i], 64, "floor:%lu", ++seq);
            av[a++] = held[i].id, av[a++] = held[i].token, av[a++] = "completed";
            av[a++] = "null", av[a++] = "{\"count\":0}", av[a++] = "0", av[a++] = "";
            av[a++] = next[i];
        }
        redisReply *r = cmd(c, a, av);
        done += (unsigned long)*h;
        redisReply *jobs = r->type == REDIS_REPLY_ARRAY && r->elements == 3 ? r->element[1] : NULL;
        int got = 0;
        for (size_t i = 0; jobs && i < jobs->elements; i++) {
            redisReply *e = jobs->element[i]; /* {hash, id, token} */
            snprintf(held[got].id, sizeof(held[got].id), "%s", e->element[1]->str);
            snprintf(held[got].token, sizeof(held[got].token), "%s", e->element[2]->str);
            got++;
        }
        freeReplyObject(r);
        *h = got;
    }
    free(next);
    free(av);
    return done;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s HOST PORT QUEUE [CONCURRENCY] [PREFIX]\n", argv[0]);
        return 2;
    }
    int conc = argc > 4 ? atoi(argv[4]) : 1;
    if (conc < 1 || conc > 10000) {
        fprintf(stderr, "floor: concurrency must be 1 to 10000\n");
        return 2;
    }
    char key[512], marker[520];
    snprintf(key, sizeof(key), "%s:%s:", argc > 5 ? argv[5] : "bull", argv[3]);
    snprintf(marker, sizeof(marker), "%smarker", key);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    redisContext *c = redisConnect(argv[1], atoi(argv[2]));
    if (!c || c->err) {
        fprintf(stderr, "floor: cannot connect: %s\n", c ? c->errstr : "out of memory");
        return 1;
    }
    char fetch[41], finish[41], many[41];
    load(c, "fetch", fetch);
    load(c, "finish", finish);
    load(c, "finish_many", many);
    fprintf(stderr, "floor: connected to redis\n");

    struct held *held = calloc((size_t)conc, sizeof(*held));
    unsigned long done = 0;
    while (!stop) {
        int h = 0;
        while (h < conc && fetch_one(c, fetch, key, &held[h]))
            h++;
        if (h == 0) { /* wait for the marker as a worker does (bounded, so SIGTERM is seen) */
            const char *ba[] = {"BZPOPMIN", marker, "1"};
            freeReplyObject(cmd(c, 3, ba));
            continue;
        }
        done +=
            conc == 1 ? chain_one(c, finish, key, &held[0]) : chain_many(c, many, key, held, &h);
    }
    fprintf(stderr, "floor: %lu jobs\n", done);
    free(held);
    redisFree(c);
    return 0;
}
