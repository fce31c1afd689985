/* Configuration from the environment and an optional .env file (the environment wins).
 * Values from .env are put into the process environment (without overwriting), so scripts see
 * them through os.getenv too. Every value is validated at load: a malformed one is an error naming
 * the variable, never a default silently taken. */
#ifndef REX_CONFIG_H
#define REX_CONFIG_H

#include <stddef.h>

struct rex_redis_url {
    char *host; /* owned; hostname or IP literal without brackets */
    int port;
    char *username; /* owned or NULL */
    char *password; /* owned or NULL; never logged */
    int db;
    char *unix_path; /* owned or NULL: redis+unix:///path or unix:///path */
};

struct rex_config {
    struct rex_redis_url redis;
    char *redis_url_redacted; /* owned; safe to log */
    char *queue_name;
    char *prefix;
    int concurrency;
    char *database_url;          /* owned or NULL */
    char *encryption_master_key; /* owned or NULL; never logged */
    char *jobs_path;             /* owned or NULL; colon-separated */
    char *nodes_path;
    char *hooks_path;
    long lock_duration_ms;
    long stalled_interval_ms;
    int max_stalled_count;
    long shutdown_grace_ms;
    char *worker_name; /* owned or NULL: shown by Queue.getWorkers(), stored as `pb` */
    long limiter_max;  /* 0 = no worker rate limit */
    long limiter_duration_ms;
    long max_started_attempts; /* 0 = unlimited */
    char *remove_on_complete;  /* owned: JSON (true, false, n, {age,count,limit}) */
    char *remove_on_fail;
    long drain_delay_ms;
    long idle_interval_ms; /* an idle worker runs the handlers' idle() this often */
    int log_level;
    char *http_allowlist; /* owned or NULL */
    int retrieval_max_requests;
    int retrieval_max_failures;
    long retrieval_max_duration_ms;
    long knowledge_cache_mb;        /* process-wide corpus cache bound, 0 = unbounded */
    int knowledge_store_embeddings; /* 1: also store vectors of deterministic models */
    int lua_jit;                    /* 1: worker threads' Lua states compile hot code (JIT) */
    char *env_file_used;            /* owned or NULL: the .env file that was read */
};

/* Loads the configuration. env_file: path of a .env file to read, or NULL for "$REX_ENV_FILE if
 * set, else ./.env if it exists". A missing default .env is not an error; a missing explicit one
 * is. Returns 0, or REX_EINVAL with a message naming the variable (or .env line) in err. On error
 * the config holds nothing to free. */
int rex_config_load(struct rex_config *cfg, const char *env_file, char *err, size_t errlen);
void rex_config_free(struct rex_config *cfg);

/* Parses a redis:// URL (redis://[user[:password]@]host[:port][/db], IPv6 as [::1],
 * unix:///path?db=N). Returns 0 or REX_EINVAL with a reason in err. */
int rex_redis_url_parse(const char *url, struct rex_redis_url *out, char *err, size_t errlen);
void rex_redis_url_free(struct rex_redis_url *u);

#endif
