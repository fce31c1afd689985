/* The worker-thread side of the queue: runs one job in this thread's LuaJIT state through
 * lua/rex/worker.lua and posts the outcome, and any progress or log lines, to the loop. */
#include "queue/worker.h"

#include <rex/log.h>
#include <rex/rex.h>
#include <rex/runtime.h>

#include <rex/queue.h>

#include <hiredis/hiredis.h>
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>

#include <stdio.h>
#include <string.h>

struct tctx {
    rex_lstate *ls;
    rex_mailbox *mailbox;
    int process_ref;              /* rex.worker.process */
    int idle_ref;                 /* rex.worker.idle */
    const struct rex_config *cfg; /* the worker's, outlives the thread */
    redisContext *redis;          /* this thread's own blocking connection, NULL until used */
};

void rex__job_free(struct rex_job *job) {
    if (!job)
        return;
    rex_free(job->id);
    rex_free(job->fv); /* fv, fvlen and the strings are one allocation */
    rex_free(job->fail_message);
    rex_free(job->value);
    rex_free(job->keep);
    rex_free(job->stacktrace);
    rex_free(job);
}

void rex__msg_free(struct rex_msg *m) {
    rex_free(m->id);
    rex_free(m->a);
    rex_free(m->b);
    rex_free(m->c);
    rex_free(m->d);
    rex_free(m);
}

/* emit(kind, job_id, payload [, n]): progress and log lines leave the thread as messages. */
static int l_emit(lua_State *L) {
    struct tctx *t = lua_touserdata(L, lua_upvalueindex(1));
    const char *kind = luaL_checkstring(L, 1);
    size_t idlen, alen;
    const char *id = luaL_checklstring(L, 2, &idlen);
    const char *a = luaL_checklstring(L, 3, &alen);
    struct rex_msg *m = rex_calloc(1, sizeof(*m));
    if (!strcmp(kind, "progress"))
        m->kind = REX_MSG_PROGRESS;
    else if (!strcmp(kind, "log"))
        m->kind = REX_MSG_LOG;
    else if (!strcmp(kind, "scheduler")) {
        m->kind = REX_MSG_SCHEDULER;
        m->b = rex_strdup(luaL_checkstring(L, 4));
        m->c = rex_strdup(luaL_checkstring(L, 5));
        m->d = rex_strdup(luaL_checkstring(L, 6));
    } else {
        rex_free(m);
        return luaL_argerror(L, 1, "unknown message kind");
    }
    m->id = rex_strndup(id, idlen);
    m->a = rex_strndup(a, alen);
    m->alen = alen;
    m->n = m->kind == REX_MSG_LOG && lua_isnumber(L, 4) ? (long)lua_tonumber(L, 4) : -1;
    rex_mailbox_post(t->mailbox, &m->link);
    return 0;
}

/* A Redis reply as a Lua value: strings and status as strings, integers as numbers, nil as false,
 * arrays as tables (depth-first). */
static void push_reply(lua_State *L, const redisReply *r) {
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, r->str, r->len);
        break;
    case REDIS_REPLY_INTEGER:
        lua_pushnumber(L, (lua_Number)r->integer);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)r->elements, 0);
        for (size_t i = 0; i < r->elements; i++) {
            push_reply(L, r->element[i]);
            lua_rawseti(L, -2, (int)i + 1);
        }
        break;
    default:
        lua_pushboolean(L, 0);
    }
}

/* redis(arg1, arg2, ...) -> reply | nil, err. A blocking command on this worker thread's own
 * connection (2 s timeout), for handlers that keep small records under the queue's keys (the
 * execute-workflow pending-final journal). Connected on first use; dropped after an I/O error and
 * connected again on the next call. Never touches the event loop's connections. */
