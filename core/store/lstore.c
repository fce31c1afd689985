/* rex.store_c: the PostgreSQL connection seen from Lua (wrapped by lua/rex/store.lua).
 *
 * A connection lives in pipeline mode. conn:send() queues a statement followed by its own Sync
 * (so each statement is its own implicit transaction: a failed best-effort insert never takes a
 * neighbour down) and returns without waiting; conn:exec() queues its statement the same way and
 * then reads every pending result in one round trip; conn:sync() reads what is pending and returns
 * the failures of sent statements. In "per-row" mode (the benchmark's baseline) send() waits for
 * its own result. Connection loss raises {message, connection = true}; the connection is then
 * closed and the Lua side reconnects. One connection belongs to one Lua state (one thread). */
#include <rex/log.h>
#include <rex/rex.h>
#include <rex/store.h>

#include "runtime/pool.h"
#include "store/schema.h"

#include <lauxlib.h>
#include <lua.h>

#include <libpq-fe.h>

#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>

#define CONN_MT "rex.store.conn"

struct pend {
    char *tag; /* owned; names the statement in error reports */
    int keep;  /* exec(): keep the result */
    int prep;  /* a Parse for prepared statement slot prep (its failure frees the slot), or -1 */
    PGresult *res; /* the kept result (or the error result) */
};

/* Statements the worker sends come from a few fixed templates: each is prepared once per
 * connection (named "rex_<slot>") so the server parses and plans it once, not per execution. */
enum { MAX_PREPARED = 128 };

struct prepared {
    char *sql; /* owned; NULL = free slot */
    int nparams;
};

struct lconn {
    PGconn *c;
    struct pend *q;
    size_t head, len, cap;
    int per_row;
    long statements, roundtrips;
    int errors_ref; /* registry ref of the table of failures of sent statements */
    struct prepared prep[MAX_PREPARED];
};

enum { MAX_PARAMS = 64, MAX_PENDING = 512 };

static struct lconn *check(lua_State *L) {
    return luaL_checkudata(L, 1, CONN_MT);
}

static void push_trimmed(lua_State *L, const char *m) {
    size_t n = m ? strlen(m) : 0;
    while (n && (m[n - 1] == '\n' || m[n - 1] == ' '))
        n--;
    char *r = rex_redact(m ? m : "", n, NULL);
    lua_pushstring(L, r);
    rex_free(r);
}

/* Raises {message, sqlstate?, connection} */
static int raise_error(lua_State *L, const char *prefix, const char *msg, const char *sqlstate,
                       int connection) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, prefix);
    push_trimmed(L, msg);
    lua_concat(L, 2);
    lua_setfield(L, -2, "message");
    if (sqlstate && *sqlstate) {
        lua_pushstring(L, sqlstate);
        lua_setfield(L, -2, "sqlstate");
    }
    lua_pushboolean(L, connection);
    lua_setfield(L, -2, "connection");
    return lua_error(L);
}

static void drop_queue(struct lconn *k) {
    for (size_t i = 0; i < k->len; i++) {
        struct pend *p = &k->q[(k->head + i) % k->cap];
        rex_free(p->tag);
        if (p->res)
            PQclear(p->res);
    }
    k->head = k->len = 0;
}

static void drop_prepared(struct lconn *k) {
    for (int i = 0; i < MAX_PREPARED; i++) {
        rex_free(k->prep[i].sql);
        k->prep[i].sql = NULL;
    }
}

static int lost(lua_State *L, struct lconn *k, const char *why) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", why && *why ? why : "connection lost");
    drop_queue(k);
    drop_prepared(k);
    if (k->c) {
        PQfinish(k->c);
        k->c = NULL;
    }
    return raise_error(L, "PostgreSQL connection lost: ", buf, NULL, 1);
}

static int gc(lua_State *L) {
    struct lconn *k = luaL_checkudata(L, 1, CONN_MT);
    drop_queue(k);
    drop_prepared(k);
    rex_free(k->q);
    k->q = NULL;
    k->cap = 0;
    if (k->c) {
        PQfinish(k->c);
        k->c = NULL;
    }
    if (k->errors_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, k->errors_ref);
        k->errors_ref = LUA_NOREF;
    }
    return 0;
}

/* The server's primary message ("relation ... does not exist"), else libpq's full text. */
static const char *result_message(PGresult *r) {
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m && *m ? m : r ? PQresultErrorMessage(r) : "no result";
}

