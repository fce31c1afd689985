/* rex_rconn: one asynchronous Redis connection on a libuv loop that reconnects by itself
 * (internal to core/queue). Runs on the loop's thread only.
 *
 * - Connects, AUTHs, SELECTs, names itself (CLIENT SETNAME) and then reports "up".
 * - When the connection is lost, every pending callback gets reply == NULL, "down" is reported,
 *   and it reconnects with capped exponential backoff (100 ms .. 5 s, with jitter) until closed.
 * - Scripts run with EVALSHA; a NOSCRIPT reply (Redis restarted, SCRIPT FLUSH) resends the same
 *   call once as EVAL, which also caches the script again. */
#ifndef REX_QUEUE_RCONN_H
#define REX_QUEUE_RCONN_H

#include <rex/config.h>

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <uv.h>

typedef struct rex_rconn rex_rconn;

/* reply is NULL when the connection was lost or closed before the reply came. The reply is
 * freed by hiredis after the callback returns. */
typedef void (*rex_rconn_cb)(rex_rconn *c, redisReply *reply, void *ud);
/* up = 1 when the connection became usable, 0 when it was lost. */
typedef void (*rex_rconn_state_cb)(rex_rconn *c, int up, void *ud);

struct rex_rconn_opts {
    uv_loop_t *loop;
    const struct rex_redis_url *url; /* copied */
    const char *client_name;         /* CLIENT SETNAME value, or NULL */
    rex_rconn_state_cb on_state;     /* may be NULL */
    void *ud;
};

/* Starts connecting. Never fails: connection errors are retried. The caller closes it with
 * rex_rconn_close. */
rex_rconn *rex_rconn_open(const struct rex_rconn_opts *opts);

/* Closes the connection: pending callbacks get NULL, no reconnect; done(ud) runs once the handles
 * are released (the struct is freed after it returns). */
void rex_rconn_close(rex_rconn *c, void (*done)(void *ud), void *ud);

int rex_rconn_up(const rex_rconn *c);

/* Writes the queued commands now instead of just before the loop next polls. Only from loop
 * callbacks outside this connection's reply callbacks (a write error disconnects it). */
void rex_rconn_flush(rex_rconn *c);

/* Sends a command. Returns 0, or REX_ECONN when the connection is not up (cb is not called). */
int rex_rconn_cmd(rex_rconn *c, rex_rconn_cb cb, void *ud, int argc, const char **argv,
                  const size_t *argvlen);

/* Runs embedded script number `script` with KEYS[1] = key and ARGV = argv[0..argc). The arguments
 * are copied. Returns 0, or REX_ECONN when not up (cb is not called). */
int rex_rconn_script(rex_rconn *c, int script, const char *key, rex_rconn_cb cb, void *ud, int argc,
                     const char **argv, const size_t *argvlen);

/* Index of an embedded script by name, or -1. */
int rex_rconn_script_index(const char *name);

/* Drops the connection now (pending callbacks get NULL) and reconnects after the backoff. */
void rex_rconn_reset(rex_rconn *c);

/* Number of commands sent and not yet answered. */
int rex_rconn_pending(const rex_rconn *c);

#endif