static int l_redis(lua_State *L) {
    struct tctx *t = lua_touserdata(L, lua_upvalueindex(1));
    int argc = lua_gettop(L);
    if (argc < 1 || argc > 64)
        return luaL_error(L, "redis: 1 to 64 arguments");
    const char *argv[64];
    size_t argvlen[64];
    for (int i = 0; i < argc; i++)
        argv[i] = luaL_checklstring(L, i + 1, &argvlen[i]);
    char err[512];
    int rc = 0;
    if (!t->redis) {
        rex_pool_block_begin();
        rc = rex_redis_connect_sync(&t->cfg->redis, 2000, &t->redis, err, sizeof(err));
        rex_pool_block_end();
    }
    if (rc) {
        t->redis = NULL;
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    rex_pool_block_begin(); /* a network wait: see runtime/pool.h */
    redisReply *r = redisCommandArgv(t->redis, argc, argv, argvlen);
    rex_pool_block_end();
    if (!r) {
        lua_pushnil(L);
        lua_pushfstring(L, "Redis: %s", t->redis->errstr[0] ? t->redis->errstr : "no reply");
        redisFree(t->redis);
        t->redis = NULL;
        return 2;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        lua_pushnil(L);
        lua_pushlstring(L, r->str, r->len);
        freeReplyObject(r);
        return 2;
    }
    push_reply(L, r);
    freeReplyObject(r);
    return 1;
}

int rex__process_thread_init(void *ud, int index, void **out, char *err, size_t errlen) {
    const struct rex_worker_thread_opts *o = ud;
    const struct rex_config *cfg = o->cfg;
    (void)index;
    struct tctx *t = rex_calloc(1, sizeof(*t));
    t->mailbox = o->mailbox;
    t->cfg = cfg;
    int rc = rex_lstate_new(NULL, &t->ls, err, errlen);
    if (rc) {
        rex_free(t);
        return rc;
    }
    lua_State *L = rex_lstate_L(t->ls);
    /* Interpreted unless REX_LUA_JIT=1: with one state per thread each state compiles its own
     * traces, and job code (pcall, lua_next-based C functions, short-lived tables) aborts many of
     * them, so the JIT costs more CPU than it saves and holds ~1.3 MB of machine code and traces
     * per state (bench/e2e: worker CPU per execution x0.72 at 500 executions, x0.91 at 2,000). */
    if (!cfg->lua_jit)
        luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_getglobal(L, "require");
    lua_pushstring(L, "rex.worker");
    if ((rc = rex_lstate_pcall(t->ls, 1, 1, err, errlen)))
        goto fail;
    int mod = lua_gettop(L);
    lua_getfield(L, mod, "init");
    lua_newtable(L);
    lua_pushstring(L, rex_runtime_home());
    lua_setfield(L, -2, "home");
    if (cfg->jobs_path) {
        lua_pushstring(L, cfg->jobs_path);
        lua_setfield(L, -2, "jobs_path");
    }
    lua_pushlightuserdata(L, t);
    lua_pushcclosure(L, l_emit, 1);
    lua_setfield(L, -2, "emit");
    lua_pushlightuserdata(L, t);
    lua_pushcclosure(L, l_redis, 1);
    lua_setfield(L, -2, "redis");
    lua_pushfstring(L, "%s:%s", cfg->prefix, cfg->queue_name);
    lua_setfield(L, -2, "queue_key");
    lua_pushstring(L, cfg->remove_on_complete);
    lua_setfield(L, -2, "remove_on_complete_json");
    lua_pushstring(L, cfg->remove_on_fail);
    lua_setfield(L, -2, "remove_on_fail_json");
    if (cfg->max_started_attempts > 0) {
        lua_pushnumber(L, (lua_Number)cfg->max_started_attempts);
        lua_setfield(L, -2, "max_started_attempts");
    }
    if ((rc = rex_lstate_pcall(t->ls, 1, 2, err, errlen)))
        goto fail;
    if (!lua_toboolean(L, -2)) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "init failed");
        rc = REX_ELUA;
        goto fail;
    }
    lua_pop(L, 2);
    lua_getfield(L, mod, "process");
    t->process_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, mod, "idle");
    t->idle_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    *out = t;
    return 0;
fail:
    rex_lstate_close(t->ls);
    rex_free(t);
    return rc ? rc : REX_ELUA;
}

void rex__process_thread_fini(void *tctx) {
    struct tctx *t = tctx;
    rex_lstate_close(t->ls);
    if (t->redis)
        redisFree(t->redis);
    rex_free(t);
}