static void record_failure(lua_State *L, struct lconn *k, const char *tag, PGresult *r) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->errors_ref);
    int n = (int)lua_objlen(L, -1);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, tag ? tag : "");
    lua_setfield(L, -2, "tag");
    const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (ss) {
        lua_pushstring(L, ss);
        lua_setfield(L, -2, "sqlstate");
    }
    push_trimmed(L, result_message(r));
    lua_setfield(L, -2, "message");
    lua_rawseti(L, -2, n + 1);
    lua_pop(L, 1);
}

/* The next result; a wait for the server is announced to the worker pool, so another job can
 * use the CPU meanwhile (runtime/pool.h). */
static PGresult *get_result(PGconn *c) {
    if (!PQisBusy(c))
        return PQgetResult(c);
    rex_pool_block_begin();
    PGresult *r = PQgetResult(c);
    rex_pool_block_end();
    return r;
}

/* Reads the results of every pending entry (one round trip). Kept results stay in their entry
 * for the caller; failures of the others are recorded. Raises on connection loss. */
static void drain(lua_State *L, struct lconn *k, struct pend *keeps, size_t *nkeeps) {
    if (!k->len)
        return;
    k->roundtrips++;
    PGresult *prep_fail = NULL;
    while (k->len) {
        struct pend *p = &k->q[k->head];
        PGresult *first = NULL;
        int nulls = 0;
        for (;;) {
            PGresult *r = get_result(k->c);
            if (!r) {
                if (PQstatus(k->c) != CONNECTION_OK || ++nulls > 2) {
                    if (first)
                        PQclear(first);
                    lost(L, k, PQerrorMessage(k->c));
                }
                continue;
            }
            nulls = 0;
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                break;
            }
            if (st == PGRES_FATAL_ERROR && PQstatus(k->c) != CONNECTION_OK) {
                char why[512];
                snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
                PQclear(r);
                if (first)
                    PQclear(first);
                lost(L, k, why);
            }
            if (!first)
                first = r;
            else
                PQclear(r);
        }
        ExecStatusType st = first ? PQresultStatus(first) : PGRES_FATAL_ERROR;
        int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        if (!ok && p->prep >= 0) {
            /* a failed Parse: forget the slot, and report its error (the real one) for the
             * statement that follows instead of "prepared statement does not exist" */
            rex_free(k->prep[p->prep].sql);
            k->prep[p->prep].sql = NULL;
            if (prep_fail)
                PQclear(prep_fail);
            prep_fail = first;
            rex_free(p->tag);
            k->head = (k->head + 1) % k->cap;
            k->len--;
            continue;
        }
        if (p->prep < 0 && prep_fail) {
            if (!ok) {
                if (first)
                    PQclear(first);
                first = prep_fail;
            } else {
                PQclear(prep_fail);
            }
            prep_fail = NULL;
        }
        if (p->keep && keeps) {
            keeps[*nkeeps] = *p;
            keeps[*nkeeps].res = first;
            (*nkeeps)++;
        } else {
            if (!ok && first)
                record_failure(L, k, p->tag, first);
            if (first)
                PQclear(first);
            rex_free(p->tag);
        }
        k->head = (k->head + 1) % k->cap;
        k->len--;
    }
    if (prep_fail)
        PQclear(prep_fail);
    k->head = 0;
}

static void need_conn(lua_State *L, struct lconn *k) {
    if (!k->c)
        raise_error(L, "PostgreSQL connection lost: ", "connection closed", NULL, 1);
}

static void grow(struct lconn *k) {
    size_t ncap = k->cap ? k->cap * 2 : 32;
    struct pend *nq = rex_malloc(ncap * sizeof(*nq));
    for (size_t i = 0; i < k->len; i++)
        nq[i] = k->q[(k->head + i) % k->cap];
    rex_free(k->q);
    k->q = nq;
    k->cap = ncap;
    k->head = 0;
}

static void push_pend(struct lconn *k, const char *tag, int keep, int prep) {
    struct pend *p = &k->q[(k->head + k->len) % k->cap];
    p->tag = rex_strdup(tag ? tag : "");
    p->keep = keep;
    p->prep = prep;
    p->res = NULL;
    k->len++;
}

