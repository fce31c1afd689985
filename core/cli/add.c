/* rex-worker add NAME DATA_JSON [--opts OPTS_JSON]: adds a job as BullMQ's Queue.add would
 * (normalising the options in lua/rex/producer.lua, storing with the `add` queue script). */
#include <rex/log.h>
#include <rex/queue.h>
#include <rex/rex.h>
#include <rex/runtime.h>

#include "cli/cli.h"
#include "queue/scripts.h"

#include <hiredis/hiredis.h>
#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static char *read_arg(const char *a) {
    if (a[0] != '@')
        return rex_strdup(a);
    FILE *f = fopen(a + 1, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = rex_malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0)
            buf = rex_realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

int rex_cli_add(int argc, char **argv, struct rex_config *cfg) {
    const char *name = NULL, *data = NULL, *opts = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--opts") && i + 1 < argc)
            opts = argv[++i];
        else if (!name)
            name = argv[i];
        else if (!data)
            data = argv[i];
        else {
            fprintf(stderr, "rex-worker add: unexpected argument '%s'\n", argv[i]);
            return REX_EXIT_USAGE;
        }
    }
    if (!name || !data) {
        fprintf(stderr, "usage: rex-worker add NAME DATA_JSON|@FILE [--opts OPTS_JSON|@FILE]\n");
        return REX_EXIT_USAGE;
    }
    char *data_text = read_arg(data), *opts_text = opts ? read_arg(opts) : NULL;
    if (!data_text || (opts && !opts_text)) {
        fprintf(stderr, "rex-worker add: cannot read %s\n", !data_text ? data : opts);
        rex_free(data_text);
        return REX_EXIT_USAGE;
    }

    char err[2048];
    rex_lstate *ls;
    if (rex_lstate_new(NULL, &ls, err, sizeof(err))) {
        fprintf(stderr, "rex-worker add: %s\n", err);
        return REX_EXIT_FAILED;
    }
    lua_State *L = rex_lstate_L(ls);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_getglobal(L, "require");
    lua_pushstring(L, "rex.producer");
    int rc = REX_EXIT_FAILED;
    redisContext *c = NULL;
    if (rex_lstate_pcall(ls, 1, 1, err, sizeof(err)))
        goto lua_fail;
    lua_getfield(L, -1, "prepare");
    lua_pushstring(L, name);
    lua_pushstring(L, data_text);
    if (opts_text)
        lua_pushstring(L, opts_text);
    else
        lua_pushnil(L);
    lua_pushnumber(L, (double)tv.tv_sec * 1000.0 + (double)(tv.tv_usec / 1000));
    if (rex_lstate_pcall(ls, 4, 2, err, sizeof(err)))
        goto lua_fail;
    if (!lua_istable(L, -2)) {
        fprintf(stderr, "rex-worker add: %s\n", lua_tostring(L, -1));
        rc = REX_EXIT_USAGE;
        goto out;
    }
    lua_pop(L, 1);
    int script = -1;
    for (int i = 0; i < rex__queue_nscripts; i++)
        if (!strcmp(rex__queue_scripts[i].name, "add"))
            script = i;
    if (script < 0) {
        fprintf(stderr, "rex-worker add: the 'add' queue script is missing from this build\n");
        goto out;
    }
    if (rex_redis_connect_sync(&cfg->redis, 5000, &c, err, sizeof(err))) {
        fprintf(stderr, "rex-worker add: %s\n", err);
        goto out;
    }
    char key[1024];
    snprintf(key, sizeof(key), "%s:%s:", cfg->prefix, cfg->queue_name);
    const char *av[4 + 8];
    size_t al[4 + 8];
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = rex__queue_scripts[script].text;
    al[1] = rex__queue_scripts[script].len;
    av[2] = "1";
    al[2] = 1;
    av[3] = key;
    al[3] = strlen(key);
    for (int i = 0; i < 8; i++) {
        lua_rawgeti(L, -1, i + 1);
        av[4 + i] = lua_tolstring(L, -1, &al[4 + i]);
        lua_pop(L, 1); /* the strings stay alive: the table holds them */
    }
    redisReply *r = redisCommandArgv(c, 12, av, al);
    if (!r) {
        fprintf(stderr, "rex-worker add: redis: %s\n", c->errstr);
    } else if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "rex-worker add: %s\n", r->str);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
               r->element[0]->type == REDIS_REPLY_STRING) {
        printf("%s\n", r->element[0]->str);
        if (r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 0)
            fprintf(stderr, "rex-worker add: a job with id %s already exists; nothing added\n",
                    r->element[0]->str);
        rc = REX_EXIT_OK;
    } else {
        fprintf(stderr, "rex-worker add: unexpected reply from the add script\n");
    }
    if (r)
        freeReplyObject(r);
    goto out;
lua_fail:
    fprintf(stderr, "rex-worker add: %s\n", err);
out:
    if (c)
        redisFree(c);
    rex_lstate_close(ls);
    rex_free(data_text);
    rex_free(opts_text);
    return rc;
}