static char *dup_field(lua_State *L, int idx, const char *name, size_t *len) {
    lua_getfield(L, idx, name);
    char *s = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *v = lua_tolstring(L, -1, &n);
        s = rex_strndup(v, n);
        if (len)
            *len = n;
    }
    lua_pop(L, 1);
    return s;
}

static double num_field(lua_State *L, int idx, const char *name, double def) {
    lua_getfield(L, idx, name);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

/* The idle call: rex.worker.idle() (errors are its own to log), then IDLE_DONE. */
static void run_idle(struct tctx *t, struct rex_job *item) {
    lua_State *L = rex_lstate_L(t->ls);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->idle_ref);
    char err[1024];
    if (rex_lstate_pcall(t->ls, 0, 0, err, sizeof(err)))
        rex_log_error("idle call failed inside the worker", "error", err, NULL);
    lua_settop(L, 0);
    struct rex_msg *m = rex_calloc(1, sizeof(*m));
    m->kind = REX_MSG_IDLE_DONE;
    m->job = item;
    rex_mailbox_post(t->mailbox, &m->link);
}

void rex__process_run(void *tctx, struct rex_link *item) {
    struct tctx *t = tctx;
    struct rex_job *job = (struct rex_job *)item;
    if (!job->id) {
        run_idle(t, job);
        return;
    }
    lua_State *L = rex_lstate_L(t->ls);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->process_ref);
    lua_createtable(L, 0, job->nfields + 2);
    for (int i = 0; i + 1 < job->nfields * 2; i += 2) {
        lua_pushlstring(L, job->fv[i], job->fvlen[i]);
        lua_pushlstring(L, job->fv[i + 1], job->fvlen[i + 1]);
        lua_rawset(L, -3);
    }
    lua_pushstring(L, job->id);
    lua_setfield(L, -2, "id");
    if (job->fail_message) {
        lua_pushstring(L, job->fail_message);
        lua_setfield(L, -2, "__fail_message");
        lua_pushboolean(L, job->fail_unrecoverable);
        lua_setfield(L, -2, "__fail_unrecoverable");
    }
    char err[2048];
    if (rex_lstate_pcall(t->ls, 1, 1, err, sizeof(err)) || !lua_istable(L, -1)) {
        /* a bug in rex.worker itself: fail the attempt, keep the job for inspection */
        if (lua_gettop(L) > 0 && !lua_istable(L, -1))
            snprintf(err, sizeof(err), "rex.worker.process returned no result table");
        rex_log_error("job processing failed inside the worker", "job", job->id, "error", err,
                      NULL);
        job->outcome = REX_OUT_FAILED;
        char msg[2100];
        snprintf(msg, sizeof(msg), "internal worker error: %s", err);
        job->value = rex_strdup(msg);
        job->value_len = strlen(msg);
        job->keep = rex_strdup("{\"count\":-1}");
        job->attempts = 0;
    } else {
        int r = lua_gettop(L);
        lua_getfield(L, r, "outcome");
        const char *o = lua_tostring(L, -1);
        job->outcome = !o                        ? REX_OUT_FAILED
                       : !strcmp(o, "completed") ? REX_OUT_COMPLETED
                       : !strcmp(o, "retry")     ? REX_OUT_RETRY
                       : !strcmp(o, "delay")     ? REX_OUT_DELAY
                                                 : REX_OUT_FAILED;
        lua_pop(L, 1);
        job->value = dup_field(L, r, "value", &job->value_len);
        if (!job->value) {
            job->value = rex_strdup("null");
            job->value_len = 4;
        }
        job->keep = dup_field(L, r, "keep", NULL);
        job->stacktrace = dup_field(L, r, "stacktrace", NULL);
        job->attempts = (long)num_field(L, r, "attempts", 0);
        job->delay = (long)num_field(L, r, "delay", 0);
        lua_getfield(L, r, "lifo");
        job->lifo = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_settop(L, 0);
    struct rex_msg *m = rex_calloc(1, sizeof(*m));
    m->kind = REX_MSG_JOB_DONE;
    m->job = job;
    rex_mailbox_post(t->mailbox, &m->link);
}