/* Only plannable statements are prepared (not BEGIN, COMMIT, SET, ...). */
static int preparable(const char *sql) {
    static const char *const kw[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", NULL};
    while (*sql == ' ' || *sql == '\n' || *sql == '\t')
        sql++;
    for (int i = 0; kw[i]; i++)
        if (!strncasecmp(sql, kw[i], strlen(kw[i])))
            return 1;
    return 0;
}

/* The slot of sql (prepared or to be prepared now: sql NULL in a fresh slot), or -1 when the
 * cache is full. */
static int find_prepared(struct lconn *k, const char *sql, int nparams) {
    int free_slot = -1;
    for (int i = 0; i < MAX_PREPARED; i++) {
        if (!k->prep[i].sql) {
            if (free_slot < 0)
                free_slot = i;
        } else if (k->prep[i].nparams == nparams && !strcmp(k->prep[i].sql, sql)) {
            return i;
        }
    }
    return free_slot;
}

/* Sends the statement at stack index si with the parameters of the table at index pi (n = its
 * `n` field or its length). */
static void send_stmt_at(lua_State *L, struct lconn *k, int si, int pi, int keep, const char *tag) {
    const char *sql = luaL_checkstring(L, si);
    const char *vals[MAX_PARAMS];
    char nums[MAX_PARAMS][32];
    int n = 0;
    if (lua_istable(L, pi)) {
        lua_getfield(L, pi, "n");
        n = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : (int)lua_objlen(L, pi);
        lua_pop(L, 1);
        if (n > MAX_PARAMS)
            luaL_error(L, "too many parameters (%d > %d)", n, MAX_PARAMS);
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, pi, i + 1);
            int t = lua_type(L, -1);
            if (t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1))) {
                vals[i] = NULL;
            } else if (t == LUA_TBOOLEAN) {
                vals[i] = lua_toboolean(L, -1) ? "true" : "false";
            } else if (t == LUA_TNUMBER) {
                double d = lua_tonumber(L, -1);
                if (d == floor(d) && fabs(d) < 9e15)
                    snprintf(nums[i], sizeof(nums[i]), "%.0f", d);
                else
                    snprintf(nums[i], sizeof(nums[i]), "%.17g", d);
                vals[i] = nums[i];
            } else if (t == LUA_TSTRING) {
                vals[i] = lua_tostring(L, -1); /* stays alive: the table holds it */
            } else {
                luaL_error(L, "parameter %d: unsupported type %s (encode tables as JSON)", i + 1,
                           lua_typename(L, t));
            }
            lua_pop(L, 1);
        }
    }
    need_conn(L, k);
    if (k->len == k->cap)
        grow(k);
    int slot = preparable(sql) ? find_prepared(k, sql, n) : -1;
    char name[16];
    if (slot >= 0)
        snprintf(name, sizeof(name), "rex_%d", slot);
    if (slot >= 0 && !k->prep[slot].sql) {
        /* first use on this connection: Parse (its own entry, failures reported under tag) */
        if (!PQsendPrepare(k->c, name, sql, n, NULL) || !PQpipelineSync(k->c)) {
            if (PQstatus(k->c) != CONNECTION_OK)
                lost(L, k, PQerrorMessage(k->c));
            raise_error(L, "PostgreSQL: cannot send a statement: ", PQerrorMessage(k->c), NULL, 0);
        }
        k->prep[slot].sql = rex_strdup(sql);
        k->prep[slot].nparams = n;
        push_pend(k, tag, 0, slot);
        if (k->len == k->cap)
            grow(k);
    }
    int sent = slot >= 0 ? PQsendQueryPrepared(k->c, name, n, vals, NULL, NULL, 0)
                         : PQsendQueryParams(k->c, sql, n, NULL, vals, NULL, NULL, 0);
    if (!sent || !PQpipelineSync(k->c)) {
        if (PQstatus(k->c) != CONNECTION_OK)
            lost(L, k, PQerrorMessage(k->c));
        raise_error(L, "PostgreSQL: cannot send a statement: ", PQerrorMessage(k->c), NULL, 0);
    }
    push_pend(k, tag, keep, -1);
    k->statements++;
}

static void send_stmt(lua_State *L, struct lconn *k, int keep, const char *tag) {
    send_stmt_at(L, k, 2, 3, keep, tag);
}

/* conn:send(sql, params, tag) */
static int l_send(lua_State *L) {
    struct lconn *k = check(L);
    send_stmt(L, k, 0, luaL_optstring(L, 4, ""));
    if (k->per_row || k->len >= MAX_PENDING)
        drain(L, k, NULL, NULL);
    return 0;
}

static void push_result(lua_State *L, PGresult *r) {
    int nr = PQntuples(r), nf = PQnfields(r);
    lua_createtable(L, nr, 0);
    for (int i = 0; i < nr; i++) {
        lua_createtable(L, 0, nf);
        for (int j = 0; j < nf; j++) {
            if (PQgetisnull(r, i, j))
                continue;
            lua_pushlstring(L, PQgetvalue(r, i, j), (size_t)PQgetlength(r, i, j));
            lua_setfield(L, -2, PQfname(r, j));
        }
        lua_rawseti(L, -2, i + 1);
    }
}

