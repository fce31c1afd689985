/* The BullMQ side: connections to Redis. (The worker core comes with the queue issue.) */
#ifndef REX_QUEUE_H
#define REX_QUEUE_H

#include <rex/config.h>

#include <stddef.h>

typedef struct redisContext redisContext;

/* Opens a blocking connection (with AUTH and SELECT as the URL says), bounded by timeout_ms for
 * the connect and for every later command. Returns 0 and sets *out, or REX_ECONN / REX_EPROTO with
 * the reason in err (never containing the password). The caller frees *out with redisFree. */
int rex_redis_connect_sync(const struct rex_redis_url *url, int timeout_ms, redisContext **out,
                           char *err, size_t errlen);

/* The server's process id from INFO server, or a negative REX_E* code. */
long rex_redis_server_pid(redisContext *c);

/* Runs the worker (rex-worker serve) until SIGTERM/SIGINT and a graceful close. Returns 0 after
 * a clean close, or a negative REX_E* code with the reason in err when it cannot start (a job
 * handler that does not load, say). Exits the process with 1 when the shutdown grace period runs
 * out or on a second signal. */
int rex_worker_run(const struct rex_config *cfg, char *err, size_t errlen);

#endif