/* conn:exec(sql, params) -> rows, affected */
static int l_exec(lua_State *L) {
    struct lconn *k = check(L);
    send_stmt(L, k, 1, "exec");
    struct pend got = {0};
    size_t ngot = 0;
    drain(L, k, &got, &ngot);
    PGresult *r = got.res;
    rex_free(got.tag);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[1024], ss[8] = "";
        snprintf(msg, sizeof(msg), "%s", result_message(r));
        if (r && PQresultErrorField(r, PG_DIAG_SQLSTATE))
            snprintf(ss, sizeof(ss), "%s", PQresultErrorField(r, PG_DIAG_SQLSTATE));
        if (r)
            PQclear(r);
        return raise_error(L, "", msg, ss, 0);
    }
    push_result(L, r);
    const char *ct = PQcmdTuples(r);
    lua_pushinteger(L, ct && *ct ? atoi(ct) : 0);
    PQclear(r);
    return 2;
}

/* conn:batch({ {sql, params}, ... }) -> { {rows = ..., affected = n} or {error = {message,
 * sqlstate}}, ... }: the statements and whatever was pending, in one round trip. */
static int l_batch(lua_State *L) {
    struct lconn *k = check(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int n = (int)lua_objlen(L, 2);
    if (n > 32)
        return luaL_error(L, "batch: at most 32 statements");
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        int item = lua_gettop(L);
        lua_rawgeti(L, item, 1);
        lua_rawgeti(L, item, 2);
        send_stmt_at(L, k, item + 1, item + 2, 1, "batch");
        lua_settop(L, item - 1);
    }
    struct pend keeps[32];
    size_t nk = 0;
    drain(L, k, keeps, &nk);
    lua_createtable(L, (int)nk, 0);
    for (size_t i = 0; i < nk; i++) {
        PGresult *r = keeps[i].res;
        rex_free(keeps[i].tag);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        lua_createtable(L, 0, 2);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            push_result(L, r);
            lua_setfield(L, -2, "rows");
            const char *ct = PQcmdTuples(r);
            lua_pushinteger(L, ct && *ct ? atoi(ct) : 0);
            lua_setfield(L, -2, "affected");
        } else {
            lua_createtable(L, 0, 2);
            push_trimmed(L, result_message(r));
            lua_setfield(L, -2, "message");
            const char *ss = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
            if (ss) {
                lua_pushstring(L, ss);
                lua_setfield(L, -2, "sqlstate");
            }
            lua_setfield(L, -2, "error");
        }
        if (r)
            PQclear(r);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* conn:sync() -> failures (array of {tag, sqlstate, message}), cleared */
static int l_sync(lua_State *L) {
    struct lconn *k = check(L);
    if (k->len) {
        need_conn(L, k);
        drain(L, k, NULL, NULL);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, k->errors_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, k->errors_ref);
    lua_newtable(L);
    k->errors_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

static int l_pending(lua_State *L) {
    struct lconn *k = check(L);
    lua_pushinteger(L, (lua_Integer)k->len);
    return 1;
}

static int l_ok(lua_State *L) {
    struct lconn *k = check(L);
    lua_pushboolean(L, k->c && PQstatus(k->c) == CONNECTION_OK);
    return 1;
}

static int l_stats(lua_State *L) {
    struct lconn *k = check(L);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, (lua_Number)k->statements);
    lua_setfield(L, -2, "statements");
    lua_pushnumber(L, (lua_Number)k->roundtrips);
    lua_setfield(L, -2, "roundtrips");
    return 1;
}

static int l_set_per_row(lua_State *L) {
    struct lconn *k = check(L);
    k->per_row = lua_toboolean(L, 2);
    return 0;
}

static int l_close(lua_State *L) {
    return gc(L);
}

struct schema_ud {
    lua_State *L;
    int idx;
};

static void on_column(void *ud, const char *table, const char *column, const char *type,
                      int nullable) {
    struct schema_ud *s = ud;
    lua_State *L = s->L;
    lua_getfield(L, s->idx, table);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, s->idx, table);
    }
    lua_getfield(L, -1, column);
    if (lua_isnil(L, -1)) { /* the first schema in search_path wins */
        lua_createtable(L, 0, 2);
        lua_pushstring(L, type);
        lua_setfield(L, -2, "type");
        lua_pushboolean(L, nullable);
        lua_setfield(L, -2, "nullable");
        lua_setfield(L, -3, column);
    }
    lua_pop(L, 2);
}

/* conn:schema() -> { table = { column = {type, nullable} } } for the worker's tables */
static int l_schema(lua_State *L) {
    struct lconn *k = check(L);
    need_conn(L, k);
    drain(L, k, NULL, NULL);
    PQexitPipelineMode(k->c);
    lua_newtable(L);
    struct schema_ud s = {L, lua_gettop(L)};
    char err[512];
    int rc = rex__store_introspect(k->c, on_column, &s, err, sizeof(err));
    if (rc == REX_ECONN)
        return lost(L, k, err);
    PQenterPipelineMode(k->c);
    if (rc)
        return raise_error(L, "", err, NULL, 0);
    k->roundtrips++;
    return 1;
}

/* store_c.connect(conninfo, timeout_s) -> conn | nil, err */
static int l_connect(lua_State *L) {
    const char *ci = luaL_checkstring(L, 1);
    int timeout = (int)luaL_optinteger(L, 2, 10);
    PGconn *c = NULL;
    char err[512];
    if (rex_pg_connect(ci, timeout, &c, err, sizeof(err))) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (!PQenterPipelineMode(c)) {
        PQfinish(c);
        lua_pushnil(L);
        lua_pushstring(L, "cannot enter libpq pipeline mode");
        return 2;
    }
    struct lconn *k = lua_newuserdata(L, sizeof(*k));
    memset(k, 0, sizeof(*k));
    k->c = c;
    k->errors_ref = LUA_NOREF;
    luaL_getmetatable(L, CONN_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L);
    k->errors_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* store_c.decrypt_api_key(stored, master) -> plaintext | nil, err */
static int l_decrypt(lua_State *L) {
    const char *stored = luaL_optstring(L, 1, "");
    const char *master = luaL_optstring(L, 2, "");
    char *out = NULL, err[256];
    size_t cap = 0;
    if (rex_store_decrypt_api_key(stored, master, &out, &cap, err, sizeof(err))) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, out);
    rex_store_secret_free(out, cap);
    return 1;
}

/* store_c.encrypt_api_key(plaintext, master, salt32, iv16) -> stored | nil, err (tests, tools) */
static int l_encrypt(lua_State *L) {
    size_t ns = 0, ni = 0;
    const char *pt = luaL_checkstring(L, 1);
    const char *master = luaL_checkstring(L, 2);
    const char *salt = luaL_checklstring(L, 3, &ns);
    const char *iv = luaL_checklstring(L, 4, &ni);
    if (ns != 32 || ni != 16)
        return luaL_error(L, "salt must be 32 bytes and iv 16 bytes");
    char *out = NULL, err[256];
    if (rex_store_encrypt_api_key(pt, master, (const unsigned char *)salt,
                                  (const unsigned char *)iv, &out, err, sizeof(err))) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushstring(L, out);
    rex_free(out);
    return 1;
}

/* store_c.migrate(conninfo) -> applied | raises */
static int l_migrate(lua_State *L) {
    const char *ci = luaL_checkstring(L, 1);
    PGconn *c = NULL;
    char err[1024];
    if (rex_pg_connect(ci, 10, &c, err, sizeof(err)))
        return raise_error(L, "", err, NULL, 1);
    int applied = 0;
    int rc = rex_store_migrate(c, &applied, err, sizeof(err));
    PQfinish(c);
    if (rc)
        return raise_error(L, "", err, NULL, rc == REX_ECONN);
    lua_pushinteger(L, applied);
    return 1;
}

static int l_first_time(lua_State *L) {
    lua_pushboolean(L, rex_store_first_time(luaL_checkstring(L, 1)));
    return 1;
}

int rex__lstore_open(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"send", l_send},       {"exec", l_exec},   {"sync", l_sync},
        {"pending", l_pending}, {"ok", l_ok},       {"stats", l_stats},
        {"schema", l_schema},   {"close", l_close}, {"set_per_row", l_set_per_row},
        {"batch", l_batch},     {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"connect", l_connect}, {"decrypt_api_key", l_decrypt}, {"encrypt_api_key", l_encrypt},
        {"migrate", l_migrate}, {"first_time", l_first_time},   {NULL, NULL},
    };
    if (luaL_newmetatable(L, CONN_MT)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    luaL_register(L, NULL, funcs);
    return 1;
}
